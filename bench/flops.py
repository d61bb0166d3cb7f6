"""Arithmetic of one training step and the GEMM roofline it is held against.

FLOPs: every matmul of the forward pass counts 2*m*n*k (a multiply and an add per term): per LSTM layer the
input projection (B*S rows, D in, 4H out) and the recurrent projection (B rows, H in, 4H out, once per step),
for the encoder (S = source length) and the decoder (S = target length), and the output Linear (B*L rows,
H in, V out). Backward counts twice the forward (a gradient for the input and one for the weight per matmul),
so a step is 3x the forward. Gate math, embeddings, the loss and the optimizer are not counted: they are
elementwise, and small next to the GEMMs at these sizes.

Roofline: the seconds torch.mm itself takes at those very shapes (input projections and the output Linear as
one mm over every step, the recurrent projection as one (B, H) x (H, 4H) mm per step, which the recurrence
makes sequential), backward charged at the forward's rate. `fraction` = roofline seconds / measured seconds:
how close a case comes to doing nothing but its GEMMs; 1 / fraction bounds what any rewrite could gain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from playground.core.config import TrainConfig
from playground.core.tasks import Batch

Shape = tuple[int, int, int]  # (m, k, n): an (m, k) x (k, n) product


@dataclass(frozen=True)
class StepShapes:
    """The forward matmuls of one step of one model, each (shape, how many times per step)."""

    matmuls: tuple[tuple[Shape, int], ...]

    @property
    def flops(self) -> float:
        """Forward + backward FLOPs of one step (3x the forward's 2*m*n*k)."""
        return 3 * sum(2 * m * k * n * count for (m, k, n), count in self.matmuls)


def step_shapes(config: TrainConfig, batches: list[Batch], vocab: int) -> StepShapes:
    """The matmuls at the mean source and target lengths of `batches` (rounded)."""
    src_len = round(sum(b.src.shape[1] for b in batches) / len(batches))
    tgt_len = round(sum(b.tgt.shape[1] for b in batches) / len(batches))
    batch, hidden = config.batch_size, config.hidden_dim
    matmuls: list[tuple[Shape, int]] = []
    for length in (src_len, tgt_len):
        for layer in range(config.num_layers):
            width = config.emb_dim if layer == 0 else hidden
            matmuls += [((batch * length, width, 4 * hidden), 1), ((batch, hidden, 4 * hidden), length)]
    matmuls.append(((batch * tgt_len, hidden, vocab), 1))
    return StepShapes(tuple(matmuls))


def mm_seconds(shape: Shape, device: torch.device, clock: Callable[[], float], sync: Callable[[], None],
               budget: float = 0.02) -> float:
    """Median seconds of one torch.mm at `shape`, by the clock the steps are timed with (~5 x `budget` s)."""
    m, k, n = shape
    a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
    start = clock()
    for _ in range(3):
        torch.mm(a, b)
    sync()
    repeats = max(3, int(budget / max((clock() - start) / 3, 1e-7)))
    times = []
    for _ in range(5):
        sync()
        start = clock()
        for _ in range(repeats):
            torch.mm(a, b)
        sync()
        times.append((clock() - start) / repeats)
    return sorted(times)[len(times) // 2]


def roofline_seconds(shapes: StepShapes, device: torch.device, clock: Callable[[], float],
                     sync: Callable[[], None]) -> float:
    """Seconds of one step if it did only its GEMMs at torch.mm's speed (backward at 2x the forward)."""
    return 3 * sum(mm_seconds(shape, device, clock, sync) * count for shape, count in shapes.matmuls)
