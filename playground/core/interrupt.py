"""Stop within about a second at any size: a stop request reaches into a training step, which is then undone.

At the largest settings one step takes minutes, so waiting for the step to end is no stop. The
loops of a step (every time step of `recurrence.unroll`, forward and backward, and every chunk of the
encoder's LSTM) call `check()`. It raises `Interrupted` when both hold: the run asked to stop (`requests`,
around a run's work) and the work may be abandoned (`undoable`, around a step that has not yet touched the
weights). The trainer then rewinds its random-number streams, so a stopped run resumes exactly as if never
stopped. Evaluations are not undoable (they follow a step that happened) and run to their end.

Context variables, not arguments: the checks sit inside the model's forward and autograd's backward, which
keep the specification's signatures. Autograd runs a CPU backward on the calling thread, so it sees them; a
thread pool must run its work in a copy of the caller's context (`in_this_context`).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch

CHUNK_FLOPS = 2e10  # a stretch of work between two checks: well under a second on a CPU (`bench --stop`)

_request: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("stop_request", default=None)
_undoable: contextvars.ContextVar[bool] = contextvars.ContextVar("undoable", default=False)
T = TypeVar("T")
R = TypeVar("R")


class Interrupted(Exception):
    """A stop arrived in the middle of a step; the step did not happen."""


@contextmanager
def requests(event: threading.Event) -> Iterator[None]:
    """Work inside listens to `event` (a run's stop)."""
    token = _request.set(event)
    try:
        yield
    finally:
        _request.reset(token)


@contextmanager
def undoable() -> Iterator[None]:
    """Work inside may be abandoned at a check; the caller undoes what it started when `Interrupted` comes."""
    token = _undoable.set(True)
    try:
        yield
    finally:
        _undoable.reset(token)


def check() -> None:
    if _undoable.get() and (event := _request.get()) is not None and event.is_set():
        raise Interrupted


def check_on_gradient(tensor: torch.Tensor) -> None:
    """A check in backward, when the gradient of `tensor` is computed (nothing where it needs none)."""
    if tensor.requires_grad:
        tensor.register_hook(lambda grad: check())


def in_this_context(work: Callable[[T], R]) -> Callable[[T], R]:
    """`work` as it would run here, for a thread pool: each call runs in its own copy of this context."""
    context = contextvars.copy_context()
    return lambda item: context.copy().run(work, item)


def time_chunk(flops_per_time_step: float) -> int:
    """How many time steps one uninterrupted call may run: all of a small model's, one of a huge one's."""
    return max(1, int(CHUNK_FLOPS // max(flops_per_time_step, 1.0)))
