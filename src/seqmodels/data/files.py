"""Reading the files users point to: UTF-8 with a one-line error naming the bad byte, CSV with a field limit and
errors that name the line, and the needed columns of a Parquet file."""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator, Sequence
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


PARQUET_SUFFIXES = (".parquet", ".pq")


def read_parquet_columns(path: Path, columns: Sequence[str]) -> Any:
    """Only ``columns`` of a Parquet file, as a pandas DataFrame (a column store reads no other column from disk).

    One-line errors: pyarrow missing (with the install command), an unreadable file, a column it lacks (naming
    the ones it has)."""
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ImportError(
            f"{path}: reading Parquet needs pyarrow; pip install 'seqmodels[parquet]' (or use CSV)"
        ) from err
    wanted = list(dict.fromkeys(columns))
    try:
        available = pq.read_schema(path).names
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise ValueError(f"{path}: not a readable Parquet file ({type(err).__name__}: {err})") from err
    absent = [c for c in wanted if c not in available]
    if absent:
        raise ValueError(f"{path}: no column {absent[0]!r}; its columns are {', '.join(available)}")
    frame = pq.read_table(path, columns=wanted).to_pandas()
    if frame.empty:
        raise ValueError(f"{path} holds no rows")
    for column in wanted:  # dates as ISO text: the time column is parsed as a CSV's is
        if str(frame[column].dtype).startswith("datetime64"):
            frame[column] = frame[column].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return frame
