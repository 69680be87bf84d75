"""Parquet tables as well as CSV: forecasting series and labelled text read from only the columns they need, equal
to the same data as CSV, with one-line errors for a missing column, a damaged file or no pyarrow."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import torch

from seqmodels.data import ForecastingDataModule, TextClassificationDataModule
from seqmodels.data.forecasting import demo_demand_path
from seqmodels.data.text import demo_reviews_path, read_text_rows

pq = pytest.importorskip("pyarrow.parquet")

FORECAST = dict(
    time_column="date",
    target_columns=["sales"],
    past_covariates=["temperature"],
    future_covariates=["promo"],
    series_column="store",
    lookback=14,
    horizon=7,
    batch_size=16,
)


def demand_parquet(tmp_path, extra_columns: int = 0):
    frame = pd.read_csv(demo_demand_path())
    frame["date"] = pd.to_datetime(frame["date"])  # a real timestamp column, as Parquet files hold
    for i in range(extra_columns):
        frame[f"unused_{i}"] = np.arange(len(frame), dtype=float)
    path = tmp_path / "demand.parquet"
    frame.to_parquet(path)
    return path


def test_forecasting_windows_from_parquet_equal_csv(tmp_path, monkeypatch):
    path = demand_parquet(tmp_path, extra_columns=3)
    read = []
    original = pq.read_table
    monkeypatch.setattr(
        pq, "read_table", lambda p, columns=None, **k: read.append(columns) or original(p, columns=columns, **k)
    )
    from_csv = ForecastingDataModule(path=str(demo_demand_path()), **FORECAST)
    from_parquet = ForecastingDataModule(path=str(path), **FORECAST)
    from_csv.setup()
    from_parquet.setup()
    assert read and all("unused_0" not in columns for columns in read)  # only the needed columns
    assert sorted(read[0]) == sorted(["date", "sales", "temperature", "promo", "store"])
    for split in ("train_set", "val_set", "test_set"):
        a, b = getattr(from_csv, split).tensors, getattr(from_parquet, split).tensors
        for key in a:
            if a[key] is not None:
                torch.testing.assert_close(b[key], a[key])
    assert from_parquet.dims() == from_csv.dims()


def test_labelled_text_from_parquet(tmp_path):
    frame = pd.read_csv(demo_reviews_path())
    frame["stars"] = 5
    path = tmp_path / "reviews.parquet"
    frame.to_parquet(path)
    rows = read_text_rows(path)
    assert [(r.text, r.label) for r in rows] == list(zip(frame["text"], frame["label"].astype(str), strict=True))
    dm = TextClassificationDataModule(train_path=str(path), batch_size=8)
    dm.setup()
    assert dm.dims()["num_classes"] == frame["label"].nunique()
    frame.loc[3, "label"] = None
    frame.to_parquet(path)
    with pytest.raises(ValueError, match=r"reviews.parquet: row 3: empty label in column 'label'"):
        read_text_rows(path)


def test_bad_parquet_input_is_a_one_line_error(tmp_path, monkeypatch):
    path = demand_parquet(tmp_path)
    with pytest.raises(ValueError, match=r"demand.parquet: no column 'revenue'; its columns are date, store") as error:
        ForecastingDataModule(path=str(path), **{**FORECAST, "target_columns": ["revenue"]}).setup()
    assert "\n" not in str(error.value)
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match="damaged.parquet: not a readable Parquet file") as error:
        ForecastingDataModule(path=str(damaged), **FORECAST).setup()
    assert "\n" not in str(error.value)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"reading Parquet needs pyarrow; pip install 'seqmodels\[parquet\]'"):
        read_text_rows(path)
