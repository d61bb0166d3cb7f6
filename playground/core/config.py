"""The one validated training configuration: every setting, its label, help, range and when it applies.

All user input (sliders, URL parameters, CLI flags, config.json, checkpoints)
passes through `TrainConfig.from_dict` or `TrainConfig.validate`, so the rest
of the code can trust it. The table `SETTINGS` is the single description of a
setting: the sidebar draws its widgets from it, the CLI its flags, and errors
name a setting by its label on a page and by its flag in a terminal.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from playground.core.devices import device_choices
from playground.core.forcing import SCHEDULES, ForcingSchedule
from playground.core.tasks import TASKS
from playground.model.attention import ATTENTIONS
from playground.model.cells import CELLS
from playground.model.seq2seq import ARCHITECTURES, COIN_MODES
from playground.model.transformer import POSITIONS


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the settings; `template` names settings as {0}, {1}, ... so each reader sees its own."""

    template: str
    fields: tuple[str, ...] = ()

    def render(self, name_of: Callable[[str], str] = str) -> str:
        return self.template.format(*map(name_of, self.fields))


class ConfigError(ValueError):
    """One or more settings are out of range; the message names each setting, value and what is allowed."""

    def __init__(self, problems: list[Problem | str]) -> None:
        self.details = [p if isinstance(p, Problem) else Problem(_escape(p)) for p in problems]
        super().__init__("; ".join(self.problems))

    @property
    def problems(self) -> list[str]:
        """The problems with settings named as in config files (min_len)."""
        return self.messages()

    def messages(self, name_of: Callable[[str], str] = str) -> list[str]:
        return [problem.render(name_of) for problem in self.details]


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


@dataclass(frozen=True)
class TrainConfig:
    # task
    task: str = "reverse"
    min_len: int = 3
    max_len: int = 8
    alphabet_size: int = 10
    max_digits: int = 3
    test_max_len: int = 0  # 0: test the training lengths only (max_len), as every run before this setting did
    test_max_digits: int = 0  # 0: max_digits
    custom_data: str = ""  # fingerprint of the custom pairs, which travel beside the config, never as a path
    custom_tokenization: str = "char"
    # model
    architecture: str = "rnn"
    emb_dim: int = 32
    hidden_dim: int = 128
    num_layers: int = 1
    dropout: float = 0.0
    cell: str = "lstm"
    attention: str = "none"
    reverse_source: str = "off"
    heads: int = 1
    positions: str = "sinusoidal"
    eos: str = "predict"
    # optimizer
    optimizer: str = "adam"
    lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    grad_clip: float = 1.0
    # teacher forcing
    teacher_forcing_ratio: float = 0.5
    schedule: str = "constant"
    tf_end: float = 0.0
    decay_steps: int = 1000
    exp_k: float = 0.999
    sigmoid_k: float = 100.0
    coin: str = "step"
    # run
    steps: int = 2000
    eval_every: int = 100
    val_size: int = 500
    seed: int = 0
    device: str = "auto"

    def forcing_schedule(self) -> ForcingSchedule:
        return ForcingSchedule(self.schedule, self.teacher_forcing_ratio, self.tf_end,
                               self.decay_steps, self.exp_k, self.sigmoid_k)

    def size_range(self) -> SizeRange:
        """The sizes of examples this run trains and tests on: source lengths, or digits for the number tasks."""
        info = TASKS[self.task]
        if info.uses_lengths:
            return SizeRange(self.min_len, self.max_len, self.test_max_len or self.max_len)
        if info.uses_digits:
            return SizeRange(1, self.max_digits, self.test_max_digits or self.max_digits)
        return SizeRange(0, 0, 0)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def changed(self) -> dict[str, Any]:
        """The settings that differ from the defaults (what a link must carry)."""
        return {name: value for name, value in self.as_dict().items() if value != getattr(DEFAULTS, name)}

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields changed."""
        return TrainConfig.from_dict({**self.as_dict(), **changes})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Coerce and validate; unknown keys and wrong types are errors too."""
        problems = [Problem(f"{_escape(repr(key))} is not a setting; known settings: {', '.join(SETTINGS)}")
                    for key in values if key not in SETTINGS]
        coerced: dict[str, Any] = {}
        for key, value in values.items():
            if key in SETTINGS:
                try:
                    coerced[key] = coerce(key, value)
                except (TypeError, ValueError):
                    problems.append(_wrong_type(key, value))
        if problems:
            raise ConfigError(problems)
        return cls(**coerced).validate()

    def validate(self) -> TrainConfig:
        """Check ranges; a config built directly (not by from_dict) gets its types checked first."""
        wrong_types = [_wrong_type(name, value) for name in SETTINGS
                       if not _is_a(value := getattr(self, name), SETTINGS[name].kind)]
        if wrong_types:
            raise ConfigError(wrong_types)
        problems = [problem for name, setting in SETTINGS.items()
                    if (problem := setting.check(getattr(self, name)))]
        lengths_valid = not any(problem.fields[0] in ("min_len", "max_len") for problem in problems)
        if lengths_valid and self.min_len > self.max_len:
            problems.append(Problem(f"{{0}} = {self.min_len} is not allowed: it must be at most {{1}} "
                                    f"({self.max_len})", ("min_len", "max_len")))
        hidden_valid = not any(problem.fields[0] in ("hidden_dim", "heads") for problem in problems)
        if hidden_valid and self.architecture == "transformer" and self.hidden_dim % self.heads:
            problems.append(Problem(f"{{0}} = {self.hidden_dim} is not allowed with {{1}} = {self.heads}: the hidden "
                                    f"size must divide by the number of heads", ("hidden_dim", "heads")))
        problems += _beyond_problems(self, {problem.fields[0] for problem in problems if problem.fields})
        if self.task == "custom" and not self.custom_data:
            problems.append(Problem("{0} needs a CSV file of source,target pairs: none is loaded", ("task",)))
        if problems:
            raise ConfigError(problems)
        return self


@dataclass(frozen=True)
class SizeRange:
    """Example sizes: training draws smallest..trained, validation smallest..tested (0, 0, 0: the task has no
    size knob, as a custom task)."""

    smallest: int
    trained: int
    tested: int

    @property
    def beyond(self) -> range:
        """The sizes validation tests and training never shows."""
        return range(self.trained + 1, self.tested + 1)


MAX_TEST_DIGITS = 9  # number words name numbers below a billion


def longest_test(trained: int, most: int) -> int:
    """How far beyond training a run may test: twice the training size, at most `most`."""
    return min(2 * trained, most)


def _beyond_problems(config: TrainConfig, bad: set[str]) -> list[Problem]:
    """test_max_len lies in max_len..2 max_len (at most 50), test_max_digits in max_digits..2 max_digits (at most 9),
    or is 0 (the same as the training size)."""
    problems = []
    for tested, trained, most in (("test_max_len", "max_len", 50), ("test_max_digits", "max_digits", MAX_TEST_DIGITS)):
        value, low = getattr(config, tested), getattr(config, trained)
        if tested in bad or trained in bad or value == 0:
            continue
        high = longest_test(low, most)
        if not low <= value <= high:
            problems.append(Problem(f"{{0}} = {value} is not allowed: it must be 0 (the same as {{1}}) or between "
                                    f"{{1}} ({low}) and {high}", (tested, trained)))
    return problems


def coerce(name: str, value: Any) -> Any:
    """A setting's value as its own type (CLI and URL values arrive as text)."""
    kind = SETTINGS[name].kind
    if isinstance(value, bool) or (kind is str and not isinstance(value, str)):
        raise TypeError(value)
    if kind is int and isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    return kind(value)


_TYPE_NAMES = {int: "a whole number", float: "a number", str: "text"}


def _is_a(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) if kind is float else isinstance(value, kind)


def _wrong_type(name: str, value: Any) -> Problem:
    return Problem(f"{{0}} = {_escape(repr(value))} is not allowed: it must be {_TYPE_NAMES[SETTINGS[name].kind]}",
                   (name,))


def _not_a_choice(name: str, value: Any, choices: tuple[str, ...]) -> Problem:
    return Problem(f"{{0}} = {_escape(repr(value))} is not allowed: choose one of {', '.join(choices)}", (name,))


def whole_number(text: str) -> int | None:
    """`text` as a whole number written in ASCII digits, else None. str.isdigit alone also passes "²", which int()
    then refuses with a ValueError (a traceback on a page that trusted it)."""
    return int(text) if text.isascii() and text.isdigit() else None


INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})  # controls, format (bidi, zero-width), breaks


def visible_text(text: str) -> str:
    """`text` on one line of visible characters: controls, line and paragraph breaks (U+2028, U+0085) and Unicode
    format characters (bidi overrides such as U+202E, zero-width joiners) become spaces or go, so a name cannot
    reverse the line it is shown in or break it."""
    kept = (" " if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char for char in str(text))
    return " ".join("".join(char for char in kept if unicodedata.category(char) not in INVISIBLE).split())


def visible_name(text: str, limit: int) -> str:
    """A name as a person set it, made visible text (`visible_text`) and cut to `limit` characters."""
    return visible_text(text)[:limit].strip()


def show_bound(bound: float) -> str:
    """2147483647, not 2.14748e+09: bounds are printed in full."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


Values = Mapping[str, Any]


def _always(values: Values) -> bool:
    return True


@dataclass(frozen=True)
class Setting:
    """What a person and the code need to know about one setting."""

    name: str
    group: str  # task, model, optimizer, forcing or run: where the sidebar puts it
    label: str  # the widget's label, also how messages on a page name it
    help: str  # what it does, its range, what to expect when it moves
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    live: bool = False  # may change while a run trains
    applies: Callable[[Values], bool] = _always  # whether it matters given the other settings
    choices_of: Callable[[], list[str]] | None = None  # choices that depend on the machine (devices)
    pattern: str = ""  # text settings without choices: what a valid value looks like

    @property
    def kind(self) -> type:
        return type(getattr(DEFAULTS, self.name))

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(self.choices_of()) if self.choices_of else self.choices

    def allowed(self) -> str:
        if self.options:
            return f"one of {', '.join(self.options)}"
        if self.kind is str:
            return "empty or the fingerprint of loaded pairs (16 hexadecimal digits)"
        return f"between {show_bound(self.low)} and {show_bound(self.high)}"

    def check(self, value: Any) -> Problem | None:
        if self.options:
            return None if value in self.options else _not_a_choice(self.name, value, self.options)
        if self.kind is str:
            return None if re.fullmatch(self.pattern, value) else Problem(
                f"{{0}} = {_escape(repr(value))} is not allowed: it must be {self.allowed()}", (self.name,))
        if not (self.low <= value <= self.high):  # also rejects NaN
            return Problem(f"{{0}} = {_escape(repr(value))} is not allowed: it must be between "
                           f"{show_bound(self.low)} and {show_bound(self.high)}", (self.name,))
        return None


SWITCH = ("off", "on")  # the choices of a setting that is on or off (a bare CLI flag turns it on)
EOS_MODES = ("predict", "oracle")  # the model learns to emit <eos>, or decoding is told the target's length


def _task_uses(what: str) -> Callable[[Values], bool]:
    def applies(values: Values) -> bool:
        info = TASKS.get(values.get("task", ""))
        return info is not None and getattr(info, what)
    return applies


def _when(name: str, *wanted: str, negate: bool = False) -> Callable[[Values], bool]:
    return lambda values: (values.get(name) in wanted) != negate


_TABLE = (
    Setting("task", "task", "Task", "Which synthetic problem the model learns; every example is generated from the "
                    "seed, nothing is downloaded. Copy and reverse are the easiest; sort and count need the whole "
                    "input before the first output; addition and number words use other vocabularies.",
                    choices=tuple(TASKS)),
    Setting("min_len", "task", "Min length", "Shortest source sequence, in symbols (1 to 50).",
                       1, 50, applies=_task_uses("uses_lengths")),
    Setting("max_len", "task", "Max length", "Longest source sequence, in symbols (1 to 50). Longer sequences are "
                       "harder: the encoder's final state must hold all of them, and a free-running decoder has more "
                       "steps in which one mistake can lead to the next.", 1, 50, applies=_task_uses("uses_lengths")),
    Setting("alphabet_size", "task", "Alphabet size", "How many different symbols (a, b, c, ...) sequences use, 2 "
                             "to 26. More symbols make every prediction a harder choice: guessing is right 1 time in "
                             "this many.", 2, 26, applies=_task_uses("uses_lengths")),
    Setting("max_digits", "task", "Digits per number", "Largest number of digits of each number, 1 to 9. More digits "
                          "mean longer inputs and outputs.", 1, 9, applies=_task_uses("uses_digits")),
    Setting("test_max_len", "task", "Test lengths up to", "Validation also tests sources longer than any in "
                            "training, up to this length (max length to twice max length, at most 50; 0 = max "
                            "length). Every length from min length up to it is drawn equally often; the headline "
                            "figures stay those of the training lengths, and exact match by length shows what "
                            "happens beyond them.", 0, 50, applies=_task_uses("uses_lengths")),
    Setting("test_max_digits", "task", "Test digits up to", "Validation also tests numbers with more digits than "
                               "any in training, up to this many (digits per number to twice that, at most 9; 0 = "
                               "digits per number).", 0, MAX_TEST_DIGITS, applies=_task_uses("uses_digits")),
    Setting("custom_data", "task", "Custom pairs", "Fingerprint of the uploaded source,target pairs.",
            applies=_when("task", "custom"), pattern="(|[0-9a-f]{16})"),
    Setting("custom_tokenization", "task", "Tokens", "How a row of the CSV is split into tokens: every character, or "
                                   "words separated by spaces.", choices=("char", "space"),
                                   applies=_when("task", "custom")),
    Setting("architecture", "model", "Architecture", "RNN: the recurrent encoder-decoder (an LSTM or GRU reads "
                            "one token after another). Transformer (Vaswani et al. 2017): every position looks at "
                            "every other through attention, layer after layer, and order comes only from the "
                            "positional encoding.", choices=ARCHITECTURES),
    Setting("emb_dim", "model", "Embedding size", "Length of the vector each token becomes before an LSTM reads it "
                       "(2 to 512). Small vocabularies need little.", 2, 512, applies=_when("architecture", "rnn")),
    Setting("hidden_dim", "model", "Hidden size", "Units in each LSTM layer: the length of h_t and c_t (2 to 1024). "
                          "The encoder's final (h_T, c_T) is all the decoder gets, so a small size cannot hold long "
                          "sequences; a large one trains slower. For a Transformer, its width d: the length of every "
                          "position's vector (the residual stream), which must divide by the heads.", 2, 1024),
    Setting("num_layers", "model", "Layers", "Layers stacked in the encoder and in the decoder (1 to 4); each layer "
                          "reads the outputs of the one below. More layers are slower; an LSTM rarely needs them "
                          "here, a Transformer usually wants 2.", 1, 4),
    Setting("dropout", "model", "Dropout", "Share of activations zeroed at random during training (0 to 0.9), a "
                       "guard against memorising; 0 is right for these endless synthetic tasks.", 0.0, 0.9),
    Setting("cell", "model", "Cell", "The recurrent cell of the encoder and the decoder. LSTM (the specification's) "
                    "carries h_t and a cell state c_t through four gates; GRU (Cho et al. 2014) carries only h_t "
                    "through three gates and has a quarter fewer weights.", choices=tuple(CELLS),
                    applies=_when("architecture", "rnn")),
    Setting("attention", "model", "Attention", "None: the decoder sees the source only through the encoder's final "
                         "state (the bottleneck). Dot, general or additive (Luong et al. 2015, Bahdanau et al. "
                         "2015): at every output step the decoder also looks back at every source position, weighs "
                         "them (the alignment) and reads their weighted sum, so long sequences need not fit in one "
                         "vector.", choices=ATTENTIONS, applies=_when("architecture", "rnn")),
    Setting("reverse_source", "model", "Reverse source", "On: the encoder reads each source's tokens last to first "
                              "(Sutskever et al. 2014), so the first tokens it needs to output are the last it "
                              "read; padding stays where it is.", choices=SWITCH),
    Setting("heads", "model", "Heads", "Transformer: attention heads per layer (1 to 8); each looks at the sequence "
                     "with its own d / heads-wide queries and keys, so one head can follow position while another "
                     "follows content. The hidden size must divide by it.", 1, 8,
                     applies=_when("architecture", "transformer")),
    Setting("positions", "model", "Positions", "Transformer: how a position knows where it is. Sinusoidal: fixed "
                         "waves of every frequency, defined at any length; learned: one trained vector per position, "
                         "untrained beyond the lengths seen in training; none: attention alone cannot tell order.",
                         choices=POSITIONS, applies=_when("architecture", "transformer")),
    Setting("eos", "model", "End of sequence", "Predict (the specification's model): the model learns when to stop "
                   "by emitting <eos>, and decoding stops there. Oracle: <eos> is left out of the loss, and "
                   "free-running decoding runs for the true target length, so the model is never asked when to "
                   "stop (Newman et al. 2020's -EOS against +EOS): whether deciding to stop is what fails on "
                   "lengths beyond training.", choices=EOS_MODES),
    Setting("optimizer", "optimizer", "Optimizer", "How gradients become weight updates: Adam adapts a step size per "
                         "weight and is the safe choice; SGD with momentum needs a larger learning rate.",
                         choices=("adam", "adamw", "sgd")),
    Setting("lr", "optimizer", "Learning rate", "Size of each update (1e-6 to 1). Too small and the loss falls "
                  "slowly; too large and it jumps or diverges. Can be changed while a run trains; the charts mark "
                  "where.", 1e-6, 1.0, live=True),
    Setting("momentum", "optimizer", "Momentum", "SGD only: share of the previous update carried into the next (0 "
                        "to 0.999).", 0.0, 0.999, applies=_when("optimizer", "sgd")),
    Setting("weight_decay", "optimizer", "Weight decay", "AdamW only: how strongly weights are pulled towards 0 at "
                            "each step (0 to 1).", 0.0, 1.0, applies=_when("optimizer", "adamw")),
    Setting("batch_size", "optimizer", "Batch size", "Examples per training step (1 to 1024). Larger batches give "
                          "smoother curves and cost more per step.", 1, 1024),
    Setting("grad_clip", "optimizer", "Gradient clip", "Largest allowed gradient norm (0 to 100; 0 turns clipping "
                         "off). Clipping keeps one bad batch from throwing an LSTM's weights far away.", 0.0, 100.0),
    Setting("teacher_forcing_ratio", "forcing", "Teacher-forcing ratio γ", "Chance that a decoder step reads the "
                                     "true previous token instead of its own last prediction (0 to 1). γ = 1 always "
                                     "feeds the truth (fast learning, never practises on its own mistakes); γ = 0 "
                                     "always feeds its own guess, as at test time. Can be changed while a run "
                                     "trains; a decaying schedule starts from it.", 0.0, 1.0, live=True),
    Setting("schedule", "forcing", "Schedule", "How γ changes during training. Constant keeps it; linear, "
                        "exponential and inverse sigmoid decay it towards the final γ (scheduled sampling, Bengio et "
                        "al. 2015), so the model first learns with the truth and then learns to use its own "
                        "predictions.", choices=SCHEDULES),
    Setting("tf_end", "forcing", "Final γ", "Where a decaying schedule ends (0 to 1).", 0.0, 1.0,
                      applies=_when("schedule", "constant", negate=True)),
    Setting("decay_steps", "forcing", "Decay steps", "Linear schedule: steps from the start γ to the final γ.",
                           1, 1_000_000, applies=_when("schedule", "linear")),
    Setting("exp_k", "forcing", "Factor k per step", "Exponential schedule: γ moves towards its end like k^step "
                     "(0.5 to 0.99999); 0.999 halves the distance about every 700 steps.", 0.5, 0.99999,
                     applies=_when("schedule", "exponential")),
    Setting("sigmoid_k", "forcing", "k (inverse sigmoid)", "Inverse-sigmoid schedule: k / (k + exp(step / k)) "
                         "(1 to 100000); a larger k keeps γ high for longer.", 1.0, 100_000.0,
                         applies=_when("schedule", "inverse_sigmoid")),
    Setting("coin", "forcing", "Coin", "Per step: one draw decides, for the whole batch, whether a decoder step "
                    "reads the truth (the specification's form). Per token: every example draws its own.",
                    choices=COIN_MODES),
    Setting("steps", "run", "Steps", "Training steps (1 to 1,000,000), one batch each.", 1, 1_000_000),
    Setting("eval_every", "run", "Evaluate every", "Steps between validation passes (1 to 1,000,000); accuracy, "
                          "predictions and states refresh at each.", 1, 1_000_000),
    Setting("val_size", "run", "Validation examples", "Held-out examples scored at each evaluation (16 to 10,000); "
                        "no training batch ever contains one.", 16, 10_000),
    Setting("seed", "run", "Seed", "Picks the data, the initial weights and the coins (0 to 2147483647): the same "
                    "seed repeats a CPU run exactly.", 0, 2**31 - 1),
    Setting("device", "run", "Device", "Where the model trains: the CPU, or a GPU when this machine has one.",
                      choices_of=device_choices),
)
SETTINGS: dict[str, Setting] = {setting.name: setting for setting in _TABLE}
DEFAULTS = TrainConfig()
LIVE_SETTINGS = tuple(name for name, setting in SETTINGS.items() if setting.live)
FORCING_SETTINGS = tuple(name for name, setting in SETTINGS.items() if setting.group == "forcing")


# what makes a model of the family other than the seed's (a comparison's arms may list several of each)
VARIANT_SETTINGS = ("cell", "attention", "reverse_source", "architecture", "positions", "eos")
MODEL_SHAPE = (*VARIANT_SETTINGS, "heads")  # with these the same sizes build the same modules


def variant_label(values: Values) -> str:
    """The model's variant in a few words: "LSTM", "GRU, dot attention, source reversed", "Transformer, 2 heads,
    learned positions"."""
    if values.get("architecture", DEFAULTS.architecture) == "transformer":
        heads = values.get("heads", DEFAULTS.heads)
        parts = ["Transformer", f"{heads} head{'s' if heads != 1 else ''}",
                 f"{values.get('positions', DEFAULTS.positions)} positions"]
    else:
        parts = [str(values.get("cell", DEFAULTS.cell)).upper()]
    if values.get("architecture", DEFAULTS.architecture) == "rnn" and values.get("attention", "none") != "none":
        parts.append(f"{values['attention']} attention")
    if values.get("reverse_source", DEFAULTS.reverse_source) == "on":
        parts.append("source reversed")
    if values.get("eos", DEFAULTS.eos) == "oracle":
        parts.append("−EOS (told the length)")
    return ", ".join(parts)


def applicable(values: Values) -> list[str]:
    """The settings that matter given these values (the sidebar shows these; the others keep their defaults)."""
    return [name for name, setting in SETTINGS.items() if setting.applies(values)]


def label(name: str) -> str:
    """How a page names a setting (also for names that are not settings, e.g. a comparison's own choices)."""
    return SETTINGS[name].label if name in SETTINGS else name
