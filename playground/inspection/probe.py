"""Does a model recover from a wrong token? The probe of exposure bias after He et al. (2021).

For every output position k, over validation examples:

- the error of the tokens from k on when greedy decoding starts after the true prefix y_<k, and after the model's
  own prefix (free running from the start): the gap between the two is what the model's own earlier mistakes add;
- after the true prefix with one wrong token w at k (the model's likeliest wrong token of the task's alphabet, so
  its own mistake where it makes one): the share of examples whose tokens after k are all right (it recovered),
  and the total-variation distance between the next-token distributions p(. | y_<=k) and p(. | y_<k, w).

A greedy output ends at its first <eos>: every target position after it counts as wrong.

One walk computes it all, every k at once (`walk`): teacher-forced rows, and one branch row per wrong token,
which leaves the true prefix at its own step, share each `Decoder.step` call. Nothing is decoded twice: greedy
decoding after the true prefix y_<k is teacher-forced decoding until the model's first mistake at some j >= k,
then the branch of that mistake; free running from the start is the same from k = 0. A branch ends as soon as
its answer is known. The model is scored as given (the inspection pages hold models in eval mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from playground.core.tasks import EOS_ID, PAD_ID, SPECIALS, Pair, Task, encode_pairs
from playground.model.seq2seq import Seq2Seq

ROW_BUDGET = 8192  # decoder rows in one step at most: examples are walked in chunks that stay below it


@dataclass(frozen=True)
class Recovery:
    """The probe's curves by output position k (0 = the first target token)."""

    true_prefix_error: np.ndarray  # share of the tokens from k on that are wrong, greedy after y_<k
    own_prefix_error: np.ndarray  # the same, free-running from the start
    recovery: np.ndarray  # share of the injections at k after which every later token is right (NaN: none)
    total_variation: np.ndarray  # mean TV distance of the next-token distributions after the injection at k
    count: np.ndarray  # examples with a target token at k
    injected: np.ndarray  # of those, how many had a wrong token injected at k (every k before <eos>)
    overall: float  # share of all injections, at any k, after which the model recovered

    @property
    def positions(self) -> np.ndarray:
        return np.arange(self.count.size)

    def as_dict(self) -> dict[str, object]:
        return {"positions": self.positions.tolist(), "true_prefix_error": self.true_prefix_error.tolist(),
                "own_prefix_error": self.own_prefix_error.tolist(), "recovery": self.recovery.tolist(),
                "total_variation": self.total_variation.tolist(), "count": self.count.tolist(),
                "injected": self.injected.tolist(), "recovered": self.overall}


@dataclass(frozen=True)
class Walk:
    """What one walk over padded targets (B, L) found; entries past a row's target are padding."""

    targets: np.ndarray  # (B, L)
    tf_predicted: np.ndarray  # (B, L) the argmax after the true prefix
    first_mistake: np.ndarray  # (B,) the first k where it is wrong (L: none)
    continuation: np.ndarray  # (B, L) after the first mistake: the greedy tokens of its branch (<pad>: none)
    after_mistake: np.ndarray  # (B, L) wrong tokens after k that follow its own mistake at k (-1: none decoded)
    injected: np.ndarray  # (B, L) bool: a wrong token was injected at k
    recovered: np.ndarray  # (B, L) bool: after it, every later token was right
    total_variation: np.ndarray  # (B, L) between the next-token distributions after y_<=k and after the injection

    @property
    def lengths(self) -> np.ndarray:
        return (self.targets != PAD_ID).sum(1)

    @property
    def fr_predicted(self) -> np.ndarray:
        """Free running from the start: teacher-forced up to the first mistake, then that mistake's branch."""
        positions = np.arange(self.targets.shape[1])[None, :]
        return np.where(positions <= self.first_mistake[:, None], self.tf_predicted, self.continuation)


def validation_batch(model: Seq2Seq, task: Task, pairs: list[Pair]) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded source and target of the pairs on the model's device, padded as the evaluation pads them (a left-padded
    source is read after its padding, which moves the encoder's state a little)."""
    if not pairs:
        raise ValueError("no validation examples to probe")
    batch = encode_pairs(task, pairs)
    device = next(model.parameters()).device
    return batch.src.to(device), batch.tgt.to(device)


@torch.inference_mode()
def recovery_probe(model: Seq2Seq, task: Task, pairs: list[Pair]) -> Recovery:
    """The probe over validation pairs (of one model, or one arm of a comparison)."""
    src, tgt = validation_batch(model, task, pairs)
    size = max(1, ROW_BUDGET // (1 + tgt.shape[1]))  # a teacher-forced row and up to one branch a position
    walks = [walk(model, s, t) for s, t in zip(src.split(size), tgt.split(size), strict=True)]
    return recovery_from(walks)


def walk(model: Seq2Seq, src: torch.Tensor, tgt: torch.Tensor) -> Walk:
    """Teacher-forced rows step by step; at step t, for each example whose position k = t - 1 is before its <eos>,
    a branch row fed the true prefix y_<k and then a wrong token at k: the injection, and the model's own mistake
    where it is another token (not <eos>: a greedy output ends there)."""
    count, width = tgt.shape
    device = tgt.device
    lengths = (tgt != PAD_ID).sum(1)
    state, memory = model.encode(src)
    rows = torch.arange(count, device=device)  # the examples still teacher-forced: a target token at t
    token = torch.full((count,), model.sos_id, device=device)
    tf_predicted = torch.full((count, width), PAD_ID, device=device)
    continuation = tf_predicted.clone()
    first_mistake = torch.full((count,), width, device=device)
    after_mistake = torch.full((count, width), -1, device=device)
    injected = torch.zeros(count, width, dtype=torch.bool, device=device)
    recovered = injected.clone()
    total_variation = torch.full((count, width), float("nan"), device=device)
    branches = _Branches.none(state)
    logits = None
    for t in range(width):
        keep = lengths[rows] > t
        if not bool(keep.any()):  # every target of this chunk has ended, and every branch with it
            break
        rows, token, state = rows[keep], token[keep], tuple(part[:, keep] for part in state)
        new, origin = (_Branches.start(t - 1, logits[keep], rows, tgt, first_mistake, state) if t else
                       (_Branches.none(state), rows[:0]))
        every = torch.cat([rows, new.example, branches.example])
        step_logits, step_state, _ = model.decoder.step(torch.cat([token, new.token, branches.token]),
                                                        tuple(torch.cat(parts, dim=1) for parts in
                                                              zip(state, new.state, branches.state, strict=True)),
                                                        memory.select(every))
        step_logits = step_logits.float()
        forced = len(rows)
        logits, state = step_logits[:forced], tuple(part[:, :forced] for part in step_state)
        tf_predicted[rows, t] = logits.argmax(-1)
        wrong_first = (tf_predicted[rows, t] != tgt[rows, t]) & (first_mistake[rows] == width)
        first_mistake[rows[wrong_first]] = t
        token = tgt[rows, t]
        if new.size:
            opened = new.is_injection
            after = step_logits[forced:forced + new.size][opened].softmax(-1)
            before = logits[origin[opened]].softmax(-1)
            total_variation[new.example[opened], t - 1] = 0.5 * (after - before).abs().sum(-1)
            injected[new.example[opened], t - 1] = True
        branches = _Branches.merge(new, branches, step_logits[forced:],
                                   tuple(part[:, forced:] for part in step_state), tgt[:, t], continuation, t)
        branches = branches.settle(t, lengths, recovered, after_mistake)
    return Walk(*(part.cpu().numpy() for part in (tgt, tf_predicted, first_mistake, continuation, after_mistake,
                                                    injected, recovered, total_variation)))


@dataclass(frozen=True)
class _Branches:
    """Branch rows: each left the true prefix at `position` k with a wrong token and decodes greedily since."""

    example: torch.Tensor  # (R,) which example
    position: torch.Tensor  # (R,) k, where the wrong token went
    token: torch.Tensor  # (R,) the token fed at the next step
    state: tuple[torch.Tensor, ...]  # the decoder state, each (layers, R, H)
    is_injection: torch.Tensor  # (R,) bool: the probe's wrong token (the likeliest one of the alphabet)
    is_mistake: torch.Tensor  # (R,) bool: the model's own mistake after the true prefix (decoded to the end)
    is_free_running: torch.Tensor  # (R,) bool: that mistake is its first, so this is free running's continuation
    wrong: torch.Tensor  # (R,) wrong tokens after k so far
    ended: torch.Tensor  # (R,) bool: it emitted <eos>

    @property
    def size(self) -> int:
        return int(self.example.shape[0])

    @classmethod
    def none(cls, like: tuple[torch.Tensor, ...]) -> _Branches:
        index = torch.zeros(0, dtype=torch.long, device=like[0].device)
        flags = index.bool()
        return cls(index, index, index, tuple(part[:, :0] for part in like), flags, flags, flags, index, flags)

    @classmethod
    def start(cls, k: int, logits: torch.Tensor, rows: torch.Tensor, tgt: torch.Tensor, first_mistake: torch.Tensor,
              state: tuple[torch.Tensor, ...]) -> tuple[_Branches, torch.Tensor]:
        """The branches that leave the teacher-forced `rows` (all with a target token after k) at k, from their
        logits at k and their state after it, and which row each one left."""
        truth = tgt[rows, k]
        alphabet = logits.clone()
        alphabet[:, : len(SPECIALS)] = -torch.inf
        alphabet.scatter_(1, truth[:, None], -torch.inf)
        best_wrong = alphabet.argmax(-1)
        own = logits.argmax(-1)
        injection = alphabet.gather(1, best_wrong[:, None])[:, 0].isfinite()  # the alphabet has another token
        mistake = (own != truth) & (own != EOS_ID)
        shared = injection & mistake & (own == best_wrong)
        extra = mistake & ~shared
        origin = torch.cat([torch.nonzero(injection)[:, 0], torch.nonzero(extra)[:, 0]])
        example = rows[origin]
        is_mistake = torch.cat([shared[injection], extra[extra]])
        flags = torch.zeros_like(origin, dtype=torch.bool)
        return cls(example, torch.full_like(origin, k), torch.cat([best_wrong[injection], own[extra]]),
                   tuple(part[:, origin] for part in state), torch.arange(origin.shape[0], device=origin.device)
                   < int(injection.sum()), is_mistake, is_mistake & (first_mistake[example] == k),
                   torch.zeros_like(origin), flags), origin

    @classmethod
    def merge(cls, new: _Branches, old: _Branches, logits: torch.Tensor, state: tuple[torch.Tensor, ...],
              truth: torch.Tensor, continuation: torch.Tensor, t: int) -> _Branches:
        """Every branch after step t: its argmax is its next input, and a wrong one if not the target's."""
        example = torch.cat([new.example, old.example])
        predicted = logits.argmax(-1)
        free_running = torch.cat([new.is_free_running, old.is_free_running])
        continuation[example[free_running], t] = predicted[free_running]
        return cls(example, torch.cat([new.position, old.position]), predicted, state,
                   torch.cat([new.is_injection, old.is_injection]), torch.cat([new.is_mistake, old.is_mistake]),
                   free_running, torch.cat([new.wrong, old.wrong]) + (predicted != truth[example]).long(),
                   predicted == EOS_ID)

    def settle(self, t: int, lengths: torch.Tensor, recovered: torch.Tensor, after_mistake: torch.Tensor) -> _Branches:
        """Record the branches whose answer is known after step t (an <eos> ends the output: every later target
        token is then wrong) and keep the others."""
        last = lengths[self.example] - 1
        ended_early = self.ended & (t < last)
        wrong = self.wrong + torch.where(ended_early, last - t, 0)
        done = (t >= last) | ended_early
        failed = (wrong > 0) & ~self.is_mistake  # an injection that will not recover: nothing left to learn
        answered = self.is_injection & (done | failed)
        recovered[self.example[answered], self.position[answered]] = wrong[answered] == 0
        counted = self.is_mistake & done
        after_mistake[self.example[counted], self.position[counted]] = wrong[counted]
        keep = ~(done | failed)
        return _Branches(self.example[keep], self.position[keep], self.token[keep],
                         tuple(part[:, keep] for part in self.state), self.is_injection[keep], self.is_mistake[keep],
                         self.is_free_running[keep], self.wrong[keep], self.ended[keep])


def recovery_from(walks: list[Walk]) -> Recovery:
    """The curves from the walks of every chunk: error counts from k on after both prefixes, recovery and TV."""
    width = max(w.targets.shape[1] for w in walks)
    wrong_true, wrong_own, remaining = np.zeros(width), np.zeros(width), np.zeros(width)
    count, injected, recovered = (np.zeros(width, dtype=np.int64) for _ in range(3))
    distance = np.zeros(width)
    for found in walks:
        span = found.targets.shape[1]
        lengths, positions = found.lengths, np.arange(span)
        real = positions[None, :] < lengths[:, None]
        wrong_true[:span] += after_true_prefix(found).sum(0)
        is_eos = found.fr_predicted == EOS_ID
        fr_wrong = real & ((np.cumsum(is_eos, axis=1) - is_eos > 0) | (found.fr_predicted != found.targets))
        wrong_own[:span] += np.flip(np.cumsum(np.flip(fr_wrong, 1), 1), 1).sum(0)
        remaining[:span] += (lengths[:, None] - positions[None, :]).clip(min=0).sum(0)
        count[:span] += real.sum(0)
        injected[:span] += found.injected.sum(0)
        recovered[:span] += (found.recovered & found.injected).sum(0)
        distance[:span] += np.where(found.injected, found.total_variation, 0.0).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return Recovery(wrong_true / remaining, wrong_own / remaining, recovered / injected, distance / injected,
                        count, injected, float(recovered.sum() / injected.sum()) if injected.sum() else float("nan"))


def after_true_prefix(found: Walk) -> np.ndarray:
    """(B, L) wrong tokens from k on, greedy after the true prefix y_<k: none while the teacher-forced argmax is
    right; at its first mistake j >= k, that one and what its branch got wrong (all the rest after an <eos>)."""
    count, span = found.targets.shape
    lengths = found.lengths
    real = np.arange(span)[None, :] < lengths[:, None]
    mistaken = real & (found.tf_predicted != found.targets)
    wrong = np.zeros((count, span + 1), dtype=np.int64)
    for k in range(span - 1, -1, -1):
        after = np.where(found.tf_predicted[:, k] == EOS_ID, (lengths - 1 - k).clip(min=0),
                         found.after_mistake[:, k].clip(min=0))
        wrong[:, k] = np.where(mistaken[:, k], 1 + after, np.where(real[:, k], wrong[:, k + 1], 0))
    return wrong[:, :span]
