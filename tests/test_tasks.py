"""Synthetic tasks: right targets, bounded lengths, a clean validation split, seeded, correctly padded."""

import dataclasses
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playground.core.tasks import (
    DIGITS,
    EOS_ID,
    LETTERS,
    PAD_ID,
    SOS_ID,
    SPECIALS,
    TASKS,
    UNK_ID,
    TaskData,
    TaskError,
    Vocab,
    encode_pairs,
    make_task,
    number_to_words,
    parse_custom_csv,
)

BUILTIN = [name for name in TASKS if name != "custom"]
FAST = settings(max_examples=30, deadline=None)
CUSTOM_ROWS = "\n".join(f"{w},{w[::-1]}" for w in
                        ["cat", "dog", "bird", "fish", "lion", "bear", "wolf", "frog", "duck", "goat",
                         "mouse", "horse", "camel", "zebra", "tiger", "snake", "whale", "shark", "eagle", "otter"])

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}


def words_to_number(words: list[str]) -> int:
    """An independent reader of the English the task writes."""
    total, current = 0, 0
    for word in words:
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current *= 100
        else:
            total += current * {"thousand": 1000, "million": 1_000_000}[word]
            current = 0
    return total + current


def custom_task():
    return make_task("custom", custom=parse_custom_csv(CUSTOM_ROWS.encode()))


def test_specials_take_ids_0_to_3() -> None:
    vocab = Vocab(["b", "a", "<eos>", "a"])
    assert vocab.itos[:4] == list(SPECIALS) == ["<pad>", "<sos>", "<eos>", "<unk>"]
    assert (PAD_ID, SOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    assert vocab.itos[4:] == ["b", "a"]  # specials and duplicates are not added twice
    assert len(vocab) == 6
    for name in BUILTIN:
        task = make_task(name)
        assert task.src_vocab.itos[:4] == task.tgt_vocab.itos[:4] == list(SPECIALS)


@FAST
@given(st.lists(st.sampled_from(LETTERS[:10]), max_size=12))
def test_char_vocab_round_trip(tokens: list[str]) -> None:
    vocab = Vocab(list(LETTERS[:10]))
    ids = vocab.encode(tokens)
    assert all(4 <= i < len(vocab) for i in ids)
    assert vocab.decode([SOS_ID, *ids, EOS_ID, 5, PAD_ID]) == tokens
    assert vocab.tokenize(" ".join(vocab.join(tokens))) == tokens  # typed spaces are ignored


@FAST
@given(st.lists(st.sampled_from(["seven", "hundred", "one", "million"]), max_size=8))
def test_word_vocab_round_trip(tokens: list[str]) -> None:
    vocab = Vocab(["seven", "hundred", "one", "million"], separator=" ")
    assert vocab.decode(vocab.encode(tokens)) == tokens
    assert vocab.tokenize(vocab.join(tokens)) == tokens


def test_vocab_unknown_tokens_and_ids() -> None:
    vocab = Vocab(list("abc"))
    assert vocab.encode(["a", "z", "<eos>"]) == [4, UNK_ID, EOS_ID]
    assert vocab.unknown(["a", "z", "<pad>", "z"]) == ["z", "<pad>"]
    assert vocab.decode([4, 99, -1, EOS_ID, 5]) == ["a", "<unk>", "<unk>"]


def test_char_tokenize_keeps_inner_spaces_only_when_the_vocabulary_has_them() -> None:
    pairs = parse_custom_csv(b"hi there,x\nyo,y\n")
    task = make_task("custom", custom=pairs)
    assert pairs.pairs[0][0] == list("hi there")
    assert task.src_vocab.tokenize(" hi there ") == list("hi there")
    assert Vocab(list("ab")).tokenize("a b") == ["a", "b"]


@pytest.mark.parametrize(("number", "words"), [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (20, "twenty"), (42, "forty two"), (100, "one hundred"),
    (307, "three hundred seven"), (1000, "one thousand"), (1010, "one thousand ten"),
    (21_000, "twenty one thousand"), (1_000_000, "one million"),
    (999_999_999, "nine hundred ninety nine million nine hundred ninety nine thousand nine hundred ninety nine"),
])
def test_number_words_spot_checks(number: int, words: str) -> None:
    assert " ".join(number_to_words(number)) == words


@FAST
@given(st.integers(0, 10**9 - 1))
def test_number_words_read_back(number: int) -> None:
    assert words_to_number(number_to_words(number)) == number


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(BUILTIN),
    min_len=st.integers(1, 6),
    extra=st.integers(0, 6),
    alphabet_size=st.integers(2, 26),
    max_digits=st.integers(1, 9),
    seed=st.integers(0, 2**31 - 1),
)
def test_targets_and_lengths(name: str, min_len: int, extra: int, alphabet_size: int, max_digits: int,
                             seed: int) -> None:
    max_len = min_len + extra
    task = make_task(name, min_len, max_len, alphabet_size, max_digits)
    rng = random.Random(seed)
    for _ in range(30):
        src, tgt = task.sample(rng)
        assert 1 <= len(src) <= task.max_src_len and 1 <= len(tgt) <= task.max_tgt_len
        assert not task.src_vocab.unknown(src) and not task.tgt_vocab.unknown(tgt)
        if TASKS[name].uses_lengths:
            assert min_len <= len(src) <= max_len
            assert set(src) <= set(LETTERS[:alphabet_size])
        if name == "copy":
            assert tgt == src
        elif name == "reverse":
            assert tgt == src[::-1]
        elif name == "sort":
            assert tgt == sorted(src)
        elif name == "count":
            expected = Counter(src)
            symbols = [t for t in tgt if t not in DIGITS]
            assert symbols == sorted(expected)
            counts = "".join(t if t in DIGITS else " " for t in tgt).split()
            assert dict(zip(symbols, map(int, counts), strict=True)) == expected
        elif name == "addition":
            a, b = "".join(src).split("+")
            assert len(a) <= max_digits and len(b) <= max_digits
            assert int("".join(tgt)) == int(a) + int(b)
        else:
            assert len(src) <= max_digits
            assert words_to_number(tgt) == int("".join(src))


def partitions(total: int, largest: int) -> list[list[int]]:
    if total == 0:
        return [[]]
    return [[first, *rest] for first in range(min(total, largest), 0, -1) for rest in partitions(total - first, first)]


@pytest.mark.parametrize(("max_len", "alphabet_size"), [(12, 26), (12, 2), (10, 3), (5, 26), (20, 4)])
def test_count_max_tgt_len_bounds_the_worst_case(max_len: int, alphabet_size: int) -> None:
    """The longest possible count target, found by trying every multiset of symbol counts."""
    worst = max(sum(1 + len(str(c)) for c in counts) for n in range(1, max_len + 1)
                for counts in partitions(n, n) if len(counts) <= alphabet_size)
    task = make_task("count", 1, max_len, alphabet_size)
    assert worst <= task.max_tgt_len <= 2 * worst


@pytest.mark.parametrize("max_digits", [1, 2, 3, 4])
def test_number_and_addition_max_lengths_are_exact(max_digits: int) -> None:
    words = make_task("number_words", max_digits=max_digits)
    assert words.max_src_len == max_digits
    assert words.max_tgt_len == max(len(number_to_words(n)) for n in range(10**max_digits))
    addition = make_task("addition", max_digits=max_digits)
    nines = "9" * max_digits
    assert addition.max_src_len == len(f"{nines}+{nines}")
    assert addition.max_tgt_len == len(str(2 * int(nines)))


@pytest.mark.parametrize("name", [*BUILTIN, "custom"])
def test_no_validation_source_in_training_batches(name: str) -> None:
    task = custom_task() if name == "custom" else make_task(name, min_len=1, max_len=4, alphabet_size=4,
                                                            max_digits=2)
    data = TaskData(task, seed=3, val_size=40)
    validation = {tuple(src) for src, _ in data.val_pairs}
    assert validation and all(task.is_validation(list(src)) for src in validation)
    batches = data.train_batches(64)
    seen = {tuple(src) for _ in range(30) for src, _ in next(batches).pairs}
    assert not seen & validation
    assert len(seen) > len(validation)


def test_custom_validation_is_a_tenth_of_the_sources() -> None:
    data = TaskData(custom_task(), seed=0, val_size=16)
    assert len(data.val_pairs) == 2  # 20 distinct sources, one in ten kept apart


@pytest.mark.parametrize("name", [*BUILTIN, "custom"])
def test_same_seed_same_data(name: str) -> None:
    def draw(seed: int) -> tuple[list, list]:
        data = TaskData(custom_task() if name == "custom" else make_task(name), seed, val_size=32)
        batches = data.train_batches(16)
        return data.val_pairs, [next(batches).pairs for _ in range(3)]

    assert draw(5) == draw(5)
    if name != "custom":  # a 20-row file has too few validation sources to differ by seed
        assert draw(5) != draw(6)


def test_source_left_padded_target_right_padded_with_eos() -> None:
    task = make_task("number_words", max_digits=4)
    pairs = [task.sample(random.Random(i)) for i in range(20)]
    batch = encode_pairs(task, pairs)
    assert batch.src.shape == (20, max(len(s) for s, _ in pairs))
    assert batch.tgt.shape == (20, max(len(t) for _, t in pairs) + 1)
    for (src, tgt), src_row, tgt_row in zip(pairs, batch.src.tolist(), batch.tgt.tolist(), strict=True):
        pad = len(src_row) - len(src)
        assert src_row == [PAD_ID] * pad + task.src_vocab.encode(src)
        assert src_row[-1] != PAD_ID  # the encoder's last step is a real token
        assert tgt_row == task.tgt_vocab.encode(tgt) + [EOS_ID] + [PAD_ID] * (len(tgt_row) - len(tgt) - 1)
        assert task.tgt_vocab.decode(tgt_row) == tgt


def test_make_task_errors() -> None:
    with pytest.raises(TaskError, match="unknown task 'nope'; choose one of copy, reverse"):
        make_task("nope")
    with pytest.raises(TaskError, match="custom task needs"):
        make_task("custom")


def test_too_few_distinct_sources_is_a_task_error() -> None:
    task = make_task("copy", min_len=1, max_len=1, alphabet_size=2)  # neither "a" nor "b" hashes to validation
    with pytest.raises(TaskError, match="no validation example could be drawn"):
        TaskData(task, seed=0, val_size=16)
    everything_validation = dataclasses.replace(task, is_validation=lambda tokens: True)
    data = TaskData(everything_validation, seed=0, val_size=16)
    with pytest.raises(TaskError, match="no training example could be drawn"):
        data.training_pairs(4)


@pytest.mark.parametrize(("data", "tokenization", "expected"), [
    (b"source,target\nab,ba\ncd,dc\n", "char", [(["a", "b"], ["b", "a"]), (["c", "d"], ["d", "c"])]),
    (b"ab,ba\r\n\r\ncd,dc", "char", [(["a", "b"], ["b", "a"]), (["c", "d"], ["d", "c"])]),
    ("\ufeffSource , Target\n\"é,x\",y\nz,w\n".encode(), "char", [(["é", ",", "x"], ["y"]), (["z"], ["w"])]),
    (b"two one,one two\nthe cat sat, sat cat the\n", "space",
     [(["two", "one"], ["one", "two"]), (["the", "cat", "sat"], ["sat", "cat", "the"])]),
])
def test_custom_csv_valid(data: bytes, tokenization: str, expected: list) -> None:
    pairs = parse_custom_csv(data, tokenization)
    assert list(pairs.pairs) == expected and pairs.tokenization == tokenization
    task = make_task("custom", custom=pairs)
    assert task.max_src_len == max(len(s) for s, _ in expected)
    assert task.max_tgt_len == max(len(t) for _, t in expected)
    for src, tgt in expected:
        assert task.src_vocab.decode(task.src_vocab.encode(src)) == src
        assert task.tgt_vocab.tokenize(task.tgt_vocab.join(tgt)) == tgt


@pytest.mark.parametrize(("data", "tokenization", "message"), [
    (b"", "char", "at least 2 rows of source,target"),
    (b"source,target\n", "char", "at least 2 rows"),
    (b"ab,ba\n", "char", "at least 2 rows"),
    (b"source,target\nab,ba\ncd,dc,x\n", "char", "line 3 has 3 columns; each row must be source,target"),
    (b"ab,ba\ncd\n", "char", "line 2 has 1 column;"),
    (b"ab,ba\n  ,dc\n", "char", "line 2: the source is empty"),
    (b"ab,ba\ncd,\n", "space", "line 2: the target is empty"),
    (b"ab,ba\n" + b"x" * 65 + b",y\n", "char", "line 2: the source has 65 tokens; at most 64 are allowed"),
    (b"ab,ba\ncd,\xff\xfe\n", "char", "not UTF-8 text \\(byte 9 cannot be read\\)"),
    (b"a b,c\nd <eos>,e\n", "space", "line 2: the source uses a reserved token"),
    (b'ab,ba\n"' + b"x" * 140_000 + b'",y\n', "char", "line 2 cannot be read as CSV"),
    (b"ab,ba\ncd,dc\n", "words", "tokenization 'words' is not allowed; use 'char' or 'space'"),
    (b"x" * (10 * 1024 * 1024 + 1), "char", "bytes; at most 10,485,760 are allowed"),
])
def test_custom_csv_errors(data: bytes, tokenization: str, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        parse_custom_csv(data, tokenization)


def test_custom_needs_two_distinct_sources() -> None:
    pairs = parse_custom_csv(b"ab,ba\nab,xy\nab,zz\n")
    with pytest.raises(TaskError, match="at least 2 different sources"):
        make_task("custom", custom=pairs)
