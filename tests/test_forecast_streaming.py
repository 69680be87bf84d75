"""Streaming forecasters: ``initial_state`` / ``step`` / ``stream`` read new observations into the state and forecast
the horizon after them; the forecast equals ``forward`` over the whole prefix as lookback, in any chunking, and a
saved state resumes. ``ForecastStream`` does the same on the data's own scale and matches the batch forecast."""

from __future__ import annotations

import io
from functools import partial

import numpy as np
import pytest
import torch

import seqmodels
from seqmodels.api import ForecastStream, stream_forecast
from seqmodels.data.forecasting import ForecastingDataModule
from seqmodels.data.timeseries_sources import Series
from seqmodels.nn import (
    DirectForecaster,
    GaussianOutput,
    PointOutput,
    QuantileOutput,
    RecurrentEncoder,
    Seq2SeqForecaster,
)
from seqmodels.tasks.forecasting import ForecastingTask

OUTPUTS = {"point": PointOutput, "gaussian": GaussianOutput, "quantile": partial(QuantileOutput, (0.1, 0.5, 0.9))}
NETWORKS = {"direct": DirectForecaster, "seq2seq": Seq2SeqForecaster}
C_IN, C, H = 3, 2, 4


def one_line(info: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(info.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, (part, message)
    return message


def make_net(network="direct", cell="lstm", output="point", future_size=0, num_layers=1, seed=0, **encoder):
    torch.manual_seed(seed)
    window_norm = encoder.pop("window_norm", "none")
    enc = RecurrentEncoder(cell, input_size=C_IN, hidden_size=8, num_layers=num_layers, batch_first=True, **encoder)
    net = NETWORKS[network](
        enc, horizon=H, num_targets=C, output=OUTPUTS[output](), future_size=future_size, window_norm=window_norm
    )
    return net.eval()


def observations(n=2, t=10, future_size=0, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, C_IN, generator=g)
    future = torch.randn(n, H, future_size, generator=g) if future_size else None
    return x, future


# --------------------------------------------------------------------------------------------- equality
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("future_size", [0, 3])
@pytest.mark.parametrize("output", list(OUTPUTS))
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
@pytest.mark.parametrize("network", list(NETWORKS))
@torch.no_grad()
def test_each_step_forecasts_as_forward_over_the_whole_prefix(network, cell, output, future_size, num_layers):
    net = make_net(network, cell, output, future_size, num_layers)
    x, future = observations(future_size=future_size)
    state = None
    for t in range(x.shape[1]):
        params, state = net.step(x[:, t], state, future)
        assert params.shape == (2, H, C, net.output.num_params)
        torch.testing.assert_close(params, net(x[:, : t + 1], future), rtol=0, atol=1e-6)
    # From an explicit initial state (zeros) as from None.
    explicit = net.initial_state(2)
    for t in range(3):
        params, explicit = net.step(x[:, t], explicit, future)
    torch.testing.assert_close(params, net(x[:, :3], future), rtol=0, atol=1e-6)


@pytest.mark.parametrize("network", list(NETWORKS))
@pytest.mark.parametrize(
    "encoder", [{"cell": "lstm", "proj_size": 4}, {"cell": "lstm", "impl": "custom", "layer_norm": True}]
)
@torch.no_grad()
def test_projected_and_custom_encoders_stream_too(network, encoder):
    net = make_net(network, output="gaussian", future_size=2, **encoder)
    x, future = observations(future_size=2)
    params, state = net.stream(x[:, :4], None, future)
    params, state = net.step(x[:, 4], state, future)
    torch.testing.assert_close(params, net(x[:, :5], future), rtol=0, atol=1e-6)


@pytest.mark.parametrize("network", list(NETWORKS))
@torch.no_grad()
def test_any_chunking_reaches_the_same_forecast_and_state(network):
    net = make_net(network, "lstm", "quantile", future_size=2, num_layers=2)
    x, future = observations(t=40, future_size=2)
    _, stepped = net.stream(x, None, future)  # one chunk: the reference state
    rng = np.random.default_rng(0)
    for _ in range(4):
        cuts = np.sort(rng.choice(np.arange(1, 40), size=int(rng.integers(1, 8)), replace=False)).tolist()
        state, start = None, 0
        for end in [*cuts, 40]:
            params, state = net.stream(x[:, start:end], state, future)
            torch.testing.assert_close(params, net(x[:, :end], future), rtol=0, atol=1e-6)
            start = end
        for mine, reference in zip(state["encoder"], stepped["encoder"], strict=True):
            torch.testing.assert_close(mine, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("network", list(NETWORKS))
@torch.no_grad()
def test_a_saved_state_resumes_the_stream(network):
    net = make_net(network, "lstm", "gaussian", future_size=1)
    x, future = observations(t=12, future_size=1)
    _, state = net.stream(x[:, :7], None, future)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert set(loaded) == ({"encoder", "last"} if network == "seq2seq" else {"encoder"})
    resumed, _ = net.stream(x[:, 7:], loaded, future)
    torch.testing.assert_close(resumed, net(x, future), rtol=0, atol=1e-6)


def test_initial_state_shapes_device_and_dtype():
    lstm = make_net("seq2seq", "lstm", num_layers=2, proj_size=4)
    state = lstm.initial_state(5, dtype=torch.float64)
    h, c = state["encoder"]
    assert h.shape == (2, 5, 4) and c.shape == (2, 5, 8) and h.dtype == torch.float64
    assert state["last"].shape == (5, C) and not state["last"].any()
    gru = make_net("direct", "gru").initial_state(3, device="cpu")
    assert set(gru) == {"encoder"} and gru["encoder"].shape == (1, 3, 8)


# --------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("network", list(NETWORKS))
def test_window_norm_last_refuses_to_stream(network):
    net = make_net(network, window_norm="last")
    x, _ = observations()
    for call in (lambda: net.initial_state(2), lambda: net.step(x[:, 0], None), lambda: net.stream(x, None)):
        with pytest.raises(ValueError) as info:
            call()
        one_line(info, "window_norm='last'", "window_norm=none")


def test_a_bidirectional_encoder_refuses_to_stream():
    net = make_net("direct", bidirectional=True)
    x, _ = observations()
    with pytest.raises(ValueError) as info:
        net.step(x[:, 0], None)
    one_line(info, "bidirectional", "bidirectional=false")
    with pytest.raises(ValueError) as info:
        net.initial_state(2)
    one_line(info, "bidirectional=false")


def test_bad_observations_are_one_line_errors():
    net = make_net("seq2seq", future_size=2)
    x, future = observations(future_size=2)
    bad = x.clone()
    bad[1, 3, 0] = float("nan")
    with pytest.raises(ValueError) as info:
        net.stream(bad, None, future)
    one_line(info, "NaN", "fill or interpolate")
    with pytest.raises(ValueError) as info:
        net.step(x[:, 0, :2], None, future)
    one_line(info, "2 channels", f"reads {C_IN}")
    with pytest.raises(ValueError) as info:
        net.step(x[:, :2], None, future)
    one_line(info, "use stream")
    with pytest.raises(ValueError) as info:
        net.step(x[:, 0], None, None)
    one_line(info, "known-future features")
    _, state = net.step(x[:, 0], None, future)
    with pytest.raises(ValueError) as info:
        net.step(x[:1, 1], state, future[:1])
    one_line(info, "1 series", "holds 2", "initial_state")


# --------------------------------------------------------------------------------------------- user scale
pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def level_run(tmp_path_factory):
    """One quick fit (1 epoch) of a series around 1000 with the sunspots recipe (a direct forecaster, quantiles)."""
    t = np.arange(120)
    frame = pd.DataFrame({"time": t, "value": 1000 + 5 * np.sin(2 * np.pi * t / 12)})
    result = seqmodels.fit(
        "sunspots",
        data=frame,
        output_dir=tmp_path_factory.mktemp("stream_run"),
        seed=0,
        logger=None,
        trainer={"max_epochs": 1},
        datamodule={"lookback": 12, "horizon": 3, "val_size": 12, "test_size": 12},
        model={"net": {"encoder": {"hidden_size": 8}, "window_norm": "none"}},  # the recipe's "last" cannot stream
    )
    return frame, result


def test_a_user_scale_stream_equals_the_batch_forecast(level_run):
    frame, result = level_run
    L = result.datamodule.lookback
    stream = stream_forecast(result)
    values, times = frame["value"].to_numpy(), frame["time"].to_numpy()
    result.task.train()  # as fit leaves it: the stream forecasts in eval mode and gives the mode back
    for t in range(L):
        ahead = stream.update(values[t], time=times[t])
    assert result.task.training and result.task.net.training
    batch = seqmodels.forecast(result, frame.iloc[:L])  # its lookback is the whole history: the first L steps
    assert np.abs(ahead.point - 1000).max() < 50, ahead.point  # the data's units, not standardised
    for key in ("point", "lower", "upper", "quantiles"):
        np.testing.assert_allclose(getattr(ahead, key), getattr(batch, key), rtol=1e-6, atol=1e-4)
    assert ahead.time.tolist() == batch.time.tolist() and ahead.quantile_levels == batch.quantile_levels
    # Past the model's lookback: the forecast over the whole history (task.forecast of its scaled inputs).
    ahead = stream.extend(values[L:40], time=times[L:40])
    dm, task = result.datamodule, result.task
    inputs = dm._features(Series("0", times[:40].astype(float), values[:40, None]))[0][None]
    expected = task.eval().forecast(inputs.to(next(task.parameters()).device))
    np.testing.assert_allclose(ahead.point, expected["point"].cpu().numpy(), rtol=1e-6, atol=1e-4)
    assert ahead.time[0].tolist() == [40.0, 41.0, 42.0]


def test_a_checkpoint_streams_the_same_and_a_stream_resumes_from_its_state(level_run, tmp_path):
    frame, result = level_run
    values = frame["value"].to_numpy()
    reference = stream_forecast(result)
    first = reference.extend(values[:20])
    from_checkpoint = stream_forecast(result.best_model_path)
    np.testing.assert_allclose(from_checkpoint.extend(values[:20]).point, first.point, rtol=1e-6, atol=1e-4)
    assert first.time[0].tolist() == [21.0, 22.0, 23.0]  # no time given: steps counted from 1
    torch.save(reference.state_dict(), tmp_path / "stream.pt")
    resumed = stream_forecast(result)
    resumed.load_state_dict(torch.load(tmp_path / "stream.pt", weights_only=True))
    np.testing.assert_allclose(resumed.update(values[20]).point, reference.update(values[20]).point, atol=1e-4)
    assert resumed.observed == reference.observed == 21


def test_user_scale_stream_errors_are_one_line(level_run):
    frame, result = level_run
    stream = stream_forecast(result)
    with pytest.raises(ValueError) as info:
        stream.update(float("nan"))
    one_line(info, "NaN", "fill or interpolate")
    with pytest.raises(ValueError) as info:
        stream.update([1.0, 2.0])
    one_line(info, "values has shape (2,)", "(1, 1, 1)")
    with pytest.raises(ValueError) as info:
        stream.update(1.0, past=[2.0])
    one_line(info, "no past covariates", "leave past= out")
    stream.update(1000.0, time=0)
    with pytest.raises(ValueError) as info:
        stream.update(1000.0, time=0)
    one_line(info, "strictly increasing")
    with pytest.raises(ValueError) as info:
        stream.update(1000.0)
    one_line(info, "pass time with every observation")
    assert stream.observed == 1  # refused observations leave the stream where it was
    with pytest.raises(TypeError):
        stream_forecast(object())


def panel_module(days: np.ndarray, **kwargs) -> tuple[ForecastingDataModule, pd.DataFrame]:
    i = np.arange(len(days))
    frames = [
        pd.DataFrame(
            {
                "date": days,
                "store": store,
                "sales": 10 + (i + s) % 7 + np.sin(i / 5),
                "temp": np.cos(i / 3),
                "promo": (i % 2).astype(float),
            }
        )
        for s, store in enumerate(("a", "b"))
    ]
    frame = pd.concat(frames, ignore_index=True)
    dm = ForecastingDataModule(
        data=frame,
        time_column="date",
        target_columns=["sales"],
        past_covariates=["temp"],
        future_covariates=["promo"],
        series_column="store",
        lookback=14,
        horizon=5,
        val_size=7,
        test_size=7,
        transform="log",
        **kwargs,
    )
    dm.setup()
    return dm, frame


@pytest.mark.parametrize("network", list(NETWORKS))
def test_covariates_calendar_and_a_panel_stream_as_the_batch_forecast(network):
    days = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-03-01")).astype("datetime64[s]")
    dm, frame = panel_module(days)
    dims = dm.dims()
    torch.manual_seed(0)
    encoder = RecurrentEncoder("gru", input_size=dims["input_size"], hidden_size=8, batch_first=True)
    net = NETWORKS[network](encoder, horizon=5, num_targets=1, output=GaussianOutput(), future_size=dims["future_size"])
    task = ForecastingTask(net, optimizer=partial(torch.optim.Adam, lr=1e-3))
    task.set_scaler(dm.target_scaler())
    stream = ForecastStream(task, dm, num_series=2, names=["a", "b"])
    a, b = (frame[frame.store == s].reset_index(drop=True) for s in ("a", "b"))
    L, T = 14, 30  # stream the first T days; the batch forecast reads the last L of them
    both = np.stack([a[["sales", "temp", "promo"]].to_numpy(), b[["sales", "temp", "promo"]].to_numpy()])  # (2, 60, 3)
    stream.extend(
        both[:, :2, 0:1], time=days[:2], past=both[:, :2, 1:2], future=both[:, :2, 2:3], ahead=both[:, 2:7, 2:3]
    )
    for t in range(2, T):
        got = stream.update(
            both[:, t, 0], time=days[t], past=both[:, t, 1], future=both[:, t, 2], ahead=both[:, t + 1 : t + 6, 2:3]
        )
    history = pd.concat(
        [part.iloc[T - L : T + 5].assign(sales=lambda f: f.sales.where(f.index < T)) for part in (a, b)]
    )
    batch = dm.forecast(task, history)  # lookback L; the last 5 rows give the promos ahead
    assert got.series == batch.series == ["a", "b"] and got.time.tolist() == batch.time.tolist()
    # The batch forecast over the whole streamed history (every day as lookback) is the stream's.
    inputs, future = [], []
    for part in (a, b):
        s = Series(
            part.store[0],
            days[: T + 5],
            part.sales.to_numpy()[: T + 5, None],
            part[["temp"]].to_numpy()[: T + 5],
            part[["promo"]].to_numpy()[: T + 5],
        )
        x, f = dm._features(s)
        inputs.append(x[:T])
        future.append(f[T:])
    expected = task.forecast(torch.stack(inputs), torch.stack(future))
    for key in ("point", "lower", "upper"):
        np.testing.assert_allclose(getattr(got, key), expected[key].numpy(), rtol=1e-5, atol=1e-5)
    # A fresh stream over exactly the batch forecast's lookback gives the batch forecast itself.
    fresh = ForecastStream(task, dm, num_series=2, names=["a", "b"])
    start = T - L
    got = fresh.extend(
        both[:, start:T, 0:1],
        time=days[start:T],
        past=both[:, start:T, 1:2],
        future=both[:, start:T, 2:3],
        ahead=both[:, T : T + 5, 2:3],
    )
    for key in ("point", "lower", "upper"):
        np.testing.assert_allclose(getattr(got, key), getattr(batch, key), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError) as info:
        fresh.update(both[:, T, 0], past=both[:, T, 1], future=both[:, T, 2], ahead=both[:, T + 1 : T + 6, 2:3])
    one_line(info, "pass time with every observation")
    with pytest.raises(ValueError) as info:
        fresh.update(both[:, T, 0], time=days[T], past=both[:, T, 1], future=both[:, T, 2])
    one_line(info, "pass ahead=")


def test_a_window_norm_last_task_refuses_to_stream():
    days = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-03-01")).astype("datetime64[s]")
    dm, _ = panel_module(days)
    dims = dm.dims()
    encoder = RecurrentEncoder("gru", input_size=dims["input_size"], hidden_size=8, batch_first=True)
    net = DirectForecaster(encoder, horizon=5, future_size=dims["future_size"], window_norm="last")
    task = ForecastingTask(net, optimizer=partial(torch.optim.Adam, lr=1e-3))
    task.set_scaler(dm.target_scaler())
    with pytest.raises(ValueError) as info:
        ForecastStream(task, dm)
    one_line(info, "cannot stream", "window_norm=none")
