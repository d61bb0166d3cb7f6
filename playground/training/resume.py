"""What makes a stopped run continue exactly: the teacher-forcing coins it draws, and the optimizer, coin and
data state that is saved with it and restored, or undone when a step is interrupted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from playground.core import interrupt
from playground.core.tasks import TaskData


def draw_coins(generator: torch.Generator, coin: str, tgt_shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform draws behind one step's coins: one per decoder step, or one per target token.

    Drawn every step whatever the ratio, so the stream never shifts and models that share a generator share coins.
    """
    shape = (tgt_shape[1],) if coin == "step" else tuple(tgt_shape)
    return torch.rand(shape, generator=generator)


def resume_state(optimizer: torch.optim.Optimizer, coins: torch.Generator, data: TaskData) -> dict[str, Any]:
    """Everything besides the weights that the next step depends on (dropout's draws excepted: they come from
    torch's process-wide generator, which concurrent runs share)."""
    return {"optimizer": optimizer.state_dict(), "coins": coins.get_state(), "data": data.stream_state()}


@contextmanager
def undone_if_interrupted(optimizer: torch.optim.Optimizer, coins: torch.Generator, data: TaskData) -> Iterator[None]:
    """The work of a step before it touches the weights: a stop may interrupt it (`interrupt`), and then its draws
    (batch, coins, dropout) are taken back and its gradients dropped, as if it had never started."""
    batches, coin_draws, dropout = data.stream_state(), coins.get_state(), torch.get_rng_state()
    try:
        with interrupt.undoable():
            yield
    except interrupt.Interrupted:
        optimizer.zero_grad(set_to_none=True)
        data.restore_stream(batches)
        coins.set_state(coin_draws)
        torch.set_rng_state(dropout)
        raise


def restore_state(state: dict[str, Any], optimizer: torch.optim.Optimizer, coins: torch.Generator,
                  data: TaskData) -> None:
    """The inverse of `resume_state`; ValueError when the state does not fit these models."""
    try:
        optimizer.load_state_dict(state["optimizer"])
        coins.set_state(state["coins"])
        data.restore_stream(state["data"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"the saved training state does not fit this run: {error}") from None
