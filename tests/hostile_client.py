"""A hand-made Streamlit client, as a hostile student writes one: a websocket session with no browser and no
cookie, and upload requests sent around the page (any file id, the XSRF pair taken from the server's own page)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.web.server.starlette.starlette_app_utils import generate_xsrf_token_string
from websockets.sync.client import connect

XSRF_COOKIE = "_streamlit_xsrf"
REFUSED_MID_BODY = 0  # the server answered (413) and closed the connection before the body was sent


@contextmanager
def session(url: str, query: str = "") -> Iterator[tuple[Any, str, list[str]]]:
    """A websocket session that runs the app once with `query` as its link: the socket, its session id and the
    texts of that run (`run_texts`)."""
    with connect(url.replace("http", "ws", 1) + "/_stcore/stream", max_size=None, open_timeout=60) as socket:
        texts = run_texts(socket, query)
        yield socket, texts[0], texts[1:]


def run_texts(socket: Any, query: str = "") -> list[str]:
    """Run the app in this session with `query` as its link: the session id, then every text its elements
    carry (alerts, progress, exceptions)."""
    message = BackMsg()
    message.rerun_script.query_string = query
    socket.send(message.SerializeToString())
    session_id, texts = "", []
    while True:
        forward = ForwardMsg()
        forward.ParseFromString(socket.recv(timeout=120))
        if forward.HasField("new_session"):
            session_id = forward.new_session.initialize.session_id
        if forward.HasField("delta"):
            texts.append(str(forward.delta))
        if forward.HasField("script_finished"):
            return [session_id, *texts]


def xsrf_pair() -> tuple[str, str]:
    """An XSRF cookie and header made by the client itself: the server checks only that they agree."""
    token = generate_xsrf_token_string(b"hostile-student!")
    return token, token


def put_upload(url: str, session_id: str, file_id: str, data: bytes, context: Any = None) -> int:
    """PUT a file to the upload route as the page's uploader would, with no uploader asking for it; the status
    (REFUSED_MID_BODY when the connection was closed on it)."""
    cookie, header = xsrf_pair()
    boundary = "hostileboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.pt\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{url}/_stcore/upload_file/{session_id}/{file_id}", data=body, method="PUT",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                                              "X-Xsrftoken": header, "Cookie": f"{XSRF_COOKIE}={cookie}"})
    try:
        with urllib.request.urlopen(request, timeout=120, context=context) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError):  # refused while the body was still being sent
        return REFUSED_MID_BODY


def rss_bytes(port: int) -> int:
    """Resident memory of the `streamlit run` serving `port` (found by its command line)."""
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in b" ".join(command) and str(port).encode() in command:
            status = (proc / "status").read_text()
            return int(status.split("VmRSS:")[1].split()[0]) * 1024
    raise LookupError(f"no streamlit process serves port {port}")
