"""Where the model lets its caller in: between two steps of its long loops.

A step at the largest sizes runs for minutes, so a caller that wants to stop one (the app's Stop) must be asked in
the middle of it. The model's loops call `between_steps()` (every time step of `fused_lstm.unroll`, forward and
backward; every step of the decoder's step loop; every chunk of the encoder's fused call, and again when its
gradient is computed). It does nothing until a caller installs a hook, so the model needs nothing of the app.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

CHUNK_FLOPS = 2e10  # a stretch of work between two calls: about 0.3 s forward, 0.6 s backward on 2 CPU cores

_hook: Callable[[], None] | None = None


def install(hook: Callable[[], None] | None) -> None:
    """Call `hook` between steps from now on (None: nothing). It may raise to abandon the step."""
    global _hook
    _hook = hook


def between_steps() -> None:
    if _hook is not None:
        _hook()


def on_gradient(tensor: torch.Tensor) -> None:
    """`between_steps()` in backward, when the gradient of `tensor` is computed (nothing where it needs none)."""
    if tensor.requires_grad:
        tensor.register_hook(lambda grad: between_steps())


def time_chunk(flops_per_time_step: float) -> int:
    """How many time steps one uninterrupted fused call may run: all of a small model's, one of a huge one's."""
    return max(1, int(CHUNK_FLOPS // max(flops_per_time_step, 1.0)))
