"""Forecasting data, networks and metrics: splits by time, train-only scaling, ordered quantiles, clear errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from seqmodels.data.forecasting import ForecastingDataModule, TargetScaler
from seqmodels.data.timeseries_sources import calendar_features, future_times, load_builtin, parse_time
from seqmodels.nn import (
    DirectForecaster,
    GaussianOutput,
    PointOutput,
    QuantileOutput,
    RecurrentEncoder,
    Seq2SeqForecaster,
)
from seqmodels.tasks.forecasting import ForecastMetrics


def write_csv(path: Path, rows: list[str], header: str = "time,value") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def ramp_csv(tmp_path: Path, n: int = 100, jump_after: int | None = None) -> Path:
    """value = t (plus 1000 after ``jump_after``): a window's values tell exactly which steps it holds."""
    values = [t + (1000 if jump_after is not None and t >= jump_after else 0) for t in range(n)]
    return write_csv(tmp_path / "ramp.csv", [f"{t},{v}" for t, v in enumerate(values)])


def ramp_module(path: Path, **kwargs) -> ForecastingDataModule:
    options = dict(
        source="csv",
        path=path,
        time_column="time",
        target_columns="value",
        lookback=8,
        horizon=5,
        val_size=20,
        test_size=20,
        calendar=None,
        batch_size=16,
    )
    options.update(kwargs)
    dm = ForecastingDataModule(**options)
    dm.setup()
    return dm


# --------------------------------------------------------------------------------------------- splits
def test_windows_never_cross_the_split_boundary(tmp_path):
    dm = ramp_module(ramp_csv(tmp_path))  # 100 steps: train 0-59, val 60-79, test 80-99
    scaler = dm.target_scaler()
    bounds = {"train": (0, 60), "val": (60, 80), "test": (80, 100)}
    for split, (start, end) in bounds.items():
        windows = getattr(dm, f"{split}_set").tensors
        steps_in = scaler.inverse(windows["inputs"][..., :1]).squeeze(-1).round()  # (W, L): time indices
        steps_out = scaler.inverse(windows["targets"]).squeeze(-1).round()  # (W, H)
        assert steps_out.min() >= start and steps_out.max() <= end - 1, split
        # Inputs are the L steps right before the first target.
        assert torch.equal(steps_in[:, -1] + 1, steps_out[:, 0])
        assert torch.equal(windows["origin"].float(), steps_out[:, 0])
        if split == "train":
            assert steps_in.max() < 60 and len(windows["inputs"]) == 60 - 8 - 5 + 1
        else:  # every origin of the part whose horizon fits inside it
            assert len(windows["inputs"]) == 20 - 5 + 1


def test_scaler_statistics_come_from_the_training_part_only(tmp_path):
    dm = ramp_module(ramp_csv(tmp_path, jump_after=60))  # held-out values jump by 1000
    assert dm.mean[0].item() == pytest.approx(np.mean(np.arange(60)), rel=1e-6)
    assert dm.std[0].item() == pytest.approx(np.std(np.arange(60)), rel=1e-6)
    plain = ramp_module(ramp_csv(tmp_path, jump_after=None))
    assert torch.equal(dm.mean, plain.mean) and torch.equal(dm.std, plain.std)
    # ...and a checkpoint's statistics replace a refit.
    restored = ForecastingDataModule(
        source="csv",
        path=tmp_path / "ramp.csv",
        time_column="time",
        lookback=8,
        horizon=5,
        val_size=20,
        test_size=20,
        calendar=None,
    )
    restored.load_state_dict({"mean": [5.0], "std": [2.0], "calendar_names": [], "transform": "none"})
    restored.setup()
    assert restored.target_scaler().mean.item() == 5.0


@pytest.mark.parametrize("transform", ["none", "log"])
def test_inverse_scaling_round_trips(tmp_path, transform):
    values = torch.tensor([[1.0, 50.0], [3.0, 700.0]])
    scaler = TargetScaler(torch.tensor([0.5, 2.0]), torch.tensor([2.0, 0.25]), transform)
    assert torch.allclose(scaler.inverse(scaler(values)), values, rtol=1e-5)
    dm = ramp_module(write_csv(tmp_path / "pos.csv", [f"{t},{t + 1}" for t in range(100)]), transform=transform)
    batch = next(iter(dm.test_dataloader()))
    assert torch.allclose(dm.target_scaler().inverse(batch.targets), batch.actual, rtol=1e-4)


def test_baselines_and_mase_scale(tmp_path):
    period = 4
    rows = [f"{t},{[1.0, 5.0, 2.0, 8.0][t % period] + 0.5 * t}" for t in range(80)]  # season + trend
    dm = ramp_module(
        write_csv(tmp_path / "s.csv", rows), seasonal_period=period, lookback=6, horizon=6, val_size=16, test_size=16
    )
    batch = next(iter(dm.val_dataloader()))
    origin = batch.origin
    values = torch.tensor([[1.0, 5.0, 2.0, 8.0][t % period] + 0.5 * t for t in range(80)])
    assert torch.allclose(batch.naive[:, :, 0], values[origin - 1][:, None].expand(-1, 6))
    # A season back (two seasons for steps 5-6): off by the trend, 0.5 per step.
    expected_gap = 0.5 * period * (torch.arange(6) // period + 1)
    assert torch.allclose(batch.actual[:, :, 0] - batch.seasonal_naive[:, :, 0], expected_gap.expand(len(origin), -1))
    assert torch.allclose(batch.mase_scale, torch.full_like(batch.mase_scale, 0.5 * period))  # in-sample seasonal MAE


def test_a_panel_of_series_with_covariates_and_calendar(tmp_path):
    days = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-03-01"))
    rows = [
        f"{d},{store},{10 + i % 7 + s},{i % 5},{i % 2}"
        for s, store in enumerate(("a", "b"))
        for i, d in enumerate(days)
    ]
    path = write_csv(tmp_path / "panel.csv", rows, header="date,store,sales,temp,promo")
    dm = ForecastingDataModule(
        source="csv",
        path=path,
        time_column="date",
        target_columns=["sales"],
        past_covariates=["temp"],
        future_covariates=["promo"],
        series_column="store",
        lookback=14,
        horizon=7,
        val_size=7,
        test_size=7,
        seasonal_period=7,
    )
    dm.setup()
    # targets, temp, promo, then sin/cos of day of year and of day of week
    assert dm.dims() == {"input_size": 7, "num_targets": 1, "future_size": 5, "lookback": 14, "horizon": 7}
    assert set(dm.train_set.tensors["series"].tolist()) == {0, 1}
    batch = next(iter(dm.test_dataloader()))
    assert batch.future.shape == (2, 7, 5)  # one test window per store
    promo_scaled = batch.future[..., 0]
    assert batch.origin.tolist() == [53, 53]  # 60 days, the last 7 are the test part
    assert torch.equal(promo_scaled > 0, torch.tensor([[(53 + h) % 2 == 1 for h in range(7)]] * 2))


# --------------------------------------------------------------------------------------------- sources
def test_co2_missing_values_are_interpolated_or_refused():
    series = load_builtin("co2", missing="interpolate")
    assert len(series) == 2284 and not np.isnan(series.values).any()
    raw = load_builtin("co2", missing="ffill")
    gap = int(np.flatnonzero(np.diff(series.values[:, 0]) != np.diff(raw.values[:, 0]))[0]) + 1
    assert raw.values[gap, 0] == raw.values[gap - 1, 0]  # carried forward
    with pytest.raises(ValueError, match=r"column 'co2' has 59 missing values.*data.missing=interpolate"):
        load_builtin("co2", missing="error")


def test_nan_in_an_input_column_is_a_clear_error(tmp_path):
    rows = [f"{t},{'' if t == 30 else t},{t % 3 if t != 41 else 'nan'}" for t in range(100)]
    path = write_csv(tmp_path / "gaps.csv", rows, header="time,value,temp")
    with pytest.raises(ValueError, match=r"column 'value' has 1 missing values \(first at row 32\)"):
        ramp_module(path)
    only_temp = write_csv(
        tmp_path / "g2.csv", [f"{t},{t},{t if t != 41 else ''}" for t in range(100)], header="time,value,temp"
    )
    with pytest.raises(ValueError, match=r"column 'temp' has 1 missing values"):
        ramp_module(only_temp, past_covariates=["temp"])
    assert ramp_module(path, missing="interpolate").train_set.tensors["inputs"].isfinite().all()


def test_a_time_column_that_is_not_increasing_is_a_clear_error(tmp_path):
    rows = [f"2024-01-{d:02d},{d}" for d in (1, 2, 3, 5, 4, 6)]
    with pytest.raises(ValueError, match=r"time column 'time' goes back at row 5 .*sort the rows by time"):
        ramp_module(write_csv(tmp_path / "t.csv", rows))
    rows = [f"{t},{t}" for t in (1, 2, 2, 3)]
    with pytest.raises(ValueError, match="repeats at row 3"):
        ramp_module(write_csv(tmp_path / "d.csv", rows))
    with pytest.raises(ValueError, match="cannot read 'soon' as a date"):
        parse_time(["2024-01-01", "soon"], "time")


def test_too_short_parts_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="shorter than lookback \\+ horizon"):
        ramp_module(ramp_csv(tmp_path, n=40))
    with pytest.raises(ValueError, match="the val part \\(3 steps\\) is shorter than horizon=5"):
        ramp_module(ramp_csv(tmp_path), val_size=3)
    with pytest.raises(ValueError, match="no column 'sales'; its columns are time, value"):
        ramp_module(ramp_csv(tmp_path), target_columns="sales")


def test_calendar_and_future_times_follow_the_calendar():
    months = np.array([np.datetime64("1960-11-01", "s"), np.datetime64("1960-12-01", "s")])
    assert [str(t)[:10] for t in future_times(months, 3)] == ["1961-01-01", "1961-02-01", "1961-03-01"]
    assert future_times(np.array([2007.0, 2008.0]), 2).tolist() == [2009.0, 2010.0]
    features = calendar_features(np.array(["2024-01-15", "2024-12-15"], dtype="datetime64[s]"), ["month"])
    assert features.shape == (2, 2) and np.allclose(features[0], [0.0, 1.0]) and features[1, 0] < 0  # Dec before Jan


# --------------------------------------------------------------------------------------------- networks
def encoder(input_size: int = 1, hidden: int = 8, cell: str = "lstm") -> RecurrentEncoder:
    return RecurrentEncoder(cell, input_size, hidden, batch_first=True)


def test_quantile_outputs_are_ordered():
    output = QuantileOutput([0.05, 0.25, 0.5, 0.75, 0.95])
    params = 5 * torch.randn(64, 7, 2, 5)  # raw values in any order
    q = output.quantiles(params)
    assert (q.diff(dim=-1) >= 0).all()  # never crossing (a vanishing gap may round to equal in float32)
    assert not torch.equal(q.sort(dim=-1).values, params)  # the raw values were not ordered
    lower, upper = output.interval(params)
    assert torch.equal(output.point(params), q[..., 2]) and (lower < upper).all()
    net = DirectForecaster(encoder(3), horizon=7, num_targets=2, output=output, future_size=0)
    forecast = net.predict(torch.randn(4, 10, 3))
    assert (forecast["quantiles"].diff(dim=-1) >= 0).all()
    with pytest.raises(ValueError, match="must include 0.5"):
        QuantileOutput([0.1, 0.9])


def test_pinball_loss_is_minimised_by_the_true_quantiles():
    torch.manual_seed(0)
    targets = torch.randn(20000, 1, 1)
    output = QuantileOutput([0.1, 0.5, 0.9])
    raw = torch.zeros(1, 1, 1, 3, requires_grad=True)
    optimizer = torch.optim.Adam([raw], lr=0.05)
    for _ in range(400):
        optimizer.zero_grad()
        output.loss(raw.expand(len(targets), -1, -1, -1), targets).backward()
        optimizer.step()
    learned = output.quantiles(raw.detach()).flatten()
    assert torch.allclose(learned, torch.tensor([-1.2816, 0.0, 1.2816]), atol=0.08), learned


def test_gaussian_interval_and_loss():
    output = GaussianOutput(interval=0.8)
    params = torch.zeros(1, 1, 1, 2)
    params[..., 1] = math.log(math.e - 1)  # softplus -> scale 1 (+ min_scale)
    lower, upper = output.interval(params)
    assert upper.item() == pytest.approx(1.2816 * 1.001, abs=1e-3) and lower.item() == pytest.approx(-upper.item())
    nll = output.loss(params, torch.zeros(1, 1, 1))
    assert nll.item() == pytest.approx(0.5 * math.log(2 * math.pi), abs=1e-2)


@pytest.mark.parametrize("network", ["direct", "seq2seq"])
@pytest.mark.learns
def test_a_horizon_longer_than_the_lookback_trains(network):
    """A horizon longer than the lookback trains: the loss falls to under half its first value.

    Catches: targets misaligned with the horizon, a head or decoder that cannot reach later steps.
    """
    torch.manual_seed(0)
    lookback, horizon = 6, 20
    t = torch.arange(400.0)
    series = torch.sin(2 * math.pi * t / 16)
    starts = torch.arange(0, 400 - lookback - horizon)
    windows = torch.stack([series[s : s + lookback + horizon] for s in starts])
    inputs, targets = windows[:, :lookback, None], windows[:, lookback:, None]
    cls = DirectForecaster if network == "direct" else Seq2SeqForecaster
    net = cls(encoder(1, 16), horizon=horizon, num_targets=1, output=PointOutput("mse"))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    first = None
    for _ in range(60):
        optimizer.zero_grad()
        loss = net.output.loss(net(inputs, None, targets), targets)
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss.item()
    net.eval()
    with torch.no_grad():
        params = net(inputs)
    assert params.shape == (len(inputs), horizon, 1, 1)
    assert net.output.loss(params, targets).item() < 0.5 * first


def test_seq2seq_teacher_forcing_feeds_the_truth_and_evaluation_its_own_forecasts():
    torch.manual_seed(0)
    net = Seq2SeqForecaster(encoder(3, 8), horizon=5, num_targets=1, future_size=2, teacher_forcing=1.0)
    inputs, future, targets = torch.randn(4, 7, 3), torch.randn(4, 5, 2), torch.randn(4, 5, 1)
    forced = net.train()(inputs, future, targets)
    free = net.eval()(inputs, future, targets)
    assert torch.allclose(forced[:, 0], free[:, 0], atol=1e-6)  # the first step sees the last observed value
    assert not torch.allclose(forced[:, 1:], free[:, 1:])
    # The fused teacher-forced pass equals the step-by-step loop fed the truth every step.
    net.train()
    net.teacher_forcing = 0.999999
    torch.manual_seed(1)
    stepwise = net(inputs, future, targets)
    assert torch.allclose(forced, stepwise, atol=1e-5)
    net.teacher_forcing = 0.0  # scheduled sampling's end point: training sees only its own forecasts
    assert torch.allclose(net(inputs, future, targets), free, atol=1e-5)


def test_window_norm_makes_forecasts_shift_with_the_level():
    torch.manual_seed(0)
    net = DirectForecaster(encoder(1, 8), horizon=4, num_targets=1, window_norm="last").eval()
    inputs = torch.randn(3, 10, 1)
    shifted = net(inputs + 100.0)
    assert torch.allclose(shifted, net(inputs) + 100.0, atol=1e-4)


def test_forecast_metrics_match_their_definitions():
    actual = torch.tensor([[[2.0], [4.0]], [[1.0], [0.0]]])  # (N=2, H=2, C=1)
    point = torch.tensor([[[3.0], [4.0]], [[1.0], [2.0]]])
    naive = torch.ones_like(actual)
    scale = torch.tensor([[2.0], [0.5]])
    metric = ForecastMetrics()
    metric.update(point, actual, scale, naive, naive, lower=point - 0.5, upper=point + 0.5, loss=torch.tensor(3.0))
    values = metric.compute()
    errors = torch.tensor([1.0, 0.0, 0.0, 2.0])
    assert values["mae"].item() == pytest.approx(errors.mean().item())
    assert values["rmse"].item() == pytest.approx(errors.pow(2).mean().sqrt().item())
    assert values["smape"].item() == pytest.approx(100 / 4 * (2 * 1 / 5 + 0 + 0 + 2 * 2 / 2))
    assert values["mase"].item() == pytest.approx((1 / 2 + 0 + 0 + 2 / 0.5) / 4)
    assert values["coverage"].item() == pytest.approx(0.5)
    assert values["naive_mae"].item() == pytest.approx((1 + 3 + 0 + 1) / 4)
    assert values["loss"].item() == pytest.approx(3.0)
