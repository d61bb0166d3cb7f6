"""The server's upload store is bounded per session and for the whole server, before a file's bytes are kept;
a refused checkpoint is not read again."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
import streamlit as st
from streamlit import config as streamlit_config
from streamlit.runtime.uploaded_file_manager import UploadedFileRec

from playground.core.tasks import MAX_CUSTOM_BYTES
from playground.training.checkpoints import CheckpointError
from playground.ui import inspection
from playground.ui.uploads import BUDGET_ENV, BoundedUploadStore, UploadRefused

MB = 1024**2


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[BoundedUploadStore]:
    """A store whose server allows 1 MB checkpoints (a session: 1 MB + the CSV's 10 MB) and 25 MB in all."""
    before = st.get_option("server.maxUploadSize")
    streamlit_config.set_option("server.maxUploadSize", 1)
    monkeypatch.setenv(BUDGET_ENV, "25")
    try:
        yield BoundedUploadStore("/_stcore/upload_file")
    finally:
        streamlit_config.set_option("server.maxUploadSize", before)


def upload(file_id: str, size: int) -> UploadedFileRec:
    return UploadedFileRec(file_id=file_id, name="x", type="application/octet-stream", data=bytes(size))


def test_a_session_holds_one_checkpoint_and_one_csv_and_no_more(store: BoundedUploadStore) -> None:
    store.add_file("alice", upload("checkpoint", MB))
    store.add_file("alice", upload("csv", MAX_CUSTOM_BYTES))
    with pytest.raises(UploadRefused):
        store.add_file("alice", upload("file3", 1))  # any file id, no uploader needed: refused all the same
    store.add_file("alice", upload("csv", MAX_CUSTOM_BYTES))  # a file replaced is counted once
    assert store.get_files("alice", ["file3"]) == []
    store.remove_session_files("alice")
    store.add_file("alice", upload("file3", MB))  # given back when the session ends


def test_the_server_holds_its_budget_and_no_more(store: BoundedUploadStore) -> None:
    for person in ("a", "b"):
        store.add_file(person, upload("csv", MAX_CUSTOM_BYTES))
    with pytest.raises(UploadRefused):
        store.add_file("c", upload("csv", MAX_CUSTOM_BYTES))
    assert [session for session in store.file_storage if store.file_storage[session]] == ["a", "b"]


def test_a_refused_checkpoint_is_not_read_again_at_the_next_rerun(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[bytes] = []

    def refuse(data: bytes, index: int = 0) -> None:
        reads.append(data)
        raise CheckpointError("refused: crafted")

    monkeypatch.setattr(inspection, "read_checkpoint", refuse)
    inspection.checkpoint_source.clear()
    digest = hashlib.sha256(b"crafted").hexdigest()
    try:
        assert [inspection.checkpoint_source(digest, b"crafted") for _ in range(3)] == ["refused: crafted"] * 3
        assert len(reads) == 1
    finally:
        inspection.checkpoint_source.clear()
