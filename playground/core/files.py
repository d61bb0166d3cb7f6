"""Reading and writing files safely: a size limit enforced while reading, and writes that are all or nothing."""

from __future__ import annotations

import os
from pathlib import Path


class FileTooLarge(ValueError):
    """A file is larger than its limit; it was not read past the limit."""


def read_bounded(path: Path | str, limit: int, what: str = "the file") -> bytes:
    """At most `limit` bytes; one byte more means the file is too large (never read whole, so /dev/zero ends)."""
    with open(path, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(f"{what} is larger than {limit:,} bytes, the most allowed")
    return data


def atomic_write(path: Path, data: bytes) -> None:
    """Temporary file, flush and fsync, rename: a kill leaves the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
