"""Topic classification on real quotations: the category files of Debian's ``fortunes`` package.

Each file under ``/usr/share/games/fortunes`` (``computers``, ``politics``, ``science``, ...) is one category; its
quotations are separated by lines holding only ``%``. :func:`read_fortunes` turns the chosen files into
``(text, label)`` rows of :class:`~seqmodels.data.text.TextRow`, and :class:`FortunesDataModule` feeds them to the
text classification machinery (:class:`~seqmodels.data.text.TextClassificationDataModule`): stratified seeded
splits by quotation, a vocabulary and label set built on the training split and saved in checkpoints.

Nothing is downloaded: install the package with ``make system-data`` (or ``apt-get install fortunes``).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seqmodels.data.datamodule import MissingDataFileError
from seqmodels.data.files import read_utf8
from seqmodels.data.text import TextClassificationDataModule, TextRow

log = logging.getLogger(__name__)

#: Where Debian's ``fortunes`` package puts its category files.
FORTUNES_DIR = "/usr/share/games/fortunes"

#: The default categories: the topical ones (a subject, not a style such as ``platitudes`` or a source such as
#: ``zippy``) with at least 100 distinct quotations in fortunes 1:1.99.1 (14 classes, about 5,600 quotations).
DEFAULT_CATEGORIES = (
    "art",
    "computers",
    "drugs",
    "education",
    "food",
    "law",
    "literature",
    "love",
    "men-women",
    "politics",
    "science",
    "songs-poems",
    "sports",
    "work",
)

INSTALL_HINT = (
    "install Debian's fortunes package with `make system-data` (or `apt-get install fortunes`), or set "
    "data.fortunes_dir"
)

# Files of the directory that are not categories: strfile's binary indexes and the UTF-8 aliases (links).
_NOT_CATEGORIES = (".dat", ".u8")
_FILE_ARGUMENTS = ("train_path", "val_path", "test_path", "text_column", "label_column", "delimiter", "data")
_OVERSTRIKE = re.compile(".\x08")  # "_\bA": underlining by backspacing (old terminals), read as "A"


class FortunesNotFoundError(MissingDataFileError):
    """The fortune files are not there (also a ``FileNotFoundError`` and a ``ValueError``)."""


def fortunes_available(directory: str | Path = FORTUNES_DIR) -> bool:
    """Whether ``directory`` holds fortune files (for skipping what needs them)."""
    try:
        return bool(fortune_files(directory))
    except (FileNotFoundError, ValueError):
        return False


def fortune_files(directory: str | Path = FORTUNES_DIR) -> dict[str, Path]:
    """``{category: file}`` for every category file of ``directory`` (not its ``.dat`` indexes, ``.u8`` aliases,
    hidden files or folders), sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FortunesNotFoundError(f"fortune files not found: no folder {directory}; {INSTALL_HINT}")
    files = {
        path.name: path
        for path in sorted(directory.iterdir())
        if path.is_file() and not path.name.startswith(".") and not path.name.endswith(_NOT_CATEGORIES)
    }
    if not files:
        raise FortunesNotFoundError(f"fortune files not found: {directory} holds no category files; {INSTALL_HINT}")
    return files


def normalize_quotation(text: str) -> str:
    """The key two quotations share when they are the same up to whitespace and case."""
    return " ".join(text.split()).casefold()


def read_fortune_file(path: str | Path) -> list[tuple[int, str]]:
    """The quotations of one fortune file as ``(line, text)``: ``line`` is where the quotation starts (from 1).

    Quotations are separated by lines holding only ``%`` (surrounding spaces allowed); blank quotations (two
    separators in a row) are skipped, each quotation's surrounding blank lines are dropped and overstruck characters
    (``_<backspace>A``) are read as the character. A one-line ``ValueError`` naming the file for a file that is
    empty, binary (a strfile ``.dat`` index), not UTF-8, without any ``%`` separator line (not a fortune file) or
    with nothing but separators; ``MissingDataFileError`` for a missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataFileError(f"fortune file not found: {path}")
    data = path.read_bytes()
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise ValueError(
            f"{path}: binary data (a NUL byte at byte offset {offset}), not a fortune file of quotations "
            "separated by % lines (a strfile .dat index?)"
        )
    text = read_utf8(path)
    if not text.strip():
        raise ValueError(f"{path}: file is empty")
    lines = text.splitlines()
    if not any(line.strip() == "%" for line in lines):
        raise ValueError(f"{path}: no line holding only %: not a fortune file (quotations separated by % lines)")
    quotations: list[tuple[int, str]] = []
    start, body = 1, []
    for number, line in enumerate([*lines, "%"], start=1):
        if line.strip() == "%":
            quotation = _OVERSTRIKE.sub("", "\n".join(body)).strip()
            if quotation:
                quotations.append((start, quotation))
            start, body = number + 1, []
        else:
            body.append(line)
    if not quotations:
        raise ValueError(f"{path}: no quotations, only % separator lines")
    return quotations


def read_fortunes(
    directory: str | Path = FORTUNES_DIR, categories: Sequence[str] | None = DEFAULT_CATEGORIES, min_count: int = 100
) -> list[TextRow]:
    """``(text, label)`` rows of the chosen categories, deduplicated; the label is the category (file) name.

    Quotations are the same when they are equal up to whitespace and case (:func:`normalize_quotation`): a
    category keeps the first of its copies, and a quotation found in two or more chosen categories is dropped
    (its label is ambiguous). Then each category must hold ``min_count`` distinct quotations: a listed category
    with fewer is a one-line error; with ``categories=None`` (every file) those with fewer are left out (logged).
    Fewer than two categories left is an error.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    files = fortune_files(directory)
    if categories is None:
        chosen = list(files)
    else:
        chosen = list(dict.fromkeys(str(c) for c in categories))
        unknown = [c for c in chosen if c not in files]
        if unknown:
            raise ValueError(
                f"no fortune category {unknown[0]!r} in {directory}; categories found: {', '.join(files)} "
                "(set data.categories)"
            )
    quotations: dict[str, list[tuple[int, str, str]]] = {}
    for category in chosen:
        seen: set[str] = set()
        kept = []
        for line, text in read_fortune_file(files[category]):
            key = normalize_quotation(text)
            if key not in seen:
                seen.add(key)
                kept.append((line, text, key))
        quotations[category] = kept
    shared = Counter(key for kept in quotations.values() for _, _, key in kept)
    ambiguous = {key for key, count in shared.items() if count > 1}
    if ambiguous:
        log.info("fortunes: dropped %d quotations found in two or more categories", len(ambiguous))
    rows: dict[str, list[TextRow]] = {
        category: [
            TextRow(text, category, str(files[category]), line) for line, text, key in kept if key not in ambiguous
        ]
        for category, kept in quotations.items()
    }
    small = {category: len(found) for category, found in rows.items() if len(found) < min_count}
    if small and categories is not None:
        category, count = next(iter(small.items()))
        raise ValueError(
            f"fortune category {category!r} has {count} distinct quotations, fewer than min_count={min_count}; "
            "lower data.min_count or leave it out of data.categories"
        )
    if small:
        log.info("fortunes: left out categories with fewer than %d quotations: %s", min_count, ", ".join(small))
    kept_categories = [category for category in rows if category not in small]
    if len(kept_categories) < 2:
        raise ValueError(
            f"{directory}: {len(kept_categories)} fortune categories with at least min_count={min_count} quotations; "
            "a classifier needs two or more (lower data.min_count or choose other data.categories)"
        )
    return [row for category in kept_categories for row in rows[category]]


class FortunesDataModule(TextClassificationDataModule):
    """Classify quotations by their fortune category (``computers``, ``politics``, ``science``, ...).

    Reads the category files of Debian's ``fortunes`` package with :func:`read_fortunes` (deduplicated, categories
    with enough quotations), then holds out stratified seeded shares by quotation: ``test_fraction`` of them as
    test, ``val_fraction`` of the rest as validation; no quotation is in two splits. Everything else is
    :class:`~seqmodels.data.text.TextClassificationDataModule`: vocabulary and labels from the training split,
    saved in checkpoints with the tokenizer settings, so ``seqmodels-predict`` labels new text from the checkpoint
    alone (without the package installed).

    Args:
        fortunes_dir: the folder of category files.
        categories: the category files to use (``None``: every file with at least ``min_count`` quotations); the
            default is :data:`DEFAULT_CATEGORIES`.
        min_count: the fewest distinct quotations a category must hold.
        tokenizer, lowercase, min_freq, max_vocab_size, max_length, test_fraction, **base: as for
            :class:`~seqmodels.data.text.TextClassificationDataModule` (``val_fraction``, ``batch_size``, ``seed``...).

    dims: ``vocab_size``, ``padding_idx``, ``num_classes``.
    """

    def __init__(
        self,
        fortunes_dir: str | Path = FORTUNES_DIR,
        categories: Sequence[str] | None = DEFAULT_CATEGORIES,
        min_count: int = 100,
        tokenizer: str = "word",
        lowercase: bool = True,
        min_freq: int = 1,
        max_vocab_size: int | None = None,
        max_length: int | None = None,
        test_fraction: float = 0.2,
        **base: Any,
    ) -> None:
        super().__init__(
            tokenizer=tokenizer,
            lowercase=lowercase,
            min_freq=min_freq,
            max_vocab_size=max_vocab_size,
            max_length=max_length,
            test_fraction=test_fraction,
            **base,
        )
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if isinstance(categories, str):
            raise ValueError(f"categories must be a list of category names, got the string {categories!r}")
        for store in (self.hparams, self._hparams_initial):  # the file arguments of the parent do not apply here
            for key in _FILE_ARGUMENTS:
                store.pop(key, None)
        self.fortunes_dir = Path(fortunes_dir)
        self.categories = list(categories) if categories is not None else None
        self.min_count = min_count
        self.train_path = None  # the rows come from the fortune files, never from the bundled demo reviews

    def _source(self, split: str) -> str:
        return str(self.fortunes_dir)

    def _given(self, split: str) -> bool:
        return split == "train"  # val and test are carved from the quotations

    def _read(self, split: str) -> list[TextRow]:
        rows = read_fortunes(self.fortunes_dir, self.categories, self.min_count)
        usable = [row for row in rows if self.tokenize(row.text)]
        if len(usable) < len(rows):
            log.warning("%s: skipped %d quotations without tokens", self.fortunes_dir, len(rows) - len(usable))
        return usable
