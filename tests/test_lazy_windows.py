"""Lazily gathered forecasting windows (``data.lazy_windows``): identical batches to the stacked windows for every
split and feature option, shuffled and sharded; the same training run; the same backtests; and memory of the
series, not of its windows, for a long series."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from seqmodels.data import forecasting
from seqmodels.data.forecasting import (
    ForecastingDataModule,
    ForecastWindows,
    LazyForecastWindows,
    WindowLoader,
    backtest_rows,
    demo_demand_path,
)
from seqmodels.nn import DirectForecaster, RecurrentEncoder
from seqmodels.tasks.forecasting import ForecastingTask

SPLITS = ("train_set", "val_set", "test_set")


def uneven_panel(lengths=(150, 110, 90), seed=0) -> pd.DataFrame:
    """Series of different lengths, levels and spreads, with a past and a future covariate and static columns."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, length in enumerate(lengths):
        t = np.arange(length)
        level, spread = 10.0 * (k + 1), 1.0 + k
        value = level + spread * (np.sin(2 * np.pi * t / 12) + 0.1 * rng.standard_normal(length))
        frame = pd.DataFrame(
            {
                "time": t.astype(float),
                "value": value,
                "other": level + rng.standard_normal(length),
                "weather": rng.standard_normal(length),
                "promo": (rng.random(length) < 0.3).astype(float),
                "store": f"s{k}",
                "kind": "ab"[k % 2],
                "size": float(k + 1),
            }
        )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


DEMO = dict(
    path=str(demo_demand_path()),
    time_column="date",
    target_columns=["sales"],
    past_covariates=["temperature"],
    future_covariates=["promo"],
    series_column="store",
    lookback=14,
    horizon=7,
    seasonal_period=7,
)
PANEL = dict(
    time_column="time",
    target_columns=["value", "other"],
    past_covariates=["weather"],
    future_covariates=["promo"],
    series_column="store",
    calendar=None,
    lookback=12,
    horizon=5,
    val_size=20,
    test_size=20,
    seasonal_period=12,
)
CONFIGURATIONS = {
    "demo_panel_calendar_covariates": DEMO,
    "demo_log_stride_robust": {**DEMO, "transform": "log", "stride": 3, "scaler": "robust"},
    "sine_one_series": dict(source="sine", sine_length=400, lookback=24, horizon=6, seasonal_period=50),
    "uneven_panel_per_series_statics_lags_rolling": {
        **PANEL,
        "scaling": "per_series",
        "static_categoricals": ["kind"],
        "static_reals": ["size"],
        "lag_features": [12],
        "rolling_features": [{"window": 4, "stat": "mean"}, {"window": 3, "stat": "max"}],
    },
    "uneven_panel_no_test_part": {**PANEL, "test_size": 0, "scaler": "mean_abs"},
}


def datamodule(name: str, lazy, **options) -> ForecastingDataModule:
    settings = {**CONFIGURATIONS[name], "batch_size": 8, "eval_batch_size": 16, "seed": 3, **options}
    if name.startswith("uneven_panel"):
        settings["data"] = uneven_panel()
    dm = ForecastingDataModule(lazy_windows=lazy, **settings)
    dm.setup()
    return dm


def assert_same_batch(a, b) -> None:
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, torch.Tensor):
            assert isinstance(y, torch.Tensor), f.name
            assert x.dtype == y.dtype and x.shape == y.shape, (f.name, x.dtype, y.dtype, x.shape, y.shape)
            assert torch.equal(x, y) and y.is_contiguous() == x.is_contiguous(), f.name
        else:
            assert x == y, f.name


def assert_same_loaders(a: WindowLoader, b: WindowLoader, epochs: int = 2) -> int:
    count = 0
    for _ in range(epochs):  # a second epoch reshuffles
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_batch(x, y)
            count += 1
    return count


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_lazy_windows_equal_the_stacked_windows(name):
    eager, lazy = datamodule(name, False), datamodule(name, True)
    assert not eager.windows_are_lazy and lazy.windows_are_lazy
    for split in SPLITS:
        a, b = getattr(eager, split), getattr(lazy, split)
        assert len(a) == len(b)
        if not len(a):  # e.g. test_size=0
            assert name == "uneven_panel_no_test_part" and split == "test_set"
            continue
        assert isinstance(b, LazyForecastWindows) and not isinstance(a, LazyForecastWindows)
        assert list(a.tensors) == list(b.tensors)  # same fields, None where the eager ones are None
        for key, value in a.tensors.items():
            if value is None:
                assert b.tensors[key] is None, key
            else:
                assert value.dtype == b.tensors[key].dtype and torch.equal(value, b.tensors[key]), key
        # Every index WindowLoader and the callers pass: slices, permutations, masks, single windows.
        order = torch.randperm(len(a), generator=torch.Generator().manual_seed(0))
        mask = a.tensors["series"] == a.tensors["series"][-1]
        for index in (slice(0, 5), slice(len(a) - 3, len(a) + 10), order[:7], mask):
            assert_same_batch(a.take(index), b.take(index))
        assert_same_batch(a[len(a) - 1], b[len(b) - 1])
        for shuffle in (False, True):
            for replicas, rank in ((1, 0), (2, 0), (2, 1), (3, 2)):
                count = assert_same_loaders(
                    WindowLoader(a, 8, shuffle, seed=5, num_replicas=replicas, rank=rank),
                    WindowLoader(b, 8, shuffle, seed=5, num_replicas=replicas, rank=rank),
                )
                assert count >= 2
    if name.startswith("uneven_panel_per"):
        batch = lazy.train_set.take(slice(None))
        assert {"static_categoricals", "static_reals", "target_loc", "target_scale"} <= {
            f.name for f in fields(batch) if getattr(batch, f.name) is not None
        }
        assert batch.inputs.shape[-1] == 2 + 1 + 2 * 3 + 1  # targets, past, lag + 2 rolling per target, future
        assert set(lazy.train_set.tensors["series"].tolist()) == {0, 1, 2}


def test_the_datamodule_loaders_shard_and_shuffle_lazy_windows_as_stacked_ones(monkeypatch):
    eager, lazy = (datamodule("uneven_panel_per_series_statics_lags_rolling", mode) for mode in (False, True))
    for dm in (eager, lazy):
        monkeypatch.setattr(dm, "_distributed_info", lambda: (2, 1))  # rank 1 of 2, as under DDP
    assert assert_same_loaders(eager.train_dataloader(), lazy.train_dataloader(), epochs=3) > 3
    assert assert_same_loaders(eager.val_dataloader(), lazy.val_dataloader(), epochs=1) >= 1
    assert assert_same_loaders(eager.test_dataloader(), lazy.test_dataloader(), epochs=1) >= 1


def test_lazy_splits_share_the_series_and_hold_only_an_index():
    dm = datamodule("sine_one_series", True, sine_length=2000, lookback=100, horizon=10)
    train, val, test = dm.train_set, dm.val_set, dm.test_set
    assert train.arrays is val.arrays is test.arrays
    series_bytes = train.arrays.nbytes()
    assert series_bytes < 2000 * 4 * 3  # inputs, values (float32), no future channels, per-series scalars
    assert train.nbytes() == 16 * len(train)  # series and origin, int64
    assert dm.eager_window_bytes > 20 * (series_bytes + train.nbytes() + val.nbytes() + test.nbytes())


@pytest.mark.parametrize("name", ["demo_panel_calendar_covariates", "uneven_panel_per_series_statics_lags_rolling"])
def test_the_size_estimate_is_the_stacked_windows_size_and_auto_follows_it(name, monkeypatch):
    eager = datamodule(name, False)
    stacked = [v for split in SPLITS for v in getattr(eager, split).tensors.values() if v is not None]
    held = sum(v.numel() * v.element_size() for v in stacked)
    assert eager.eager_window_bytes == held
    assert not datamodule(name, "auto").windows_are_lazy  # a few hundred kB: stacked
    monkeypatch.setattr(forecasting, "LAZY_WINDOWS_AUTO_BYTES", held - 1)
    assert datamodule(name, "auto").windows_are_lazy
    monkeypatch.setattr(forecasting, "LAZY_WINDOWS_AUTO_BYTES", held)
    assert not datamodule(name, "auto").windows_are_lazy


@pytest.mark.parametrize("bad", ["yes", "true", 1, None])
def test_a_bad_lazy_windows_value_is_a_one_line_error(bad):
    with pytest.raises(ValueError) as info:
        ForecastingDataModule(source="sine", lazy_windows=bad)
    message = str(info.value)
    assert "\n" not in message and "data.lazy_windows must be auto, true or false" in message and repr(bad) in message


def small_task(dm: ForecastingDataModule, seed: int = 0) -> ForecastingTask:
    torch.manual_seed(seed)
    dims = dm.dims()
    encoder = RecurrentEncoder("gru", input_size=dims["input_size"], hidden_size=8, batch_first=True)
    net = DirectForecaster(
        encoder,
        horizon=dm.horizon,
        num_targets=dims["num_targets"],
        static_cardinalities=dm.dim("static_cardinalities"),
        num_static_reals=dm.dim("num_static_reals"),
    )
    task = ForecastingTask(net, optimizer=lambda params: torch.optim.Adam(params, lr=1e-2))
    task.set_scaler(dm.target_scaler())
    return task.eval()


@pytest.mark.parametrize("name", ["demo_panel_calendar_covariates", "uneven_panel_per_series_statics_lags_rolling"])
def test_backtests_and_forecasts_are_the_same_from_lazy_windows(name):
    eager, lazy = datamodule(name, False), datamodule(name, True)
    task = small_task(eager)
    history = uneven_panel() if name.startswith("uneven") else None
    for split in ("val", "test"):
        a, b = eager.backtest(task, split, history), lazy.backtest(task, split, history)
        assert len(a.series) == len(eager.backtest_windows(split)) > 0
        assert a.series == b.series and np.array_equal(a.time, b.time)
        for key in ("point", "actual", "naive", "seasonal_naive"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
        windows_a, windows_b = eager.backtest_windows(split), lazy.backtest_windows(split)
        forecast = {"point": torch.from_numpy(a.point)}
        rows_a = backtest_rows(eager.series, windows_a, forecast, eager.target_names)
        assert rows_a == backtest_rows(lazy.series, windows_b, forecast, lazy.target_names)


def test_forecasts_past_the_end_are_the_same_from_either_datamodule():
    eager, lazy = datamodule("sine_one_series", False), datamodule("sine_one_series", True)
    task = small_task(eager)
    a, b = eager.forecast(task), lazy.forecast(task)
    assert a.point.shape == (1, 6, 1)
    np.testing.assert_array_equal(a.point, b.point)
    _, batch, _ = eager.last_windows()
    with torch.no_grad():
        expected = task.forecast(batch)["point"]  # on the original scale
    np.testing.assert_allclose(a.point, expected.numpy(), rtol=1e-6)
    assert isinstance(lazy.val_set, ForecastWindows)  # what WindowLoader, prediction and backtests accept
    assert lazy.val_set.tensors["actual"].shape == (len(lazy.val_set), 6, 1)


def test_training_and_prediction_from_lazy_windows_give_the_same_losses_and_backtests(
    compose_train_at, tmp_path, capsys
):
    from seqmodels.predict import write_forecasts
    from seqmodels.train import train

    common = [
        "experiment=airline",
        "model.net.encoder.hidden_size=8",
        "trainer.max_epochs=2",
        "model.plot_every_n_epochs=0",
        "logger=none",
    ]
    runs = {
        mode: train(compose_train_at(tmp_path / mode, *common, f"data.lazy_windows={mode}"))
        for mode in ("false", "true")
    }
    assert not runs["false"].datamodule.windows_are_lazy and runs["true"].datamodule.windows_are_lazy
    assert isinstance(runs["true"].datamodule.train_set, LazyForecastWindows)
    eager, lazy = runs["false"].metrics, runs["true"].metrics
    assert "train/loss" in eager and "val/mae" in eager and "test/mae" in eager
    assert set(eager) == set(lazy)
    for key, value in eager.items():
        assert math.isfinite(value), key
        assert lazy[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    # seqmodels-predict's backtest from each checkpoint (whose data config says lazy or not): conformal intervals
    # calibrated on the validation windows, ETS/ARIMA baselines and the summary all read the windows.
    written = {}
    for mode, result in runs.items():
        out = tmp_path / f"backtest_{mode}.csv"
        cfg = OmegaConf.create(
            {
                "ckpt_path": result.best_model_path,
                "input": None,
                "input_file": None,
                "output_file": str(out),
                "weights_only": True,
                "backtest": "test",
                "batch_size": 5,
                "conformal": [0.8],
                "baselines": True,
            }
        )
        assert write_forecasts(cfg)
        written[mode] = (out.read_text(), capsys.readouterr().err.replace(out.name, "backtest.csv"))
    rows = list(csv.DictReader(io.StringIO(written["false"][0])))
    assert len(rows) == 13 * 12 and {"conformal_lower_80", "adaptive_upper_80", "ets", "arima"} <= set(rows[0])
    assert "model + conformal" in written["false"][1]
    assert written["true"] == written["false"]


MEMORY_PROBE = """
import json, resource, sys, time
import torch
from seqmodels.data.forecasting import ForecastingDataModule, WindowLoader

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

def peak_rss():  # VmHWM starts afresh at exec; getrusage's peak would carry the forking test process's
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))

torch.ones(1)
before = rss()
start = time.perf_counter()
dm = ForecastingDataModule(source="sine", sine_length={length}, lookback={lookback}, horizon=24,
                           val_size=0.1, test_size=0.1, batch_size=256, lazy_windows="auto")
dm.setup()
loader = WindowLoader(dm.train_set, 256, shuffle=True)
for i, batch in zip(range(20), loader):
    assert batch.inputs.shape == (256, {lookback}, 1)
seconds = time.perf_counter() - start
peak = peak_rss()
print(json.dumps(dict(lazy=dm.windows_are_lazy, eager_bytes=dm.eager_window_bytes, growth=rss() - before,
                      peak=peak, before=before, seconds=seconds)))
"""


def test_a_long_series_builds_lazily_in_a_fraction_of_its_windows_memory():
    length, lookback = 600_000, 336  # hourly steps, two weeks of lookback
    probe = MEMORY_PROBE.format(length=length, lookback=lookback)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["lazy"]  # auto: the stacked windows exceed 256 MiB
    assert found["eager_bytes"] > 800 * 2**20
    # Held after building and serving batches, and the peak while building, against what stacking would hold
    # (the series, its float32 arrays and 16 bytes per window take about 25 MB).
    assert found["growth"] < found["eager_bytes"] / 10, found
    assert found["peak"] - found["before"] < found["eager_bytes"] / 8, found
    assert found["seconds"] < 10, found  # building and 20 batches, the imports not counted


def test_a_parquet_table_gives_the_same_batches_lazily(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.read_csv(demo_demand_path())
    frame["date"] = pd.to_datetime(frame["date"])
    path = tmp_path / "demand.parquet"
    frame.to_parquet(path)
    eager, lazy = (datamodule("demo_panel_calendar_covariates", mode, path=str(path)) for mode in (False, True))
    assert lazy.windows_are_lazy and len(lazy.train_set) == len(eager.train_set) > 0
    for split in SPLITS:
        assert_same_loaders(
            WindowLoader(getattr(eager, split), 32, shuffle=True, seed=1),
            WindowLoader(getattr(lazy, split), 32, shuffle=True, seed=1),
            epochs=1,
        )
