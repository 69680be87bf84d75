"""``data.transform=sqrt``: forecasters of non-negative data (counts with zeros) model the square root of the
targets; forecasts, quantiles and interval bounds come back as ``clamp(min=0) ** 2`` on every path (task, ensemble,
stream, ONNX export), and checkpoints from before the transform existed load as they were."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

import seqmodels
from seqmodels.api import stream_forecast
from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
from seqmodels.data.forecasting import TRANSFORMS, ForecastingDataModule, TargetScaler
from seqmodels.predict import combine_forecasts, gaussian_mixture_interval
from seqmodels.tasks.forecasting import _default_transform

pd = pytest.importorskip("pandas")

PERIOD, LOOKBACK, HORIZON = 12, 24, 4


def one_line(info: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(info.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, (part, message)
    return message


def counts(length: int = 240, seed: int = 0) -> np.ndarray:
    """A seasonal non-negative series whose troughs are exactly 0 (as sunspot minima can be) and whose noise grows
    with the level, as counts' does: the case the square root stabilises."""
    t = np.arange(length)
    level = (4.0 * (1 + np.sin(2 * np.pi * t / PERIOD))) ** 2  # 0 to 64
    noise = np.random.default_rng(seed).normal(0, 0.05, length) * np.sqrt(level)
    return np.maximum(level + noise, 0.0)


def frame(values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"time": np.arange(len(values)), "value": values})


# --------------------------------------------------------------------------------------------- the scaler
def test_the_sqrt_scaler_standardises_the_square_root_and_inverts_it():
    mean, std = torch.tensor([3.0, 1.0]), torch.tensor([2.0, 0.5])
    scaler = TargetScaler(mean, std, "sqrt")
    values = torch.tensor([[[0.0, 4.0], [9.0, 0.25]], [[16.0, 1.0], [2.0, 100.0]]])  # (N=2, S=2, C=2)
    scaled = scaler(values)
    torch.testing.assert_close(scaled, (values.sqrt() - mean) / std)
    torch.testing.assert_close(scaler.inverse(scaled), values, rtol=1e-6, atol=1e-6)
    # A sqrt-scale value below 0 (scaled below -mean / std) is below every attainable one: it comes back as 0.
    below = torch.tensor([[-1.6, -2.1], [-3.0, -10.0]])
    torch.testing.assert_close(scaler.inverse(below), torch.zeros(2, 2))
    # Monotone on the whole line: sorted quantiles stay sorted.
    grid = torch.linspace(-5, 5, 101)[:, None].expand(101, 2)
    assert (scaler.inverse(grid).diff(dim=0) >= 0).all()
    assert "sqrt" in TRANSFORMS


def test_negative_targets_are_refused_in_one_line_naming_the_series_and_the_fix():
    values = counts(120)
    values[50] = -0.5
    dm = ForecastingDataModule(
        source="memory",
        data=frame(values),
        lookback=LOOKBACK,
        horizon=HORIZON,
        val_size=24,
        test_size=24,
        transform="sqrt",
        seasonal_period=PERIOD,
        calendar=None,
    )
    with pytest.raises(ValueError) as info:
        dm.setup()
    one_line(info, "transform=sqrt needs non-negative targets", "-0.5", "set data.transform=none")
    with pytest.raises(ValueError) as info:
        TargetScaler(torch.zeros(1), torch.ones(1), "sqrt")(torch.tensor([[1.0], [-2.0]]))
    one_line(info, "transform=sqrt needs non-negative targets", "-2", "set data.transform=none")
    with pytest.raises(ValueError) as info:
        TargetScaler(torch.zeros(1), torch.ones(1), "cbrt")
    one_line(info, "transform must be one of none, log, sqrt", "'cbrt'")
    # Zeros are fine for sqrt; log refuses them and names sqrt as the way out.
    zeros = ForecastingDataModule(
        source="memory",
        data=frame(counts(120)),
        lookback=LOOKBACK,
        horizon=HORIZON,
        val_size=24,
        test_size=24,
        transform="log",
        seasonal_period=PERIOD,
        calendar=None,
    )
    with pytest.raises(ValueError) as info:
        zeros.setup()
    one_line(info, "transform=log needs positive targets", "data.transform=sqrt")


# --------------------------------------------------------------------------------------------- a trained run
@pytest.fixture(scope="module")
def sqrt_run(tmp_path_factory):
    """A short fit of the sunspots recipe (GRU, direct quantile head) with transform=sqrt on ``counts``; absolute
    inputs (window_norm none) so that the run also streams."""
    values = counts()
    result = seqmodels.fit(
        "sunspots",
        data=frame(values),
        output_dir=tmp_path_factory.mktemp("sqrt_run"),
        seed=0,
        logger=None,
        trainer={"max_epochs": 40},
        datamodule={
            "lookback": LOOKBACK,
            "horizon": HORIZON,
            "val_size": 36,
            "test_size": 36,
            "transform": "sqrt",
            "seasonal_period": PERIOD,
        },
        model={"net": {"encoder": {"hidden_size": 16}, "window_norm": "none"}, "optimizer": {"lr": 0.01}},
    )
    return values, result


def test_the_task_forecasts_the_square_of_its_sqrt_scale_output(sqrt_run):
    _, result = sqrt_run
    task, dm = result.task.eval(), result.datamodule
    assert task.scaler.transform == "sqrt" and int(task.target_transform) == TRANSFORMS.index("sqrt")
    assert not bool(task.target_log)
    batch = dm.test_set.tensors
    inputs = batch["inputs"][:8]
    # Inputs pushed far below the data too: the sqrt-scale forecasts go negative and must come back as 0.
    inputs = torch.cat([inputs, inputs - 6.0])
    got = task.forecast(inputs)
    params = task.net(inputs)
    sqrt_point = task.net.output.point(params) * task.target_std + task.target_mean
    torch.testing.assert_close(got["point"], sqrt_point.clamp(min=0) ** 2)
    sqrt_quantiles = task.net.output.quantiles(params) * task.target_std[:, None] + task.target_mean[:, None]
    torch.testing.assert_close(got["quantiles"], sqrt_quantiles.clamp(min=0) ** 2)
    lower, upper = task.net.output.interval(params)
    torch.testing.assert_close(got["lower"], (lower * task.target_std + task.target_mean).clamp(min=0) ** 2)
    torch.testing.assert_close(got["upper"], (upper * task.target_std + task.target_mean).clamp(min=0) ** 2)
    assert (sqrt_point < 0).any(), "no negative sqrt-scale forecast: the clamp went untested"
    for key in ("point", "lower", "upper", "quantiles"):
        assert (got[key] >= 0).all(), key
    assert (got["quantiles"].diff(dim=-1) >= 0).all()


@pytest.mark.learns
def test_a_sqrt_run_forecasts_near_the_truth_on_the_original_scale(sqrt_run):
    values, result = sqrt_run
    test = seqmodels.backtest(result, "test")
    assert (test.point >= 0).all() and (test.lower >= 0).all()
    mae = np.abs(test.point - test.actual).mean()
    naive_mae = np.abs(test.naive - test.actual).mean()
    # The series spans 0..64 (mean 24): errors in its units, far below the last-value forecast's.
    assert naive_mae > 10, naive_mae
    assert mae < 0.4 * naive_mae, (mae, naive_mae)
    assert result.metrics["test/mae"] == pytest.approx(mae, rel=1e-4)  # the logged metric is the original scale's


# --------------------------------------------------------------------------------------------- other paths
def test_a_checkpoint_keeps_the_transform_and_old_style_state_dicts_load_unchanged(sqrt_run):
    values, result = sqrt_run
    checkpoint = load_checkpoint(result.best_model_path)
    assert int(checkpoint["state_dict"]["target_transform"]) == TRANSFORMS.index("sqrt")
    task, dm = build_from_checkpoint(checkpoint, setup_data=False)
    np.testing.assert_allclose(
        dm.backtest(task, "test", frame(values)).point, seqmodels.backtest(result, "test").point, rtol=1e-6, atol=1e-5
    )

    # A state dict saved before target_transform existed: transform from target_log alone (log or none).
    state = {k: v.clone() for k, v in result.task.state_dict().items()}
    del state["target_transform"]
    for was_log, expected in ((True, "log"), (False, "none")):
        state["target_log"] = torch.tensor(was_log)
        fresh, _ = build_from_checkpoint(checkpoint, setup_data=False)
        fresh.target_transform.fill_(TRANSFORMS.index("sqrt"))  # proves the load overwrites it
        fresh.load_state_dict(state)  # strict: no missing key
        assert fresh.scaler.transform == expected
        for key, value in state.items():
            torch.testing.assert_close(fresh.state_dict()[key], value)
    # The hook fills nothing for a state dict that is not a forecaster's (no target_mean).
    other = {"net.weight": torch.zeros(1)}
    _default_transform(None, other, "")
    assert other == {"net.weight": torch.zeros(1)}

    # An unknown index (a newer version's transform) is a one-line error, not a silent "none".
    state["target_transform"] = torch.tensor(7)
    fresh, _ = build_from_checkpoint(checkpoint, setup_data=False)
    fresh.load_state_dict(state)
    with pytest.raises(ValueError) as info:
        _ = fresh.scaler
    one_line(info, "target_transform 7", "none, log, sqrt")


def test_an_ensemble_of_one_equals_the_direct_forecast(sqrt_run):
    values, result = sqrt_run
    direct = seqmodels.backtest(result, "test")
    alone = seqmodels.ensemble_backtest([result.best_model_path], history=frame(values))
    for key in ("point", "lower", "upper", "quantiles"):
        np.testing.assert_allclose(getattr(alone, key), getattr(direct, key), rtol=1e-6, atol=1e-5)
    ahead = seqmodels.ensemble_forecast([result.best_model_path], frame(values))
    np.testing.assert_allclose(ahead.point, seqmodels.forecast(result, frame(values)).point, rtol=1e-6, atol=1e-5)


def test_gaussian_members_combine_as_a_mixture_on_the_sqrt_scale():
    """Members' Gaussians on the sqrt scale (mean m, std s) forecast m^2 and clamp(m -+ z s, 0)^2; the combined
    interval is the mixture's (mean of means, mean variance + variance of means) on that scale, squared back,
    even where a member's lower bound was clamped to 0."""
    from seqmodels.nn.forecasting import GaussianOutput

    z = GaussianOutput(interval=0.8).z
    means = torch.tensor([[2.0, 0.5, 5.0], [3.0, 0.3, 4.0]], dtype=torch.float64)  # (members, values)
    stds = torch.tensor([[0.5, 1.0, 0.2], [1.0, 2.0, 0.4]], dtype=torch.float64)
    members = [
        {"point": m**2, "lower": (m - z * s).clamp(min=0) ** 2, "upper": (m + z * s) ** 2}
        for m, s in zip(means, stds, strict=True)
    ]
    assert (members[0]["lower"][1] == 0) and (members[1]["lower"][1] == 0)  # the clamped case is covered
    mean = means.mean(0)
    half = z * ((stds**2).mean(0) + means.var(0, unbiased=False)).sqrt()
    lower, upper = gaussian_mixture_interval(members, z, "sqrt")
    torch.testing.assert_close(lower, (mean - half).clamp(min=0) ** 2)
    torch.testing.assert_close(upper, (mean + half) ** 2)
    combined = combine_forecasts(members, "mean", GaussianOutput(interval=0.8), "sqrt")
    torch.testing.assert_close(combined["point"], (means**2).mean(0))
    torch.testing.assert_close(combined["upper"], upper)
    with pytest.raises(ValueError) as info:
        gaussian_mixture_interval(members, z, "cbrt")
    one_line(info, "transform must be one of none, log, sqrt")


def test_a_stream_on_the_data_scale_equals_the_batch_forecast(sqrt_run):
    values, result = sqrt_run
    stream = stream_forecast(result)
    ahead = stream.extend(values[:LOOKBACK], time=np.arange(LOOKBACK))
    batch = seqmodels.forecast(result, frame(values[:LOOKBACK]))
    for key in ("point", "lower", "upper", "quantiles"):
        np.testing.assert_allclose(getattr(ahead, key), getattr(batch, key), rtol=1e-6, atol=1e-4)
    assert (ahead.point >= 0).all()
    with pytest.raises(ValueError) as info:
        stream.update(-1.0, time=LOOKBACK)
    one_line(info, "transform=sqrt needs non-negative targets", "set data.transform=none")


@pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime", "onnxscript")),
    reason="needs the export extra (onnx, onnxruntime, onnxscript)",
)
def test_the_onnx_graph_squares_back_as_the_task_does(sqrt_run, tmp_path):
    import json

    import onnx
    import onnxruntime

    from seqmodels.export import export_onnx

    _, result = sqrt_run
    checkpoint = load_checkpoint(result.best_model_path)
    report = export_onnx(checkpoint, tmp_path / "sqrt.onnx")
    metadata = {p.key: p.value for p in onnx.load(str(report.path)).metadata_props}
    assert metadata["seqmodels.transform"] == "sqrt" and json.loads(metadata["seqmodels.lookback"]) == LOOKBACK
    task, _ = build_from_checkpoint(checkpoint, setup_data=False)
    task.eval()
    inputs = result.datamodule.test_set.tensors["inputs"][:6]
    inputs = torch.cat([inputs, inputs - 6.0])  # negative sqrt-scale forecasts too: the clamp is in the graph
    expected = task.forecast(inputs)
    assert (expected["point"] == 0).any()
    session = onnxruntime.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    point, lower, upper = session.run(None, {"inputs": inputs.numpy()})
    for name, got in (("point", point), ("lower", lower), ("upper", upper)):
        torch.testing.assert_close(torch.from_numpy(got), expected[name], atol=1e-3, rtol=1e-5)
