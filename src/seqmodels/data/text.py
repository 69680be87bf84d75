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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from seqmodels.data.datamodule import (
    MissingDataFileError,
    SequenceDataModule,
    SequenceDataset,
    fewest_for_holdout,
    stratified_split,
)
from seqmodels.data.files import (
    PARQUET_SUFFIXES,
    csv_error,
    csv_field_limit,
    csv_records,
    read_parquet_columns,
    read_utf8,
)

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
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        return cls.from_counts(counts, min_freq, max_size, specials)

    @classmethod
    def from_counts(
        cls, counts: Mapping[str, int], min_freq: int = 1, max_size: int | None = None, specials: Sequence[str] = ()
    ) -> Vocabulary:
        """:meth:`build` from token counts already made (a corpus counted in a streaming pass)."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size < 2:
            raise ValueError(f"max_size must leave room for <pad> and <unk> (>= 2), got {max_size}")
        counts = Counter(counts)
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
    path: str  # the file, or "data" for rows held in memory
    line: int  # the file line, or the item's index in memory
    kind: str = "line"  # "item" for rows held in memory

    @property
    def where(self) -> str:
        """How a message names the row: ``reviews.csv: line 12``, or ``data: item 11`` in memory."""
        return f"{self.path}: {self.kind} {self.line}"


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
    """Read ``(text, label)`` rows from a CSV/TSV file with a header line, or the two columns of a Parquet file.

    The delimiter is ``delimiter`` if given, else a tab for ``.tsv``/``.tab``, a comma for ``.csv`` and
    sniffed otherwise. Raises a one-line ``ValueError`` naming the file for an empty file, a file that is not
    UTF-8 (with the byte offset), a missing column (listing the columns found), a field longer than
    ``MAX_FIELD_CHARS`` or bad quoting (with its line), an empty label (with its line) or a header without rows;
    ``MissingDataFileError`` (also a ``FileNotFoundError``) for a missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataFileError(f"text data file not found: {path}")
    if path.suffix.lower() in PARQUET_SUFFIXES:  # only the two columns are read
        frame = read_parquet_columns(path, [text_column, label_column])
        rows = []
        for index, (text, label) in enumerate(zip(frame[text_column], frame[label_column], strict=True)):
            label = "" if _is_missing(label) else str(label).strip()
            if not label:
                raise ValueError(f"{path}: row {index}: empty label in column {label_column!r}")
            rows.append(TextRow("" if _is_missing(text) else str(text), label, str(path), index, "row"))
        return rows
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


# ---------------------------------------------------------------------------------------------- in memory
SPLITS = ("train", "val", "test")


def _is_frame(data: object) -> bool:
    return hasattr(data, "columns") and hasattr(data, "iloc")  # duck-typed: pandas stays optional


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)  # None, NaN (pandas' empty cell)


#: What :func:`seqmodels.fit` writes in a run config in place of the file a datamodule's data came from when it was
#: given in memory: a datamodule built from that config (as from a checkpoint) knows its data is not at hand, and
#: says so when it must read it, instead of reading a bundled demo set in its place.
IN_MEMORY = "<in memory>"


def memory_lost(memory: Any, path: Any) -> bool:
    """Whether a path argument says the data was given in memory (:data:`IN_MEMORY`) while none is given now."""
    return memory is None and isinstance(path, str) and path == IN_MEMORY


def memory_lost_error(datamodule: Any, argument: str) -> ValueError:
    return ValueError(
        f"{type(datamodule).__name__}: this run's data was given in memory, and checkpoints do not keep it; pass it "
        f"again (data= in Python) or a file (data.{argument}=...)"
    )


def forget_data_hparam(datamodule: Any) -> None:
    """Drops ``data`` from a datamodule's saved hyperparameters: checkpoints hold plain data (they load with
    ``weights_only=True``), never the user's objects. Constructors pass ``data=None`` up to
    :class:`SequenceDataModule` (which saves the hyperparameters), so the data is never copied there either."""
    for store in (datamodule.hparams, datamodule._hparams_initial):
        store.pop("data", None)


def refuse_both(memory: Any, what: str, **paths: object) -> None:
    """A one-line ``ValueError`` when data is given in memory and as a file too (naming the first path)."""
    named = [f"{key}={value}" for key, value in paths.items() if value is not None]
    if memory is not None and named:
        raise ValueError(f"pass the {what} as data= or as files ({named[0]}), not both")


def memory_splits(data: Any, what: str) -> dict[str, Any]:
    """``data`` as ``{split: items}``: one collection is the training data; a dict gives ``train`` (required),
    ``val`` and ``test``, as the ``*_path`` arguments would."""
    if not isinstance(data, dict):
        return {"train": data}
    unknown = [str(key) for key in data if key not in SPLITS]
    if unknown or "train" not in data:
        problem = f"unknown split {unknown[0]!r}" if unknown else "no 'train' split"
        raise ValueError(f"data: {problem}; pass {what}, or a dict of them with keys train (required), val, test")
    return {key: value for key, value in data.items() if value is not None}


def memory_items(data: Any, where: str, what: str) -> list[Any]:
    """The items of a collection held in memory (a list or tuple, or any iterable but a string); a one-line error
    for anything else or an empty one."""
    if isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__"):
        raise ValueError(f"{where}: expected {what}, got {type(data).__name__}")
    items = list(data)
    if not items:
        raise ValueError(f"{where} is empty; pass {what}")
    return items


def text_rows_from_memory(
    data: Any, text_column: str = "text", label_column: str = "label", where: str = "data"
) -> list[TextRow]:
    """``(text, label)`` rows held in memory: a list of ``(text, label)`` pairs or a pandas DataFrame with the two
    columns. Checked as :func:`read_text_rows` checks a file: an empty label is an error naming its item; a missing
    text (None/NaN) reads as empty (a row without tokens, skipped). Labels become strings, as in a file."""
    what = f"(text, label) pairs or a DataFrame with columns {text_column!r} and {label_column!r}"
    if _is_frame(data):
        columns = [str(c) for c in data.columns]
        missing = [c for c in (text_column, label_column) if c not in columns]
        if missing:
            raise ValueError(
                f"{where}: no column {missing[0]!r}; columns found: {columns} (set data.text_column / "
                "data.label_column)"
            )
        pairs: list[Any] = list(zip(data[text_column].tolist(), data[label_column].tolist(), strict=True))
        if not pairs:
            raise ValueError(f"{where} holds no rows; pass {what}")
    else:
        pairs = memory_items(data, where, what)
    rows: list[TextRow] = []
    for index, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
            raise ValueError(f"{where}: item {index} is not a (text, label) pair: {str(pair)[:60]!r}")
        text, label = pair
        label = "" if _is_missing(label) else str(label).strip()
        if not label:
            raise ValueError(f"{where}: item {index}: empty label")
        text = "" if _is_missing(text) else str(text)
        rows.append(TextRow(text, label, where, index, "item"))
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
        data: the rows in memory instead of files (not with the paths): a list of ``(text, label)`` pairs or a pandas
            DataFrame with ``text_column`` and ``label_column``, or a dict ``{"train": ..., "val": ..., "test": ...}``
            of those (``train`` required; the others are carved from it when absent, as without their files). Checked
            as files are; kept out of the saved hyperparameters (checkpoints keep the vocabulary and labels).
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
    #: The config values that say the rows came from ``data`` (:func:`seqmodels.fit` writes them into the run config).
    memory_config: ClassVar[dict[str, Any]] = {"train_path": IN_MEMORY, "val_path": None, "test_path": None}

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
        data: Any = None,
        **base: Any,
    ) -> None:
        # The data itself stays out of the saved hyperparameters (checkpoints hold plain data).
        data, memory = None, data
        super().__init__(**base)
        forget_data_hparam(self)
        if not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be >= 1 or null, got {max_length}")
        self.memory_lost = memory_lost(memory, train_path)
        train_path = None if train_path == IN_MEMORY else train_path
        refuse_both(memory, "rows", train_path=train_path, val_path=val_path, test_path=test_path)
        self.memory = memory_splits(memory, "(text, label) pairs or a DataFrame") if memory is not None else None
        if self.memory is None and not self.memory_lost:
            self.train_path: Path | None = Path(train_path) if train_path is not None else demo_reviews_path()
        else:
            self.train_path = None
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

    def _source(self, split: str) -> str:
        """How messages name a split's rows: its file, or ``data`` (``data['val']``) in memory."""
        if self.memory is None:
            return str(getattr(self, f"{split}_path"))
        return "data" if len(self.memory) == 1 else f"data[{split!r}]"

    def _given(self, split: str) -> bool:
        return split in self.memory if self.memory is not None else getattr(self, f"{split}_path") is not None

    def _read(self, split: str) -> list[TextRow]:
        where = self._source(split)
        if self.memory is not None:
            rows = text_rows_from_memory(self.memory[split], self.text_column, self.label_column, where)
        else:
            rows = read_text_rows(getattr(self, f"{split}_path"), self.text_column, self.label_column, self.delimiter)
        usable = [row for row in rows if self.tokenize(row.text)]
        if not usable:
            raise ValueError(f"{where}: no usable rows: all {len(rows)} texts in column {self.text_column!r} are empty")
        if len(usable) < len(rows):
            log.warning("%s: skipped %d %s rows with empty text", where, len(rows) - len(usable), split)
        return usable

    # ------------------------------------------------------------------ building
    def build(self) -> None:
        if self.memory_lost:
            raise memory_lost_error(self, "train_path")
        train = self._read("train")
        total = len(train)
        if self._given("test"):
            test = self._read("test")
        else:
            keep, held = stratified_split([r.label for r in train], self.test_fraction, self.seed)
            train, test = [train[i] for i in keep], [train[i] for i in held]
        if self._given("val"):
            val = self._read("val")
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
        test_given = self._given("test")
        test_share = 0.0 if test_given else self.test_fraction
        need = fewest_for_holdout(lambda n: round(self.val_fraction * (n - round(test_share * n))))
        # Enough rows but none held out: every label keeps one row for training.
        reason = "every label keeps one row for training" if total >= need else f"need at least {need}"
        hint = "data={'train': ..., 'val': ...}" if self.memory is not None else "data.val_path=/path/to/val.csv"
        raise ValueError(
            f"{self._source('train')}: {total} usable rows leave none for validation (val_fraction="
            f"{self.val_fraction}{'' if test_given else f', test_fraction={self.test_fraction}'}; {reason}); "
            f"add rows or pass {hint}"
        )

    def _materialize(self) -> None:
        assert self.vocab is not None and self.class_names is not None
        label_ids = {label: i for i, label in enumerate(self.class_names)}
        sets: dict[str, SequenceDataset] = {}
        for split, rows in self._raw.items():
            for row in rows:
                if row.label not in label_ids:
                    raise ValueError(
                        f"{row.where}: label {row.label!r} ({split} split) is not a training label {self.class_names}"
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
