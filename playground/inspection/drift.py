"""States that drift apart: the decoder's top-layer h_t on the same examples, teacher-forced and free-running.

Both runs start from the encoder's state and read the same tokens until the model's first mistake, so their
states agree until then; after it the free-running decoder reads its own outputs and its states wander where
training never took them (Lamb et al. 2016, Professor Forcing, Fig. 1). Measured as the mean distance between
the two h_t by output position, and drawn as both clouds in one PCA plane. A free-running output ends at its
first <eos>: its states after that step are not counted. Both runs share each `Decoder.step` call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from playground.core.tasks import EOS_ID, PAD_ID, Pair, Task, encode_pairs
from playground.inspection.probe import ROW_BUDGET
from playground.inspection.states import fit_projection
from playground.model.seq2seq import Seq2Seq

PLANE_EXAMPLES = 200  # validation examples whose states the PCA plane draws


@dataclass(frozen=True)
class Drift:
    """By output position t: how far apart the two runs' top-layer h_t are; and both clouds in one plane."""

    distance: np.ndarray  # mean Euclidean distance between the free-running and the teacher-forced h_t
    scale: np.ndarray  # mean norm of the teacher-forced h_t: what a distance compares with
    apart: np.ndarray  # share of the examples whose two h_t differ at t (after a mistake)
    count: np.ndarray  # examples with both h_t at t (a target token, and a free-running output not yet ended)
    plane: np.ndarray  # (P, 2) the states of the first examples in the plane of their PCA, teacher-forced first
    free_running: np.ndarray  # (P,) bool: the point is a free-running state
    plane_position: np.ndarray  # (P,) the output position t of each point
    explained: np.ndarray  # (2,) the share of variance on each axis

    @property
    def positions(self) -> np.ndarray:
        return np.arange(self.count.size)

    def as_dict(self) -> dict[str, object]:
        return {"positions": self.positions.tolist(), "distance": self.distance.tolist(),
                "scale": self.scale.tolist(), "apart": self.apart.tolist(), "count": self.count.tolist(),
                "explained": self.explained.tolist()}


@torch.inference_mode()
def state_drift(model: Seq2Seq, task: Task, pairs: list[Pair]) -> Drift:
    """The drift over validation pairs (of one model, or one arm of a comparison)."""
    if not pairs:
        raise ValueError("no validation examples to compare states on")
    batch = encode_pairs(task, pairs)
    device = next(model.parameters()).device
    size = max(1, ROW_BUDGET // 2)
    width = batch.tgt.shape[1]
    sums = np.zeros((4, width))  # distance, scale, apart, count
    tf_states, fr_states, masks = [], [], []
    for src, tgt in zip(batch.src.split(size), batch.tgt.split(size), strict=True):
        tf_h, fr_h, both = _runs(model, src.to(device), tgt.to(device))
        distance = np.linalg.norm(fr_h - tf_h, axis=-1)
        for row, values in enumerate((distance, np.linalg.norm(tf_h, axis=-1), distance > 1e-6, both)):
            sums[row] += np.where(both, values, 0.0).sum(0)
        wanted = PLANE_EXAMPLES - sum(len(mask) for mask in masks)  # chunks share the batch's width
        tf_states.append(tf_h[:wanted])
        fr_states.append(fr_h[:wanted])
        masks.append(both[:wanted])
    shown = np.concatenate(masks)
    tf_points, fr_points = np.concatenate(tf_states)[shown], np.concatenate(fr_states)[shown]
    points = np.concatenate([tf_points, fr_points])
    projection = fit_projection(points) if len(points) >= 2 else None
    position = np.nonzero(shown)[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return Drift(sums[0] / sums[3], sums[1] / sums[3], sums[2] / sums[3], sums[3].astype(int),
                     projection.apply(points) if projection else np.zeros((len(points), 2)),
                     np.repeat([False, True], len(tf_points)), np.concatenate([position, position]),
                     projection.explained if projection else np.zeros(2))


def _runs(model: Seq2Seq, src: torch.Tensor, tgt: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top-layer h_t (B, L, H) teacher-forced and free-running, and where both count (B, L)."""
    count, width = tgt.shape
    state, memory = model.encode(src)
    both_runs = memory.select(torch.cat([torch.arange(count, device=src.device)] * 2))
    state = tuple(torch.cat([part, part], dim=1) for part in state)
    token = torch.full((2 * count,), model.sos_id, device=src.device)
    tf_h, fr_h, fr_predicted = [], [], []
    for t in range(width):
        logits, state, extras = model.decoder.step(token, state, both_runs)
        top = extras.layers[-1]["h"].float()
        tf_h.append(top[:count])
        fr_h.append(top[count:])
        fr_predicted.append(logits[count:].argmax(-1))
        token = torch.cat([tgt[:, t], fr_predicted[-1]])
    is_eos = torch.stack(fr_predicted, 1) == EOS_ID
    running = torch.cumsum(is_eos.long(), 1) - is_eos.long() == 0  # up to and with its first <eos>
    both = (tgt != PAD_ID) & running
    return torch.stack(tf_h, 1).cpu().numpy(), torch.stack(fr_h, 1).cpu().numpy(), both.cpu().numpy()
