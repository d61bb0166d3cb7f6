"""Any experiment as one standalone PyTorch script: torch and the standard library, readable top to bottom.

The script reproduces the library's random-number consumption order, so on the CPU it trains the same models:
one `random.Random(seed)` draws the validation set and then every training batch (`TaskData`), the model's
weights come from `torch.manual_seed(model seed)` in the order `Seq2Seq` builds them, and a generator seeded
with seed + 1 draws every step's coins whatever the ratio (`resume.draw_coins`). The task's generator and the
teacher-forcing schedule are copied from the library's own source (`inspect.getsource`), so they cannot drift.
The model is written for the variants the experiment trains and no others (`model_code`): a GRU through nn.GRU,
attention as Luong's equations, the reversed source. What differs is float rounding: the playground runs an LSTM's
free-running steps through its hand-written recurrence (`model/fused_lstm.py`) and a GRU's through the cell's
reference step, computes attention over all steps at once, and stacks models of one shape; the script runs
nn.LSTM or nn.GRU one step at a time, each model on its own.
"""

from __future__ import annotations

import inspect
import pprint
from string import Template

from playground.core import tasks
from playground.core.config import DEFAULTS, VARIANT_SETTINGS
from playground.core.forcing import SCHEDULES, ForcingSchedule
from playground.core.tasks import (
    EOS_ID,
    LETTERS,
    PAD_ID,
    SOS_ID,
    UNK_ID,
    VALIDATION_BUCKETS,
    count_symbols,
    number_to_words,
)
from playground.export.experiment import Experiment
from playground.export.model_code import Family, model_arguments, model_code
from playground.training.stacked import PER_MODEL
from playground.training.trainer import build_task

# What tests/test_export.py holds (CPU, dropout 0): every final validation figure within 1e-4 of the run's. Measured
# up to 300 steps (the model family's variants, 13 models: 200): losses differ by under 3e-6 (one attention model
# 1.6e-5), accuracies and exact match not at all. Rounding can grow, though: a free-running training step that meets
# a near tie (top-2 logits within ~1e-6) may take the other token (LSTM, source reversed, per-token coins: a 2e-6 tie
# at step 134, final losses 1.5e-3 apart), and a model in a sensitive stretch of training amplifies the difference
# (a GRU with additive attention: logits 6e-8 apart after step 1, 6e-5 at step 130, 5e-3 at 160; losses 4e-2 at 200).
TOLERANCE = "every figure within 1e-4"
NOT_SHARED = (*PER_MODEL, "task", "min_len", "max_len", "alphabet_size", "max_digits", "custom_data",
              "custom_tokenization", "device")

_HEADER = Template('''\
"""$title (its name is NAME below)

A standalone PyTorch script exported from the Seq2Seq Playground: torch and the standard library only. It trains
the same experiment with the same seeds and prints the validation figures the run recorded, within float rounding
($tolerance; CPU, dropout 0; over long runs the rounding can grow until the figures part ways). Dropout
draws from torch's global generator, which the playground shares between runs, so with dropout the figures agree
in distribution only. A change made while the run trained (the learning rate) is not replayed: these are the
settings the run ended with.

Read it top to bottom: the settings, the task's data, the model, the teacher-forcing schedule, the evaluation,
the training loop. Run: python this_file.py (the last line printed is JSON: every model's final figures).
"""

import json
import math
import random
import zlib
${counter}from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# --- the experiment ---------------------------------------------------------------------------------------------

NAME = $name
SETTINGS = $settings
# The models differ only here; they all read the same batches and the same coin draws (common random numbers),
# drawn from DATA_SEED: the playground trains them side by side, this script one after another.
MODELS = $models
DATA_SEED = $data_seed

# --- the task: $task_description
# A source belongs to validation when its CRC-32 falls in one bucket of $buckets, so no validation source is
# ever trained on.

PAD_ID, SOS_ID, EOS_ID, UNK_ID = $pad, $sos, $eos, $unk
SOURCE_VOCABULARY = $source_vocabulary
TARGET_VOCABULARY = $target_vocabulary
SOURCE_IDS = {token: i for i, token in enumerate(SOURCE_VOCABULARY)}
TARGET_IDS = {token: i for i, token in enumerate(TARGET_VOCABULARY)}

''')

_DATA = '''

def encode(pairs):
    """Sources left-padded (the encoder's last step is a real token), targets then <eos>, right-padded."""
    sources = [[SOURCE_IDS.get(token, UNK_ID) for token in source] for source, _ in pairs]
    targets = [[TARGET_IDS.get(token, UNK_ID) for token in target] + [EOS_ID] for _, target in pairs]
    src_len, tgt_len = max(map(len, sources)), max(map(len, targets))
    src = torch.tensor([[PAD_ID] * (src_len - len(row)) + row for row in sources], dtype=torch.long)
    tgt = torch.tensor([row + [PAD_ID] * (tgt_len - len(row)) for row in targets], dtype=torch.long)
    return src, tgt


class Data:
    """A fixed validation set, then an endless stream of training batches, all from one random.Random(seed)."""

    def __init__(self, seed, val_size):
        self.rng = random.Random(seed)
        found = {}
        for _ in range(val_size * BUCKETS * 20):
            source, target = sample(self.rng)
            if is_validation(source):
                found.setdefault("\\x1f".join(source), (source, target))
                if len(found) == val_size:
                    break
        self.validation = encode(list(found.values()))

    def batch(self, size):
        pairs = []
        while len(pairs) < size:
            source, target = sample(self.rng)
            if not is_validation(source):
                pairs.append((source, target))
        return encode(pairs)


'''

_LOSS = '''

def sequence_loss(logits, tgt):
    """Cross-entropy averaged over every non-<pad> target token."""
    return F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD_ID)


# --- the teacher-forcing schedule: gamma(step), the chance that a decoder step reads the true token ---------------

'''

_REST = '''

# --- the evaluation: teacher-forced and free-running (greedy), on the validation set --------------------------------


@torch.inference_mode()
def evaluate(model, src, tgt):
    model.eval()
    figures = {}
    free_running = torch.zeros(tgt.shape[1], dtype=torch.bool)
    for prefix, teacher in (("val_tf", None), ("val_fr", free_running)):
        logits = model(src, tgt, teacher)
        mask = tgt != PAD_ID
        correct = (logits.argmax(-1) == tgt) & mask
        loss = sequence_loss(logits, tgt).item()
        figures[f"{prefix}_loss"] = loss
        figures[f"{prefix}_ppl"] = math.exp(min(loss, 50.0))
        figures[f"{prefix}_token_acc"] = correct.sum().item() / mask.sum().item()
        figures[f"{prefix}_exact"] = (correct.sum(1) == mask.sum(1)).float().mean().item()
    model.train()
    return figures


# --- training ----------------------------------------------------------------------------------------------------


def make_optimizer(settings, parameters):
    if settings["optimizer"] == "sgd":
        return torch.optim.SGD(parameters, lr=settings["lr"], momentum=settings["momentum"],
                               weight_decay=settings["weight_decay"])
    optimizer = torch.optim.AdamW if settings["optimizer"] == "adamw" else torch.optim.Adam
    return optimizer(parameters, lr=settings["lr"], weight_decay=settings["weight_decay"])


def train(label, settings):
    """One model: its weights from its own seed, its batches and coins from DATA_SEED. Returns its last figures."""
    data = Data(DATA_SEED, settings["val_size"])
    coins = torch.Generator().manual_seed(DATA_SEED + 1)
    torch.manual_seed(settings["seed"])
    model = Seq2Seq(len(SOURCE_VOCABULARY), len(TARGET_VOCABULARY), settings["emb_dim"], settings["hidden_dim"],
                    settings["num_layers"], settings["dropout"]MODEL_VARIANT)
    optimizer = make_optimizer(settings, list(model.parameters()))
    schedule = ForcingSchedule(settings["schedule"], settings["teacher_forcing_ratio"], settings["tf_end"],
                               settings["decay_steps"], settings["exp_k"], settings["sigmoid_k"])
    src_val, tgt_val = data.validation
    figures = {"step": 0, **evaluate(model, src_val, tgt_val)}
    for step in range(1, settings["steps"] + 1):
        ratio = schedule.ratio(step - 1)
        src, tgt = data.batch(settings["batch_size"])
        # the coins are drawn every step whatever the ratio, so the stream never shifts
        shape = (tgt.shape[1],) if settings["coin"] == "step" else tuple(tgt.shape)
        draws = torch.rand(shape, generator=coins)
        logits = model(src, tgt, None if ratio >= 1.0 else draws < ratio)
        loss = sequence_loss(logits, tgt)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings["grad_clip"])
        optimizer.step()
        if step % settings["eval_every"] == 0 or step == settings["steps"]:
            figures = {"step": step, **evaluate(model, src_val, tgt_val)}
            print(f"{label:>24}  step {step:>6}  train loss {loss.item():.4f}  gamma {ratio:.3f}  "
                  f"validation loss {figures['val_tf_loss']:.4f} (teacher-forced) "
                  f"{figures['val_fr_loss']:.4f} (free-running)  exact match {figures['val_tf_exact']:.1%} / "
                  f"{figures['val_fr_exact']:.1%}", flush=True)
    return figures


if __name__ == "__main__":
    torch.set_num_threads(1)  # one thread: the same kernels, so the same rounding, on any machine
    results = [{"label": model["label"], **train(model["label"], SETTINGS | model)} for model in MODELS]
    print(json.dumps({"models": results}))
'''


def pytorch_script(experiment: Experiment) -> str:
    """The experiment as the text of one runnable .py file, its model written for the variants it trains."""
    base = experiment.base
    task = build_task(base, experiment.custom)
    family = Family.of(experiment.configs)
    shared = {name: value for name, value in base.as_dict().items()
              if name not in NOT_SHARED or (name in VARIANT_SETTINGS and name not in family.varying
                                            and value != getattr(DEFAULTS, name))}
    per_model = [name for name in PER_MODEL if name not in VARIANT_SETTINGS or name in family.varying]
    header = _HEADER.substitute(
        counter="from collections import Counter\n" if base.task == "count" else "",
        title=f"An experiment of {len(experiment.configs)} model(s) on the {base.task} task, {base.steps:,} steps",
        name=repr(experiment.name),
        tolerance=TOLERANCE,
        settings=_one_per_line([f"{name!r}: {value!r}" for name, value in shared.items()], "{}"),
        models=_one_per_line([_wrapped_dict({"label": label, **{name: getattr(config, name) for name in per_model}})
                              for label, config in zip(experiment.labels, experiment.configs, strict=True)], "[]"),
        data_seed=base.seed, task_description=task.description, buckets=VALIDATION_BUCKETS,
        pad=PAD_ID, sos=SOS_ID, eos=EOS_ID, unk=UNK_ID,
        source_vocabulary=pprint.pformat(task.src_vocab.itos, width=116, compact=True),
        target_vocabulary=pprint.pformat(task.tgt_vocab.itos, width=116, compact=True))
    schedule = f"SCHEDULES = {SCHEDULES!r}\n\n\n{inspect.getsource(ForcingSchedule)}"
    rest = _REST.replace("MODEL_VARIANT", model_arguments(family))
    return header + _task_code(experiment) + _DATA + model_code(family) + _LOSS + schedule + rest


def _one_per_line(items: list[str], brackets: str) -> str:
    return brackets[0] + "\n" + "".join(f"    {item},\n" for item in items) + brackets[1]


def _wrapped_dict(values: dict[str, object], width: int = 110) -> str:
    """A dict's repr broken between its items so that no line runs past `width` (one model's entry in MODELS)."""
    lines = [""]
    for item in (f"{name!r}: {value!r}" for name, value in values.items()):
        if lines[-1] and len(lines[-1]) + len(item) + 2 > width:
            lines.append("")
        lines[-1] += (", " if lines[-1] else "") + item
    return "{" + ",\n     ".join(lines) + "}"


def _task_code(experiment: Experiment) -> str:
    """`BUCKETS`, `sample(rng) -> (source, target)` and `is_validation(source)` for the experiment's task."""
    base = experiment.base
    code = f"BUCKETS = {VALIDATION_BUCKETS}\n"
    if base.task == "custom":
        pairs = [list(pair) for pair in experiment.custom.pairs] if experiment.custom else []
        return code + f'''PAIRS = {pairs!r}
# validation: the tenth of distinct sources (at least one) whose CRC-32 is lowest
SOURCES = sorted({{"\\x1f".join(source) for source, _ in PAIRS}}, key=lambda key: zlib.crc32(key.encode()))
VALIDATION = set(SOURCES[: max(1, len(SOURCES) // BUCKETS)])


def is_validation(source):
    return "\\x1f".join(source) in VALIDATION


def sample(rng):
    return rng.choice(PAIRS)
'''
    code += '''

def is_validation(source):
    return zlib.crc32("\\x1f".join(source).encode()) % BUCKETS == 0

'''
    if tasks.TASKS[base.task].uses_lengths:
        target = {"copy": "list(source)", "reverse": "source[::-1]", "sort": "sorted(source)",
                  "count": "count_symbols(source)"}[base.task]
        helper = f"\n\n{inspect.getsource(count_symbols)}" if base.task == "count" else ""
        return code + f'''
ALPHABET = {LETTERS[:base.alphabet_size]!r}
MIN_LEN, MAX_LEN = {base.min_len}, {base.max_len}
{helper}

def sample(rng):
    source = [rng.choice(ALPHABET) for _ in range(rng.randint(MIN_LEN, MAX_LEN))]
    return source, {target}
'''
    number = f'''
MAX_DIGITS = {base.max_digits}


def random_number(rng):
    return rng.randint(0, 10 ** rng.randint(1, MAX_DIGITS) - 1)
'''
    if base.task == "addition":
        return code + number + '''

def sample(rng):
    a, b = random_number(rng), random_number(rng)
    return list(f"{a}+{b}"), list(str(a + b))
'''
    words = "\n".join(f"{name} = {getattr(tasks, name)!r}" for name in ("_ONES", "_TENS", "_SCALES"))
    return code + number + f'''

{words}


{inspect.getsource(number_to_words)}

def sample(rng):
    n = random_number(rng)
    return list(str(n)), number_to_words(n)
'''
