"""Decoding one source, made visible: step by step, greedy against beam search, and where errors compound.

Greedy decoding picks the argmax at every step and never looks back; beam search keeps the `width` best
prefixes by summed log-probability. The step-through reuses `states.capture_states`, so its state columns (and
attention rows) are the ones the Hidden states page shows. Beam search runs `Decoder.step`, the one decoder step,
over every live beam at once. The per-position error analysis scores validation
data teacher-forced and free-running by output position: under free running an early mistake is fed back, so
later positions err more often than they would after a right prefix (exposure bias compounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from playground.core.tasks import SPECIALS, Pair, Task, Vocab, encode_pairs
from playground.inspection.states import StateCapture, capture_states
from playground.model.seq2seq import Seq2Seq
from playground.model.tokens import EOS_ID, PAD_ID
from playground.training.metrics import EVAL_CHUNK, MODES, scored_target

MAX_BEAM_WIDTH = 10
MAX_SOURCE_FACTOR = 4  # a typed source may be this many times the task's longest (decoding stretches with it)
FED_START, FED_TRUE, FED_OWN, FED_CHOSEN = "start", "true", "own", "chosen"  # where a step's input came from


@dataclass(frozen=True)
class DecodeStep:
    """One decoder step as a person steps through it."""

    index: int
    fed: str  # the token fed in
    fed_from: str  # FED_START (<sos>), FED_TRUE (the target's token, teacher-forced), FED_OWN (its own argmax) or
    # FED_CHOSEN (a what-if prefix's token that overrules its argmax)
    top: list[tuple[str, float]]  # the k most probable next tokens, most probable first
    chosen: str  # the argmax: what the model emits at this step, unless a what-if prefix overrules it
    logprob: float  # natural log p of the token emitted: the argmax, or the prefix's token that overrules it
    running_logprob: float  # sum of logprob over this and every earlier step
    attention: list[tuple[str, float]] | None = None  # each source token with its weight α (with attention only)
    overruled_by: str | None = None  # the what-if prefix's token emitted instead of the argmax

    @property
    def emitted(self) -> str:
        return self.overruled_by or self.chosen


@dataclass(frozen=True)
class StepThrough:
    steps: list[DecodeStep]
    capture: StateCapture  # every layer's h and c column per step (capture.decoder[layer].h[: t + 1])

    @property
    def emitted(self) -> list[str]:
        return [step.emitted for step in self.steps]


def step_through(model: Seq2Seq, src_vocab: Vocab, tgt_vocab: Vocab, src_tokens: list[str], max_len: int,
                 tgt_tokens: list[str] | None = None, teacher_forcing_ratio: float = 0.0, seed: int = 0,
                 top_k: int = 5, prefix: list[str] | None = None) -> StepThrough:
    """Decode one source step by step; with a target, each step after the first is fed the true token where a
    coin (seeded by `seed`, so a slider move re-runs the same coins) falls below gamma, else the model's own.

    A what-if `prefix` (output tokens, `check_prefix`) replaces target and coins: its tokens are fed first, then
    the model continues greedily. That is teacher forcing on the whole output, the prefix and then the model's
    own continuation, so the states are those of free running after the prefix."""
    if prefix:
        output = greedy(model, src_vocab, tgt_vocab, src_tokens, max_len, prefix).tokens
        tgt_tokens, teacher_forcing_ratio = output[:-1], 1.0  # the tokens fed after <sos>: all but the last
    capture = capture_states(model, src_vocab, tgt_vocab, src_tokens, tgt_tokens, teacher_forcing_ratio,
                             max_len, seed)
    log_probs = np.log(np.clip(capture.probs.astype(np.float64), 1e-300, None))
    ranked = np.argsort(-capture.probs, axis=1, kind="stable")[:, :top_k]
    steps, running = [], 0.0
    forced = prefix or []
    for t, (fed, chosen) in enumerate(zip(capture.decoder_inputs, capture.predicted, strict=True)):
        overruled_by = forced[t] if t < len(forced) and forced[t] != chosen else None
        logprob = float(log_probs[t, tgt_vocab.stoi[overruled_by or chosen]])
        running += logprob
        fed_from = FED_START if t == 0 else FED_TRUE if capture.teacher_used[t] else FED_OWN
        if forced and t > 0:
            fed_from = FED_CHOSEN if steps[t - 1].overruled_by else FED_OWN
        top = [(tgt_vocab.itos[i], float(capture.probs[t, i])) for i in ranked[t]]
        attention = None if capture.attention is None else [
            (token, float(weight)) for token, weight in zip(capture.src_tokens, capture.attention[t], strict=True)]
        steps.append(DecodeStep(t, fed, fed_from, top, chosen, logprob, running, attention, overruled_by))
    return StepThrough(steps, capture)


@dataclass(frozen=True)
class Hypothesis:
    """A decoded sequence: target-vocabulary tokens (ending with <eos> when produced) and its natural-log
    probability under the model, sum of log p(token) over every emitted token including <eos>."""

    tokens: list[str]
    logprob: float
    finished: bool = True

    def score(self, length_norm: bool) -> float:
        """What ranks hypotheses: the log-prob, or per token with length normalisation (so long outputs are not
        punished merely for having more factors below 1)."""
        return self.logprob / max(len(self.tokens), 1) if length_norm else self.logprob

    def as_dict(self) -> dict[str, object]:
        return {"tokens": self.tokens, "logprob": self.logprob}


@dataclass(frozen=True)
class BeamSearch:
    beams: list[Hypothesis]  # best first
    history: list[list[Hypothesis]]  # per step: the beams kept alive and those that ended there, best first
    length_norm: bool


def encode_source(model: Seq2Seq, src_vocab: Vocab, src_tokens: list[str]) -> torch.Tensor:
    if not src_tokens:
        raise ValueError("the source is empty: type at least one token")
    return torch.tensor([src_vocab.encode(src_tokens)], device=next(model.parameters()).device)


@torch.inference_mode()
def greedy(model: Seq2Seq, src_vocab: Vocab, tgt_vocab: Vocab, src_tokens: list[str], max_len: int,
           prefix: list[str] | None = None) -> Hypothesis:
    """The model's own greedy decoding (`Seq2Seq.greedy_decode`, as the trainer samples), scored teacher-forced.

    After a what-if `prefix` (output tokens fed first, `check_prefix`) it is the beam search of width 1 from there,
    which is greedy decoding; the prefix is part of the output and of its log-probability."""
    src = encode_source(model, src_vocab, src_tokens)
    if prefix:
        ids = tgt_vocab.encode(beam_search(model, src_vocab, tgt_vocab, src_tokens, max_len, 1, prefix=prefix)
                               .beams[0].tokens)
    else:
        ids = [i for i in model.greedy_decode(src, max_len)[0].tolist() if i != PAD_ID]
    return Hypothesis([tgt_vocab.itos[i] for i in ids], sequence_logprob(model, src, ids), EOS_ID in ids)


@torch.inference_mode()
def sequence_logprob(model: Seq2Seq, src: torch.Tensor, ids: list[int]) -> float:
    """sum_t log p(ids[t] | ids[:t], source), teacher-forced in one fused call (src is (1, T))."""
    if not ids:
        return 0.0
    tgt = torch.tensor([ids], device=src.device)
    log_probs = torch.log_softmax(model(src, tgt, 1.0).float(), dim=-1)
    return float(log_probs[0].gather(1, tgt[0, :, None]).sum())


@torch.inference_mode()
def beam_search(model: Seq2Seq, src_vocab: Vocab, tgt_vocab: Vocab, src_tokens: list[str], max_len: int,
                width: int = 5, length_norm: bool = False, prefix: list[str] | None = None) -> BeamSearch:
    """Keep the `width` best prefixes, all live beams in one batched decoder step.

    A what-if `prefix` (output tokens, `check_prefix`) is fed first, one beam scored by its log-probability, and
    the search continues from it; `max_len` counts the prefix.

    Each step extends every live beam by every token and keeps the `width - finished` best extensions; an
    extension ending in <eos> is finished and leaves the beam. So width 1 is exactly greedy decoding, and the
    search ends when `width` hypotheses have finished or after `max_len` steps (the live ones then count as
    unfinished). Length normalisation changes only how finished hypotheses of different lengths are ranked:
    the extensions compared within a step all have the same length.
    """
    if not 1 <= width <= MAX_BEAM_WIDTH:
        raise ValueError(f"beam width {width} is not allowed: use 1 to {MAX_BEAM_WIDTH}")
    src = encode_source(model, src_vocab, src_tokens)
    state, memory = model.encode(src)
    prefixes: list[list[int]] = [[]]
    scores = torch.zeros(1, device=src.device)
    last = torch.full((1,), model.sos_id, dtype=torch.long, device=src.device)
    finished: list[Hypothesis] = []
    history: list[list[Hypothesis]] = []

    def hypothesis(ids: list[int], logprob: float, done: bool) -> Hypothesis:
        return Hypothesis([tgt_vocab.itos[i] for i in ids], logprob, done)

    forced = tgt_vocab.encode(prefix or [])
    for token in forced:
        logits, state, _ = model.decoder.step(last, state, memory)
        scores = scores + torch.log_softmax(logits.float(), dim=-1)[:, token]
        prefixes = [[*prefixes[0], token]]
        last = torch.tensor([token], device=src.device)
        history.append([hypothesis(prefixes[0], float(scores[0]), False)])
    for _ in range(max_len - len(forced)):
        logits, state, _ = model.decoder.step(last, state, memory)
        candidates = (scores[:, None] + torch.log_softmax(logits.float(), dim=-1)).flatten()
        best = candidates.topk(width - len(finished))
        vocab_size = logits.shape[-1]
        parents, tokens = best.indices // vocab_size, best.indices % vocab_size
        ended, kept = [], []
        for parent, token, value in zip(parents.tolist(), tokens.tolist(), best.values.tolist(), strict=True):
            (ended if token == EOS_ID else kept).append((parent, token, value))
        finished += [hypothesis([*prefixes[p], t], v, True) for p, t, v in ended]
        history.append([hypothesis([*prefixes[p], t], v, t == EOS_ID) for p, t, v in
                        sorted(ended + kept, key=lambda row: -row[2])])
        if not kept:
            break
        index = torch.tensor([p for p, _, _ in kept], device=src.device)
        prefixes = [[*prefixes[p], t] for p, t, _ in kept]
        scores = torch.tensor([v for _, _, v in kept], device=src.device)
        last = torch.tensor([t for _, t, _ in kept], device=src.device)
        state = model.decoder.select(state, index)
        memory = memory.select(index)
    else:  # max_len reached: the beams still alive are kept, marked unfinished
        finished += [hypothesis(ids, float(v), False) for ids, v in zip(prefixes, scores.tolist(), strict=True)]
    ranked = sorted(finished, key=lambda h: -h.score(length_norm))[:width]
    return BeamSearch(ranked, history, length_norm)


def check_source(task: Task, src_vocab: Vocab, tokens: list[str]) -> list[str]:
    """Notes on a typed source, or ValueError naming what cannot be decoded and what is allowed."""
    if not tokens:
        raise ValueError("the source is empty: type at least one symbol")
    unknown = src_vocab.unknown(tokens)
    if unknown:
        allowed = " ".join(src_vocab.itos[len(SPECIALS):]) or "none"
        raise ValueError(f"unknown source symbols {', '.join(map(repr, unknown))}; allowed: {allowed}")
    longest = task.max_src_len * MAX_SOURCE_FACTOR
    if len(tokens) > longest:
        raise ValueError(f"the source has {len(tokens)} symbols; at most {longest} are allowed "
                         f"({MAX_SOURCE_FACTOR} times the task's longest, {task.max_src_len})")
    if len(tokens) > task.max_src_len:
        return [f"the source has {len(tokens)} symbols, more than any training source ({task.max_src_len}): "
                f"decoding may take up to {task.decode_limit(len(tokens))} steps (the target limit stretched in "
                "proportion), and the model has never seen such a length"]
    return []


def check_prefix(tgt_vocab: Vocab, tokens: list[str], limit: int) -> None:
    """ValueError naming what cannot be fed as a what-if prefix (output tokens of the model's target vocabulary, and
    fewer than the decoding limit, so that the model still decodes a step) and what is allowed."""
    unknown = tgt_vocab.unknown(tokens)
    if unknown:
        allowed = " ".join(tgt_vocab.itos[len(SPECIALS):]) or "none"
        raise ValueError(f"unknown output symbols in the prefix {', '.join(map(repr, unknown))}; allowed: {allowed}")
    if len(tokens) >= limit:
        raise ValueError(f"the prefix has {len(tokens)} symbols; at most {limit - 1} are allowed for this source "
                         f"(the decoding limit, {limit}, less one step for the model)")


@dataclass(frozen=True)
class PositionErrors:
    """Error rates by output position (0 = the first target token; the last real position is <eos>)."""

    tf_error: np.ndarray  # wrong at t, teacher-forced (fed the true prefix)
    fr_error: np.ndarray  # wrong at t, free-running (fed its own earlier outputs)
    first_error: np.ndarray  # P(wrong at t | every earlier position right), free-running; NaN where none qualify
    count: np.ndarray  # examples with a real target token at t
    at_risk: np.ndarray  # of those, how many had every earlier position right

    @property
    def positions(self) -> np.ndarray:
        return np.arange(self.count.size)


def position_errors_from(tf_predicted: torch.Tensor, fr_predicted: torch.Tensor, tgt: torch.Tensor) -> PositionErrors:
    """The analysis from predicted ids (B, L) both ways and the padded target (B, L).

    A free-running row whose earlier positions were all right was fed exactly the true prefix, so its
    conditional error equals the teacher-forced one for that row: the gap between `fr_error` and `first_error`
    is what earlier mistakes add.
    """
    real = tgt != PAD_ID
    tf_wrong, fr_wrong = (tf_predicted != tgt) & real, (fr_predicted != tgt) & real
    earlier_right = torch.cumsum(fr_wrong.long(), dim=1) - fr_wrong.long() == 0
    at_risk = earlier_right & real
    count = real.sum(0).double()
    with np.errstate(invalid="ignore", divide="ignore"):
        def rate(wrong: torch.Tensor, rows: torch.Tensor) -> np.ndarray:
            return (wrong.sum(0).double() / rows).cpu().numpy()

        return PositionErrors(rate(tf_wrong, count), rate(fr_wrong, count), rate(fr_wrong & at_risk, at_risk.sum(0)),
                              count.cpu().numpy().astype(int), at_risk.sum(0).cpu().numpy().astype(int))


def _predicted(model: Seq2Seq, task: Task, pairs: list[Pair], modes: dict[str, float]) -> tuple[dict[str, torch.Tensor],
                                                                                            torch.Tensor]:
    """Predicted ids of validation pairs for each mode (teacher-forcing ratio), and the padded target, in chunks."""
    if not pairs:
        raise ValueError("no validation examples to score")
    batch = encode_pairs(task, pairs)
    device = next(model.parameters()).device
    src, tgt = batch.src.to(device), batch.tgt.to(device)
    return {prefix: torch.cat([model(s, t, ratio).argmax(-1) for s, t in
                               zip(src.split(EVAL_CHUNK), tgt.split(EVAL_CHUNK), strict=True)])
            for prefix, ratio in modes.items()}, tgt


@torch.inference_mode()
def position_errors(model: Seq2Seq, task: Task, pairs: list[Pair], eos: str = "predict") -> PositionErrors:
    """Score validation pairs teacher-forced and free-running (as the trainer's evaluation) by position; an
    oracle (`eos`) is not scored on <eos>.

    Works for one arm of a comparison as well: pass a `TrainedModel`'s model, task and val_pairs.
    """
    predicted, tgt = _predicted(model, task, pairs, MODES)
    return position_errors_from(predicted["val_tf"], predicted["val_fr"], scored_target(tgt, eos))


@torch.inference_mode()
def free_running_mistakes(model: Seq2Seq, task: Task, pairs: list[Pair]) -> list[bool]:
    """For each pair, whether free-running decoding gets any target token wrong: where to look for exposure bias."""
    predicted, tgt = _predicted(model, task, pairs, {"val_fr": MODES["val_fr"]})
    return (((predicted["val_fr"] != tgt) & (tgt != PAD_ID)).any(dim=1)).tolist()
