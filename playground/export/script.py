"""Any experiment as one standalone PyTorch script: torch and the standard library, readable top to bottom.

The script runs the playground's own code in the playground's order. The model is the model package's source
(`model_source`), never a rewrite; the task's generator, the teacher-forcing schedule, the coin draws and the
scoring are copied from the library's source too (`inspect.getsource`), so they cannot drift. It draws its random
numbers in the library's order: one `random.Random(seed)` for the validation set and then every batch
(`TaskData`), `torch.manual_seed(model seed)` for the weights, a generator seeded with seed + 1 for every step's
coins whatever the ratio (`resume.draw_coins`). A run of one model therefore prints the figures the run recorded,
to the last digit on the same kind of CPU with one thread. A comparison's models train one after another here, but
side by side in the playground (stacked, with one loss summed over the models and each model's norm computed
at once), which rounds differently.
"""

from __future__ import annotations

import inspect
import pprint
from string import Template

from playground.core import forcing, tasks
from playground.core.config import VARIANT_SETTINGS
from playground.core.forcing import SCHEDULES, ForcingSchedule
from playground.core.tasks import LETTERS, VALIDATION_BUCKETS, count_symbols, number_to_words
from playground.export.experiment import Experiment
from playground.export.model_source import MODEL_MODULES, TOKENS_MODULE, import_block, model_section, module_section
from playground.training.metrics import EVAL_CHUNK, MODES, exact_match, score, scored_target
from playground.training.resume import draw_coins
from playground.training.stacked import PER_MODEL
from playground.training.trainer import build_task

# Measured on the CPU with one thread and dropout 0: a run of one model prints every figure it recorded as the same
# float, over the default run's whole 2,000 steps (with and without attention); tests/test_export.py holds 1e-6. A
# comparison at the default size (γ = 0, 0.5, 1; 300 steps): losses within 2e-4, accuracies and exact match equal;
# over long runs that rounding can grow until the runs part ways (a near tie of two logits taken the other way).
TOLERANCE = ("a run of one model: every figure exactly, to 1e-6; a comparison's models, which the playground\n"
             "trains side by side: within float rounding (losses within 2e-4 after 300 steps, accuracies equal)")
NOT_SHARED = (*PER_MODEL, "task", "min_len", "max_len", "alphabet_size", "max_digits", "custom_data",
              "custom_tokenization", "device")
SCRIPT_IMPORTS = ("import json", "import random", "import zlib")

_HEADER = Template('''\
"""$title (its name is NAME below)

A standalone PyTorch script exported from the Seq2Seq Playground: torch and the standard library only. It trains
the same experiment with the same seeds, through the playground's own code (the model below is its source), and
prints the validation figures the run recorded, on the CPU with one thread and dropout 0:
$tolerance.
Dropout draws from torch's global generator, which the playground shares between runs, so with dropout the figures
agree in distribution only. A change made while the run trained (the learning rate) is not replayed: these are the
settings the run ended with.

Read it top to bottom: the settings, the task's data, the model, the teacher-forcing schedule, the evaluation,
the training loop. Run: python this_file.py (the last line printed is JSON: every model's final figures).
"""

$imports

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

$tokens
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
        # a run that also tested longer sources scored its headline figures on this many of these examples
        self.validation = encode(list(found.values())[:round(val_size * TRAINED_SIZES / TESTED_SIZES)])

    def batch(self, size):
        pairs = []
        while len(pairs) < size:
            source, target = sample(self.rng)
            if not is_validation(source):
                pairs.append((source, target))
        return encode(pairs)


'''

_SCHEDULE_HEADING = (
    "# --- the teacher-forcing schedule: gamma(step), the chance that a decoder step reads the true token, and the "
    "coins ---\n\n")

_EVALUATE = '''


@torch.inference_mode()
def evaluate(model, src, tgt, eos):
    """Teacher-forced and free-running (greedy) figures on the validation set, in chunks of EVAL_CHUNK rows."""
    model.eval()
    figures = {}
    for prefix, ratio in MODES.items():
        logits = torch.cat([model(s, t, ratio) for s, t in zip(src.split(EVAL_CHUNK), tgt.split(EVAL_CHUNK))])
        loss, token_acc, exact = score(logits, scored_target(tgt, eos))
        figures |= {f"{prefix}_loss": loss, f"{prefix}_ppl": math.exp(min(loss, 50.0)),
                    f"{prefix}_token_acc": token_acc, f"{prefix}_exact": float(exact.float().mean())}
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
    model = Seq2Seq(src_vocab_size=len(SOURCE_VOCABULARY), tgt_vocab_size=len(TARGET_VOCABULARY),
                    emb_dim=settings["emb_dim"], hidden_dim=settings["hidden_dim"], num_layers=settings["num_layers"],
                    dropout=settings["dropout"], cell=settings["cell"], attention=settings["attention"],
                    reverse_source=settings["reverse_source"] == "on", architecture=settings["architecture"],
                    heads=settings["heads"], positions=settings["positions"])
    optimizer = make_optimizer(settings, list(model.parameters()))
    schedule = ForcingSchedule(settings["schedule"], settings["teacher_forcing_ratio"], settings["tf_end"],
                               settings["decay_steps"], settings["exp_k"], settings["sigmoid_k"])
    src_val, tgt_val = data.validation
    figures = {"step": 0, **evaluate(model, src_val, tgt_val, settings["eos"])}
    for step in range(1, settings["steps"] + 1):
        ratio = schedule.ratio(step - 1)
        src, tgt = data.batch(settings["batch_size"])
        draws = draw_coins(coins, settings["coin"], tgt.shape)  # every step whatever the ratio: the stream never shifts
        model.train()
        loss = sequence_loss(model(src, tgt, ratio, settings["coin"], draws), scored_target(tgt, settings["eos"]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
        if settings["grad_clip"] > 0:
            torch.nn.utils.clip_grads_with_norm_(model.parameters(), settings["grad_clip"], norm)
        optimizer.step()
        if step % settings["eval_every"] == 0 or step == settings["steps"]:
            figures = {"step": step, **evaluate(model, src_val, tgt_val, settings["eos"])}
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
    """The experiment as the text of one runnable .py file: the library's own model, every variant of it."""
    base = experiment.base
    task = build_task(base, experiment.custom)
    varying = [name for name in VARIANT_SETTINGS if len({getattr(config, name) for config in experiment.configs}) > 1]
    shared = {name: value for name, value in base.as_dict().items()
              if name not in NOT_SHARED or (name in VARIANT_SETTINGS and name not in varying)}
    per_model = [name for name in PER_MODEL if name not in VARIANT_SETTINGS or name in varying]
    standard = [*SCRIPT_IMPORTS, *(["from collections import Counter"] if base.task == "count" else [])]
    header = _HEADER.substitute(
        title=f"An experiment of {len(experiment.configs)} model(s) on the {base.task} task, {base.steps:,} steps",
        name=repr(experiment.name),
        tolerance=TOLERANCE, imports=import_block((*MODEL_MODULES, forcing), standard),
        settings=_one_per_line([f"{name!r}: {value!r}" for name, value in shared.items()], "{}"),
        models=_one_per_line([_wrapped_dict({"label": label, **{name: getattr(config, name) for name in per_model}})
                              for label, config in zip(experiment.labels, experiment.configs, strict=True)], "[]"),
        data_seed=base.seed, task_description=task.description, buckets=VALIDATION_BUCKETS,
        tokens=module_section(TOKENS_MODULE).rstrip("\n"),
        source_vocabulary=pprint.pformat(task.src_vocab.itos, width=116, compact=True),
        target_vocabulary=pprint.pformat(task.tgt_vocab.itos, width=116, compact=True))
    schedule = (f"{_SCHEDULE_HEADING}SCHEDULES = {SCHEDULES!r}\n\n\n{inspect.getsource(ForcingSchedule)}\n\n"
                f"{inspect.getsource(draw_coins)}")
    scoring = (f"\n\n# --- the evaluation, scored as the playground scores it {'-' * 62}\n\n"
               f"EVAL_CHUNK = {EVAL_CHUNK!r}  # validation rows per forward pass\n"
               f"MODES = {MODES!r}  # teacher-forced and free-running: gamma of each\n\n\n"
               f"{inspect.getsource(score)}\n\n{inspect.getsource(exact_match)}\n\n"
               f"{inspect.getsource(scored_target)}")
    return (header + _task_code(experiment) + _DATA + model_section() + "\n\n" + schedule + scoring + _EVALUATE)


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
    sizes = base.size_range()
    trained = sizes.trained - sizes.smallest + 1
    code = (f"BUCKETS = {VALIDATION_BUCKETS}\n"
            "# how many source lengths (or digits) the run trained on, and tested: its headline figures are those of "
            "the\n# training sizes\n"
            f"TRAINED_SIZES, TESTED_SIZES = {trained}, {trained + len(sizes.beyond)}\n")
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
