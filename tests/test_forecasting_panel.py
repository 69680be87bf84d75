"""Global forecasting over panels: per-series scaling, static covariates, lag and rolling features."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import seqmodels
from seqmodels.checkpoint import load_checkpoint
from seqmodels.data.forecasting import ForecastingDataModule, location_scale, target_features
from seqmodels.nn import DirectForecaster, GaussianOutput, RecurrentEncoder, Seq2SeqForecaster
from seqmodels.tasks.forecasting import ForecastingTask


def one_line(info: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(info.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, (part, message)
    return message


def panel(levels=(0.0, 100.0), spreads=(1.0, 10.0), length=120, seed=0, kinds=None, sizes=None) -> pd.DataFrame:
    """Series of a shared sine shape, each at its own level and spread (plus noise), with static columns."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, (level, spread) in enumerate(zip(levels, spreads, strict=True)):
        t = np.arange(length)
        value = level + spread * (np.sin(2 * np.pi * t / 12) + 0.1 * rng.standard_normal(length))
        frame = pd.DataFrame({"time": t.astype(float), "value": value, "store": f"s{k}"})
        frame["kind"] = (kinds or ["a", "b", "c", "d"])[k]
        frame["size"] = (sizes or [1.0, 2.0, 3.0, 4.0])[k]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def datamodule(frame: pd.DataFrame, **options) -> ForecastingDataModule:
    settings = dict(
        data=frame,
        time_column="time",
        target_columns=["value"],
        past_covariates=[],
        future_covariates=[],
        series_column="store",
        calendar=None,
        lookback=12,
        horizon=4,
        val_size=24,
        test_size=24,
        batch_size=16,
    )
    settings.update(options)
    dm = ForecastingDataModule(**settings)
    dm.setup()
    return dm


def direct_task(dm: ForecastingDataModule, seed=0, **net_options) -> ForecastingTask:
    torch.manual_seed(seed)
    dims = dm.dims()
    static_input = net_options.pop("static_input", 0)
    encoder = RecurrentEncoder("lstm", input_size=dims["input_size"] + static_input, hidden_size=8, batch_first=True)
    net = DirectForecaster(
        encoder,
        horizon=dm.horizon,
        num_targets=1,
        static_cardinalities=dm.dim("static_cardinalities"),
        num_static_reals=dm.dim("num_static_reals"),
        **net_options,
    )
    task = ForecastingTask(net, optimizer=lambda params: torch.optim.Adam(params, lr=1e-2))
    task.set_scaler(dm.target_scaler())
    return task.eval()


# --------------------------------------------------------------------------------------------- scaling
def test_scalers_compute_the_documented_statistics():
    rows = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [10.0, 0.0]])
    loc, scale = location_scale(rows, "standard")
    np.testing.assert_allclose(loc, [4.0, 0.0])
    np.testing.assert_allclose(scale, [np.sqrt(((rows[:, 0] - 4) ** 2).mean()), 1.0])  # a constant column: 1
    loc, scale = location_scale(rows, "robust")
    q25, q75 = 1.75, 4.75  # numpy's linear percentiles of 1, 2, 3, 10
    np.testing.assert_allclose(loc, [2.5, 0.0])
    np.testing.assert_allclose(scale, [(q75 - q25) / 1.3489795003921634, 1.0])
    loc, scale = location_scale(rows, "mean_abs")
    np.testing.assert_allclose(loc, [0.0, 0.0])
    np.testing.assert_allclose(scale, [4.0, 1.0])
    # Gaussian data: the robust scale estimates the standard deviation.
    gauss = np.random.default_rng(0).normal(5.0, 3.0, size=(200_000, 1))
    assert abs(location_scale(gauss, "robust")[1][0] - 3.0) < 0.03


def test_per_series_statistics_come_from_each_training_part_only():
    frame = panel()
    dm = datamodule(frame, scaling="per_series")
    train_end = 120 - 48
    for name in ("s0", "s1"):
        values = frame.loc[frame.store == name, "value"].to_numpy()
        loc, scale = dm.series_stats[name]
        np.testing.assert_allclose(loc, [values[:train_end].mean()])
        np.testing.assert_allclose(scale, [values[:train_end].std()])
    # Changing held-out values moves nothing.
    changed = frame.copy()
    changed.loc[changed.groupby("store").cumcount() >= train_end, "value"] = 1e6
    other = datamodule(changed, scaling="per_series")
    for name in ("s0", "s1"):
        np.testing.assert_array_equal(other.series_stats[name][0], dm.series_stats[name][0])
        np.testing.assert_array_equal(other.series_stats[name][1], dm.series_stats[name][1])
    # Each series' windows are on a comparable scale, and carry their own statistics.
    batch = dm.train_set.take(slice(None))
    for index, name in enumerate(("s0", "s1")):
        rows = batch.series == index
        loc, scale = dm.series_stats[name]
        assert torch.allclose(batch.target_loc[rows], torch.tensor(loc, dtype=torch.float32))
        assert torch.allclose(batch.target_scale[rows], torch.tensor(scale, dtype=torch.float32))
        assert batch.inputs[rows].abs().max() < 3.0


def test_a_constant_series_scales_without_dividing_by_zero():
    frame = panel(levels=(5.0, 0.0), spreads=(0.0, 1.0))
    for scaler, scale in (("standard", 1.0), ("robust", 1.0), ("mean_abs", 5.0)):
        dm = datamodule(frame, scaling="per_series", scaler=scaler)
        assert dm.series_stats["s0"][1][0] == scale
        assert torch.isfinite(dm.train_set.tensors["inputs"]).all()


def test_global_scaling_keeps_its_windows_and_has_no_per_series_fields():
    frame = panel()
    dm = datamodule(frame)
    values = np.concatenate([frame.loc[frame.store == n, "value"].to_numpy()[:72] for n in ("s0", "s1")])
    assert dm.mean.tolist() == pytest.approx([values.mean()])
    first = dm.train_set.take(slice(0, 1))
    expected = (frame.value.to_numpy()[:12] - values.mean()) / values.std()
    np.testing.assert_allclose(first.inputs[0, :, 0].numpy(), expected, rtol=1e-6)
    assert first.target_loc is None and first.static_categoricals is None


def test_per_series_forecasts_come_back_on_each_series_scale(tmp_path):
    dm = datamodule(panel(), scaling="per_series")
    task = direct_task(dm)
    windows = dm.test_set
    with torch.no_grad():
        scaled = task.net(windows.tensors["inputs"])[..., 0]
    loc, scale = windows.tensors["target_loc"][:, None], windows.tensors["target_scale"][:, None]
    backtest = dm.backtest(task, "test")
    np.testing.assert_allclose(backtest.point, (scaled * scale + loc).numpy(), rtol=1e-5, atol=1e-4)
    # The same through the batch, and refused without the statistics.
    out = task.forecast(windows.take(slice(None)))
    np.testing.assert_allclose(out["point"].numpy(), backtest.point, rtol=1e-6)
    with pytest.raises(ValueError) as info:
        task.forecast(windows.tensors["inputs"])
    one_line(info, "scaling=per_series", "target_loc")
    # Forecasts past the end use each series' statistics; an unseen series name is refused.
    ahead = dm.forecast(task)
    assert abs(ahead.point[1].mean() - 100.0) < abs(ahead.point[0].mean() - 100.0)
    renamed = panel().replace({"store": {"s1": "s9"}})
    with pytest.raises(ValueError) as info:
        dm.forecast(task, renamed)
    one_line(info, "'s9'", "scaling=global", "retrain")
    # A streamed forecast (statistics given once, kept in the state) equals the batch forecast.
    batch = windows.take(slice(0, 3))
    out, state = task.forecast_stream(
        batch.inputs[:, :5], None, target_loc=batch.target_loc, target_scale=batch.target_scale
    )
    out, state = task.forecast_stream(batch.inputs[:, 5:], state)
    np.testing.assert_allclose(out["point"].numpy(), task.forecast(batch)["point"].numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError) as info:
        task.forecast_stream(batch.inputs, None)
    one_line(info, "scaling=per_series")


def test_per_series_statistics_travel_in_the_checkpoint(tmp_path):
    frame = panel()
    result = seqmodels.fit(
        "csv_forecast",
        data=frame,
        output_dir=tmp_path / "run",
        datamodule={
            "time_column": "time",
            "target_columns": ["value"],
            "past_covariates": [],
            "future_covariates": [],
            "series_column": "store",
            "calendar": None,
            "lookback": 12,
            "horizon": 4,
            "val_size": 24,
            "test_size": 24,
            "seasonal_period": 12,
            "scaling": "per_series",
            "scaler": "robust",
            "static_categoricals": ["kind"],
        },
        model={"net": {"encoder": {"hidden_size": 8}, "window_norm": "none"}},
        trainer={"max_epochs": 1},
    )
    assert np.isfinite(result.metrics["test/mae"])
    state = load_checkpoint(result.best_model_path)
    saved = next(v for k, v in state.items() if k.endswith("ForecastingDataModule"))
    assert set(saved["series_stats"]) == {"s0", "s1"}
    assert saved["static_vocab"] == {"kind": ["a", "b"]}
    assert bool(state["state_dict"]["target_per_series"])
    # The test metrics are the backtest's errors on the original scale.
    backtest = seqmodels.backtest(result, "test")
    assert np.abs(backtest.point - backtest.actual).mean() == pytest.approx(result.metrics["test/mae"], rel=1e-4)
    # Loaded from the checkpoint alone, the datamodule forecasts the known series as the run did.
    from seqmodels.checkpoint import build_from_checkpoint

    task, dm = build_from_checkpoint(state, setup_data=False)
    again = dm.forecast(task.eval(), frame)
    np.testing.assert_allclose(again.point, seqmodels.forecast(result, frame).point, rtol=1e-5)
    # Streaming the known series by name: the checkpoint gives their statics and statistics.
    context = dm.series_context(["s0", "s1"])
    assert context["static_categoricals"].tolist() == [[0], [1]]
    _, batch, _ = dm.last_windows(data=frame)
    out, stream = task.forecast_stream(batch.inputs[:, :7], None, **context)
    out, stream = task.forecast_stream(batch.inputs[:, 7:], stream)
    np.testing.assert_allclose(out["point"].numpy(), again.point, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError) as info:
        dm.series_context(["s0", "new"])
    one_line(info, "'new'", "not in training")


# --------------------------------------------------------------------------------------------- statics
def test_static_columns_must_be_constant_and_categories_known(tmp_path):
    frame = panel()
    frame.loc[5, "kind"] = "z"
    with pytest.raises(ValueError) as info:
        datamodule(frame, static_categoricals=["kind"])
    one_line(info, "'s0'", "'kind'", "one value per series")
    dm = datamodule(panel(), static_categoricals=["kind"], static_reals=["size"])
    assert dm.dims()["static_cardinalities"] == [2] and dm.dims()["num_static_reals"] == 1
    batch = dm.train_set.take(slice(None))
    assert batch.static_categoricals[batch.series == 1].unique().tolist() == [1]
    # Reals standardised over the series: sizes 1 and 2 -> -1 and +1.
    assert batch.static_reals[batch.series == 0].unique().tolist() == [-1.0]
    task = direct_task(dm)
    with pytest.raises(ValueError) as info:
        dm.forecast(task, panel().replace({"kind": {"b": "q"}}))
    one_line(info, "'kind'", "'q'", "not seen in training")


def test_static_columns_of_a_csv_file(tmp_path):
    frame = panel()
    path = tmp_path / "panel.csv"
    frame.to_csv(path, index=False)
    dm = datamodule(None, source="csv", path=str(path), static_categoricals=["kind"], static_reals=["size"])
    assert dm.static_vocab == {"kind": ["a", "b"]} and dm.static_real_stats == ([1.5], [0.5])
    frame.loc[frame.index[-1], "size"] = 7.0
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError) as info:
        datamodule(None, source="csv", path=str(path), static_reals=["size"])
    one_line(info, "'s1'", "'size'", "'2.0' and '7.0'")


def test_statics_from_a_separate_table(tmp_path):
    frame = panel().drop(columns=["kind", "size"])
    table = tmp_path / "stores.csv"
    table.write_text("store,kind,size\ns0,a,1\ns1,b,2\n")
    dm = datamodule(frame, static_categoricals=["kind"], static_reals=["size"], static_path=str(table))
    assert dm.static_vocab == {"kind": ["a", "b"]}
    table.write_text("store,kind,size\ns0,a,1\n")
    with pytest.raises(ValueError) as info:
        datamodule(frame, static_categoricals=["kind"], static_path=str(table))
    one_line(info, "no row for series 's1'")


@pytest.mark.parametrize("network", ["direct", "seq2seq"])
@pytest.mark.parametrize("mode", ["init", "input", "both"])
def test_streamed_forecasts_equal_batch_forecasts_with_statics(network, mode):
    torch.manual_seed(0)
    static_size = 2 * 3 + 1
    extra = static_size if mode != "init" else 0
    encoder = RecurrentEncoder("lstm", input_size=2 + extra, hidden_size=6, num_layers=2, batch_first=True)
    cls = DirectForecaster if network == "direct" else Seq2SeqForecaster
    net = cls(
        encoder,
        horizon=3,
        num_targets=1,
        output=GaussianOutput(),
        static_cardinalities=[3, 4],
        num_static_reals=1,
        static_embedding_size=3,
        static_mode=mode,
    ).eval()
    x = torch.randn(4, 9, 2)
    cats, reals = torch.tensor([[0, 1], [2, 3], [1, 0], [0, 1]]), torch.randn(4, 1)
    with torch.no_grad():
        batch = net(x, static_categoricals=cats, static_reals=reals)
        params, state = net.stream(x[:, :4], None, static_categoricals=cats, static_reals=reals)
        params, state = net.step(x[:, 4], state)
        params, state = net.stream(x[:, 5:], state)
        torch.testing.assert_close(params, batch, rtol=1e-5, atol=1e-5)
        start = net.initial_state(4, static_categoricals=cats, static_reals=reals)
        params, _ = net.stream(x, start)
        torch.testing.assert_close(params, batch, rtol=1e-5, atol=1e-5)
        # The statics change the forecast of the same inputs.
        other = net(x, static_categoricals=cats.flip(0), static_reals=reals.flip(0))
        assert (other[1:3] - batch[1:3]).abs().min() > 1e-6
    with pytest.raises(ValueError) as info:
        net(x)
    one_line(info, "static_categoricals")


@pytest.mark.learns
def test_a_model_learns_a_per_series_level_only_from_a_static_category():
    # Two series of the same noise draws, one shifted by 2: one noisy observation (lookback 1) hardly tells them
    # apart, the category does. With the static, the forecast error falls to the noise's own MAE (0.80).
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(600)
    frame = pd.concat(
        [
            pd.DataFrame({"time": np.arange(600.0), "value": noise + level, "store": f"s{k}", "kind": kind})
            for k, (level, kind) in enumerate(((-1.0, "low"), (1.0, "high")))
        ],
        ignore_index=True,
    )
    errors = {}
    for statics in ([], ["kind"]):
        dm = datamodule(frame, static_categoricals=statics, lookback=1, horizon=2, val_size=100, test_size=100)
        task = direct_task(dm, seed=0).train()
        optimizer = torch.optim.Adam(task.parameters(), lr=1e-2)
        train = dm.train_set.take(slice(None))
        generator = torch.Generator().manual_seed(0)
        for _ in range(300):
            index = torch.randint(len(dm.train_set), (64,), generator=generator)
            batch = dm.train_set.take(index)
            params = task._net(batch.inputs, None, batch.model_inputs(), batch.targets)
            loss = task.net.output.loss(params, batch.targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        del train
        backtest = dm.backtest(task.eval(), "test")
        errors[bool(statics)] = np.abs(backtest.point - backtest.actual).mean()
    assert errors[True] < 0.86, errors
    assert errors[True] < errors[False] - 0.06, errors


# --------------------------------------------------------------------------------------------- lags, rolling
def test_lag_and_rolling_features_by_hand_and_causal():
    y = torch.tensor([[1.0], [2.0], [4.0], [8.0], [16.0]], dtype=torch.float64)
    features = target_features(y, [2], [(3, "mean"), (2, "std"), (3, "min"), (2, "max")])
    nan = float("nan")
    expected = torch.tensor(
        [
            [nan, nan, nan, nan, nan],
            [nan, nan, 0.5, nan, 2.0],
            [1.0, 7 / 3, 1.0, 1.0, 4.0],
            [2.0, 14 / 3, 2.0, 2.0, 8.0],
            [4.0, 28 / 3, 4.0, 4.0, 16.0],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(features, expected, equal_nan=True)
    # No leakage: changing a value at t leaves every feature before t as it was.
    changed = y.clone()
    changed[3] = -100.0
    after = target_features(changed, [2], [(3, "mean"), (2, "std"), (3, "min"), (2, "max")])
    torch.testing.assert_close(after[:3], features[:3], equal_nan=True)
    assert not torch.equal(after[3:].nan_to_num(), features[3:].nan_to_num())


def test_lag_features_lengthen_the_history_windows_need():
    frame = panel(length=120)
    dm = datamodule(frame, lag_features=[24], rolling_features=[{"window": 6, "stat": "mean"}])
    assert dm.dims()["input_size"] == 3  # value, lag 24, rolling mean 6
    inputs = dm.train_set.tensors["inputs"]
    assert torch.isfinite(inputs).all()
    assert int(dm.train_set.tensors["origin"][0]) == 12 + 24  # lookback + the longest lag
    # The lag channel at each step is the value 24 steps earlier, on the same scale.
    first = dm.train_set.take(slice(0, 1))
    scaled = (frame.value.to_numpy()[:120] - dm.mean.item()) / dm.std.item()
    np.testing.assert_allclose(first.inputs[0, :, 1].numpy(), scaled[0:12], rtol=1e-5, atol=1e-6)
    rolling = [scaled[t - 5 : t + 1].mean() for t in range(24, 36)]
    np.testing.assert_allclose(first.inputs[0, :, 2].numpy(), rolling, rtol=1e-5, atol=1e-6)
    task = direct_task(dm)
    assert dm.forecast(task).point.shape == (2, 4, 1)
    with pytest.raises(ValueError) as info:
        dm.forecast(task, frame.groupby("store").tail(30))
    one_line(info, "lag/rolling", "longer history")
    with pytest.raises(ValueError) as info:
        dm.series_context(["s0"])
    one_line(info, "lag and rolling features", "seqmodels.forecast")
    with pytest.raises(ValueError) as info:
        datamodule(frame, rolling_features=[{"window": 1, "stat": "mean"}])
    one_line(info, "window")
    with pytest.raises(ValueError) as info:
        datamodule(frame, rolling_features=[{"window": 3, "stat": "median"}])
    one_line(info, "mean, std, min, max")


# --------------------------------------------------------------------------------------------- from the CLI config
@pytest.mark.parametrize("mode", ["init", "input"])
def test_seqmodels_train_with_every_panel_option(compose_train, tmp_path, mode):
    from seqmodels.train import train

    table = tmp_path / "stores.csv"
    table.write_text("store,format,floor_area\nnorth,mall,1200\nsouth,street,450\n")
    overrides = [
        "experiment=csv_forecast",
        "debug=fdr",
        "model.net.encoder.hidden_size=8",
        "model.net.window_norm=none",
        "data.lookback=14",
        "data.horizon=7",
        "data.scaling=per_series",
        "data.scaler=mean_abs",
        "data.lag_features=[28]",
        "data.rolling_features=[{window: 7, stat: mean}, {window: 7, stat: std}]",
        "data.static_categoricals=[format]",
        "data.static_reals=[floor_area]",
        f"data.static_path={table}",
        f"model.net.static_mode={mode}",
    ]
    if mode == "input":
        # sales, temperature, 3 lag/rolling, promo, 4 calendar channels; + 4 (embedding) + 1 (floor area)
        overrides.append("model.net.encoder.input_size=15")
    result = train(compose_train(*overrides))
    assert all(math.isfinite(result.metrics[f"test/{name}"]) for name in ("loss", "mae", "mase")), result.metrics


def test_the_python_stream_forecasts_known_series_with_their_statics_and_statistics():
    """seqmodels' ForecastStream on a per-series, static model: streaming the training series by name equals the
    batch forecast after the same observations, on each series' own scale; an unnamed stream is refused."""
    from seqmodels.api import ForecastStream

    frame = panel()
    dm = datamodule(frame, scaling="per_series", static_categoricals=["kind"])
    task = direct_task(dm)
    history = frame[frame.time < 60]
    expected = dm.forecast(task, history)
    stream = ForecastStream(task, dm, num_series=2, names=["s0", "s1"])
    # The batch forecast reads the last lookback (12) steps: stream exactly those.
    values = np.stack([history[history.store == name]["value"].to_numpy()[-12:] for name in ("s0", "s1")])
    got = stream.extend(values[:, :, None], time=history[history.store == "s0"]["time"].to_numpy()[-12:])
    np.testing.assert_allclose(got.point, expected.point, rtol=1e-5, atol=1e-4)
    assert got.point[1].mean() > 50 > got.point[0].mean()  # each series back on its own level
    with pytest.raises(ValueError) as info:
        ForecastStream(task, dm, num_series=2)  # names "0", "1": not training series
    one_line(info, "was not in training")


# --------------------------------------------------------------------------------------------- window sampling
def uneven_panel() -> pd.DataFrame:
    """A long series (1000 steps) and a short one (100 steps)."""
    long, short = panel(length=1000), panel(length=100)
    return pd.concat([long[long.store == "s0"], short[short.store == "s1"]], ignore_index=True)


def epoch_series(dm: ForecastingDataModule, loader=None) -> torch.Tensor:
    loader = loader or dm.train_dataloader()
    return torch.cat([batch.series for batch in loader])


@pytest.mark.parametrize("lazy", [False, True])
def test_series_sampling_draws_each_series_equally_often_and_window_sampling_each_window(lazy):
    by_window = datamodule(uneven_panel(), lazy_windows=lazy)
    by_series = datamodule(uneven_panel(), lazy_windows=lazy, window_sampling="series")
    windows = by_window.train_set.tensors["series"]
    short_share = (windows == 1).double().mean().item()
    assert short_share < 0.1  # the short series has about 5% of the windows
    first = epoch_series(by_window)
    assert torch.equal(first.sort().values, windows.sort().values)  # every window once
    drawn = epoch_series(by_series)
    assert len(drawn) == len(windows) and len(by_series.train_dataloader()) == len(by_window.train_dataloader())
    assert abs((drawn == 1).double().mean().item() - 0.5) < 0.05  # each series half the time
    # Within the short series, its windows are drawn evenly (with replacement), and the order is seeded by epoch.
    loader = by_series.train_dataloader()
    epochs = [torch.cat([torch.stack([b.series, b.origin], 1) for b in loader]) for _ in range(2)]
    again = datamodule(uneven_panel(), lazy_windows=lazy, window_sampling="series").train_dataloader()
    assert torch.equal(torch.cat([torch.stack([b.series, b.origin], 1) for b in again]), epochs[0])
    assert not torch.equal(epochs[0], epochs[1])
    short_origins = epochs[0][epochs[0][:, 0] == 1, 1]
    counts = torch.bincount(short_origins - short_origins.min())
    assert counts.float().std() / counts.float().mean() < 0.6  # about 20 draws per window, none ignored
    assert (counts > 0).float().mean() > 0.95


def test_series_sampling_shards_one_draw_across_processes_and_bad_values_are_refused():
    dm = datamodule(uneven_panel(), window_sampling="series")
    from seqmodels.data.forecasting import WindowLoader, series_balancing_weights

    weights = series_balancing_weights(dm.train_set)
    ranks = [WindowLoader(dm.train_set, 16, True, seed=3, num_replicas=2, rank=r, weights=weights) for r in (0, 1)]
    whole = WindowLoader(dm.train_set, 16, True, seed=3, weights=weights)
    parts = [torch.cat([torch.stack([b.series, b.origin], 1) for b in loader]) for loader in ranks]
    full = torch.cat([torch.stack([b.series, b.origin], 1) for b in whole])
    assert torch.equal(parts[0], full[0::2]) and torch.equal(parts[1], full[1::2])
    with pytest.raises(ValueError, match="data.window_sampling must be one of window, series, got 'panel'"):
        datamodule(uneven_panel(), window_sampling="panel")
    with pytest.raises(ValueError, match="weights need shuffle=True"):
        WindowLoader(dm.train_set, 16, False, weights=weights)
