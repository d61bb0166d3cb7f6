"""Hostile clients against a real shared-mode server (`streamlit run` on 127.0.0.1): a websocket session with no
browser and hand-made upload requests. Each test asserts its bound: the bytes a session's uploads hold, that they
are given back when the session leaves, the message for a link's number past any float, and nginx in front."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.harness import ROOT, free_port, streamlit_app
from tests.hostile_client import REFUSED_MID_BODY, put_upload, rss_bytes, session

pytestmark = pytest.mark.slow

MB = 1024**2
NGINX = "/usr/sbin/nginx"


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("hostile")
    patch = pytest.MonkeyPatch()
    patch.setenv("PLAYGROUND_SHARED", "1")
    try:
        with (folder / "streamlit.log").open("w+") as log, streamlit_app(folder / "runs", log) as url:
            yield url
    finally:
        patch.undo()


def test_uploads_sent_around_the_page_are_bounded_and_given_back_when_the_session_leaves(shared_server: str) -> None:
    port = int(shared_server.rsplit(":", 1)[1])
    with session(shared_server) as (_, session_id, _):
        before = rss_bytes(port)
        assert put_upload(shared_server, session_id, "file0", bytes(70 * MB)) in (413, REFUSED_MID_BODY)  # > 64 MB
        statuses = [put_upload(shared_server, session_id, f"file{index}", bytes(30 * MB)) for index in range(3)]
        assert statuses[:2] == [204, 204] and statuses[2] != 204  # a session holds one checkpoint and one CSV
        held = rss_bytes(port) - before
        assert held < 64 * MB + 10 * MB + 20 * MB, held / MB
    assert put_upload(shared_server, session_id, "late", b"x") == 400  # the session is gone
    with session(shared_server):  # anyone's next script run gives the bytes back
        assert rss_bytes(port) - before < 20 * MB, (rss_bytes(port) - before) / MB


@pytest.mark.parametrize("link", ["steps=1e309", "hidden_dim=-inf", "seed=1e400"])
def test_a_link_number_past_any_float_gets_the_apps_message_and_no_traceback(shared_server: str, link: str) -> None:
    with session(shared_server, link) as (_, _, texts):
        value = link.split("=")[1]
        assert any(value in text and "cannot be used" in text for text in texts), texts
        assert not [text for text in texts if "exception {" in text or "Traceback" in text]


NGINX_WRAPPER = """pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{}}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    include {folder}/site.conf;
}}
"""


def test_nginx_from_the_readme_serves_the_app_over_tls_and_bounds_uploads(shared_server: str, tmp_path: Path) -> None:
    if not Path(NGINX).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{NGINX} is missing: .ci/run installs Debian's nginx")
        pytest.skip(f"{NGINX} is missing (apt-get install nginx)")
    tls_port, plain_port = free_port(), free_port()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    for deployed, here in (("listen 443 ssl", f"listen 127.0.0.1:{tls_port} ssl"),
                           ("listen 80", f"listen 127.0.0.1:{plain_port}"),
                           ("/etc/ssl/certs/playground.pem", str(tmp_path / "cert.pem")),
                           ("/etc/ssl/private/playground.key", str(tmp_path / "key.pem")),
                           ("127.0.0.1:8501", shared_server.removeprefix("http://"))):
        assert deployed in site
        site = site.replace(deployed, here)
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(NGINX_WRAPPER.format(folder=tmp_path))
    proxy = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
                             stderr=subprocess.PIPE, text=True)
    proxied = f"https://127.0.0.1:{tls_port}"
    context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    context.check_hostname = False
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = urllib.request.urlopen(f"{proxied}/_stcore/health", timeout=5, context=context).read()
                break
            except OSError:
                assert time.monotonic() < deadline and proxy.poll() is None, proxy.stderr and proxy.stderr.read()
                time.sleep(0.3)
        assert health == b"ok"
        with session(shared_server) as (_, session_id, _):
            assert put_upload(proxied, session_id, "big", bytes(70 * MB), context) in (413, REFUSED_MID_BODY)
            statuses = [put_upload(proxied, session_id, "small", b"x" * 100, context) for _ in range(8)]
        assert statuses[0] == 204 and 429 in statuses  # 6 a minute and a burst of 4 per address
        assert " 413 " in (tmp_path / "access.log").read_text()  # refused by nginx, before the app read a byte
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        shutil.rmtree(tmp_path / "body", ignore_errors=True)
