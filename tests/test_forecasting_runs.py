"""Forecasting end to end: seqmodels-train on a small series, its checkpoint, plots, eval and seqmodels-predict."""

from __future__ import annotations

import csv
import math

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from seqmodels.eval import evaluate
from seqmodels.predict import write_forecasts
from seqmodels.train import train

# A small airline run: 2 epochs of a tiny GRU, quantile interval, plots every epoch.
AIRLINE_SMALL = [
    "experiment=airline",
    "model.net.encoder.hidden_size=8",
    "trainer.max_epochs=2",
    "model/forecasting_output=quantile",
    "model.plot_every_n_epochs=1",
    "model.num_plots=2",
]


@pytest.fixture(scope="module")
def airline_run(tmp_path_factory):
    """One short airline run shared by the tests below (training is the slow part)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from seqmodels.config import config_dir

    out = tmp_path_factory.mktemp("airline_run")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                *AIRLINE_SMALL,
                "~callbacks.rich_progress_bar",
                "trainer.enable_progress_bar=false",
                "trainer.accelerator=cpu",
            ],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.paths.output_dir = cfg.hydra.runtime.output_dir = str(out)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg, train(cfg)


def test_training_logs_model_and_baseline_metrics_on_the_original_scale(airline_run):
    cfg, result = airline_run
    for name in ("mae", "rmse", "smape", "mase", "coverage", "naive_mae", "naive_mase", "seasonal_naive_mase"):
        assert math.isfinite(result.metrics[f"test/{name}"]), name
    assert "val/seasonal_naive_mae" in result.metrics and "val/mae_best" in result.metrics
    # Passengers are in the hundreds: errors on the original scale, not in standard deviations.
    assert result.metrics["test/seasonal_naive_mae"] > 10
    assert 0.0 <= result.metrics["test/coverage"] <= 1.0


def test_forecast_plots_reach_tensorboard(airline_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg, _ = airline_run
    events = EventAccumulator(cfg.logger.tensorboard.save_dir, size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()["images"]
    assert {"forecast_val/0", "forecast_val/1", "forecast_test/0"} <= set(tags), tags


def test_checkpoint_carries_the_scaler_and_eval_reproduces_the_test_metrics(airline_run, compose_eval):
    _, result = airline_run
    ckpt = torch.load(result.best_model_path, map_location="cpu", weights_only=True)
    assert ckpt["state_dict"]["target_log"].item() is True  # data.transform=log travels with the weights
    assert ckpt["ForecastingDataModule"]["mean"] is not None
    evaluated = evaluate(
        compose_eval(
            f"ckpt_path={result.best_model_path}", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"
        )
    )
    assert evaluated["test/mae"] == pytest.approx(result.metrics["test/mae"], rel=1e-5)
    assert evaluated["test/mase"] == pytest.approx(result.metrics["test/mase"], rel=1e-5)


def test_predict_writes_the_next_horizon_as_csv(airline_run, tmp_path):
    _, result = airline_run
    out = tmp_path / "forecast.csv"
    cfg = OmegaConf.create(
        {
            "ckpt_path": result.best_model_path,
            "input": None,
            "input_file": None,
            "output_file": str(out),
            "weights_only": True,
        }
    )
    assert write_forecasts(cfg)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 12
    assert rows[0]["time"] == "1961-01-01" and rows[-1]["time"] == "1961-12-01"
    assert set(rows[0]) == {"series", "time", "step", "target", "forecast", "lower", "upper", "q0.1", "q0.5", "q0.9"}
    for row in rows:
        assert float(row["lower"]) <= float(row["forecast"]) <= float(row["upper"])
        assert 200 < float(row["forecast"]) < 1500  # passengers (thousands), back on the original scale
    # A file of one's own: the last lookback rows of it are the history.
    series = tmp_path / "air.csv"
    series.write_text(
        "Date,Passengers\n"
        + "".join(f"2000-{m:02d},{300 + 10 * m}\n" for m in range(1, 13))
        + "".join(f"2001-{m:02d},{420 + 10 * m}\n" for m in range(1, 13))
    )
    cfg.input_file = str(series)
    assert write_forecasts(cfg)
    assert next(csv.DictReader(out.open()))["time"] == "2002-01-01"
    cfg.input = "text"
    with pytest.raises(ValueError, match="pass input_file=/path/to/series.csv"):
        write_forecasts(cfg)


def test_backtest_writes_the_historical_forecasts_that_eval_scores(airline_run, compose_eval, tmp_path, capsys):
    _, result = airline_run
    out = tmp_path / "backtest.csv"
    cfg = OmegaConf.create(
        {
            "ckpt_path": result.best_model_path,
            "input": None,
            "input_file": None,
            "output_file": str(out),
            "weights_only": True,
            "backtest": "test",
            "batch_size": 7,
        }
    )
    assert write_forecasts(cfg)
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == [
        "series",
        "origin",
        "time",
        "step",
        "target",
        "actual",
        "forecast",
        "lower",
        "upper",
        "q0.1",
        "q0.5",
        "q0.9",
        "naive",
        "seasonal_naive",
    ]
    horizon = 12
    assert len(rows) % horizon == 0 and rows[0]["step"] == "1" and rows[horizon - 1]["step"] == str(horizon)
    # Origins roll one month at a time through the last months of 1960, and every target is an observed month.
    assert rows[0]["time"] > rows[0]["origin"] and rows[-1]["time"] == "1960-12-01"
    assert rows[horizon]["origin"] > rows[0]["origin"]
    # The naive forecast repeats the last observed value: the actual value at the origin of a later window.
    actual_at = {row["time"]: float(row["actual"]) for row in rows}
    assert any(row["origin"] in actual_at for row in rows)
    for row in rows:
        if row["origin"] in actual_at:
            assert float(row["naive"]) == pytest.approx(actual_at[row["origin"]])
    # Averaged over the file, the errors are the test result.metrics seqmodels-eval reports for the same checkpoint.
    mae = sum(abs(float(r["forecast"]) - float(r["actual"])) for r in rows) / len(rows)
    seasonal = sum(abs(float(r["seasonal_naive"]) - float(r["actual"])) for r in rows) / len(rows)
    evaluated = evaluate(
        compose_eval(
            f"ckpt_path={result.best_model_path}", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"
        )
    )
    assert mae == pytest.approx(evaluated["test/mae"], rel=1e-4)
    assert seasonal == pytest.approx(evaluated["test/seasonal_naive_mae"], rel=1e-4)
    assert f"MASE {evaluated['test/mase']:.3f}" in capsys.readouterr().err
    # A file of one's own, split as in training: the last 24 months are the test part, 13 origins of 12 months.
    series = tmp_path / "air.csv"
    series.write_text(
        "Date,Passengers\n"
        + "".join(
            f"{2000 + k // 12}-{k % 12 + 1:02d},{300 + 2 * k + 40 * math.sin(k * math.pi / 6):.1f}\n" for k in range(96)
        )
    )
    cfg.input_file, cfg.backtest = str(series), "test"
    assert write_forecasts(cfg)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 13 * horizon and rows[0]["origin"] == "2005-12-01" and rows[-1]["time"] == "2007-12-01"
    cfg.backtest = "train"
    with pytest.raises(ValueError, match="backtest must be val or test"):
        write_forecasts(cfg)


def test_predict_cli_prints_one_line_errors(tmp_path, airline_run):
    import subprocess
    import sys

    _, trained = airline_run
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqmodels.cli.predict",
            f"ckpt_path={trained.best_model_path}",
            f"input_file={tmp_path / 'nope.csv'}",
        ],
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", "PATH": ""},
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("seqmodels-predict: error: series file not found")


SINE_TINY = [
    "experiment=sunspots",
    "data.source=sine",
    "+data.sine_length=300",
    "data.lookback=12",
    "data.horizon=6",
    "data.val_size=60",
    "data.test_size=60",
    "data.seasonal_period=50",
    "data.calendar=null",
    "model.net.encoder.hidden_size=8",
    "model.plot_every_n_epochs=0",
    "model/forecasting_output=mae",
    "trainer.max_epochs=2",
    "trainer.enable_checkpointing=false",
]


def _final_weights(compose_train, *overrides: str, callbacks=()) -> tuple[dict[str, torch.Tensor], object, object]:
    """Fits SINE_TINY with ``overrides``; returns the final weights, the task and the trainer."""
    import lightning as L
    from hydra.utils import instantiate

    from seqmodels.config import instantiate_datamodule, resolve_with_datamodule

    cfg = compose_train(*SINE_TINY, *overrides)
    L.seed_everything(0)
    datamodule = instantiate_datamodule(cfg.data)
    resolve_with_datamodule(cfg, datamodule)
    model = instantiate(cfg.model)
    trainer = instantiate(cfg.trainer, logger=False, callbacks=list(callbacks))
    trainer.fit(model, datamodule=datamodule)
    return {k: v.clone() for k, v in model.state_dict().items()}, model, trainer


def test_the_task_s_own_optimizer_step_matches_lightning_s(compose_train):
    # Lightning clips (automatic step) vs the task clips (manual step): the same training, to float precision.
    auto, auto_model, _ = _final_weights(
        compose_train, "trainer.gradient_clip_val=0.05", "+model.gradient_clip_val=null"
    )
    manual, manual_model, trainer = _final_weights(
        compose_train, "trainer.gradient_clip_val=null", "+model.gradient_clip_val=0.05"
    )
    assert auto_model.automatic_optimization and not manual_model.automatic_optimization
    assert trainer.global_step == 2 * math.ceil(len(trainer.datamodule.train_set) / 32)
    for key in auto:
        assert torch.allclose(auto[key], manual[key], atol=1e-5), key
    unclipped, _, _ = _final_weights(compose_train, "trainer.gradient_clip_val=null", "+model.gradient_clip_val=null")
    assert not torch.allclose(unclipped["net.head.1.weight"], manual["net.head.1.weight"], atol=1e-5)


class CountStepHooks(L.Callback):
    def __init__(self) -> None:
        self.calls = {"on_before_backward": 0, "on_after_backward": 0, "on_before_optimizer_step": 0}

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.calls["on_before_backward"] += 1

    def on_after_backward(self, trainer, pl_module) -> None:
        self.calls["on_after_backward"] += 1

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.calls["on_before_optimizer_step"] += 1


def test_the_direct_step_matches_lightning_s_and_yields_to_callbacks_on_its_hooks(compose_train):
    # Nothing listens: the task calls backward and the optimizer itself. A callback on the step's hooks gets
    # Lightning's wrappers, which call it. Same training, same global_step, either way.
    overrides = ("trainer.gradient_clip_val=null", "+model.gradient_clip_val=0.05", "model/scheduler=cosine")
    direct, direct_model, direct_trainer = _final_weights(compose_train, *overrides)
    counter = CountStepHooks()
    wrapped, wrapped_model, wrapped_trainer = _final_weights(compose_train, *overrides, callbacks=[counter])
    assert direct_model._direct_step and not wrapped_model._direct_step
    steps = 2 * math.ceil(len(direct_trainer.datamodule.train_set) / 32)
    assert direct_trainer.global_step == wrapped_trainer.global_step == steps
    assert counter.calls == dict.fromkeys(counter.calls, steps)
    for key in direct:
        assert torch.allclose(direct[key], wrapped[key], atol=1e-6), key
    assert direct_trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)


def test_scheduled_sampling_decays_teacher_forcing(compose_train):
    _, model, trainer = _final_weights(
        compose_train,
        "model=forecasting_seq2seq",
        "model.teacher_forcing_end=0.0",
        "model.teacher_forcing_epochs=4",
        "model.net.encoder.hidden_size=8",
        "model.plot_every_n_epochs=0",
        "trainer.max_epochs=3",
        "trainer.gradient_clip_val=null",
    )
    assert model.net.teacher_forcing == pytest.approx(0.5)  # epochs 0, 1, 2 -> 1.0, 0.75, 0.5
    assert trainer.callback_metrics["train/teacher_forcing"].item() == pytest.approx(0.5)


@pytest.mark.parametrize("model", ["forecasting", "forecasting_seq2seq"])
@pytest.mark.parametrize("output", ["mae", "mse", "gaussian", "quantile"])
def test_every_network_and_output_runs_end_to_end(compose_train, model, output):
    cfg = compose_train(
        "experiment=co2",
        f"model={model}",
        f"model/forecasting_output={output}",
        "debug=fdr",
        "model.net.encoder.hidden_size=8",
        "data.lookback=30",
        "data.horizon=40",
    )
    result = train(cfg)
    assert all(math.isfinite(result.metrics[f"test/{name}"]) for name in ("loss", "mae", "mase")), result.metrics
    assert ("test/coverage" in result.metrics) == (output in ("gaussian", "quantile"))


@pytest.mark.parametrize("clip_by", ["task", "trainer"])
def test_learning_rate_schedules_step_in_both_optimizer_paths(compose_train, clip_by):
    clip = (
        ["trainer.gradient_clip_val=null", "+model.gradient_clip_val=1.0"]
        if clip_by == "task"
        else ["trainer.gradient_clip_val=1.0"]
    )
    _, model, trainer = _final_weights(compose_train, "model/scheduler=cosine", "trainer.max_epochs=3", *clip)
    assert model.automatic_optimization == (clip_by == "trainer")
    # Cosine over 3 epochs, stepped after each: lr_0 * (1 + cos(pi)) / 2 = 0 at the end.
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)
    assert trainer.lr_scheduler_configs[0].scheduler.last_epoch == 3


@pytest.mark.slow
def test_two_process_ddp_scores_every_test_window_once(tmp_path, compose_train):
    import os
    import subprocess
    import sys

    from seqmodels.config import instantiate_datamodule

    # Each rank takes every other window; the metric sums are reduced across ranks. The baselines depend only on
    # the data, so the two-process value must equal the one-process value over the same test windows.
    datamodule = instantiate_datamodule(compose_train("experiment=airline").data)
    batches = list(datamodule.test_dataloader())
    actual = torch.cat([b.actual for b in batches])
    seasonal_naive_mae = (torch.cat([b.seasonal_naive for b in batches]) - actual).abs().mean().item()

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqmodels.cli.train",
            "experiment=airline",
            "trainer=ddp_sim",
            "trainer.max_epochs=1",
            "model.net.encoder.hidden_size=8",
            "model.plot_every_n_epochs=0",
            "~callbacks.rich_progress_bar",
            "trainer.enable_progress_bar=false",
            f"paths.output_dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MEMBER: 2/2" in result.stderr or "world_size: 2" in result.stderr, result.stderr[-2000:]
    reported = float(result.stdout.split("test/seasonal_naive_mae:")[1].split()[0])
    assert reported == pytest.approx(seasonal_naive_mae, rel=1e-5)
    assert math.isfinite(float(result.stdout.split("test/mase:")[1].split()[0]))
    # Values already reduced by the metrics are logged as such: no "use sync_dist=True" advice.
    assert "sync_dist=True" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("model,output", [("forecasting", "quantile"), ("forecasting_seq2seq", "gaussian")])
def test_forecasters_export_to_onnx_with_outputs_on_the_original_scale(compose_train, tmp_path, model, output):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import json

    import onnx

    from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
    from seqmodels.export import export_onnx

    # Monthly airline data: calendar features make a known-future input; the log transform is undone in the graph.
    result = train(
        compose_train(
            "experiment=airline",
            f"model={model}",
            f"model/forecasting_output={output}",
            "model.net.encoder.hidden_size=8",
            "model.plot_every_n_epochs=0",
            "trainer.max_epochs=2",
            "trainer.gradient_clip_val=null",
        )
    )
    checkpoint = load_checkpoint(result.best_model_path)
    report = export_onnx(checkpoint, tmp_path / "forecaster.onnx")
    assert report.inputs == "inputs: (N, 24, 3) float32, future: (N, 12, 2) float32"
    assert report.output == "point, lower, upper: (N, 12, 1)" and report.max_abs_diff < 1e-3  # passengers: 100s
    metadata = {p.key: p.value for p in onnx.load(str(report.path)).metadata_props}
    assert json.loads(metadata["seqmodels.lookback"]) == 24 and metadata["seqmodels.transform"] == "log"
    assert len(json.loads(metadata["seqmodels.channel_mean"])) == 1  # the target; calendar features are unscaled

    # The forecast past the end of the series, from the file alone, equals seqmodels-predict's.
    task, datamodule = build_from_checkpoint(checkpoint, setup_data=False)
    task.eval()
    _, batch, _ = datamodule.last_windows()
    expected = task.forecast(batch.inputs, batch.future)
    session = onnxruntime.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    feeds = {"inputs": batch.inputs.numpy(), **({"future": batch.future.numpy()} if batch.future is not None else {})}
    point, lower, upper = session.run(None, feeds)
    for name, got in (("point", point), ("lower", lower), ("upper", upper)):
        torch.testing.assert_close(torch.from_numpy(got), expected[name], atol=1e-3, rtol=1e-5)


def test_seqmodels_train_hands_the_one_clipping_setting_to_the_forecaster(compose_train_at, tmp_path):
    """Catches two clipping settings drifting apart: trainer.gradient_clip_val must reach the task's own step."""
    quiet = ("test=false", "logger=none", "trainer.enable_checkpointing=true")
    result = train(compose_train_at(tmp_path / "clipped", *SINE_TINY, "trainer.gradient_clip_val=0.05", *quiet))
    assert result.task.gradient_clip_val == 0.05 and not result.task.automatic_optimization
    unclipped = train(compose_train_at(tmp_path / "unclipped", *SINE_TINY, "trainer.gradient_clip_val=null", *quiet))
    assert unclipped.task.gradient_clip_val is None
