"""Reading the text files users point to: UTF-8 with a one-line error naming the bad byte, CSV with a field limit
and errors that name the line."""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: The longest CSV/TSV field (in characters) the readers accept. Python's csv module stops at 131072 by default;
#: a field longer than this is nearly always a quote left open, which swallows the rest of the file.
MAX_FIELD_CHARS = 1_000_000

_BOM = b"\xef\xbb\xbf"


def read_utf8(path: str | Path) -> str:
    """The text of ``path`` decoded as UTF-8 (a leading byte-order mark dropped, line endings kept as written).

    A file that is not UTF-8 is a one-line ``ValueError`` naming it, the byte offset (from 0) and the line of its
    first bad byte, and how to convert it.
    """
    path = Path(path)
    data = path.read_bytes()
    skip = len(_BOM) if data.startswith(_BOM) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = skip + exc.start
        line = data.count(b"\n", 0, offset) + 1
        raise ValueError(
            f"{path}: not UTF-8 text: byte 0x{data[offset]:02x} at byte offset {offset} (line {line}) {exc.reason}; "
            "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 old > new)"
        ) from None


@contextlib.contextmanager
def csv_field_limit(limit: int = MAX_FIELD_CHARS) -> Iterator[None]:
    """Lets the csv module read fields of up to ``limit`` characters inside the block (restored afterwards)."""
    previous = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def csv_error(path: str | Path, line: int, exc: csv.Error) -> ValueError:
    """A csv module error as a one-line ``ValueError`` naming the file and the line where the bad record starts."""
    if "field larger than field limit" in str(exc):
        return ValueError(
            f"{path}: line {line}: a field is longer than {MAX_FIELD_CHARS} characters; a quote left open there "
            "swallows the lines after it (close or remove it), or shorten the field"
        )
    return ValueError(f"{path}: line {line}: not valid CSV ({exc}); check the quoting on that line")


def csv_records(reader: Any, path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line, record)`` for each record of a ``csv.reader``/``csv.DictReader`` (``line``: where the record ends);
    a ``csv.Error`` becomes :func:`csv_error`, naming the line where the bad record starts."""
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise csv_error(path, start, exc) from None
        yield reader.line_num, record
