"""Statistical baselines on the neural model's windows: the same metrics, the same origins, no look-ahead; and
``seqmodels-predict ... conformal=... baselines=true`` end to end on a tiny forecaster."""

from __future__ import annotations

import csv
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from seqmodels.data.forecasting import ForecastingDataModule
from seqmodels.forecast_baselines import (
    BASELINES,
    baseline_backtest,
    fit_arima,
    fit_ets,
    forecast_scores,
    metrics_table,
    rolling_forecasts,
)
from seqmodels.tasks.forecasting import ForecastMetrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_runs import train_tiny  # noqa: E402

# Small searches keep the tests fast; the full ones are the defaults.
ETS_SMALL = (("add", "add", False, None), ("add", None, False, "add"), ("add", "add", False, "add"))
ARIMA_SMALL = {"arima_orders": ((1, 0), (0, 1)), "seasonal_orders": ((0, 0), (0, 1))}


def seasonal_series(length: int = 180, period: int = 12, noise: float = 0.3, seed: int = 0, level: float = 50.0):
    """A linear trend, a sine season of ``period`` steps and Gaussian noise."""
    t = np.arange(length)
    rng = np.random.default_rng(seed)
    return level + 0.4 * t + 5 * np.sin(2 * np.pi * t / period) + noise * rng.normal(size=length)


def panel(**options) -> ForecastingDataModule:
    """Two seasonal series held in memory, split 120 / 30 / 30 steps."""
    data = {"north": seasonal_series(seed=0), "south": seasonal_series(seed=1, level=80.0)}
    settings = dict(lookback=24, horizon=6, val_size=30, test_size=30, seasonal_period=12, calendar=None)
    datamodule = ForecastingDataModule(data=data, **{**settings, **options})
    datamodule.setup()
    return datamodule


def test_scores_are_the_task_s_metrics():
    rng = np.random.default_rng(0)
    point, actual = rng.normal(size=(5, 4, 2)), rng.normal(size=(5, 4, 2))
    point[0, 0, 0] = actual[0, 0, 0] = 0.0  # sMAPE of 0 against 0 counts 0
    naive, scale = rng.normal(size=(5, 4, 2)), rng.uniform(0.5, 2.0, size=(5, 2))
    lower, upper = point - 0.7, point + 0.7
    ours = forecast_scores(point, actual, scale, lower, upper)
    metric = ForecastMetrics()
    as_tensor = [torch.tensor(x, dtype=torch.float64) for x in (point, actual, scale, naive, naive, lower, upper)]
    metric.update(*as_tensor)
    theirs = {key: float(value) for key, value in metric.compute().items()}
    for key in ("mae", "rmse", "smape", "mase", "coverage"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-6), key
    # By hand on one value: |1 - 3| = 2, sMAPE 200 * 2 / 4 = 100 %, MASE 2 / 0.5.
    one = forecast_scores(np.ones((1, 1, 1)), np.full((1, 1, 1), 3.0), np.full((1, 1), 0.5))
    assert one == {"mae": 2.0, "rmse": 2.0, "smape": 100.0, "mase": 4.0}


def test_naive_baselines_are_the_datamodule_s_and_windows_line_up():
    datamodule = panel()
    found = baseline_backtest(datamodule, "test", models=("naive", "seasonal_naive"))
    windows = datamodule.test_set.tensors
    assert found.point["naive"].shape == tuple(windows["actual"].shape) == (2 * (30 - 6 + 1), 6, 1)
    assert np.allclose(found.point["naive"], windows["naive"].numpy(), rtol=1e-6)
    assert np.allclose(found.point["seasonal_naive"], windows["seasonal_naive"].numpy(), rtol=1e-6)
    assert np.array_equal(found.origin, windows["origin"].numpy())
    # Hand check: the seasonal-naive forecast of step h from origin o is the value at o + h - 12 (h < 12).
    values = datamodule.series[1].values[:, 0]
    row = int(np.flatnonzero(found.series == 1)[3])
    o = int(found.origin[row])
    assert found.point["seasonal_naive"][row, :, 0] == pytest.approx(values[o - 12 : o - 6])
    assert found.point["naive"][row, :, 0] == pytest.approx(np.full(6, values[o - 1]))
    with pytest.raises(ValueError, match="unknown baseline 'prophet'"):
        baseline_backtest(datamodule, "test", models=("prophet",))


@pytest.mark.parametrize("kind", ["ets", "arima"])
def test_rolling_forecasts_continue_the_training_fit_without_looking_ahead(kind):
    values = seasonal_series()
    train_end = 120
    if kind == "ets":
        fitted, failed = fit_ets(values[:train_end], 12, ETS_SMALL)
    else:
        fitted, failed = fit_arima(values[:train_end], 12, **ARIMA_SMALL)
    assert fitted is not None and failed == 0
    origins = np.array([train_end, train_end + 7, train_end + 20])
    point, lower, upper = rolling_forecasts(fitted, values, origins, 6, levels=[0.8, 0.95])
    # From the first origin: exactly the training fit's own forecast past its end (its state, its parameters).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert point[0] == pytest.approx(np.asarray(fitted.results.forecast(6)), rel=1e-9)
    # Later origins see the observations before them, and nothing after: scrambling the future changes nothing.
    scrambled = values.copy()
    scrambled[train_end + 20 :] = 1000.0
    again, _, _ = rolling_forecasts(fitted, scrambled, origins, 6, levels=[0.8])
    assert np.array_equal(again, point)
    moved = values.copy()
    moved[train_end + 6] += 50.0  # the last observation before the second origin: that forecast changes
    shifted, _, _ = rolling_forecasts(fitted, moved, origins, 6)
    assert np.array_equal(shifted[0], point[0]) and not np.allclose(shifted[1], point[1])
    assert (lower[0.95] < lower[0.8]).all() and (lower[0.8] < point).all() and (point < upper[0.8]).all()
    assert (upper[0.8] < upper[0.95]).all()


def test_ets_and_arima_beat_the_naive_forecasts_of_a_trend_with_a_season():
    datamodule = panel()
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        found = baseline_backtest(datamodule, "test", levels=[0.8, 0.95], ets_specs=ETS_SMALL, **ARIMA_SMALL)
    assert not escaped, [str(w.message) for w in escaped]  # statsmodels' warnings are counted, not shown
    assert set(found.point) == set(BASELINES)
    assert [len(found.chosen[name]) for name in ("ets", "arima")] == [2, 2]  # one model per series and target
    assert all(text.startswith(("north/value: ", "south/value: ")) for text in found.chosen["ets"])
    scores = {name: found.scores(name) for name in BASELINES}
    # A trend moves the seasonal-naive forecast off by 12 * 0.4 per season, the naive one further: a model of the
    # trend and the season is far closer (the noise alone would give MASE about 0.3 * 0.8 / 4.8 = 0.05).
    assert scores["seasonal_naive"]["mase"] == pytest.approx(1.0, abs=0.15)
    assert scores["ets"]["mase"] < 0.3 and scores["arima"]["mase"] < 0.3
    for name in ("ets", "arima"):
        assert found.scores(name, 0.8)["coverage"] <= found.scores(name, 0.95)["coverage"]
        assert found.scores(name, 0.95)["coverage"] > 0.7
    table = metrics_table(
        {
            name: {**s, "coverage@0.8": found.scores(name, 0.8).get("coverage", float("nan"))}
            for name, s in scores.items()
        },
        [0.8],
    )
    assert table.splitlines()[0].split() == ["forecaster", "MAE", "sMAPE", "%", "MASE", "cov", "80%"]
    assert table.splitlines()[1].split()[-1] == "-"  # naive: no interval


# ------------------------------------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def forecaster(tmp_path_factory) -> Path:
    """A tiny airline forecaster with a Gaussian head (80% interval)."""
    return train_tiny(
        tmp_path_factory.mktemp("airline"),
        "experiment=airline",
        "model.net.encoder.hidden_size=8",
        "model.plot_every_n_epochs=0",
    )


def _predict_cfg(ckpt: Path, out: Path, **options):
    base = {"ckpt_path": str(ckpt), "input": None, "input_file": None, "output_file": str(out), "weights_only": True}
    return OmegaConf.create({**base, "batch_size": 64, "conformal_gamma": 0.05, "baselines": False, **options})


def test_predict_adds_conformal_and_baseline_columns_and_prints_their_coverage(forecaster, tmp_path, capsys):
    from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
    from seqmodels.conformal import conformal_quantile
    from seqmodels.predict import write_forecasts

    out = tmp_path / "backtest.csv"
    cfg = _predict_cfg(forecaster, out, backtest="test", conformal=[0.8, 0.95], baselines=True)
    assert write_forecasts(cfg)
    err = capsys.readouterr().err
    rows = list(csv.DictReader(out.open()))
    columns = list(rows[0])
    levels = ("80", "95")
    sides = ("lower", "upper")
    conformal = [f"{kind}_{side}_{level}" for level in levels for kind in ("conformal", "adaptive") for side in sides]
    baselines = [
        column
        for name in ("ets", "arima")
        for column in [name, *(f"{name}_{side}_{level}" for level in levels for side in sides)]
    ]
    assert columns[-18:] == conformal + baselines
    assert {"actual", "forecast", "lower", "upper", "naive", "seasonal_naive"} <= set(columns)
    # The 80% radius of step h is the ceil(0.8 (n + 1))-th smallest absolute error of the validation backtest.
    model, datamodule = build_from_checkpoint(load_checkpoint(forecaster))
    validation = datamodule.backtest(model, "val")
    radius = conformal_quantile(np.abs(validation.actual - validation.point), 0.8)[:, 0]  # (H,)
    for row in rows[:24]:
        h = int(row["step"]) - 1
        assert float(row["conformal_upper_80"]) - float(row["forecast"]) == pytest.approx(radius[h], abs=2e-3)
        assert float(row["forecast"]) - float(row["conformal_lower_80"]) == pytest.approx(radius[h], abs=2e-3)
    # 13 validation windows cannot give a finite 95% radius (k = ceil(14 * 0.95) = 14 > 13).
    assert len(validation.point) == 13 and rows[0]["conformal_upper_95"] == "inf"
    assert "conformal 95%: 13 validation windows give no finite radius" in err
    # The printed coverage is the CSV's.
    inside = [float(r["conformal_lower_80"]) <= float(r["actual"]) <= float(r["conformal_upper_80"]) for r in rows]
    table = {line.split("  ")[0].strip(): line.split() for line in err.splitlines()}
    assert float(table["model + conformal"][-2]) == pytest.approx(sum(inside) / len(inside), abs=1e-3)
    own = [float(r["lower"]) <= float(r["actual"]) <= float(r["upper"]) for r in rows]
    assert float(table["model"][-2]) == pytest.approx(sum(own) / len(own), abs=1e-3)  # the Gaussian head's 80%
    assert table["model"][-1] == "-"  # it has no 95% interval of its own
    assert {"naive", "seasonal_naive", "ets", "arima"} <= set(table)
    ets_mae = sum(abs(float(r["ets"]) - float(r["actual"])) for r in rows) / len(rows)
    assert float(table["ets"][1]) == pytest.approx(ets_mae, rel=1e-3)
    assert "baselines fitted on the training part: airline/Passengers: ETS(" in err
    # Forecasts ahead get the same split-conformal radius.
    ahead = tmp_path / "ahead.csv"
    assert write_forecasts(_predict_cfg(forecaster, ahead, backtest=None, conformal=0.8))
    for row in csv.DictReader(ahead.open()):
        h = int(row["step"]) - 1
        assert float(row["conformal_upper_80"]) - float(row["forecast"]) == pytest.approx(radius[h], abs=2e-3)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"backtest": "test", "conformal": 1.5}, r"conformal levels must be in \(0, 1\)"),
        ({"backtest": "test", "conformal": [0.8, 0]}, r"conformal levels must be in \(0, 1\)"),
        ({"backtest": "val", "conformal": 0.8}, "calibrated on the validation part, so they cannot be scored on it"),
        ({"backtest": None, "baselines": True}, "add backtest=test"),
        ({"backtest": "test", "conformal": 0.8, "conformal_gamma": -1}, "conformal_gamma must be a number >= 0"),
    ],
)
def test_bad_interval_options_are_one_line_errors(forecaster, tmp_path, options, message):
    from seqmodels.predict import write_forecasts

    with pytest.raises(ValueError, match=message) as error:
        write_forecasts(_predict_cfg(forecaster, tmp_path / "out.csv", **options))
    assert "\n" not in str(error.value)


def test_the_cli_refuses_conformal_for_a_checkpoint_that_is_not_a_forecaster(tmp_path):
    ckpt = train_tiny(tmp_path / "parity", "experiment=parity")
    result = subprocess.run(
        [sys.executable, "-m", "seqmodels.cli.predict", f"ckpt_path={ckpt}", "input=0101", "conformal=0.8"],
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", "PATH": ""},
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("seqmodels-predict: error: conformal=0.8 needs a forecasting checkpoint")
    )


def test_forecast_table_quick_run_prints_one_row(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "forecast_table.py"
    result = subprocess.run(
        [sys.executable, str(script), "--quick", "--experiments", "airline", "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", "PATH": "", "SEQMODELS_LOG_DIR": str(tmp_path / "logs")},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-3].startswith("| experiment | MASE model |") and lines[-1].startswith("| airline |")
    cells = [cell.strip() for cell in lines[-1].strip("|").split("|")]
    assert len(cells) == len(lines[-3].strip("|").split("|"))
    mase = [float(cell) for cell in cells[1:6]]
    assert all(value > 0 for value in mase)
    # The naive and seasonal-naive MASE of the airline test part do not depend on the model: 2.666 and 1.762.
    assert mase[1:3] == pytest.approx([2.666, 1.762], abs=2e-3)
    assert "airline/Passengers: ETS(A,A,N)" in result.stderr
