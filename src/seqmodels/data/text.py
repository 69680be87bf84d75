"""Text classification from CSV/TSV files: tokenizers, a vocabulary and a datamodule.

The vocabulary and the label set come from the training split only; val/test words it does not know become
``<unk>``. Both travel in the datamodule's ``state_dict`` (saved in Lightning checkpoints), so evaluating a
checkpoint encodes text exactly as in training.
"""

from __future__ import annotations

import csv
import importlib.resources
import io
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from seqmodels.data.datamodule import (
    MissingDataFileError,
    SequenceDataModule,
    SequenceDataset,
    fewest_for_holdout,
    stratified_split,
)
from seqmodels.data.files import csv_error, csv_field_limit, csv_records, read_utf8

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- tokenizers
class CharTokenizer:
    """Splits text into characters (whitespace included: it separates words for a character model)."""

    kind = "char"

    def __init__(self, lowercase: bool = True) -> None:
        self.lowercase = lowercase

    def __call__(self, text: str) -> list[str]:
        return list(text.lower() if self.lowercase else text)

    def detokenize(self, tokens: Iterable[str]) -> str:
        """Tokens back to text (exact for characters)."""
        return "".join(tokens)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "lowercase": self.lowercase}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lowercase={self.lowercase})"


class WordTokenizer(CharTokenizer):
    """Words and single punctuation marks: the regex ``\\w+|[^\\w\\s]`` ("don't!" -> don, ', t, !)."""

    kind = "word"
    pattern = re.compile(r"\w+|[^\w\s]")

    def __call__(self, text: str) -> list[str]:
        return self.pattern.findall(text.lower() if self.lowercase else text)

    def detokenize(self, tokens: Iterable[str]) -> str:
        return " ".join(tokens)


class WhitespaceTokenizer(CharTokenizer):
    """Tokens separated by whitespace, as written (``"C5_1 D5_0.5"`` -> ``["C5_1", "D5_0.5"]``)."""

    kind = "whitespace"

    def __call__(self, text: str) -> list[str]:
        return (text.lower() if self.lowercase else text).split()

    def detokenize(self, tokens: Iterable[str]) -> str:
        return " ".join(tokens)


TOKENIZERS: dict[str, type[CharTokenizer]] = {
    "char": CharTokenizer,
    "word": WordTokenizer,
    "whitespace": WhitespaceTokenizer,
}


def make_tokenizer(kind: str, lowercase: bool = True) -> CharTokenizer:
    """``"char"`` or ``"word"`` -> a tokenizer."""
    if kind not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {kind!r}; choose one of {sorted(TOKENIZERS)}")
    return TOKENIZERS[kind](lowercase=lowercase)


def tokenizer_from_dict(state: dict[str, Any]) -> CharTokenizer:
    return make_tokenizer(state["type"], lowercase=bool(state.get("lowercase", True)))


# ---------------------------------------------------------------------------------------------- vocabulary
class Vocabulary:
    """Token <-> id map with ``<pad>`` = 0 and ``<unk>`` = 1 (and, for generation, ``<bos>`` / ``<eos>``).

    Args:
        tokens: all tokens in id order, the two specials first (use :meth:`build` to count a corpus).
    """

    PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
    PAD_ID, UNK_ID = 0, 1

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        if tokens[:2] != [self.PAD, self.UNK]:
            raise ValueError(f"a Vocabulary starts with {self.PAD!r}, {self.UNK!r}; got {tokens[:2]}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("a Vocabulary cannot list a token twice")
        self.itos: list[str] = tokens
        self.stoi: dict[str, int] = {token: i for i, token in enumerate(tokens)}

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = (),
    ) -> Vocabulary:
        """Count tokens into a vocabulary (deterministic for the same corpus).

        Keeps tokens seen ``min_freq`` times or more, most frequent first (ties: by token), at most
        ``max_size`` entries *including* the specials: ``<pad>``, ``<unk>``, then ``specials`` (e.g.
        ``(Vocabulary.BOS, Vocabulary.EOS)`` for a language model) whether or not the corpus has them.
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size < 2:
            raise ValueError(f"max_size must leave room for <pad> and <unk> (>= 2), got {max_size}")
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        head = list(dict.fromkeys([cls.PAD, cls.UNK, *specials]))
        if max_size is not None and max_size < len(head):
            raise ValueError(f"max_size={max_size} leaves no room for the special tokens {head}")
        for special in head:
            counts.pop(special, None)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max_size - len(head)]
        return cls([*head, *kept])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    @property
    def pad_id(self) -> int:
        return self.PAD_ID

    @property
    def unk_id(self) -> int:
        return self.UNK_ID

    @property
    def bos_id(self) -> int:
        return self._special_id(self.BOS)

    @property
    def eos_id(self) -> int:
        return self._special_id(self.EOS)

    def _special_id(self, token: str) -> int:
        if token not in self.stoi:
            raise ValueError(f"this vocabulary has no {token} token; build it with specials=({token!r},)")
        return self.stoi[token]

    def unknown(self, tokens: Iterable[str]) -> list[str]:
        """The distinct tokens of ``tokens`` this vocabulary does not know (they encode as ``<unk>``)."""
        return list(dict.fromkeys(t for t in tokens if t not in self.stoi))

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.stoi.get(token, self.UNK_ID) for token in tokens]

    def decode(self, ids: Iterable[int] | Tensor, skip_padding: bool = True) -> list[str]:
        """Ids -> tokens; an id outside ``0..len(self) - 1`` is a one-line ``ValueError`` (never a wrapped index)."""
        values = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        size = len(self.itos)
        for i in values:
            if not 0 <= i < size:
                raise ValueError(f"token id {i} is outside this vocabulary (ids 0..{size - 1})")
        return [self.itos[i] for i in values if not (skip_padding and i == self.PAD_ID)]

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": list(self.itos)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Vocabulary:
        return cls(state["tokens"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and other.itos == self.itos

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)})"


def check_new_input(vocab: Vocabulary, tokens: Sequence[str], text: str, action: str) -> None:
    """A user's input at prediction time: an error when it has no tokens, a warning naming the tokens that
    ``vocab`` lacks (they are read as ``<unk>``)."""
    if not tokens:
        raise ValueError(f"input {text!r} has no tokens to {action}")
    unknown = vocab.unknown(tokens)
    if unknown:
        log.warning("input tokens not in the vocabulary, read as <unk>: %s", " ".join(map(repr, unknown)))


# ---------------------------------------------------------------------------------------------- files
@dataclass(frozen=True)
class TextRow:
    text: str
    label: str
    path: str
    line: int


def demo_reviews_path() -> Path:
    """The bundled toy data set: 600 template-generated product reviews (positive/negative).

    Made by ``scripts/make_reviews_csv.py``; good for demos and smoke tests, not for measuring anything.
    """
    return Path(str(importlib.resources.files("seqmodels.data").joinpath("resources", "reviews_tiny.csv")))


def _infer_delimiter(path: Path, content: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "\t"
    if suffix == ".csv":
        return ","
    try:
        return csv.Sniffer().sniff(content[:8192], delimiters=",\t;|").delimiter
    except csv.Error:
        return ","


def read_text_rows(
    path: str | Path, text_column: str = "text", label_column: str = "label", delimiter: str | None = None
) -> list[TextRow]:
    """Read ``(text, label)`` rows from a CSV/TSV file with a header line.

    The delimiter is ``delimiter`` if given, else a tab for ``.tsv``/``.tab``, a comma for ``.csv`` and
    sniffed otherwise. Raises a one-line ``ValueError`` naming the file for an empty file, a file that is not
    UTF-8 (with the byte offset), a missing column (listing the columns found), a field longer than
    ``MAX_FIELD_CHARS`` or bad quoting (with its line), an empty label (with its line) or a header without rows;
    ``MissingDataFileError`` (also a ``FileNotFoundError``) for a missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataFileError(f"text data file not found: {path}")
    content = read_utf8(path)
    if not content.strip():
        raise ValueError(f"{path}: file is empty")
    rows: list[TextRow] = []
    with csv_field_limit():
        reader = csv.DictReader(
            io.StringIO(content, newline=""), delimiter=delimiter or _infer_delimiter(path, content)
        )
        try:
            columns = [name.strip() for name in (reader.fieldnames or [])]
        except csv.Error as exc:
            raise csv_error(path, 1, exc) from None
        reader.fieldnames = columns
        missing = [c for c in (text_column, label_column) if c not in columns]
        if missing:
            raise ValueError(
                f"{path}: no column {missing[0]!r} in the header; columns found: {columns} "
                "(the first line must be a header; set data.text_column / data.label_column)"
            )
        for line, record in csv_records(reader, path):
            label = (record.get(label_column) or "").strip()
            if not label:
                raise ValueError(f"{path}: line {line}: empty label in column {label_column!r}")
            rows.append(TextRow(record.get(text_column) or "", label, str(path), line))
    if not rows:
        raise ValueError(f"{path}: no data rows below the header")
    return rows


# ---------------------------------------------------------------------------------------------- datamodule
class TextClassificationDataModule(SequenceDataModule):
    """Classify texts from CSV/TSV files with a text column and a label column.

    Without ``val_path``/``test_path``, stratified seeded shares (``val_fraction``, ``test_fraction``) of the
    training file are held out; a file too small to leave a validation row is refused, saying how many rows it
    takes (or pass ``val_path``). The vocabulary and the label set (string labels sorted -> ids ``0..K-1``) are
    built on the training split only. Rows whose text has no tokens are skipped (logged). Without
    ``train_path`` a small bundled demo set of template-generated product reviews is used
    (:func:`demo_reviews_path`); it is a toy.

    ``state_dict`` holds the tokenizer settings, ``max_length``, the vocabulary and the labels. Loaded before
    ``setup`` they are reused instead of rebuilt; loaded after it (Lightning restores checkpoints after
    ``setup``) the splits are re-encoded with them.

    Args:
        train_path, val_path, test_path: data files (``None``: bundled demo / carved from train).
        text_column, label_column: header names of the two columns used.
        delimiter: field separator; default from the extension (``.tsv`` tab, ``.csv`` comma) or sniffed.
        tokenizer: ``"char"`` or ``"word"`` (words and punctuation).
        lowercase: lowercase before tokenizing.
        min_freq: drop training tokens seen fewer times (they become ``<unk>``).
        max_vocab_size: keep the most frequent tokens, specials included.
        max_length: truncate token sequences to this many tokens.
        test_fraction: share of train held out as test when ``test_path`` is not given.
        **base: :class:`SequenceDataModule` arguments (``val_fraction``, ``batch_size``, ``seed``, ...).

    dims: ``vocab_size``, ``padding_idx``, ``num_classes``.
    """

    input_padding_value = Vocabulary.PAD_ID

    def __init__(
        self,
        train_path: str | Path | None = None,
        val_path: str | Path | None = None,
        test_path: str | Path | None = None,
        text_column: str = "text",
        label_column: str = "label",
        delimiter: str | None = None,
        tokenizer: str = "char",
        lowercase: bool = True,
        min_freq: int = 1,
        max_vocab_size: int | None = None,
        max_length: int | None = None,
        test_fraction: float = 0.2,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        if not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be >= 1 or null, got {max_length}")
        self.train_path = Path(train_path) if train_path is not None else demo_reviews_path()
        self.val_path = Path(val_path) if val_path is not None else None
        self.test_path = Path(test_path) if test_path is not None else None
        self.text_column, self.label_column, self.delimiter = text_column, label_column, delimiter
        self.tokenizer = make_tokenizer(tokenizer, lowercase)
        self.min_freq, self.max_vocab_size, self.max_length = min_freq, max_vocab_size, max_length
        self.test_fraction = test_fraction
        self.vocab: Vocabulary | None = None
        self.class_names: list[str] | None = None
        self._raw: dict[str, list[TextRow]] = {}

    # ------------------------------------------------------------------ encoding
    def tokenize(self, text: str) -> list[str]:
        tokens = self.tokenizer(text)
        return tokens[: self.max_length] if self.max_length is not None else tokens

    def encode_text(self, text: str) -> Tensor:
        """Token ids ``(L,)`` int64 of one text, as the model saw them in training (builds the vocabulary if
        needed). A text without tokens becomes a single ``<unk>``: a sequence needs length >= 1."""
        if self.vocab is None:
            self.setup()
        return self._encode(text)

    def inputs_from_text(self, text: str) -> Tensor:
        """A new text -> token ids ``(L,)`` for prediction; tokens the vocabulary lacks read as ``<unk>``, with a
        warning naming them."""
        if self.vocab is None:
            self.setup()
        assert self.vocab is not None
        tokens = self.tokenize(text)
        check_new_input(self.vocab, tokens, text, "classify")
        return torch.tensor(self.vocab.encode(tokens), dtype=torch.int64)

    def _encode(self, text: str) -> Tensor:
        assert self.vocab is not None
        ids = self.vocab.encode(self.tokenize(text)) or [self.vocab.unk_id]
        return torch.tensor(ids, dtype=torch.int64)

    def _read(self, path: Path, what: str) -> list[TextRow]:
        rows = read_text_rows(path, self.text_column, self.label_column, self.delimiter)
        usable = [row for row in rows if self.tokenize(row.text)]
        if not usable:
            raise ValueError(f"{path}: no usable rows: all {len(rows)} texts in column {self.text_column!r} are empty")
        if len(usable) < len(rows):
            log.warning("%s: skipped %d %s rows with empty text", path, len(rows) - len(usable), what)
        return usable

    # ------------------------------------------------------------------ building
    def build(self) -> None:
        train = self._read(self.train_path, "train")
        total = len(train)
        if self.test_path is not None:
            test = self._read(self.test_path, "test")
        else:
            keep, held = stratified_split([r.label for r in train], self.test_fraction, self.seed)
            train, test = [train[i] for i in keep], [train[i] for i in held]
        if self.val_path is not None:
            val = self._read(self.val_path, "val")
        else:
            keep, held = stratified_split([r.label for r in train], self.val_fraction, self.seed + 1)
            if not held and self.val_fraction > 0:
                self._refuse_without_validation(total)
            train, val = [train[i] for i in keep], [train[i] for i in held]
        self._raw = {"train": train, "val": val, "test": test}

        # Vocabulary and labels from the training split only (or from a loaded checkpoint state).
        if self.vocab is None:
            self.vocab = Vocabulary.build(
                (self.tokenize(r.text) for r in train), min_freq=self.min_freq, max_size=self.max_vocab_size
            )
        if self.class_names is None:
            self.class_names = sorted({r.label for r in train})
        self._materialize()

    def _refuse_without_validation(self, total: int) -> None:
        """A training file too small for ``val_fraction`` to hold out a row: Lightning would fail later, on the
        missing ``val/loss``, so say now how many rows it takes (or that ``val_path`` must be given)."""
        test_share = 0.0 if self.test_path is not None else self.test_fraction
        need = fewest_for_holdout(lambda n: round(self.val_fraction * (n - round(test_share * n))))
        # Enough rows but none held out: every label keeps one row for training.
        reason = "every label keeps one row for training" if total >= need else f"need at least {need}"
        raise ValueError(
            f"{self.train_path}: {total} usable rows leave none for validation (val_fraction={self.val_fraction}"
            f"{'' if self.test_path is not None else f', test_fraction={self.test_fraction}'}; {reason}); "
            "add rows or pass data.val_path=/path/to/val.csv"
        )

    def _materialize(self) -> None:
        assert self.vocab is not None and self.class_names is not None
        label_ids = {label: i for i, label in enumerate(self.class_names)}
        sets: dict[str, SequenceDataset] = {}
        for split, rows in self._raw.items():
            for row in rows:
                if row.label not in label_ids:
                    raise ValueError(
                        f"{row.path}: line {row.line}: label {row.label!r} ({split} split) is not a training "
                        f"label {self.class_names}"
                    )
            inputs = [self._encode(r.text) for r in rows]
            targets = torch.tensor([label_ids[r.label] for r in rows], dtype=torch.int64)
            sets[split] = SequenceDataset(inputs, targets)
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]

    def _dims(self) -> dict[str, int]:
        assert self.vocab is not None and self.class_names is not None
        return {
            "vocab_size": len(self.vocab),
            "padding_idx": self.vocab.pad_id,
            "num_classes": len(self.class_names),
        }

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Tokenizer settings, ``max_length``, vocabulary and labels: JSON-safe."""
        return {
            "tokenizer": self.tokenizer.to_dict(),
            "max_length": self.max_length,
            "vocab": self.vocab.to_dict() if self.vocab is not None else None,
            "class_names": list(self.class_names) if self.class_names is not None else None,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("tokenizer") is not None:
            self.tokenizer = tokenizer_from_dict(state_dict["tokenizer"])
        self.max_length = state_dict.get("max_length", self.max_length)
        if state_dict.get("vocab") is not None:
            self.vocab = Vocabulary.from_dict(state_dict["vocab"])
        if state_dict.get("class_names") is not None:
            self.class_names = list(state_dict["class_names"])
        if self.is_built:
            self._materialize()
