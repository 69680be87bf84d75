"""Per-series conformal calibration: on a panel whose series have known, different noise levels, per-series radii
cover every series at its level while pooled ones over-cover the calm series and under-cover the volatile one; too
few validation windows for a level is a one-line error (or the pooled radius, with fallback="pooled"); and the
seqmodels-predict path end to end on a tiny panel.

The array tests use a fake forecaster that knows the noise-free signal, so every score is exactly |noise|.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqmodels.conformal import (
    PerSeriesConformal,
    SplitConformal,
    adaptive_conformal,
    calibrate_conformal,
    check_scope,
    conformal_backtest,
    conformal_quantile,
    coverage_by_series,
    min_calibration_size,
)

SIGMAS = {"calm": 0.25, "mid": 1.0, "volatile": 4.0}


def noisy_panel(n: int, T: int, H: int = 3, seed: int = 0):
    """n calibration and T test windows per series, Gaussian noise of each series' sigma around a shared signal.
    Returns (calibration point, actual, series), (test point, actual, series), the test windows' origins."""
    rng = np.random.default_rng(seed)
    parts = []
    for count in (n, T):
        names = np.repeat(list(SIGMAS), count).astype(object)
        sigma = np.array([SIGMAS[name] for name in names])[:, None, None]
        signal = 3.0 * rng.normal(size=(len(names), H, 1))
        parts.append((signal, signal + sigma * rng.normal(size=signal.shape), names))
    origin = np.tile(np.arange(T), len(SIGMAS))
    return parts[0], parts[1], origin


@pytest.mark.parametrize("level", [0.8, 0.95])
def test_per_series_radii_cover_each_series_where_pooled_ones_miss_the_extremes(level):
    n, T, H = 400, 2000, 3
    (cal_point, cal_actual, cal_series), (point, actual, series), _ = noisy_panel(n, T, H)
    per_series = calibrate_conformal(cal_point, cal_actual, "per_series", cal_series)
    pooled = calibrate_conformal(cal_point, cal_actual, "pooled")
    assert isinstance(per_series, PerSeriesConformal) and isinstance(pooled, SplitConformal)
    assert per_series.sizes() == {"calm": n, "mid": n, "volatile": n}
    own = coverage_by_series(*per_series.interval(point, level, series), actual, series)
    shared = coverage_by_series(*pooled.interval(point, level, series), actual, series)
    # As in test_conformal: the coverage of one series averages H independent calibrations of n scores, each
    # Beta-distributed around k / (n + 1) = ceil((n + 1) level) / (n + 1), and T test values per step.
    target = math.ceil((n + 1) * level) / (n + 1)
    tolerance = 4 * math.sqrt(level * (1 - level) * (1 / (n + 2) + 1 / T) / H)
    for name in SIGMAS:
        assert abs(own[name] - target) <= tolerance, (name, own[name], tolerance)
    # Pooled radii sit between the sigmas: the calm series is covered almost always, the volatile one far too
    # rarely (0.42 at 80%, 0.85 at 95%: several tolerances short), though the pooled average is about right.
    assert shared["calm"] > 0.99 and shared["volatile"] < level - max(0.08, 2 * tolerance), shared
    assert abs(np.mean(list(shared.values())) - level) < 0.06
    # Each series' radius is the conformal quantile of its own scores, estimating sigma * z.
    z = {0.8: 1.2816, 0.95: 1.9600}[level]
    radius = per_series.radius(level, np.array(["volatile", "calm"], dtype=object))
    assert radius[0] == pytest.approx(np.full((H, 1), SIGMAS["volatile"] * z), rel=0.15)
    assert radius[1] == pytest.approx(np.full((H, 1), SIGMAS["calm"] * z), rel=0.15)
    calm_scores = np.abs(cal_actual - cal_point)[cal_series == "calm"]
    assert np.array_equal(radius[1], conformal_quantile(calm_scores, level))


def test_too_few_windows_of_one_series_is_a_one_line_error_or_the_pooled_radius():
    (cal_point, cal_actual, cal_series), (point, _, series), _ = noisy_panel(50, 5, H=2)
    keep = (cal_series != "calm") | (np.cumsum(cal_series == "calm") <= 10)  # calm: 10 validation windows
    cal_point, cal_actual, cal_series = cal_point[keep], cal_actual[keep], cal_series[keep]
    calibration = calibrate_conformal(cal_point, cal_actual, "per_series", cal_series)
    assert calibration.sizes() == {"calm": 10, "mid": 50, "volatile": 50}
    calibration.check([0.8])  # 10 >= 4 windows: fine
    assert min_calibration_size(0.95) == 19
    with pytest.raises(ValueError) as error:
        calibration.check([0.8, 0.95])
    message = str(error.value)
    assert "\n" not in message
    assert "series 'calm' has 10 validation windows, but a 95% interval needs at least 19" in message
    assert "conformal_fallback=pooled" in message
    with pytest.raises(ValueError, match="series 'calm' has 10"):
        calibration.interval(point, 0.95, series)
    # A series forecast but never calibrated has 0 windows.
    with pytest.raises(ValueError, match="series 'new' has 0 validation windows, but a 80% interval needs at least 4"):
        calibration.interval(point[:1], 0.8, np.array(["new"], dtype=object))
    # fallback="pooled": the short series takes the pooled radius, the others keep their own.
    lenient = calibrate_conformal(cal_point, cal_actual, "per_series", cal_series, fallback="pooled")
    lenient.check([0.95])
    assert lenient.fallback_series(0.95) == ["calm"] and lenient.fallback_series(0.8) == []
    pooled_radius = SplitConformal.calibrate(cal_point, cal_actual).radius(0.95)
    lower, upper = lenient.interval(point, 0.95, series)
    assert np.allclose((upper - point)[series == "calm"], pooled_radius)
    volatile = np.abs(cal_actual - cal_point)[cal_series == "volatile"]
    assert np.allclose((upper - point)[series == "volatile"], conformal_quantile(volatile, 0.95))


@pytest.mark.parametrize(
    "scope,fallback,message",
    [
        ("per-series", "error", "conformal_scope must be one of pooled, per_series, got 'per-series'"),
        ("pooled", "skip", "conformal_fallback must be one of error, pooled, got 'skip'"),
    ],
)
def test_bad_scope_or_fallback_is_a_one_line_error(scope, fallback, message):
    with pytest.raises(ValueError, match=message) as error:
        check_scope(scope, fallback)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="needs the series of each calibration window"):
        calibrate_conformal(np.zeros((4, 1, 1)), np.ones((4, 1, 1)), "per_series")


def test_adaptive_conformal_starts_each_series_from_its_own_scores():
    (cal_point, cal_actual, cal_series), (point, actual, series), origin = noisy_panel(200, 300, H=2, seed=1)
    level, gamma = 0.8, 0.05
    found = conformal_backtest(
        cal_point, cal_actual, point, [level], actual, gamma, series, origin, "per_series", cal_series
    )
    per_series = PerSeriesConformal.calibrate(cal_point, cal_actual, cal_series)
    lower, upper = found["conformal"][level]
    assert np.array_equal(upper, per_series.interval(point, level, series)[1])
    adaptive_lower, adaptive_upper = found["adaptive"][level]
    for name in SIGMAS:
        rows = np.flatnonzero(series == name)
        # Before any feedback, alpha is the target: the first window's radius is the split per-series one.
        assert np.allclose(adaptive_upper[rows[0]], upper[rows[0]])
        alone = adaptive_conformal(
            point[rows], actual[rows], per_series.calibrations[name].scores, level, gamma, origin=origin[rows]
        )
        assert np.array_equal(alone.lower, adaptive_lower[rows])
        inside = (actual[rows] >= adaptive_lower[rows]) & (actual[rows] <= adaptive_upper[rows])
        assert abs(inside.mean() - level) < 0.06, (name, inside.mean())
    with pytest.raises(ValueError, match="no calibration scores for series 'mid'"):
        adaptive_conformal(point, actual, {"calm": np.ones((5, 2, 1))}, level, gamma, series, origin)


# --------------------------------------------------------------------------------------------- seqmodels-predict
def _panel_csv(path: Path, length: int = 160) -> Path:
    """Three stores of white noise around their own level, of spread 0.2, 1 and 5."""
    rng = np.random.default_rng(0)
    frames = [
        pd.DataFrame(
            {"time": np.arange(length, dtype=float), "value": level + spread * rng.normal(size=length)}
        ).assign(store=name)
        for name, level, spread in (("calm", 10.0, 0.2), ("mid", 0.0, 1.0), ("volatile", -10.0, 5.0))
    ]
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def panel_forecaster(tmp_path_factory) -> Path:
    from tiny_runs import train_tiny

    root = tmp_path_factory.mktemp("panel")
    return train_tiny(
        root / "run",
        "experiment=csv_forecast",
        f"data.path={_panel_csv(root / 'panel.csv')}",
        "data.time_column=time",
        "data.target_columns=[value]",
        "data.past_covariates=[]",
        "data.future_covariates=[]",
        "data.calendar=[]",
        "data.lookback=8",
        "data.horizon=2",
        "data.val_size=40",
        "data.test_size=40",
        "model.net.encoder.hidden_size=8",
        "model.plot_every_n_epochs=0",
    )


def _predict(ckpt: Path, cwd: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seqmodels.cli.predict", f"ckpt_path={ckpt}", "backtest=test", *options],
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", "PATH": ""},
        cwd=cwd,
        timeout=600,
    )


def test_seqmodels_predict_calibrates_each_series_on_its_own_and_prints_its_coverage(panel_forecaster, tmp_path):
    from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint

    out = tmp_path / "backtest.csv"
    # ++: the key is added to the predict config when it does not declare it, and set when it does.
    result = _predict(
        panel_forecaster, tmp_path, "conformal=[0.8,0.9]", "++conformal_scope=per_series", f"output_file={out}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(out.open()))
    # The radius of series s at step h: the conformal quantile of that series' validation errors at step h.
    model, datamodule = build_from_checkpoint(load_checkpoint(panel_forecaster))
    validation = datamodule.backtest(model, "val")
    names = np.asarray(validation.series)
    errors = np.abs(validation.actual - validation.point)
    assert sorted(set(names)) == ["calm", "mid", "volatile"] and (names == "calm").sum() == 39
    for row in rows:
        radius = conformal_quantile(errors[names == row["series"]], 0.9)[int(row["step"]) - 1, 0]
        assert float(row["conformal_upper_90"]) - float(row["forecast"]) == pytest.approx(radius, rel=1e-3, abs=2e-3)
    pooled_radius = conformal_quantile(errors, 0.9)[:, 0]
    calm = [float(r["conformal_upper_90"]) - float(r["forecast"]) for r in rows if r["series"] == "calm"]
    assert min(abs(np.array(calm[:2]) - pooled_radius)) > 1e-2  # not the pooled radius
    # The per-series table under the backtest table agrees with the CSV.
    lines = result.stderr.splitlines()
    start = lines.index("coverage by series (conformal_scope=per_series):")
    header, *table = lines[start + 1 : start + 5]
    assert header.split()[:2] == ["series", "windows"] and "conformal" in header and "adaptive" in header
    position = header.index("conformal 80%")  # the column's name holds a space: read its cells by position
    for line in table:
        name = line.split()[0]
        inside = [
            float(r["conformal_lower_80"]) <= float(r["actual"]) <= float(r["conformal_upper_80"])
            for r in rows
            if r["series"] == name
        ]
        assert line.split()[1] == "39"
        assert float(line[position:].split()[0]) == pytest.approx(sum(inside) / len(inside), abs=1e-3)
    # The pooled default prints the per-series table too, labelled as pooled.
    pooled = _predict(panel_forecaster, tmp_path, "conformal=0.8", f"output_file={tmp_path / 'pooled.csv'}")
    assert pooled.returncode == 0, pooled.stderr[-3000:]
    assert "coverage by series (conformal_scope=pooled):" in pooled.stderr


def test_seqmodels_predict_names_the_series_short_of_windows_in_one_line(panel_forecaster, tmp_path):
    # 39 validation windows per series; a 99% radius needs 99.
    result = _predict(panel_forecaster, tmp_path, "conformal=0.99", "++conformal_scope=per_series")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("seqmodels-predict: error: conformal_scope=per_series: series 'calm' has 39 validation")
    assert "a 99% interval needs at least 99" in last
    lenient = _predict(
        panel_forecaster, tmp_path, "conformal=0.99", "++conformal_scope=per_series", "++conformal_fallback=pooled"
    )
    assert lenient.returncode == 0, lenient.stderr[-3000:]
    assert "series calm, mid, volatile have too few validation windows of their own" in lenient.stderr
    bad = _predict(panel_forecaster, tmp_path, "conformal=0.8", "++conformal_scope=global")
    assert bad.returncode == 1 and "conformal_scope must be one of pooled, per_series, got 'global'" in bad.stderr
