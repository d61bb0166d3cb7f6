"""Step-by-step capture of every layer's state (h_t, and c_t for an LSTM) and gates, as the model shows them.

A fused nn.LSTM or nn.GRU hides its gates, so the capture asks the model for its traced memory (`encode(src,
trace=True)`: the encoder one reference step at a time) and runs `Decoder.step`, the one decoder step (which also
gives attention's alignment). Tests hold both equal to the fused modules' own outputs.
"""

from __future__ import annotations

import contextlib
import csv
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from playground.core.tasks import EOS, SOS, TASKS, Vocab
from playground.model.interface import StepExtras
from playground.model.seq2seq import Seq2Seq
from playground.model.tokens import EOS_ID


@dataclass(frozen=True)
class LayerStates:
    states: dict[str, np.ndarray]  # the state's names (h, c for an LSTM; h for a GRU): (steps, hidden)
    gates: dict[str, np.ndarray]  # the gates after their activations (i, f, g, o; r, z, n): (steps, hidden)

    @property
    def h(self) -> np.ndarray:
        return self.states["h"]

    @property
    def c(self) -> np.ndarray | None:
        """An LSTM's c (its memory over steps); None for a cell kind without one (a GRU)."""
        return self.states.get("c")

    def quantities(self) -> dict[str, np.ndarray]:
        """Every recorded quantity by name: states first, then gates."""
        return self.states | self.gates


@dataclass(frozen=True)
class StateCapture:
    src_tokens: list[str]
    encoder: list[LayerStates]
    decoder_inputs: list[str]  # the token fed at each decoder step, <sos> first
    decoder: list[LayerStates]
    probs: np.ndarray  # (steps, target vocabulary)
    predicted: list[str]  # argmax token at each step
    teacher_used: list[bool]  # whether step t's input was the true token
    encoder_inputs: list[str] | None = None  # the source in the order the encoder read it (reversed or not)
    attention: np.ndarray | None = None  # (steps, source positions): each step's alignment, with attention only
    heads: dict[str, np.ndarray] = field(default_factory=dict)  # a Transformer's maps by `HEAD_MAPS` kind:
    # (layers, heads, query positions, key positions)

    @property
    def encoder_tokens(self) -> list[str]:
        """The labels of the encoder's steps."""
        return self.encoder_inputs if self.encoder_inputs is not None else self.src_tokens

    @property
    def context(self) -> np.ndarray:
        """The encoder's final state h_T of every layer, concatenated: what the decoder starts from."""
        return np.concatenate([layer.h[-1] for layer in self.encoder])


HEAD_MAPS = {"encoder_self": "Encoder self-attention", "decoder_self": "Decoder self-attention (causal)",
             "cross": "Cross-attention"}  # what a Transformer's capture holds per layer and head


def _head_maps(encoder: list[StepExtras], decoder: list[StepExtras]) -> dict[str, np.ndarray]:
    """Every layer's and head's attention of one example (batch of one), each step's row padded with zeros to the
    longest (a causal row t has t + 1 keys)."""
    if not encoder or "self" not in encoder[0].heads:
        return {}

    def stacked(rows: list[torch.Tensor]) -> np.ndarray:
        width = max(row.shape[-1] for row in rows)
        padded = [torch.nn.functional.pad(row[0], (0, width - row.shape[-1])) for row in rows]
        return torch.stack(padded, dim=2).cpu().numpy()  # (layers, heads, queries, keys)

    return {"encoder_self": stacked([step.heads["self"] for step in encoder]),
            "decoder_self": stacked([step.heads["self"] for step in decoder]),
            "cross": stacked([step.heads["cross"] for step in decoder])}


class _Recorder:
    """Keeps every layer's state and gates, step after step, from each step's `StepExtras`."""

    def __init__(self) -> None:
        self.state_names: tuple[str, ...] = ()
        self.records: list[dict[str, list[torch.Tensor]]] = []

    def add(self, extras: StepExtras) -> None:
        if not self.records:
            self.state_names = extras.state_names
            self.records = [{name: [] for name in values} for values in extras.layers]
        for record, values in zip(self.records, extras.layers, strict=True):
            for name, value in values.items():
                record[name].append(value)

    def layers(self) -> list[LayerStates]:
        def array(values: list[torch.Tensor]) -> np.ndarray:
            return torch.stack(values)[:, 0].cpu().numpy()  # (steps, hidden): batch of one

        return [LayerStates({name: array(record[name]) for name in self.state_names},
                            {name: array(values) for name, values in record.items() if name not in self.state_names})
                for record in self.records]


@torch.inference_mode()
def capture_states(model: Seq2Seq, src_vocab: Vocab, tgt_vocab: Vocab, src_tokens: list[str],
                   tgt_tokens: list[str] | None = None, teacher_forcing_ratio: float = 0.0,
                   max_len: int = 64, seed: int = 0) -> StateCapture:
    """One example through the model (without dropout); gamma 0 decodes greedily until <eos> or max_len.

    With target tokens, decoding runs over target + <eos>, and step t reads the
    true previous token where a coin (seeded by `seed`) falls below gamma.
    """
    with _evaluating(model):
        return _capture(model, src_vocab, tgt_vocab, src_tokens, tgt_tokens, teacher_forcing_ratio, max_len, seed)


def _capture(model: Seq2Seq, src_vocab: Vocab, tgt_vocab: Vocab, src_tokens: list[str],
             tgt_tokens: list[str] | None, teacher_forcing_ratio: float, max_len: int, seed: int) -> StateCapture:
    if not src_tokens:
        raise ValueError("the source is empty: type at least one token")
    device = next(model.parameters()).device
    src = torch.tensor([src_vocab.encode(src_tokens)], device=device)
    state, memory = model.encode(src, trace=True)
    encoder = _Recorder()
    for extras in memory.trace:
        encoder.add(extras)
    targets = [*tgt_vocab.encode(tgt_tokens), EOS_ID] if tgt_tokens is not None else None
    steps = len(targets) if targets is not None else max_len
    coins = random.Random(seed)
    decoder = _Recorder()
    decoder_steps: list[StepExtras] = []
    token, inputs, teacher_used, probs, predicted, alignments = model.sos_id, [SOS], [False], [], [], []
    for t in range(steps):
        if t > 0:
            use_teacher = targets is not None and coins.random() < teacher_forcing_ratio
            token = targets[t - 1] if use_teacher else predicted[-1]
            inputs.append(tgt_vocab.itos[token])
            teacher_used.append(use_teacher)
        logits, state, extras = model.decoder.step(torch.tensor([token], device=device), state, memory)
        decoder.add(extras)
        decoder_steps.append(extras)
        if extras.attention is not None:
            alignments.append(extras.attention[0])
        distribution = torch.softmax(logits, dim=-1)[0]
        probs.append(distribution)
        predicted.append(int(distribution.argmax()))
        if targets is None and predicted[-1] == EOS_ID:
            break
    return StateCapture(list(src_tokens), encoder.layers(), inputs, decoder.layers(),
                        torch.stack(probs).cpu().numpy(), [tgt_vocab.itos[i] for i in predicted], teacher_used,
                        [src_vocab.itos[i] for i in memory.read[0].tolist()] if model.reverse_source else None,
                        torch.stack(alignments).cpu().numpy() if alignments else None,
                        _head_maps(memory.trace, decoder_steps))


@contextlib.contextmanager
def _evaluating(model: Seq2Seq) -> Iterator[None]:
    """The model without dropout (which would also draw from torch's generator) whatever its mode, restored after:
    a run's preview is captured between its training steps."""
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


def decoded_text(capture: StateCapture, tgt_vocab: Vocab) -> str:
    """The prediction as a person reads it: up to <eos>, joined the vocabulary's way."""
    tokens = capture.predicted[: capture.predicted.index(EOS)] if EOS in capture.predicted else capture.predicted
    return tgt_vocab.join(tokens)


UNIT_ORDERS = ("as is", "by variance", "by correlation with position")


def unit_order(values: np.ndarray, mode: str) -> np.ndarray:
    """Unit indices to draw top-down, so units that behave alike sit together and structure shows."""
    units = np.arange(values.shape[1])
    if mode == "as is" or values.shape[0] < 2:
        return units
    if mode == "by variance":
        return np.argsort(-values.var(axis=0), kind="stable")
    if mode == "by correlation with position":
        return np.argsort(-position_correlation(values), kind="stable")
    raise ValueError(f"unknown unit order {mode!r}; choose one of {', '.join(UNIT_ORDERS)}")


def position_correlation(values: np.ndarray) -> np.ndarray:
    """Pearson correlation of each unit with the step index; 0 for a constant unit."""
    steps = np.arange(values.shape[0], dtype=np.float64) - (values.shape[0] - 1) / 2
    centred = values - values.mean(axis=0)
    scale = np.sqrt((centred**2).sum(axis=0) * (steps**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, steps @ centred / scale, 0.0)


def divergence_step(first: list[str], second: list[str]) -> int | None:
    """The first step where two decodings predict different tokens (a shorter one differs where it ends)."""
    for step, (a, b) in enumerate(zip(first, second, strict=False)):
        if a != b:
            return step
    return None if len(first) == len(second) else min(len(first), len(second))


@dataclass(frozen=True)
class Projection:
    """A 2-D PCA plane: points map to (points - mean) @ axes."""

    mean: np.ndarray  # (features,)
    axes: np.ndarray  # (features, 2)
    explained: np.ndarray  # share of variance on each axis

    def apply(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - self.mean) @ self.axes


def fit_projection(points: np.ndarray) -> Projection:
    """PCA by SVD of the centred points (no sklearn); needs at least two points."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] < 2:
        raise ValueError("a projection needs at least two points")
    mean = points.mean(axis=0)
    _, singular, vt = np.linalg.svd(points - mean, full_matrices=False)
    axes = np.zeros((points.shape[1], 2))
    axes[:, : min(2, vt.shape[0])] = vt[:2].T
    total = float((singular**2).sum()) or 1.0
    explained = np.zeros(2)
    explained[: min(2, singular.size)] = singular[:2] ** 2 / total
    return Projection(mean, axes, explained)


def example_property(task: str, src: list[str], tgt: list[str]) -> tuple[str, float | str]:
    """What to colour an example by, as the task's entry says (the sum for addition, the first token for sort,
    else the source's length)."""
    return TASKS[task].example_property(src, tgt)


def capture_arrays(capture: StateCapture) -> dict[str, np.ndarray]:
    """Every captured array by name (encoder_l0_h, decoder_l1_gate_f, probs, ...) for .npz export."""
    arrays: dict[str, np.ndarray] = {}
    for part, layers in (("encoder", capture.encoder), ("decoder", capture.decoder)):
        for index, layer in enumerate(layers):
            arrays |= {f"{part}_l{index}_{name}": values for name, values in layer.states.items()}
            arrays |= {f"{part}_l{index}_gate_{gate}": values for gate, values in layer.gates.items()}
    arrays["probs"] = capture.probs
    if capture.attention is not None:
        arrays["attention"] = capture.attention
    arrays |= {f"attention_{kind}": maps for kind, maps in capture.heads.items()}
    arrays["src_tokens"] = np.array(capture.src_tokens, dtype=str)
    arrays["decoder_inputs"] = np.array(capture.decoder_inputs, dtype=str)
    arrays["predicted"] = np.array(capture.predicted, dtype=str)
    arrays["teacher_used"] = np.array(capture.teacher_used, dtype=bool)
    return arrays


def capture_npz(capture: StateCapture) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **capture_arrays(capture))
    return buffer.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(token: str) -> str:
    """A token as a CSV field a spreadsheet keeps as text: one that starts like a formula gets a leading quote, so a
    custom task's `=HYPERLINK(...)` is not a live formula when a teacher opens a student's states."""
    return f"'{token}" if token.startswith(FORMULA_STARTS) else token


def capture_csv(capture: StateCapture) -> str:
    """Long format, one value a row: part, layer, quantity, step, token, unit, value (tokens through
    `spreadsheet_text`). With attention, the alignment's rows are part "attention", quantity "alpha", unit = the
    source position."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["part", "layer", "quantity", "step", "token", "unit", "value"])
    for part, layers, tokens in (("encoder", capture.encoder, capture.encoder_tokens),
                                 ("decoder", capture.decoder, capture.decoder_inputs)):
        for index, layer in enumerate(layers):
            for quantity, values in (*layer.states.items(),
                                     *((f"gate_{gate}", v) for gate, v in layer.gates.items())):
                for step, row in enumerate(values):
                    token = spreadsheet_text(tokens[step])
                    writer.writerows([part, index, quantity, step, token, unit, f"{value:.6g}"]
                                     for unit, value in enumerate(row))
    for step, row in enumerate(capture.attention if capture.attention is not None else []):
        token = spreadsheet_text(capture.decoder_inputs[step])
        writer.writerows(["attention", "", "alpha", step, token, position, f"{value:.6g}"]
                         for position, value in enumerate(row))
    return out.getvalue()


@torch.inference_mode()
def context_vectors(model: Seq2Seq, src_vocab: Vocab, sources: list[list[str]]) -> np.ndarray:
    """Encoder final h of every layer, concatenated, one row per source (as `StateCapture.context`).

    Sources are batched by length, so no padding enters the recurrence and each
    row equals what `capture_states` gives for that source alone.
    """
    device = next(model.parameters()).device
    by_length: dict[int, list[int]] = {}
    for index, tokens in enumerate(sources):
        by_length.setdefault(len(tokens), []).append(index)
    rows: np.ndarray | None = None
    for indices in by_length.values():
        src = torch.tensor([src_vocab.encode(sources[i]) for i in indices], device=device)
        _, memory = model.encode(src, trace=True)
        final = memory.trace[-1]
        last = torch.cat([layer[final.state_names[0]] for layer in final.layers], dim=-1).cpu().numpy()
        if rows is None:
            rows = np.zeros((len(sources), last.shape[1]), np.float32)
        rows[indices] = last
    return rows if rows is not None else np.zeros((0, 0), np.float32)


def decoder_path(capture: StateCapture) -> np.ndarray:
    """The decoder's state at each step in the context vector's space: context first, then every step's h."""
    steps = np.concatenate([layer.h for layer in capture.decoder], axis=1)
    return np.vstack([capture.context[None, :], steps])


def informative_units(values: np.ndarray, count: int = 3) -> dict[int, str]:
    """The units worth a first look: the largest variance over time and the strongest |correlation| with position.

    Returns unit -> why, at most `count` of each kind (a unit may be both), so the heatmap can mark them.
    """
    if values.shape[0] < 2:
        return {}
    marked: dict[int, str] = {}
    for unit in np.argsort(-values.var(axis=0), kind="stable")[:count]:
        marked[int(unit)] = "varies most"
    for unit in np.argsort(-np.abs(position_correlation(values)), kind="stable")[:count]:
        marked[int(unit)] = "varies most, tracks position" if int(unit) in marked else "tracks position"
    return marked


def best_by_free_running(metrics: dict[str, bytes]) -> str | None:
    """The run whose latest evaluation has the highest free-running exact match (any model of it), from each
    run's metrics.csv; runs without an evaluation are skipped."""
    best: tuple[float, str] | None = None
    for run_id, data in metrics.items():
        rows = [row for row in csv.DictReader(io.StringIO(data.decode("utf-8", "replace")))
                if row.get("val_fr_exact")]
        if not rows:
            continue
        last = max(float(row["step"]) for row in rows)
        score = max(float(row["val_fr_exact"]) for row in rows if float(row["step"]) == last)
        if best is None or score > best[0]:
            best = (score, run_id)
    return best[1] if best else None
