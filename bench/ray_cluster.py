"""A Ray cluster of several nodes on this machine, as the README's steps start one on several machines.

Each node is `ray start` with token authentication (one token for the cluster, in RAY_AUTH_TOKEN), free ports and
a temporary folder of its own, run in a session of its own: the processes it leaves running (GCS, raylet, workers)
keep that session id, which is how `kill_node` and `stop` find them, by PID, and how a test counts what is left.
Used by `bench --study` and the cluster tests; nothing else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())"]
OBJECT_STORE_BYTES = 100 * 1024**2  # about Ray's least


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def session_processes(session: int) -> list[int]:
    """The live processes of a session (what one `ray start` left running). Linux lists its processes only as
    /proc's folders; `os.getsid` says which session each is in."""
    found = []
    for pid in (int(name) for name in os.listdir("/proc") if name.isdigit()):
        with contextlib.suppress(OSError):  # the process ended meanwhile
            if os.getsid(pid) == session and not _zombie(pid):
                found.append(pid)
    return found


def _zombie(pid: int) -> bool:
    """A process that has ended but that its parent has not reaped (where PID 1 reaps nothing, it stays): dead
    already. Its state is the first field after the command's closing parenthesis in /proc/PID/stat."""
    return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split() or ["?"])[0] == "Z"


def kill_session(session: int) -> None:
    for pid in session_processes(session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class LocalCluster:
    """A head and worker nodes on 127.0.0.1; `env` is what a driver needs to join (the token)."""

    def __init__(self, node_env: dict[str, str] | None = None) -> None:
        self.token = secrets.token_hex(32)  # as `ray get-auth-token --generate` makes one
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}
        self.node_env = node_env or {}  # more environment for the nodes' processes (and so their workers)
        self.temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
        self.address = ""
        self.nodes: list[int] = []  # each node's session id (the pid of its `ray start`)

    def _start_node(self, options: list[str], num_cpus: int) -> int:
        """`ray start` in a session of its own; the session id (its pid) names the node's processes."""
        command = [*RAY, "start", "--num-cpus", str(num_cpus), "--object-store-memory", str(OBJECT_STORE_BYTES),
                   "--node-ip-address", "127.0.0.1", "--node-manager-port", str(free_port()),
                   "--object-manager-port", str(free_port()), "--disable-usage-stats", *options]
        starter = subprocess.Popen(command, env=os.environ | self.env | self.node_env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        output, _ = starter.communicate(timeout=180)
        if starter.returncode != 0:
            kill_session(starter.pid)
            raise RuntimeError(f"ray start failed: {output[-2000:]}")
        return starter.pid

    def start_head(self, num_cpus: int = 1) -> str:
        port = free_port()
        self.nodes.append(self._start_node(["--head", "--port", str(port), "--include-dashboard", "false",
                                            "--temp-dir", self.temp_dir], num_cpus))
        self.address = f"127.0.0.1:{port}"
        return self.address

    def add_node(self, num_cpus: int = 1) -> int:
        node = self._start_node(["--address", self.address], num_cpus)
        self.nodes.append(node)
        return node

    def kill_node(self, node: int) -> None:
        """SIGKILL every process of one node, as when its machine goes away."""
        kill_session(node)
        self.nodes.remove(node)

    def processes(self) -> list[int]:
        return [pid for node in self.nodes for pid in session_processes(node)]

    def stop(self) -> None:
        """Kill every node's processes by PID (never `ray stop`, which stops every Ray on the machine)."""
        for _ in range(3):  # a raylet may start a worker while its siblings die
            for node in self.nodes:
                kill_session(node)
            time.sleep(0.5)
        self.nodes.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
