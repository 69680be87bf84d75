"""Time series for forecasting: a user's CSV, the series that ship offline, calendar features, missing values.

Everything here is numpy and the standard library (no pandas): a series is a :class:`Series` of a time axis and
float columns. The bundled series are read straight from the files inside installed packages (nothing is
downloaded, the packages are not imported):

* ``sunspots``: yearly sunspot numbers 1700-2008, 309 points (statsmodels).
* ``co2``: weekly Mauna Loa CO2 (ppm) March 1958 - December 2001, 2284 points, 59 of them missing
  (statsmodels). Missing weeks are filled by linear interpolation in time unless ``missing`` says otherwise.
* ``airline``: monthly international airline passengers 1949-1960, 144 points (Box & Jenkins; sktime).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seqmodels.data.datamodule import MissingDataFileError
from seqmodels.data.files import (
    PARQUET_SUFFIXES,
    csv_error,
    csv_field_limit,
    csv_records,
    read_parquet_columns,
    read_utf8,
)

MISSING = ("error", "interpolate", "ffill")
#: Calendar features from a date/time column. The first four are cyclic (a sin/cos pair each, so December sits next
#: to January); the one-hot ones give each position its own channel (7 weekdays, 12 months); the flags are 0/1.
CALENDAR_CYCLIC = ("month", "dayofyear", "dayofweek", "hour")
CALENDAR_ONEHOT = {"dayofweek_onehot": 7, "month_onehot": 12}
CALENDAR_FLAGS = ("weekend", "month_start", "month_end", "holiday")
CALENDAR = (*CALENDAR_CYCLIC, *CALENDAR_ONEHOT, *CALENDAR_FLAGS)
BUILTIN = ("sunspots", "co2", "airline")
#: The largest magnitude a value may have. The models compute in float32 (largest number 3.4e38), where the
#: difference of two values, as scaling and the metrics take it, must stay finite too.
MAX_VALUE = 1e38


@dataclass
class Series:
    """One time series.

    Shapes (T = time steps, C = target columns, P = past-observed covariates, F = known-future covariates):
        time:   (T,) strictly increasing ``datetime64[s]`` or float64 (e.g. a year or step number)
        values: (T, C) float64 targets
        past:   (T, P) float64 covariates known only up to the present
        future: (T, F) float64 covariates known ahead of time (holidays, planned prices)
        static: ``{column: text}`` per-series attributes (store type, region, size), one value per series
    """

    name: str
    time: np.ndarray
    values: np.ndarray
    past: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    future: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    static: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.time)
        if self.values.ndim == 1:
            self.values = self.values[:, None]
        if self.past.size == 0:
            self.past = np.zeros((n, 0))
        if self.future.size == 0:
            self.future = np.zeros((n, 0))

    def __len__(self) -> int:
        return len(self.time)

    @property
    def is_datetime(self) -> bool:
        return np.issubdtype(self.time.dtype, np.datetime64)


# ----------------------------------------------------------------------------------------- parsing
_YYYYMMDD = re.compile(r"^\d{8}$")


def parse_time(raw: list[str], column: str) -> np.ndarray:
    """Dates (ISO ``1949-01``, ``2020-01-31 10:00``, or ``YYYYMMDD``) -> ``datetime64[s]``; numbers -> float64."""
    raw = [value.strip() for value in raw]
    if raw and all(_YYYYMMDD.match(v) for v in raw):
        raw = [f"{v[:4]}-{v[4:6]}-{v[6:]}" for v in raw]
    try:
        return np.array([float(v) for v in raw], dtype=np.float64)
    except ValueError:
        pass
    try:
        return np.array([np.datetime64(v.replace(" ", "T"), "s") for v in raw])
    except ValueError:
        bad = next(v for v in raw if not _parses_as_date(v))
        raise ValueError(
            f"time column {column!r}: cannot read {bad!r} as a date (ISO like 2020-01-31) or a number"
        ) from None


def _parses_as_date(value: str) -> bool:
    try:
        np.datetime64(value.replace(" ", "T"), "s")
        return True
    except ValueError:
        return False


def check_increasing(time: np.ndarray, column: str, where: str, rows: Sequence[int] | StepNames | None = None) -> None:
    """A ``ValueError`` naming the first row where ``time`` does not strictly increase (``rows``: how to name each
    element, see :func:`fill_missing`; default: the rows of a file below its header)."""
    if len(time) < 2:
        return
    steps = np.diff(time)
    bad = np.flatnonzero(steps <= steps.dtype.type(0))
    if bad.size:
        i = int(bad[0])
        kind = "repeats" if time[i] == time[i + 1] else "goes back"
        at = _row(rows, i) if rows is not None else f"row {i + 2}"
        raise ValueError(
            f"{where}: time column {column!r} {kind} at {at} ({time[i]} then {time[i + 1]}); "
            "sort the rows by time and drop duplicates"
        )


class StepNames:
    """How messages name element ``i`` of in-memory data: ``step i`` (arrays) or ``index <label>`` (the label of a
    pandas object's index), instead of a file's row number."""

    def __init__(self, index: Sequence[object] | None = None) -> None:
        self.index = index

    def __getitem__(self, i: int) -> str:
        return f"step {i}" if self.index is None else f"index {self.index[i]}"

    def __len__(self) -> int:  # pragma: no cover - only indexed
        return len(self.index) if self.index is not None else 0


def _row(rows: Sequence[int | str] | StepNames | None, i: int) -> str:
    """How a message names element ``i``: its row of the file (header = row 1) or, in memory, its step (or the
    label that :class:`StepNames` gives it)."""
    if rows is None:
        return f"step {i}"
    label = rows[i]
    return label if isinstance(label, str) else f"row {label}"


def check_finite(
    values: np.ndarray,
    names: list[str],
    where: str,
    rows: Sequence[int] | StepNames | None = None,
    allow_nan: bool = False,
) -> None:
    """A one-line ``ValueError`` naming the column and row of the first ``inf``/``-inf`` (or value beyond float32's
    range) in (T, K) ``values``; also of the first NaN unless ``allow_nan`` (NaN marks a missing value there)."""
    values = np.asarray(values, dtype=np.float64)
    for k, name in enumerate(names):
        column = values[:, k]
        bad = np.abs(column) > MAX_VALUE  # inf included
        if not allow_nan:
            bad |= np.isnan(column)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            gap = "NaN" if rows is None or isinstance(rows, StepNames) else "an empty cell"
            raise ValueError(
                f"{where}: column {name!r} {_row(rows, i)} holds {column[i]:g}, not a finite number within "
                f"+-{MAX_VALUE:g} (the models compute in float32); fix the value ({gap} marks a missing one)"
            )


def fill_missing(
    values: np.ndarray, how: str, names: list[str], where: str, rows: Sequence[int] | StepNames | None = None
) -> np.ndarray:
    """NaNs in (T, K) ``values``: refuse (``error``), interpolate linearly, or carry the last value forward.

    Leading gaps (before the first observation) take the first observed value in both filling modes. Infinite
    values are always refused (:func:`check_finite`): they are not missing, and no filling makes them right.
    ``rows``: the file row of each of the T values, for messages (default: the T values follow a header row), or a
    :class:`StepNames` for data given in memory.
    """
    if how not in MISSING:
        raise ValueError(f"missing must be one of {', '.join(MISSING)}, got {how!r}")
    values = np.array(values, dtype=np.float64, copy=True)
    rows = rows if rows is not None else range(2, len(values) + 2)
    check_finite(values, names, where, rows, allow_nan=True)
    for k, name in enumerate(names):
        column = values[:, k]
        gaps = np.isnan(column)
        if not gaps.any():
            continue
        if how == "error" or gaps.all():
            first = int(np.flatnonzero(gaps)[0])
            source = "the data" if isinstance(rows, StepNames) else "the file"
            raise ValueError(
                f"{where}: column {name!r} has {int(gaps.sum())} missing values (first at {_row(rows, first)}); "
                f"fill them in {source} or set data.missing=interpolate (or ffill)"
            )
        index = np.arange(len(column))
        observed = index[~gaps]
        if how == "interpolate":
            column[gaps] = np.interp(index[gaps], observed, column[~gaps])
        else:  # ffill: the most recent observed value (the first one before any observation)
            last = np.maximum.accumulate(np.where(gaps, -1, index))
            column[:] = column[np.where(last < 0, observed[0], last)]
    return values


def _floats(rows: list[dict[str, str]], name: str, where: str, lines: Sequence[int]) -> np.ndarray:
    out = np.empty(len(rows), dtype=np.float64)
    for i, row in enumerate(rows):
        text = (row.get(name) or "").strip()
        if text == "" or text.lower() in ("nan", "na", "null"):
            out[i] = np.nan
            continue
        try:
            out[i] = float(text)
        except ValueError:
            raise ValueError(f"{where}: column {name!r} row {lines[i]} holds {text!r}, not a number") from None
        if not math.isfinite(out[i]) or abs(out[i]) > MAX_VALUE:
            raise ValueError(
                f"{where}: column {name!r} row {lines[i]} holds {text!r}, not a finite number within +-{MAX_VALUE:g} "
                "(the models compute in float32); fix the value (an empty cell marks a missing one)"
            )
    return out


def _columns(rows: list[dict[str, str]], names: list[str], where: str, lines: Sequence[int]) -> np.ndarray:
    """(T, len(names)) floats of the named columns (NaN where empty)."""
    if not names:
        return np.zeros((len(rows), 0))
    return np.stack([_floats(rows, name, where, lines) for name in names], axis=1)


def _as_list(columns: str | list[str] | None) -> list[str]:
    if columns is None:
        return []
    return [columns] if isinstance(columns, str) else [str(c) for c in columns]


def read_csv_series(
    path: str | Path,
    time_column: str,
    target_columns: str | list[str],
    past_covariates: str | list[str] | None = None,
    future_covariates: str | list[str] | None = None,
    series_column: str | None = None,
    missing: str = "error",
    allow_future_rows: int = 0,
    static_columns: list[str] | None = None,
) -> list[Series]:
    """Read one series (or one per value of ``series_column``) from a CSV/TSV file with a header row.

    ``allow_future_rows``: the last rows may leave the targets and past covariates empty (rows that give only
    the known-future covariates of the time to forecast); these are kept unfilled, as NaN.
    ``static_columns``: per-series attributes, constant within each series (empty cells are ignored), kept as text
    in :attr:`Series.static`.

    One-line ``ValueError`` naming the file for a file that is not UTF-8 (with the byte offset), bad quoting or a
    field longer than ``MAX_FIELD_CHARS`` (with the line), and a value that is not a finite number, such as
    ``inf`` (with its column and row).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingDataFileError(
            f"series file not found: {path}; check data.path (training) or input_file (seqmodels-predict)"
        )
    if path.suffix.lower() in PARQUET_SUFFIXES:
        columns = [time_column, *_as_list(target_columns), *_as_list(past_covariates), *_as_list(future_covariates)]
        columns += [*([series_column] if series_column else []), *_as_list(static_columns)]
        return memory_series(
            read_parquet_columns(path, columns),
            time_column,
            target_columns,
            past_covariates,
            future_covariates,
            series_column,
            missing,
            allow_future_rows,
            where=str(path),
            static_columns=static_columns,
        )
    text = read_utf8(path)
    sample = text[:4096]
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    rows: list[dict[str, str]] = []
    lines: list[int] = []  # the file line of each row, for messages
    with csv_field_limit():
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        try:
            header = [h.strip() for h in (reader.fieldnames or [])]
        except csv.Error as exc:
            raise csv_error(path, 1, exc) from None
        reader.fieldnames = header
        for line, row in csv_records(reader, path):
            rows.append(row)
            lines.append(line)
    targets, past, future = _as_list(target_columns), _as_list(past_covariates), _as_list(future_covariates)
    if not targets:
        raise ValueError("target_columns is empty; name the column(s) to forecast, e.g. data.target_columns=[sales]")
    statics = _as_list(static_columns)
    wanted = [time_column, *targets, *past, *future, *([series_column] if series_column else []), *statics]
    absent = [c for c in wanted if c not in header]
    if absent:
        raise ValueError(f"{path}: no column {absent[0]!r}; its columns are {', '.join(header)}")
    if not rows:
        raise ValueError(f"{path} holds no rows")
    groups: dict[str, list[dict[str, str]]] = {}
    group_lines: dict[str, list[int]] = {}
    for row, line in zip(rows, lines, strict=True):
        key = (row[series_column] or "").strip() if series_column else path.stem
        groups.setdefault(key, []).append(row)
        group_lines.setdefault(key, []).append(line)
    out = []
    for name, group in groups.items():
        where = f"{path}" + (f" (series {name!r})" if series_column else "")
        at = group_lines[name]
        time = parse_time([r[time_column] or "" for r in group], time_column)
        columns = [_columns(group, names, where, at) for names in (targets, past, future)]
        names_of = (time_column, targets, past, future)
        series = _series(name, time, columns, names_of, missing, where, at, allow_future_rows)
        series.static = {c: constant_value([r.get(c) for r in group], c, name) for c in statics}
        out.append(series)
    return out


def _blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    text = str(value).strip()
    return text == "" or text.lower() in ("nan", "na", "null", "<na>", "none")


def constant_value(values: Sequence[object], column: str, series: str) -> str:
    """The one value (as text) a static column holds within a series; blank cells (e.g. rows to forecast) are
    ignored. A ``ValueError`` names the series and column when it holds several values or none."""
    seen: list[str] = []
    for value in values:
        if _blank(value):
            continue
        text = str(value).strip()
        if text not in seen:
            seen.append(text)
            if len(seen) > 1:
                raise ValueError(
                    f"series {series!r}: static column {column!r} holds {seen[0]!r} and {seen[1]!r}; a static "
                    "covariate takes one value per series (make it constant, or use it as a covariate instead)"
                )
    if not seen:
        raise ValueError(f"series {series!r}: static column {column!r} is empty; give each series its value")
    return seen[0]


def read_static_table(path: str | Path, key_column: str, columns: list[str]) -> dict[str, dict[str, str]]:
    """``{series name: {column: text}}`` from a CSV/TSV table with one row per series, keyed by ``key_column``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingDataFileError(f"static covariate table not found: {path}; check data.static_path")
    text = read_utf8(path)
    sample = text[:4096]
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    table: dict[str, dict[str, str]] = {}
    with csv_field_limit():
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        try:
            header = [h.strip() for h in (reader.fieldnames or [])]
        except csv.Error as exc:
            raise csv_error(path, 1, exc) from None
        reader.fieldnames = header
        absent = [c for c in (key_column, *columns) if c not in header]
        if absent:
            raise ValueError(f"{path}: no column {absent[0]!r}; its columns are {', '.join(header)}")
        for _, row in csv_records(reader, path):
            key = (row[key_column] or "").strip()
            if key in table:
                raise ValueError(f"{path}: series {key!r} has two rows; give one row per series")
            table[key] = {c: constant_value([row.get(c)], c, key) for c in columns}
    return table


def _series(
    name: str,
    time: np.ndarray,
    columns: list[np.ndarray],
    names: tuple[str, list[str], list[str], list[str]],
    missing: str,
    where: str,
    rows: Sequence[int] | StepNames,
    allow_future_rows: int,
) -> Series:
    """One series from its time axis and (T, K) target, past and future columns (NaN where missing): time checked,
    gaps filled or refused as ``missing`` says; the last ``allow_future_rows`` rows keep their targets and past
    covariates unfilled (the steps to forecast)."""
    time_column, targets, past, future = names
    check_increasing(time, time_column, where, rows)
    values, past_values, future_values = columns
    observed = len(time) - allow_future_rows
    values[:observed] = fill_missing(values[:observed], missing, targets, where, rows)
    past_values[:observed] = fill_missing(past_values[:observed], missing, past, where, rows)
    future_values = fill_missing(future_values, missing, future, where, rows)
    return Series(name, time, values, past_values, future_values)


# ----------------------------------------------------------------------------------------- in memory
#: What :func:`memory_series` reads (the ``data=`` of :class:`~seqmodels.data.ForecastingDataModule`).
MEMORY_FORMATS = (
    "a pandas DataFrame with the CSV's columns (time_column, target_columns, covariates, series_column), or indexed "
    "by time; a pandas Series (indexed by time); a numpy array (T,) or (T, C) for one series, (N, T, C) for N; "
    "a list of these, or a dict {name: series}, for many series"
)


def _is_frame(data: object) -> bool:
    return hasattr(data, "columns") and hasattr(data, "iloc")  # duck-typed: pandas stays optional


def _is_pandas_series(data: object) -> bool:
    return hasattr(data, "index") and hasattr(data, "to_numpy") and not hasattr(data, "columns")


def _time_values(raw: object, column: str) -> np.ndarray:
    """A time column (or index) held in memory: datetimes -> ``datetime64[s]``, numbers -> float64, text parsed as
    in a CSV file (dates or numbers)."""
    values = np.asarray(getattr(raw, "to_numpy", lambda: raw)())
    if values.dtype.kind == "M":
        return values.astype("datetime64[s]")
    if values.dtype.kind in "iuf":
        return values.astype(np.float64)
    return parse_time([str(v) for v in values], column)  # text, or pandas Timestamps with a time zone


def _float_column(raw: object, name: str, where: str, rows: StepNames) -> np.ndarray:
    """One column held in memory as float64 (None/NaN/pandas NA -> NaN); a value that is not a number is a one-line
    error naming it."""
    to_numpy = getattr(raw, "to_numpy", None)
    try:
        if to_numpy is not None:
            return np.array(to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
        return np.array(raw, dtype=np.float64)
    except (TypeError, ValueError):
        items = list(to_numpy() if to_numpy is not None else raw)  # type: ignore[arg-type]
        for i, item in enumerate(items):
            try:
                float(np.nan if item is None else item)
            except (TypeError, ValueError):
                raise ValueError(f"{where}: column {name!r} {_row(rows, i)} holds {item!r}, not a number") from None
        raise


def _frame_series(
    frame: Any,
    name: str,
    names: tuple[str, list[str], list[str], list[str]],
    missing: str,
    where: str,
    allow_future_rows: int,
) -> Series:
    time_column, targets, past, future = names
    index = frame.index
    rows = StepNames(list(index))
    if time_column in frame.columns:
        time = _time_values(frame[time_column], time_column)
    else:
        time = _time_values(index, time_column)
    columns = [
        np.stack([_float_column(frame[c], c, where, rows) for c in group], axis=1)
        if group
        else np.zeros((len(index), 0))
        for group in (targets, past, future)
    ]
    return _series(name, time, columns, names, missing, where, rows, allow_future_rows)


def memory_series(
    data: Any,
    time_column: str,
    target_columns: str | list[str],
    past_covariates: str | list[str] | None = None,
    future_covariates: str | list[str] | None = None,
    series_column: str | None = None,
    missing: str = "error",
    allow_future_rows: int = 0,
    where: str = "data",
    static_columns: list[str] | None = None,
) -> list[Series]:
    """The series of data held in memory, read and checked as :func:`read_csv_series` reads a file.

    ``data`` (see :data:`MEMORY_FORMATS`):

    * a pandas DataFrame with the columns a CSV file would have (``time_column``, ``target_columns``, covariates and
      ``series_column``); without a ``time_column`` column its index is the time axis;
    * a pandas Series: one target, its index the time axis;
    * a numpy array (or anything ``np.asarray`` takes): (T,) or (T, C) one series of C targets, (N, T, C) N series;
      the time axis is the step number 0..T-1;
    * a list of DataFrames, Series or arrays (series named 0, 1, ...), or a dict ``{name: series}``.

    Covariates, ``series_column`` and ``static_columns`` (per-series attributes, as in :func:`read_csv_series`) need a
    DataFrame. Messages name a pandas object's rows by their index label
    and an array's by their step; NaN is a missing value (filled or refused as ``missing`` says), infinity refused.
    """
    targets, past, future = _as_list(target_columns), _as_list(past_covariates), _as_list(future_covariates)
    if not targets:
        raise ValueError("target_columns is empty; name the column(s) to forecast, e.g. data.target_columns=[sales]")
    names = (time_column, targets, past, future)
    statics = _as_list(static_columns)
    if isinstance(data, dict):
        items = [(str(key), value) for key, value in data.items()]
    elif isinstance(data, (list, tuple)) and data and not all(np.isscalar(v) or v is None for v in data):
        items = [(str(i), value) for i, value in enumerate(data)]
    else:
        items = [("0", data)]
    if not items:
        raise ValueError(f"{where} holds no series; pass {MEMORY_FORMATS}")
    out: list[Series] = []
    for name, item in items:
        label = f"{where} (series {name!r})" if len(items) > 1 else where
        if _is_frame(item):
            out.extend(_frame_panel(item, name, names, series_column, missing, label, allow_future_rows, statics))
            continue
        if series_column or past or future or statics:
            wanted = ", ".join(
                [*([f"series_column={series_column}"] if series_column else []), *past, *future, *statics]
            )
            raise ValueError(f"{label}: covariates and series need a DataFrame with those columns ({wanted})")
        out.extend(_array_series(item, name, names, missing, label, allow_future_rows))
    return out


def _frame_panel(
    frame: Any,
    name: str,
    names: tuple[str, list[str], list[str], list[str]],
    series_column: str | None,
    missing: str,
    where: str,
    allow_future_rows: int,
    statics: list[str] | None = None,
) -> list[Series]:
    time_column, targets, past, future = names
    statics = statics or []
    columns = [str(c).strip() for c in frame.columns]
    if len(frame.columns) and columns != list(frame.columns):
        frame = frame.set_axis(columns, axis=1)
    index_name = getattr(frame.index, "name", None)
    has_time = time_column in columns or index_name == time_column or frame.index.dtype.kind == "M"
    wanted = [*targets, *past, *future, *([series_column] if series_column else []), *statics]
    absent = [c for c in wanted if c not in columns] + ([] if has_time else [time_column])
    if absent:
        listed = ", ".join(columns) if columns else "none"
        raise ValueError(f"{where}: no column {absent[0]!r}; its columns are {listed} (the time may also be the index)")
    if len(frame) == 0:
        raise ValueError(f"{where} holds no rows")
    if not series_column:
        groups = {name: list(range(len(frame)))}
    else:
        keys = [("" if k is None else str(k)).strip() for k in frame[series_column].tolist()]
        groups = {}
        for position, key in enumerate(keys):
            groups.setdefault(key, []).append(position)
    out = []
    for key, positions in groups.items():
        part = frame.iloc[positions] if series_column else frame
        label = f"{where} (series {key!r})" if series_column else where
        series = _frame_series(part, key, names, missing, label, allow_future_rows)
        series.static = {c: constant_value(part[c].tolist(), c, key) for c in statics}
        out.append(series)
    return out


def _array_series(
    data: Any,
    name: str,
    names: tuple[str, list[str], list[str], list[str]],
    missing: str,
    where: str,
    allow_future_rows: int,
) -> list[Series]:
    time_column, targets, _, _ = names
    if _is_pandas_series(data):
        rows = StepNames(list(data.index))
        values = _float_column(data, targets[0], where, rows)[:, None]
        time = _time_values(data.index, time_column)
        series_name = str(data.name) if getattr(data, "name", None) is not None and name == "0" else name
        return [_checked_array(series_name, time, values, names, missing, where, rows, allow_future_rows)]
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: cannot read {type(data).__name__} as numbers; pass {MEMORY_FORMATS}") from None
    if array.ndim == 3:
        return [
            _checked_array(
                f"{i}" if name == "0" else f"{name}/{i}",
                np.arange(array.shape[1], dtype=np.float64),
                array[i].copy(),
                names,
                missing,
                f"{where} (series {i})",
                StepNames(),
                allow_future_rows,
            )
            for i in range(array.shape[0])
        ]
    if array.ndim not in (1, 2):
        raise ValueError(
            f"{where}: an array of shape {array.shape}; pass (T,) or (T, C) for one series, (N, T, C) for N"
        )
    values = (array[:, None] if array.ndim == 1 else array).copy()
    time = np.arange(len(values), dtype=np.float64)
    return [_checked_array(name, time, values, names, missing, where, StepNames(), allow_future_rows)]


def _checked_array(
    name: str,
    time: np.ndarray,
    values: np.ndarray,
    names: tuple[str, list[str], list[str], list[str]],
    missing: str,
    where: str,
    rows: StepNames,
    allow_future_rows: int,
) -> Series:
    targets = names[1]
    if len(values) == 0:
        raise ValueError(f"{where} holds no values")
    if values.shape[1] != len(targets):
        raise ValueError(
            f"{where}: {values.shape[1]} target channel(s) but target_columns names {len(targets)} "
            f"({', '.join(targets)}); set data.target_columns to {values.shape[1]} names"
        )
    columns = [values, np.zeros((len(values), 0)), np.zeros((len(values), 0))]
    return _series(name, time, columns, names, missing, where, rows, allow_future_rows)


# ----------------------------------------------------------------------------------------- bundled
def _package_file(package: str, *parts: str) -> Path:
    # find_spec locates an installed package without importing it (importing sktime takes seconds).
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ImportError(
            f"this series ships inside {package}, which is not installed; pip install 'seqmodels[datasets]'"
        )
    path = Path(spec.origin).parent.joinpath(*parts)
    if not path.is_file():
        raise MissingDataFileError(f"{path} is missing from the installed {package}; reinstall it")
    return path


def builtin_path(name: str) -> Path:
    if name == "sunspots":
        return _package_file("statsmodels", "datasets", "sunspots", "sunspots.csv")
    if name == "co2":
        return _package_file("statsmodels", "datasets", "co2", "co2.csv")
    if name == "airline":
        return _package_file("sktime", "datasets", "data", "Airline", "Airline.csv")
    raise ValueError(f"unknown series {name!r}; choose one of {', '.join(BUILTIN)} or source=csv")


def load_builtin(name: str, missing: str = "interpolate") -> Series:
    """A bundled series by name (see the module docstring). ``missing`` matters only for ``co2``."""
    columns = {"sunspots": ("YEAR", "SUNACTIVITY"), "co2": ("date", "co2"), "airline": ("Date", "Passengers")}
    if name not in columns:
        raise ValueError(f"unknown series {name!r}; choose one of {', '.join(BUILTIN)} or source=csv")
    time_column, target = columns[name]
    (series,) = read_csv_series(builtin_path(name), time_column, target, missing=missing)
    series.name = name
    return series


def sine_series(length: int = 2000, period: float = 50.0, noise: float = 0.1, seed: int = 0) -> Series:
    """``sin(2 pi t / period) + noise * N(0, 1)`` for t = 0..length-1; the noise is numpy's legacy generator
    (``np.random.seed(seed); np.random.randn(length)``), the forecasting benchmark's recipe."""
    t = np.arange(length, dtype=np.float64)
    rng = np.random.RandomState(seed)
    values = np.sin(2 * np.pi * t / period) + noise * rng.randn(length)
    return Series("sine", t, values)


# ----------------------------------------------------------------------------------------- calendar
def infer_step(time: np.ndarray) -> tuple[str, float]:
    """The sampling step as ``(unit, size)``: ``("M", 1)`` monthly, ``("Y", 1)`` yearly, else ``("s", seconds)``
    (or the numeric step for a numeric time axis)."""
    if len(time) < 2:
        raise ValueError("a series needs at least 2 time points to infer its sampling step")
    if not np.issubdtype(time.dtype, np.datetime64):
        return "number", float(np.median(np.diff(time)))
    seconds = float(np.median(np.diff(time).astype("timedelta64[s]").astype(np.float64)))
    day = 86400.0
    if 28 * day <= seconds <= 31 * day:
        return "M", 1.0
    if 365 * day <= seconds <= 366 * day:
        return "Y", 1.0
    return "s", seconds


def future_times(time: np.ndarray, steps: int) -> np.ndarray:
    """The ``steps`` time points after the end of ``time``, continuing its sampling step."""
    unit, size = infer_step(time)
    k = np.arange(1, steps + 1)
    if unit == "number":
        return time[-1] + size * k
    last = time[-1]
    if unit in ("M", "Y"):
        # Calendar arithmetic: months differ in length, so step the month (year) count and keep the day offset.
        base = last.astype(f"datetime64[{unit}]")
        offset = last - base.astype("datetime64[s]")
        return (base + k.astype(f"timedelta64[{unit}]")).astype("datetime64[s]") + offset
    return last + (k * size).astype("timedelta64[s]")


def default_calendar(time: np.ndarray) -> list[str]:
    """Calendar features that vary at the series' sampling step: none for numeric or yearly time."""
    unit, seconds = infer_step(time)
    if unit in ("number", "Y"):
        return []
    if unit == "M":
        return ["month"]
    if seconds >= 86400:
        return ["dayofyear"] + (["dayofweek"] if seconds < 7 * 86400 else [])
    return ["hour", "dayofweek"]


def calendar_width(names: Sequence[str]) -> int:
    """Channels that :func:`calendar_features` gives ``names``."""
    return sum(2 if name in CALENDAR_CYCLIC else CALENDAR_ONEHOT.get(name, 1) for name in names)


def us_federal_holidays(days: np.ndarray) -> np.ndarray:
    """(T,) bool: which ``datetime64[D]`` days are US federal holidays (observed dates), from pandas' built-in
    calendar (rules, no data file)."""
    from pandas.tseries.holiday import USFederalHolidayCalendar

    if not len(days):
        return np.zeros(0, dtype=bool)
    dates = USFederalHolidayCalendar().holidays(start=str(days.min()), end=str(days.max()))
    return np.isin(days, dates.values.astype("datetime64[D]"))


def calendar_features(time: np.ndarray, names: list[str]) -> np.ndarray:
    """(T, :func:`calendar_width` (names)) calendar features of each time point, in [-1, 1] (no scaling needed).

    ``names`` from :data:`CALENDAR`: cyclic positions as sin/cos pairs (``month``, ``dayofyear``, ``dayofweek``,
    ``hour``), one-hot positions (``dayofweek_onehot``: Monday first, ``month_onehot``: January first), and 0/1 flags:
    ``weekend`` (Saturday, Sunday), ``month_start``/``month_end`` (first/last day of the month) and ``holiday`` (US
    federal holidays as observed, from pandas' rules; nothing is downloaded).
    """
    if not names:
        return np.zeros((len(time), 0))
    if not np.issubdtype(time.dtype, np.datetime64):
        raise ValueError("calendar features need a date/time column; set data.calendar=[] for a numeric time axis")
    unknown = [n for n in names if n not in CALENDAR]
    if unknown:
        raise ValueError(f"unknown calendar feature {unknown[0]!r}; choose from {', '.join(CALENDAR)}")
    days = time.astype("datetime64[D]")
    weekday = (days.astype(np.int64) + 3) % 7  # Monday 0; 1970-01-01 was a Thursday
    month = time.astype("datetime64[M]").astype(np.int64) % 12
    columns: list[np.ndarray] = []
    for name in names:
        if name in CALENDAR_ONEHOT:
            position = weekday if name == "dayofweek_onehot" else month
            columns += [(position == k).astype(np.float64) for k in range(CALENDAR_ONEHOT[name])]
            continue
        if name in CALENDAR_FLAGS:
            if name == "weekend":
                flag = weekday >= 5
            elif name == "month_start":
                flag = days == days.astype("datetime64[M]").astype("datetime64[D]")
            elif name == "month_end":
                flag = (days + 1).astype("datetime64[M]") != days.astype("datetime64[M]")
            else:
                flag = us_federal_holidays(days)
            columns.append(flag.astype(np.float64))
            continue
        if name == "month":
            phase, period = month.astype(np.float64), 12.0
        elif name == "dayofyear":
            phase = (days - time.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.float64)
            period = 365.25
        elif name == "dayofweek":
            phase, period = weekday.astype(np.float64), 7.0
        else:  # hour
            phase = (time - days.astype("datetime64[s]")).astype(np.float64) / 3600.0
            period = 24.0
        angle = 2 * np.pi * phase / period
        columns += [np.sin(angle), np.cos(angle)]
    return np.stack(columns, axis=1)


__all__ = [
    "BUILTIN",
    "CALENDAR",
    "CALENDAR_CYCLIC",
    "CALENDAR_FLAGS",
    "CALENDAR_ONEHOT",
    "MEMORY_FORMATS",
    "MISSING",
    "Series",
    "StepNames",
    "builtin_path",
    "calendar_features",
    "calendar_width",
    "check_finite",
    "check_increasing",
    "default_calendar",
    "fill_missing",
    "future_times",
    "infer_step",
    "load_builtin",
    "memory_series",
    "parse_time",
    "read_csv_series",
    "sine_series",
    "us_federal_holidays",
]
