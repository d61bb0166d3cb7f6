"""What a person should see before the first step: the task's examples, its vocabulary, the chance level, the size.

A first loss of 2.4 means nothing without a reference: an untrained model spreads its probability over the
target vocabulary, so its loss starts near ln|V| and its token accuracy near 1/|V|. These numbers, some example
pairs and the model's parameter count come from the settings alone (no model is trained), so the Train page
can show them before Start and redraw them when a setting moves.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from playground.core.config import TrainConfig
from playground.core.tasks import SPECIALS, TASKS, CustomPairs, Pair, Task, Vocab
from playground.training.trainer import build_task, meta_model

EXAMPLES = 4


@dataclass(frozen=True)
class TaskPreview:
    """A task as its settings make it: a few pairs, both vocabularies, lengths and what chance scores."""

    examples: list[tuple[str, str]]
    src_symbols: list[str]  # without the reserved <pad>, <sos>, <eos>, <unk>
    tgt_symbols: list[str]
    src_vocab_size: int  # with the reserved tokens: the sizes of the embedding and output layers
    tgt_vocab_size: int
    src_lengths: tuple[int, int]
    tgt_lengths: tuple[int, int]
    chance_accuracy: float  # a uniform guess over the output layer's |V| tokens
    chance_loss: float  # ln |V|: the cross-entropy of a uniform prediction


def _symbols(vocab: Vocab) -> list[str]:
    return [token for token in vocab.itos if token not in SPECIALS]


def sample_pairs(task: Task, seed: int, count: int = EXAMPLES) -> list[Pair]:
    """A few pairs drawn with the run's seed, so the same settings always show the same examples."""
    rng = random.Random(seed)
    return [task.sample(rng) for _ in range(count)]


def task_preview(config: TrainConfig, custom: CustomPairs | None = None, count: int = EXAMPLES) -> TaskPreview:
    """The preview of `config`'s task; raises TaskError as `build_task` does."""
    task = build_task(config, custom)
    pairs = sample_pairs(task, config.seed, count)
    lengths = [(len(s), len(t)) for s, t in sample_pairs(task, config.seed + 1, 200)]
    info = TASKS[config.task]
    src_low = config.min_len if info.uses_lengths else min(n for n, _ in lengths)
    tgt_low = config.min_len if info.target_as_long_as_source else min(n for _, n in lengths)
    size = len(task.tgt_vocab)
    return TaskPreview(
        examples=[(task.src_vocab.join(s), task.tgt_vocab.join(t)) for s, t in pairs],
        src_symbols=_symbols(task.src_vocab), tgt_symbols=_symbols(task.tgt_vocab),
        src_vocab_size=len(task.src_vocab), tgt_vocab_size=size,
        src_lengths=(src_low, task.max_src_len), tgt_lengths=(tgt_low, task.max_tgt_len),
        chance_accuracy=1.0 / size, chance_loss=math.log(size))


def parameter_counts(config: TrainConfig, src_vocab_size: int, tgt_vocab_size: int) -> dict[str, int]:
    """Parameters per part of the model `config` builds, counted on a model built on the meta device."""
    return meta_model(config, src_vocab_size, tgt_vocab_size).parameter_parts()
