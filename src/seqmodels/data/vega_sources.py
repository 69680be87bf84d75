"""Two forecasting data sets read from the files inside the ``vega_datasets`` wheel (offline: nothing is downloaded).

* ``seattle_weather``: daily Seattle weather 2012-01-01 - 2015-12-31, 1461 days without gaps: ``precipitation``
  (mm), ``temp_max`` and ``temp_min`` (deg C), ``wind`` (m/s), the day's ``weather`` type (drizzle, fog, rain,
  snow, sun) as text and one-hot as ``weather_<type>`` (0/1 numbers, usable as covariates).
* ``stocks``: monthly closing prices (``price``, USD) of five tickers (``symbol``: AAPL, AMZN, GOOG, IBM, MSFT),
  January 2000 - March 2010 (GOOG from August 2004): a panel, one series per ``symbol``.

Each reader gives a pandas DataFrame (pandas comes with vega_datasets) with a ``date`` column of ``datetime64``
values, in the layout :func:`~seqmodels.data.timeseries_sources.memory_series` reads; ``ForecastingDataModule``
with ``source=seattle_weather`` or ``source=stocks`` reads it with its configured columns. The source name is all a
checkpoint needs: the file is found again in the installed package.
"""

from __future__ import annotations

import csv
import importlib.util
import io
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from seqmodels.data.datamodule import MissingDataFileError

VEGA_SOURCES = ("seattle_weather", "stocks")
#: The files of each source inside the installed package.
VEGA_FILES = {"seattle_weather": "seattle-weather.csv", "stocks": "stocks.csv"}
VEGA_INSTALL = "pip install vega_datasets"
WEATHER_TYPES = ("drizzle", "fog", "rain", "snow", "sun")
STOCK_SYMBOLS = ("AAPL", "AMZN", "GOOG", "IBM", "MSFT")


def vega_available() -> bool:
    """Whether vega_datasets is installed (found without importing it)."""
    return importlib.util.find_spec("vega_datasets") is not None


def vega_path(name: str) -> Path:
    """The file of the source ``name`` inside the installed vega_datasets; a one-line error naming the install
    command when the package is missing."""
    if name not in VEGA_FILES:
        raise ValueError(f"unknown vega_datasets source {name!r}; choose one of {', '.join(VEGA_SOURCES)}")
    spec = importlib.util.find_spec("vega_datasets")
    if spec is None or spec.origin is None:
        raise ImportError(f"source={name} reads a file inside vega_datasets, which is not installed; {VEGA_INSTALL}")
    path = Path(spec.origin).parent / "_data" / VEGA_FILES[name]
    if not path.is_file():
        raise MissingDataFileError(f"{path} is missing from the installed vega_datasets; reinstall it ({VEGA_INSTALL})")
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(io.StringIO(handle.read())))


def _frame(columns: dict[str, Any]) -> Any:
    import pandas as pd

    return pd.DataFrame(columns)


def read_seattle_weather() -> Any:
    """The daily Seattle weather as a DataFrame: ``date``, ``precipitation``, ``temp_max``, ``temp_min``, ``wind``,
    ``weather`` (text) and one ``weather_<type>`` 0/1 column per type of :data:`WEATHER_TYPES`."""
    path = vega_path("seattle_weather")
    rows = _rows(path)
    # The file writes dates as 2012/01/01.
    date = np.array([np.datetime64(r["date"].replace("/", "-"), "s") for r in rows])
    columns: dict[str, Any] = {"date": date}
    for name in ("precipitation", "temp_max", "temp_min", "wind"):
        columns[name] = np.array([float(r[name]) for r in rows])
    weather = [r["weather"].strip() for r in rows]
    unknown = sorted(set(weather) - set(WEATHER_TYPES))
    if unknown:
        raise ValueError(f"{path}: unknown weather type {unknown[0]!r}; expected one of {', '.join(WEATHER_TYPES)}")
    columns["weather"] = weather
    for kind in WEATHER_TYPES:
        columns[f"weather_{kind}"] = np.array([float(w == kind) for w in weather])
    return _frame(columns)


def read_stocks() -> Any:
    """The monthly stock prices as a DataFrame: ``symbol``, ``date`` (the first of each month), ``price``; rows in
    the file's order (by symbol, then date)."""
    path = vega_path("stocks")
    rows = _rows(path)
    # The file writes dates as "Jan 1 2000".
    date = np.array([np.datetime64(datetime.strptime(r["date"].strip(), "%b %d %Y"), "s") for r in rows])
    return _frame(
        {
            "symbol": [r["symbol"].strip() for r in rows],
            "date": date,
            "price": np.array([float(r["price"]) for r in rows]),
        }
    )


def read_vega(name: str) -> Any:
    """The DataFrame of the source ``name`` (one of :data:`VEGA_SOURCES`)."""
    readers = {"seattle_weather": read_seattle_weather, "stocks": read_stocks}
    if name not in readers:
        raise ValueError(f"unknown vega_datasets source {name!r}; choose one of {', '.join(VEGA_SOURCES)}")
    return readers[name]()


__all__ = [
    "STOCK_SYMBOLS",
    "VEGA_FILES",
    "VEGA_INSTALL",
    "VEGA_SOURCES",
    "WEATHER_TYPES",
    "read_seattle_weather",
    "read_stocks",
    "read_vega",
    "vega_available",
    "vega_path",
]
