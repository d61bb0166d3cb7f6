"""Reading and writing files safely: only regular files, a size limit enforced while reading, and writes that are
all or nothing."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path


class DamagedFile(ValueError):
    """A file of a run folder or an upload is damaged, foreign or does not match the rest: bad input, never a crash
    (the pages show it in one message, the CLI exits 2)."""


class FileTooLarge(ValueError):
    """A file is larger than its limit; it was not read past the limit."""


class NotARegularFile(OSError):
    """A symbolic link, FIFO, device or folder where a regular file was expected; it was not read."""

    def __str__(self) -> str:
        return str(self.strerror)


def read_bounded(path: Path | str, limit: int, what: str = "the file", *, follow_links: bool = False) -> bytes:
    """At most `limit` bytes of a regular file; one byte more means the file is too large.

    The file is opened with O_NOFOLLOW (unless `follow_links`, for a path the person at the keyboard named) and
    O_NONBLOCK, so a symbolic link out of a run folder is refused and a FIFO cannot block the open; fstat then
    refuses anything but a regular file (a FIFO, /dev/zero, a socket) before a byte is read."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow_links else os.O_NOFOLLOW)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP and not follow_links and os.path.islink(path):
            raise NotARegularFile(error.errno, f"{what} is a symbolic link, not a regular file") from None
        raise
    with os.fdopen(descriptor, "rb") as file:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise NotARegularFile(errno.EINVAL,
                                  f"{what} is not a regular file (a FIFO, device or folder is not read)")
        data = file.read(min(limit, status.st_size) + 1)  # read(n) allocates n bytes first: ask for what is there
    if len(data) > limit:
        raise FileTooLarge(f"{what} is larger than {limit:,} bytes, the most allowed")
    return data


def atomic_write(path: Path, data: bytes) -> None:
    """Temporary file, flush and fsync, rename: a kill leaves the old file or the new one, never half of one; a
    write that fails (a full disk) removes its temporary file, so the space comes back."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise

