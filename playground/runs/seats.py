"""Seats: who may train on a shared server (PLAYGROUND_SHARED=1), and how much.

A seat is what the teacher hands out: a capability link (`?seat=KEY`) made on the Class page, or a login through
Streamlit's `st.login` (OpenID Connect) when the teacher configures `[auth]`. A run belongs to a seat, never to a
page load or a cookie the server made up, so a client that keeps no cookie has no quota to multiply. The book of
seats is a small JSON file beside the runs, written atomically, so a restart keeps it; it holds only a hash of
each key, so the file itself grants nothing. Quotas count per seat in workers (a study's local cells count as the
workers they use), the queue is bounded server-wide, and the runs of a seat with no page open for the idle time
stop, whatever their status.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from playground.runs.protocol import RunError
from playground.training.run_folder import RunStatus, read_json, write_json

SEAT_PARAM = "seat"  # ?seat=KEY: the link the teacher hands a student
SEATS_FILE = "seats.json"  # in the runs folder, beside the run folders (a file, so never listed as a run)
TEACHER = "teacher"  # the seat the teacher token grants
MAX_SEAT_NAME = 60
MAX_SEATS = 1000
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{20,64}")  # what `secrets.token_urlsafe` makes
NO_SEAT = ("training on this server needs a seat: open the seat link your teacher gave you (or log in, where "
           "this server offers it); without one you can open shared links and read the lessons and the glossary")
HOLDING = (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.QUEUED)  # what the idle rule stops


@dataclass(frozen=True)
class Seat:
    id: str  # the owner recorded in run.json and the Class page's handle; not a secret
    name: str  # what the teacher called it, or the login's name
    key_hash: str = ""  # sha256 of the link's secret ('' for a login seat)
    login: str = ""  # a login seat: sha256 of its issuer and subject
    revoked: bool = False

    @property
    def how(self) -> str:
        return "login" if self.login else "link"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def seat_name(name: str) -> str:
    """A seat's name as the teacher typed it, kept plain: printable characters only, bounded."""
    return "".join(char for char in name if char.isprintable()).strip()[:MAX_SEAT_NAME]


class SeatBook:
    """The seats of a server, kept in `path`. Every change is written before it is used, and a change another
    process wrote (the CLI's `seats`) is read at the next look-up, so the file is the one truth."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._problem = ""
        self._lock = threading.RLock()
        self._seats: dict[str, Seat] = {}
        self._stamp: tuple[int, int, int] | None = None  # the file's inode, size and mtime when last read

    @property
    def problem(self) -> str:
        """Why the file on disk could not be read ('' when it could, or there is none)."""
        with self._lock:
            self._current()
            return self._problem

    def issue(self, name: str) -> tuple[Seat, str]:
        """A new seat and the secret key of its link (shown once: the book keeps only its hash)."""
        name = seat_name(name)
        if not name:
            raise RunError("give the seat a name (a student's name), so the Class page can tell seats apart")
        key = secrets.token_urlsafe(24)
        seat = Seat(secrets.token_hex(8), name, key_hash=_digest(key))
        self._save(seat)
        return seat, key

    def new_key(self, seat_id: str) -> str:
        """A fresh key for a link seat (its old link stops working; a revoked seat is given back); the seat and
        its runs stay."""
        with self._lock:
            seat = self._seat(seat_id)
            if seat.login:
                raise RunError("a login seat has no link: its owner logs in")
            key = secrets.token_urlsafe(24)
            self._save(replace(seat, key_hash=_digest(key), revoked=False))
        return key

    def revoke(self, seat_id: str) -> None:
        with self._lock:
            self._save(replace(self._seat(seat_id), revoked=True))

    def by_key(self, key: str) -> Seat | None:
        """The live seat whose link holds `key`, else None."""
        if not KEY_PATTERN.fullmatch(key):
            return None
        wanted = _digest(key)
        return next((seat for seat in self.all()
                     if seat.key_hash and not seat.revoked and secrets.compare_digest(seat.key_hash, wanted)), None)

    def by_login(self, issuer: str, subject: str, name: str) -> Seat | None:
        """The seat of a logged-in person, made at their first login; None once the teacher revoked it."""
        if not subject:
            return None
        login = _digest(f"{issuer}\n{subject}")
        with self._lock:
            seat = next((seat for seat in self.all() if seat.login == login), None)
            if seat is None:
                seat = Seat(secrets.token_hex(8), seat_name(name) or "a login", login=login)
                self._save(seat)
        return None if seat.revoked else seat

    def holds(self, seat_id: str) -> bool:
        """Whether `seat_id` is a seat that may train now: the teacher's, or one issued and not revoked."""
        seat = self._current().get(seat_id)
        return seat_id == TEACHER or (seat is not None and not seat.revoked)

    def name(self, seat_id: str) -> str:
        seat = self._current().get(seat_id)
        return "the teacher" if seat_id == TEACHER else seat.name if seat is not None else ""

    def all(self) -> list[Seat]:
        return list(self._current().values())

    def _seat(self, seat_id: str) -> Seat:
        if (seat := self._current().get(seat_id)) is None:
            raise RunError(f"no seat {seat_id!r} on this server")
        return seat

    def _current(self) -> dict[str, Seat]:
        """The seats as the file holds them now (read again only when it changed)."""
        with self._lock:
            try:
                status = self.path.stat()
                stamp: tuple[int, int, int] | None = (status.st_ino, status.st_size, status.st_mtime_ns)
            except OSError:
                stamp = None
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._seats, self._problem = (_parse(read_json(self.path)) if stamp else {}), ""
                except ValueError as error:
                    self._seats = {}
                    self._problem = f"{SEATS_FILE} could not be read ({error}); issuing a seat replaces it"
            return self._seats

    def _save(self, seat: Seat) -> None:
        """Write the book with `seat` in it, then keep it (a write that fails changes nothing)."""
        with self._lock:
            seats = self._current() | {seat.id: seat}
            if len(seats) > MAX_SEATS:
                raise RunError(f"this server has {MAX_SEATS:,} seats already, the most it keeps")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                write_json(self.path, {"seats": [asdict(each) for each in seats.values()]})
            except OSError as error:
                raise RunError(f"could not save the seats: {error.strerror or error}") from None
            self._current()


def _parse(values: Any) -> dict[str, Seat]:
    """The seats of a seats.json: a list of records with exactly a seat's fields, each of its type."""
    records = values.get("seats") if isinstance(values, dict) else None
    if not isinstance(records, list) or len(records) > MAX_SEATS:
        raise ValueError("it holds no list of seats")
    seats: dict[str, Seat] = {}
    for record in records:
        if (not isinstance(record, dict) or set(record) != {each.name for each in fields(Seat)}
                or not all(isinstance(record[name], str) for name in ("id", "name", "key_hash", "login"))
                or not isinstance(record["revoked"], bool) or not re.fullmatch(r"[0-9a-f]{16}", record["id"])):
            raise ValueError("a seat's record is damaged")
        seats[record["id"]] = Seat(**(record | {"name": seat_name(record["name"])}))
    return seats


class Presence:
    """When each seat last had a page of the app open: pages that open and close, and every script run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self.since = time.monotonic()  # the server's start: a seat not seen since counts as absent from then

    def seen(self, seat_id: str) -> None:
        with self._lock:
            self._last[seat_id] = time.monotonic()

    def opened(self, seat_id: str) -> None:
        with self._lock:
            self._open[seat_id] = self._open.get(seat_id, 0) + 1
            self._last[seat_id] = time.monotonic()

    def closed(self, seat_id: str) -> None:
        with self._lock:
            self._open[seat_id] = max(self._open.get(seat_id, 0) - 1, 0)
            self._last[seat_id] = time.monotonic()

    def here(self, seat_id: str) -> bool:
        """Whether the seat has opened a page since the server started."""
        with self._lock:
            return seat_id in self._last

    def absent_since(self, seat_id: str) -> float | None:
        """Since when (monotonic) the seat has had no page open; None while one is open."""
        with self._lock:
            if self._open.get(seat_id, 0) > 0:
                return None
            return self._last.get(seat_id, self.since)


class Holder(Protocol):
    """What the rules read of a run."""

    owner: str
    status: RunStatus
    workers: int
    last_control: float


HolderT = TypeVar("HolderT", bound=Holder)


@dataclass
class Classroom:
    """The rules of a shared server: who holds a seat, how many workers a seat may train on, the queue's bounds,
    and the idle rule."""

    book: SeatBook
    per_seat: int = 1  # workers one seat may have training or paused at once
    queued_per_seat: int = 1  # runs one seat may have waiting
    max_queued: int = 16  # runs waiting in the whole server's queue
    idle_seconds: float = 600.0
    presence: Presence = field(default_factory=Presence)

    def check_start(self, owner: str, workers: int, max_active: int) -> None:
        """Refuse outright (nothing queued) a start without a seat, or one that could never fit a seat's share."""
        if not owner or not self.book.holds(owner):
            raise RunError(NO_SEAT)
        if workers > min(self.per_seat, max_active):
            raise RunError(f"this run trains on {workers} workers at once, more than the {self.per_seat} a seat may "
                           "use: choose fewer")

    def check_quota(self, owner: str, workers: int, active: Iterable[Holder]) -> None:
        """A seat's share of the slots, in workers, over every kind of run."""
        used = sum(run.workers for run in active if run.owner == owner)
        if used + workers > self.per_seat:
            raise RunError(f"your seat has {used} worker(s) training or paused already, and may use "
                           f"{self.per_seat} at once")

    def check_queue(self, owner: str, queued: Sequence[Holder]) -> None:
        """Room in the queue: for this seat, and on the server."""
        mine = sum(run.owner == owner for run in queued)
        if mine >= self.queued_per_seat:
            raise RunError(f"you have {mine} run(s) waiting in the queue already, the most one seat may: stop one "
                           "or wait for it to start")
        if len(queued) >= self.max_queued:
            raise RunError(f"the server's queue is full ({len(queued)} runs wait, the most it holds): try again "
                           "when a run has ended")

    def idle(self, runs: Iterable[HolderT], now: float | None = None) -> list[HolderT]:
        """The runs to stop and save: those of a seat with no page open for the idle time or no longer held
        (revoked), whatever their status, and a run paused for the idle time. CLI runs (no owner) are not the
        class's."""
        now = time.monotonic() if now is None else now
        chosen = []
        for run in runs:
            if not run.owner or run.status not in HOLDING:
                continue
            absent = self.presence.absent_since(run.owner)
            if (not self.book.holds(run.owner)
                    or (absent is not None and now - max(absent, run.last_control) > self.idle_seconds)
                    or (run.status == RunStatus.PAUSED and now - run.last_control > self.idle_seconds)):
                chosen.append(run)
        return chosen
