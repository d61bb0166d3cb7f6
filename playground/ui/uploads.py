"""What uploads may hold in the server's memory.

Streamlit keeps every uploaded file's bytes in memory, per session, until the file is replaced or removed or the
session ends (its websocket gone for `server.disconnectedSessionTTL`, 120 s by default), and a request made by hand
can send a file no uploader asked for, under any file id. So its store is bounded here, before a file is kept: a
session holds at most what the app reads at once (one checkpoint and one CSV), the server at most
`PLAYGROUND_UPLOAD_BUDGET_MB` (default: four sessions' worth). A file past either bound is refused: the request
fails and its bytes are freed. The files of a session whose websocket is gone are given back at the next upload or
script run of anyone, not minutes later. Each request is bounded by `server.maxUploadSize` before it is read: serving a
class, it is lowered to `PLAYGROUND_MAX_UPLOAD_MB` (64 MB, a checkpoint of hidden size 512 with Adam's state)
unless started lower, and the checkpoint uploader asks the browser for no more than that.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading

import streamlit as st
from streamlit import config as streamlit_config
from streamlit.runtime import Runtime
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFileRec

from playground.core.tasks import MAX_CUSTOM_BYTES
from playground.training.checkpoints import MAX_CHECKPOINT_BYTES

MB = 1024**2
BUDGET_ENV = "PLAYGROUND_UPLOAD_BUDGET_MB"
CLASS_UPLOAD_ENV, CLASS_UPLOAD_MB = "PLAYGROUND_MAX_UPLOAD_MB", 64


class UploadRefused(RuntimeError):
    """An upload past what a session or the server may hold."""


def checkpoint_upload_mb() -> int:
    """The checkpoint uploader's bound: the largest checkpoint, or the server's request bound if smaller."""
    return min(MAX_CHECKPOINT_BYTES // MB, int(st.get_option("server.maxUploadSize")))


def session_upload_bytes() -> int:
    return checkpoint_upload_mb() * MB + MAX_CUSTOM_BYTES


def server_upload_bytes() -> int:
    budget = os.environ.get(BUDGET_ENV, "")
    return int(budget) * MB if budget.isascii() and budget.isdigit() else 4 * session_upload_bytes()


class BoundedUploadStore(MemoryUploadedFileManager):
    """Streamlit's in-memory upload store, refusing a file that would take a session or the server past its
    bound (the store's other calls are Streamlit's own)."""

    _bound_lock = threading.Lock()

    def add_file(self, session_id: str, file: UploadedFileRec) -> None:
        self.release_gone_sessions()
        with self._bound_lock:
            held = {sid: sum(len(kept.data) for fid, kept in list(files.items())
                             if (sid, fid) != (session_id, file.file_id))
                    for sid, files in list(self.file_storage.items())}
            if held.get(session_id, 0) + len(file.data) > session_upload_bytes():
                raise UploadRefused(f"a session may hold {session_upload_bytes():,} bytes of uploads")
            if sum(held.values()) + len(file.data) > server_upload_bytes():
                raise UploadRefused(f"the server holds {server_upload_bytes():,} bytes of uploads at most")
            super().add_file(session_id, file)


    def release_gone_sessions(self) -> None:
        """Drop the files of sessions whose websocket is gone: Streamlit keeps them until the session's
        reconnection window expires, and only notices that when its session store is next touched (minutes). A
        tab that reconnects finds its upload gone and is asked for it again."""
        runtime = Runtime.instance() if Runtime.exists() else None
        gone = [sid for sid in list(self.file_storage) if runtime is not None and not runtime.is_active_session(sid)]
        for session_id in gone:
            self.remove_session_files(session_id)
        if gone:
            _give_memory_back()


def _give_memory_back() -> None:
    """Return freed heap pages to the OS (glibc keeps large freed blocks for reuse otherwise)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: the process reuses the memory instead
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def release_uploads() -> None:
    """At every script run: the uploads of sessions that have left are given back."""
    if Runtime.exists() and isinstance(store := Runtime.instance().uploaded_file_mgr, BoundedUploadStore):
        store.release_gone_sessions()


def bound_upload_store() -> None:
    """Make the running server's upload store a bounded one (once per process; the same object, whose methods
    the upload route already holds)."""
    if not Runtime.exists():
        return
    store = Runtime.instance().uploaded_file_mgr
    if type(store) is MemoryUploadedFileManager:
        store.__class__ = BoundedUploadStore


def limit_uploads_for_a_class() -> None:
    """Serving a class: a request may carry what the class's checkpoints need, not Streamlit's 2 GB (the route
    reads the option at each request)."""
    wanted = os.environ.get(CLASS_UPLOAD_ENV, "")
    limit = int(wanted) if wanted.isascii() and wanted.isdigit() and int(wanted) > 0 else CLASS_UPLOAD_MB
    if limit < int(st.get_option("server.maxUploadSize")):
        streamlit_config.set_option("server.maxUploadSize", limit)

