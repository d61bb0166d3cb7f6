"""Vocabularies and synthetic sequence tasks.

Every task is generated from a seed, so nothing is downloaded. A task turns a
`random.Random` into one (source tokens, target tokens) pair; `TaskData` turns
pairs into padded tensors and keeps validation and training apart by a stable
hash of the source, so no validation source ever appears in a training batch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from playground.core.files import FileTooLarge, read_bounded
from playground.model.tokens import EOS_ID, PAD_ID, SOS_ID, UNK_ID

PAD, SOS, EOS, UNK = "<pad>", "<sos>", "<eos>", "<unk>"
SPECIALS = (PAD, SOS, EOS, UNK)

LETTERS = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
VALIDATION_BUCKETS = 10  # one source in ten (by hash) belongs to validation
MAX_CUSTOM_TOKENS = 64
MAX_CUSTOM_ROWS = 200_000
MAX_CUSTOM_BYTES = 10 * 1024 * 1024
MAX_CUSTOM_VOCAB = 5000  # per side: the output layer and the logits grow with it (B x L x V floats)
TOKENIZATIONS = ("char", "space")


class TaskError(ValueError):
    """A task cannot be built from the given settings or data."""


class Vocab:
    """Token <-> id mapping; ids 0..3 are always <pad>, <sos>, <eos>, <unk>."""

    def __init__(self, tokens: list[str], separator: str = "") -> None:
        self.itos = list(SPECIALS) + list(dict.fromkeys(t for t in tokens if t not in SPECIALS))
        self.stoi = {token: i for i, token in enumerate(self.itos)}
        self.separator = separator

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.stoi.get(token, UNK_ID) for token in tokens]

    def decode(self, ids: list[int]) -> list[str]:
        """Tokens up to the first <eos>, without <pad> and <sos>."""
        tokens = []
        for i in ids:
            if i == EOS_ID:
                break
            if i not in (PAD_ID, SOS_ID):
                tokens.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return tokens

    def tokenize(self, text: str) -> list[str]:
        """Typed text to tokens; in char mode inner spaces count only where the vocabulary has them (custom data)."""
        if self.separator:
            return text.split()
        return [ch for ch in text.strip() if not ch.isspace() or ch in self.stoi]

    def join(self, tokens: list[str]) -> str:
        return self.separator.join(tokens)

    def unknown(self, tokens: list[str]) -> list[str]:
        """Tokens this vocabulary cannot encode, in order of first appearance."""
        return list(dict.fromkeys(t for t in tokens if t not in self.stoi or t in SPECIALS))


Pair = tuple[list[str], list[str]]


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    src_vocab: Vocab
    tgt_vocab: Vocab
    sample: Callable[[random.Random], Pair]
    max_src_len: int
    max_tgt_len: int
    is_validation: Callable[[list[str]], bool] = lambda tokens: is_validation_source(tokens)

    def decode_limit(self, source_length: int = 0) -> int:
        """The one rule for how many steps greedy decoding may take: the longest target and <eos>, stretched in
        proportion for a source longer than any the task makes (so a typed long input can show its drift)."""
        longest = self.max_tgt_len
        if source_length > self.max_src_len:
            longest = math.ceil(longest * source_length / self.max_src_len)
        return longest + 1


def _source_length(src: list[str], tgt: list[str]) -> tuple[str, float | str]:
    return "source length", float(len(src))


def _sum(src: list[str], tgt: list[str]) -> tuple[str, float | str]:
    return "sum", float("".join(tgt)) if tgt and "".join(tgt).isdigit() else float("nan")


def _addition_size(src: list[str], tgt: list[str]) -> int:
    return max(map(len, "".join(src).split("+")))


def _first_token(src: list[str], tgt: list[str]) -> tuple[str, float | str]:
    return "first token", src[0]


@dataclass(frozen=True)
class TaskInfo:
    """What the code needs to know about a task beyond its examples: each task's special cases live here."""

    description: str
    uses_lengths: bool  # min_len / max_len / alphabet_size apply, and a source is min_len to max_len long
    uses_digits: bool  # max_digits applies
    target_as_long_as_source: bool = False  # so the shortest target is min_len long too
    example_property: Callable[[list[str], list[str]], tuple[str, float | str]] = _source_length  # what to colour
    # an example by in a picture of many: its name and its value
    size_of: Callable[[list[str], list[str]], int] = lambda src, tgt: len(src)  # what exact match by length
    # counts: the source's length, or the digits of the longest number for the number tasks
    size_name: str = "source length (symbols)"


TASKS: dict[str, TaskInfo] = {
    "copy": TaskInfo("Copy the sequence: abc -> abc", True, False, True),
    "reverse": TaskInfo("Reverse the sequence: abc -> cba", True, False, True),
    "sort": TaskInfo("Sort the symbols: cab -> abc", True, False, True, _first_token),
    "addition": TaskInfo("Add two numbers: 37+5 -> 42", False, True, example_property=_sum, size_of=_addition_size,
                         size_name="digits of the longer number"),
    "number_words": TaskInfo(
        "Digits to English words (other vocabulary, longer output): 307 -> three hundred seven",
        False,
        True,
        size_name="digits of the number",
    ),
    "count": TaskInfo(
        "Count each symbol over the whole input: abcab -> a2b2c1 (needs memory of the full sequence)",
        True,
        False,
    ),
    "custom": TaskInfo("Your own source,target pairs from a CSV file", False, False),
}


def _random_symbols(rng: random.Random, alphabet: str, min_len: int, max_len: int) -> list[str]:
    return [rng.choice(alphabet) for _ in range(rng.randint(min_len, max_len))]


_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((1_000_000, "million"), (1000, "thousand"), (100, "hundred"))


def number_to_words(n: int) -> list[str]:
    """English words for 0 <= n < 10**9, without 'and': 307 -> three hundred seven."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + (number_to_words(n % 10) if n % 10 else [])
    for scale, word in _SCALES:
        if n >= scale:
            rest = number_to_words(n % scale) if n % scale else []
            return [*number_to_words(n // scale), word, *rest]
    raise AssertionError("unreachable")


def count_symbols(tokens: list[str]) -> list[str]:
    """Each distinct symbol in sorted order followed by the digits of its count."""
    counts = Counter(tokens)
    return [piece for symbol in sorted(counts) for piece in [symbol, *str(counts[symbol])]]


def _random_number(rng: random.Random, max_digits: int) -> int:
    return rng.randint(0, 10 ** rng.randint(1, max_digits) - 1)


def make_task(
    name: str,
    min_len: int = 3,
    max_len: int = 8,
    alphabet_size: int = 10,
    max_digits: int = 3,
    custom: CustomPairs | None = None,
) -> Task:
    """Build a task; raises TaskError with what is wrong and what is allowed."""
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    if name == "custom":
        if custom is None:
            raise TaskError("the custom task needs source,target pairs from a CSV file")
        return _custom_task(list(custom.pairs), custom.separator)
    alphabet = LETTERS[:alphabet_size]
    description = TASKS[name].description

    def symbols(rng: random.Random) -> list[str]:
        return _random_symbols(rng, alphabet, min_len, max_len)

    letters = Vocab(list(alphabet))
    if name in ("copy", "reverse", "sort"):
        transform = {"copy": list, "reverse": lambda s: s[::-1], "sort": sorted}[name]
        return Task(name, description, letters, letters, lambda r: (s := symbols(r), transform(s)), max_len, max_len)
    if name == "count":
        return Task(
            name,
            description,
            letters,
            Vocab(list(alphabet + DIGITS)),
            lambda r: (s := symbols(r), count_symbols(s)),
            max_len,
            min(alphabet_size, max_len) * (1 + len(str(max_len))),
        )
    if name == "addition":

        def addition(rng: random.Random) -> Pair:
            a, b = _random_number(rng, max_digits), _random_number(rng, max_digits)
            return list(f"{a}+{b}"), list(str(a + b))

        return Task(
            name,
            description,
            Vocab(list(DIGITS + "+")),
            Vocab(list(DIGITS)),
            addition,
            2 * max_digits + 1,
            max_digits + 1,
        )
    words = sorted({w for n in (*range(100), 100, 1000, 10**6) for w in number_to_words(n)})

    def number_words(rng: random.Random) -> Pair:
        n = _random_number(rng, max_digits)
        return list(str(n)), number_to_words(n)

    longest = max(len(number_to_words(int("7" * d))) for d in range(1, max_digits + 1))
    return Task(name, description, Vocab(list(DIGITS)), Vocab(words, separator=" "), number_words, max_digits, longest)


def _pairs_of_sizes(beyond: Beyond, rng: random.Random, count: int) -> list[Pair]:
    """`count` distinct examples spread equally over `beyond.sizes`, in order of size."""
    size_of = TASKS[beyond.task.name].size_of
    quota = {size: count // len(beyond.sizes) + (i < count % len(beyond.sizes)) for i, size in
             enumerate(beyond.sizes)}
    found: dict[int, dict[str, Pair]] = {size: {} for size in beyond.sizes}
    for _ in range(count * 200):
        src, tgt = beyond.task.sample(rng)
        size = size_of(src, tgt)
        if size in found and len(found[size]) < quota[size]:
            found[size].setdefault(_source_key(src), (src, tgt))
            if all(len(found[size]) == quota[size] for size in found):
                break
    return [pair for size in beyond.sizes for pair in found[size].values()]


def _source_key(tokens: list[str]) -> str:
    return "\x1f".join(tokens)


def _custom_task(pairs: list[Pair], separator: str) -> Task:
    """Validation is the tenth of distinct sources (at least one) that hash lowest."""
    sources = sorted({_source_key(s) for s, _ in pairs}, key=lambda key: zlib.crc32(key.encode()))
    if len(sources) < 2:
        raise TaskError("the file needs at least 2 different sources (one is kept for validation)")
    validation = set(sources[: max(1, len(sources) // VALIDATION_BUCKETS)])

    def symbols_of(side: int) -> list[str]:
        return sorted({token for pair in pairs for token in pair[side]})

    return Task(
        "custom",
        TASKS["custom"].description,
        Vocab(symbols_of(0), separator),
        Vocab(symbols_of(1), separator),
        lambda rng: rng.choice(pairs),
        max(len(s) for s, _ in pairs),
        max(len(t) for _, t in pairs),
        lambda tokens: _source_key(tokens) in validation,
    )


def parse_custom_csv(data: bytes, tokenization: str = "char") -> CustomPairs:
    """Pairs from `source,target` CSV bytes (an optional header row is skipped), every limit checked."""
    if tokenization not in TOKENIZATIONS:
        raise TaskError(f"tokenization {tokenization!r} is not allowed; use 'char' or 'space'")
    if len(data) > MAX_CUSTOM_BYTES:
        raise TaskError(f"the file has {len(data):,} bytes; at most {MAX_CUSTOM_BYTES:,} are allowed")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise TaskError(f"the file is not UTF-8 text (byte {error.start} cannot be read)") from None
    reader = csv.reader(io.StringIO(text))
    try:  # errors name the line of the file, counting the header and blank lines
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as error:
        raise TaskError(f"line {reader.line_num} cannot be read as CSV: {error}") from None
    if rows and [cell.strip().lower() for cell in rows[0][1]] == ["source", "target"]:
        rows = rows[1:]
    numbered = []
    for number, row in rows:
        if len(row) != 2:
            columns = "1 column" if len(row) == 1 else f"{len(row)} columns"
            raise TaskError(f"line {number} has {columns}; each row must be source,target")
        sides = [cell.split() if tokenization == "space" else list(cell.strip()) for cell in row]
        numbered.append((f"line {number}", (sides[0], sides[1])))
    return CustomPairs(_checked_pairs(numbered), tokenization)


def load_custom_csv(path: Path | str, tokenization: str = "char") -> CustomPairs:
    """A CSV named by the person at the keyboard, read no further than its size limit."""
    try:
        data = read_bounded(path, MAX_CUSTOM_BYTES, "the CSV file", follow_links=True)
    except FileTooLarge as error:
        raise TaskError(str(error)) from None
    except OSError as error:
        raise TaskError(f"cannot read the CSV file {str(path)!r}: {error.strerror}") from None
    return parse_custom_csv(data, tokenization)


def _checked_pairs(numbered: list[tuple[str, Pair]]) -> tuple[Pair, ...]:
    """Rows, token counts, reserved tokens and vocabulary sizes within their limits, or a TaskError naming one."""
    if len(numbered) < 2:
        raise TaskError("the file needs at least 2 rows of source,target (one is kept for validation)")
    if len(numbered) > MAX_CUSTOM_ROWS:
        raise TaskError(f"the file has {len(numbered):,} rows; at most {MAX_CUSTOM_ROWS:,} are allowed")
    vocabularies: tuple[set[str], set[str]] = (set(), set())
    for where, pair in numbered:
        for side, tokens, vocabulary in zip(("source", "target"), pair, vocabularies, strict=True):
            if not tokens:
                raise TaskError(f"{where}: the {side} is empty")
            if len(tokens) > MAX_CUSTOM_TOKENS:
                raise TaskError(
                    f"{where}: the {side} has {len(tokens)} tokens; at most {MAX_CUSTOM_TOKENS} are allowed")
            if set(tokens) & set(SPECIALS):
                raise TaskError(f"{where}: the {side} uses a reserved token ({', '.join(SPECIALS)})")
            vocabulary.update(tokens)
            if len(vocabulary) > MAX_CUSTOM_VOCAB:
                raise TaskError(f"{where}: the {side}s use more than {MAX_CUSTOM_VOCAB:,} different tokens, the "
                                "most a vocabulary may hold")
    return tuple(pair for _, pair in numbered)


@dataclass(frozen=True)
class CustomPairs:
    """A custom task's data: it travels as data (run folder, checkpoint), never as a path to a file."""

    pairs: tuple[Pair, ...]
    tokenization: str = "char"

    @property
    def separator(self) -> str:
        return " " if self.tokenization == "space" else ""

    @property
    def fingerprint(self) -> str:
        """16 hex digits of the pairs' SHA-256: what a config records of them."""
        return hashlib.sha256(self.to_json()).hexdigest()[:16]

    def to_json(self) -> bytes:
        return json.dumps({"tokenization": self.tokenization, "pairs": self.pairs}, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CustomPairs:
        """Saved pairs read back with the same limits as an uploaded CSV."""
        try:
            value = json.loads(data)
            tokenization, rows = value["tokenization"], value["pairs"]
            if tokenization not in TOKENIZATIONS or not isinstance(rows, list):
                raise TypeError("unexpected shape")
            numbered = [(f"pair {i + 1}", (_tokens(row[0]), _tokens(row[1])))
                        for i, row in enumerate(rows) if len(row) == 2] if len(rows) <= MAX_CUSTOM_ROWS else []
            if len(numbered) != len(rows):
                raise TypeError("unexpected shape")
        except (ValueError, TypeError, KeyError, IndexError):
            raise TaskError("the saved custom pairs are damaged or not pairs of token lists") from None
        return cls(_checked_pairs(numbered), tokenization)


def _tokens(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(token, str) for token in value):
        raise TypeError("not a token list")
    return value


def is_validation_source(tokens: list[str]) -> bool:
    """The stable split: a source belongs to validation iff its hash lands in bucket 0."""
    return zlib.crc32(_source_key(tokens).encode()) % VALIDATION_BUCKETS == 0


@dataclass(frozen=True)
class Batch:
    src: torch.Tensor  # (B, T), left-padded so the encoder's last step is a real token
    tgt: torch.Tensor  # (B, L), y_1..y_L then <eos>, right-padded
    pairs: list[Pair]


def encode_pairs(task: Task, pairs: list[Pair]) -> Batch:
    """Padded rows built as lists, then one tensor each (a tensor per row took a tenth of a training step)."""
    src_rows = [task.src_vocab.encode(s) for s, _ in pairs]
    tgt_rows = [[*task.tgt_vocab.encode(t), EOS_ID] for _, t in pairs]
    src_len, tgt_len = max(map(len, src_rows)), max(map(len, tgt_rows))
    src = torch.tensor([[PAD_ID] * (src_len - len(row)) + row for row in src_rows], dtype=torch.long)
    tgt = torch.tensor([row + [PAD_ID] * (tgt_len - len(row)) for row in tgt_rows], dtype=torch.long)
    return Batch(src, tgt, pairs)


@dataclass(frozen=True)
class Beyond:
    """Validation beyond the training sizes: `task` draws examples of every size in `sizes` (and maybe smaller
    ones, which are passed over); `trained` is how many sizes training draws."""

    task: Task
    sizes: range
    trained: int


class TaskData:
    """A fixed validation set and an endless stream of fresh training batches.

    With `beyond`, validation spreads over the training sizes and the larger ones equally: it keeps the first of
    the training-size examples it would draw without them and adds as many of each larger size from a stream of
    its own, so the training batches are the same whatever the tested sizes."""

    def __init__(self, task: Task, seed: int, val_size: int, beyond: Beyond | None = None) -> None:
        self.task = task
        self._rng = random.Random(seed)
        self.val_pairs = self._validation_pairs(val_size)
        if not self.val_pairs:
            raise TaskError("no validation example could be drawn: the task has too few distinct sources "
                            "(allow longer sequences, a larger alphabet or more digits)")
        size_of = TASKS[task.name].size_of
        self.trained_largest = max(size_of(*pair) for pair in self.val_pairs)
        if beyond is not None and beyond.sizes:
            kept = round(val_size * beyond.trained / (beyond.trained + len(beyond.sizes)))
            self.val_pairs = self.val_pairs[:kept] + _pairs_of_sizes(beyond, random.Random(f"{seed}:beyond"),
                                                                     val_size - kept)
        self.sizes = torch.tensor([size_of(*pair) for pair in self.val_pairs])
        self.validation = encode_pairs(task, self.val_pairs)
        trained = int((self.sizes <= self.trained_largest).sum())
        # each part padded on its own: the encoder reads a source's left padding, so the training sizes score as
        # they would with no longer source beside them
        self.validation_parts = [encode_pairs(task, pairs) for pairs in (self.val_pairs[:trained],
                                                                         self.val_pairs[trained:]) if pairs]

    def _validation_pairs(self, size: int) -> list[Pair]:
        found: dict[str, Pair] = {}
        for _ in range(size * VALIDATION_BUCKETS * 20):
            src, tgt = self.task.sample(self._rng)
            if self.task.is_validation(src):
                found.setdefault(_source_key(src), (src, tgt))
                if len(found) == size:
                    break
        return list(found.values())

    def training_pairs(self, count: int) -> list[Pair]:
        pairs: list[Pair] = []
        for _ in range(count * VALIDATION_BUCKETS * 20):
            src, tgt = self.task.sample(self._rng)
            if not self.task.is_validation(src):
                pairs.append((src, tgt))
                if len(pairs) == count:
                    return pairs
        raise TaskError("no training example could be drawn: every source falls in the validation split")

    def stream_state(self) -> tuple[Any, ...]:
        """Where the training stream stands; with `restore_stream` a resumed run draws the same batches."""
        return self._rng.getstate()

    def restore_stream(self, state: Any) -> None:
        version, internal, gauss = state
        self._rng.setstate((int(version), tuple(int(n) for n in internal), gauss))

    def train_batches(self, batch_size: int) -> Iterator[Batch]:
        while True:
            yield encode_pairs(self.task, self.training_pairs(batch_size))
