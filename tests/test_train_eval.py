"""End-to-end: a short real training run, its checkpoint, TensorBoard output, and seqmodels-eval on it."""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqmodels.callbacks import CHECKPOINT_KEY
from seqmodels.eval import evaluate
from seqmodels.train import train

PARITY_SHORT = [
    "experiment=parity",
    "data.max_length=6",
    "data.num_train=512",
    "data.num_val=128",
    "data.num_test=128",
    "trainer.max_epochs=12",
    "model.net.encoder.hidden_size=24",
]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One short parity run shared by the tests below (training is the slow part)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from seqmodels.config import config_dir

    out = tmp_path_factory.mktemp("parity_run")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                *PARITY_SHORT,
                "~callbacks.rich_progress_bar",
                "trainer.enable_progress_bar=false",
                "trainer.accelerator=cpu",
            ],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.hydra.runtime.output_dir = str(out)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    result = train(cfg)
    return cfg, result, out


@pytest.mark.learns
def test_training_learns_and_tests_best_checkpoint(trained_run):
    """The parity experiment learns (test accuracy > 0.95) and the best checkpoint is the one tested.

    Catches: a training loop that does not learn, the wrong checkpoint tested, a mislabelled best score.
    """
    cfg, result, out = trained_run
    assert result.metrics["test/acc"] > 0.95, result.metrics
    assert result.metrics["best/val/acc"] == pytest.approx(result.metrics["val/acc_best"])
    best = Path(result.best_model_path)
    assert best.is_file() and best.parent == out / "checkpoints"


def test_checkpoint_loads_weights_only_and_carries_config(trained_run):
    _, result, _ = trained_run
    ckpt = torch.load(result.best_model_path, map_location="cpu", weights_only=True)
    saved = ckpt[CHECKPOINT_KEY]["config"]
    assert saved["model"]["net"]["encoder"]["cell"] == "gru"
    assert saved["model"]["num_classes"] == 2  # the interpolation was resolved before saving
    assert any(k.startswith("net.encoder.rnn.weight_ih_l0") for k in ckpt["state_dict"])


def test_eval_reproduces_test_metric(trained_run, compose_eval):
    _, result, _ = trained_run
    cfg = compose_eval(
        f"ckpt_path={result.best_model_path}", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"
    )
    evaluated = evaluate(cfg)
    assert evaluated["test/acc"] == pytest.approx(result.metrics["test/acc"], abs=1e-6)
    assert evaluated["test/loss"] == pytest.approx(result.metrics["test/loss"], rel=1e-5)


def test_tensorboard_has_scalars_and_hparams(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, _, out = trained_run
    event_files = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert event_files, "no TensorBoard event file written"
    tags: set[str] = set()
    plugins: set[str] = set()
    for event_file in event_files:
        acc = EventAccumulator(str(event_file))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
        with contextlib.suppress(KeyError):  # an event file without hparams raises KeyError
            plugins |= set(acc.PluginTagToContent("hparams"))
    assert {"train/loss_step", "val/loss", "val/acc", "val/f1", "val/acc_best", "test/acc", "best/val/acc"} <= tags
    assert "_hparams_/session_start_info" in plugins
    texts = set()
    for event_file in event_files:
        acc = EventAccumulator(str(event_file), size_guidance={"tensors": 0})
        acc.Reload()
        texts |= set(acc.Tags().get("tensors", []))
    assert any(tag.startswith("config") for tag in texts), texts
    hparams_yaml = (out / "tensorboard" / "hparams.yaml").read_text()
    assert "hidden_size: 24" in hparams_yaml


def test_hparams_tab_compares_runs_by_settings_and_lists_the_best_and_test_metrics(trained_run):
    """Catches an HParams table cluttered with plumbing (``_target_``, paths, callbacks) or missing its metrics."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    _, _, out = trained_run
    experiment = session = None
    for event_file in (out / "tensorboard").rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(event_file))
        acc.Reload()
        with contextlib.suppress(KeyError):
            content = acc.PluginTagToContent("hparams")
            if "_hparams_/experiment" in content:
                experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
            if "_hparams_/session_start_info" in content:
                session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert experiment is not None and session is not None
    metrics = {info.name.tag for info in experiment.metric_infos}
    assert "best/val/acc" in metrics and {"test/acc", "test/loss"} <= metrics, metrics
    names = {info.name for info in experiment.hparam_infos}
    assert {"experiment", "seed", "model/net/encoder/hidden_size", "model/optimizer/lr", "trainer/max_epochs"} <= names
    assert not [n for n in names if "_target_" in n or "callbacks" in n or n.endswith(("path", "dir"))], names
    values = session.session_start_info.hparams
    assert (
        values["model/optimizer"].string_value in ("Adam", "AdamW")
        and values["model/net/encoder/hidden_size"].number_value == 24
    )


def test_eval_missing_checkpoint_is_one_line_error(compose_eval, tmp_path):
    cfg = compose_eval(f"ckpt_path={tmp_path / 'nope.ckpt'}")
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nope.ckpt"):
        evaluate(cfg)


def _cli(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEQMODELS_LOG_DIR": str(cwd / "logs"), "PYTHONWARNINGS": "ignore"}
    env.pop("SEQMODELS_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "override,expected",
    [
        ("model.net.encoder.cell=bogus", "cell"),
        ("model.net.encoder.num_layers=0", "num_layers"),
        ("model.net.encoder.dropout=1.5", "dropout"),
        ("model/encoder=gru model.net.encoder.proj_size=4", "proj_size"),
    ],
)
def test_bad_model_config_is_one_line_error(compose_train, override, expected):
    from seqmodels.config import describe_error

    cfg = compose_train("experiment=parity", "debug=fdr", *override.split())
    with pytest.raises(Exception) as info:
        train(cfg)
    message = describe_error(info.value)
    assert "\n" not in message and expected in message and "model.net.encoder" in message, message


def test_cli_error_is_a_single_line(tmp_path):
    result = _cli(["seqmodels.cli.train", "experiment=parity", "debug=fdr", "model.net.encoder.num_layers=0"], tmp_path)
    assert result.returncode == 1
    err = [line for line in result.stderr.splitlines() if line.strip()]
    assert err[-1].startswith("seqmodels-train: error: model.net.encoder: num_layers"), result.stderr
    assert "Traceback" not in result.stderr


def test_cli_eval_missing_checkpoint(tmp_path):
    result = _cli(["seqmodels.cli.eval", f"ckpt_path={tmp_path / 'missing.ckpt'}"], tmp_path)
    assert result.returncode == 1
    assert "checkpoint not found" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_cli_multirun_over_three_encoders(tmp_path):
    result = _cli(
        [
            "seqmodels.cli.train",
            "-m",
            "experiment=parity",
            "debug=fdr",
            "model/encoder=rnn,lstm,gru",
            "~callbacks.rich_progress_bar",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((tmp_path / "logs" / "debug" / "multiruns").glob("*/*/.hydra/overrides.yaml"))
    assert len(runs) == 3
    assert {r.read_text().split("model/encoder=")[1].split()[0] for r in runs} == {"rnn", "lstm", "gru"}


@pytest.mark.slow
def test_cli_ddp_sim_two_processes(tmp_path):
    result = _cli(
        [
            "seqmodels.cli.train",
            "experiment=parity",
            "trainer=ddp_sim",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=4",
            "trainer.limit_val_batches=2",
            "trainer.limit_test_batches=2",
            "~callbacks.rich_progress_bar",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/acc" in result.stdout
    assert "world_size: 2" in result.stderr or "MEMBER: 2/2" in result.stderr, result.stderr[-2000:]
    assert math.isfinite(float(result.stdout.split("test/acc:")[1].split()[0]))


@pytest.mark.parametrize(
    "content,expected",
    [
        ("", "file is empty"),
        ("text,sentiment\ngood film,pos\n", "label"),
        ("text,label\n", "no data rows"),
    ],
)
def test_bad_text_csv_is_one_line_error(compose_train, tmp_path, content, expected):
    from seqmodels.config import describe_error

    path = tmp_path / "reviews.csv"
    path.write_text(content)
    cfg = compose_train("experiment=text_classification", "debug=fdr", f"data.train_path={path}")
    with pytest.raises(Exception) as info:
        train(cfg)
    message = describe_error(info.value)
    assert "\n" not in message and expected in message and "reviews.csv" in message, message


def test_missing_data_file_is_one_line_error(compose_train, tmp_path):
    from seqmodels.config import describe_error

    cfg = compose_train("experiment=text_classification", "debug=fdr", f"data.train_path={tmp_path / 'nope.csv'}")
    with pytest.raises(FileNotFoundError) as info:
        train(cfg)
    assert "nope.csv" in describe_error(info.value)


@pytest.mark.slow
def test_cli_optuna_sweep_returns_best_value(tmp_path):
    result = _cli(
        [
            "seqmodels.cli.train",
            "-m",
            "hparams_search=optuna",
            "experiment=parity",
            "debug=fdr",
            "hydra.sweeper.n_trials=2",
            "~callbacks.rich_progress_bar",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (results,) = (tmp_path / "logs").rglob("optimization_results.yaml")
    text = results.read_text()
    assert "best_value:" in text and "model.optimizer.lr" in text


def test_resume_from_last_checkpoint(compose_train, tmp_path):
    short = ["experiment=parity", "data.num_train=128", "data.num_val=64", "data.num_test=64", "test=false"]
    first = train(compose_train(*short, "trainer.max_epochs=2"))
    last = Path(first.best_model_path).parent / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 1
    resumed = compose_train(*short, "trainer.max_epochs=3", f"ckpt_path={last}")
    train(resumed)
    assert torch.load(last, weights_only=True)["epoch"] == 2


def test_training_without_any_logger(compose_train):
    cfg = compose_train(
        "experiment=parity", "logger=none", "+trainer.max_steps=2", "test=false", "data.num_train=64", "data.num_val=16"
    )
    result = train(cfg)  # the default LearningRateMonitor must not stop a run that has no logger
    assert "train/loss" in result.metrics or "train/loss_step" in result.metrics or "val/loss" in result.metrics, (
        result.metrics
    )


@pytest.mark.learns
def test_predict_labels_texts_with_the_text_classifier_checkpoint_alone(compose_train, trained_run):
    """A text classifier's checkpoint alone labels texts (accuracy > 0.85 on its demo set) with probabilities.

    Catches: a vocabulary or label map not saved with the checkpoint, probabilities that do not sum to one.
    """
    import csv

    from omegaconf import OmegaConf

    from seqmodels.data.text import demo_reviews_path
    from seqmodels.predict import label_texts

    result = train(compose_train("experiment=text_classification", "trainer.max_epochs=4"))
    rows = list(csv.DictReader(demo_reviews_path().open()))[:60]
    options = {
        "ckpt_path": result.best_model_path,
        "input_file": None,
        "n_best": 2,
        "batch_size": 16,
        "device": "cpu",
        "weights_only": True,
    }
    results = [label_texts(OmegaConf.create({**options, "input": row["text"]}))[0] for row in rows]
    for (text, best), row in zip(results, rows, strict=True):
        assert text == row["text"] and {label for label, _ in best} == {"negative", "positive"}
        assert best[0][1] >= best[1][1] and sum(p for _, p in best) == pytest.approx(1.0, abs=1e-5)
    accuracy = sum(best[0][0] == row["label"] for (_, best), row in zip(results, rows, strict=True)) / len(rows)
    assert accuracy > 0.85, accuracy
    with pytest.raises(ValueError, match=r"n_best must be in \[1, 2\]"):
        label_texts(OmegaConf.create({**options, "input": "fine", "n_best": 3}))
    # A classifier of synthetic (non-text) sequences says what to use instead.
    _, parity, _ = trained_run
    with pytest.raises(ValueError, match="not text; score it on its data with seqmodels-eval"):
        label_texts(OmegaConf.create({**options, "ckpt_path": parity.best_model_path, "input": "0 1"}))


def test_training_without_validation_data_tests_the_final_weights(compose_train, caplog):
    """data.num_val=0 (val_fraction=0 elsewhere): no validation loop, no monitored checkpoint or early stopping, and
    the final weights (last.ckpt) are tested."""
    cfg = compose_train(
        "experiment=parity",
        "data.num_train=128",
        "data.num_val=0",
        "data.num_test=64",
        "trainer.max_epochs=2",
        "model/scheduler=cosine",
    )
    with caplog.at_level("WARNING", logger="seqmodels.train"):
        result = train(cfg)
    assert "No validation data" in caplog.text
    assert Path(result.best_model_path).name == "last.ckpt"
    assert not any(k.startswith("val/") for k in result.metrics)
    assert math.isnan(result.metrics["best/val/acc"]) and "test/acc" in result.metrics
    saved = torch.load(result.best_model_path, weights_only=True)["state_dict"]
    assert all(torch.equal(saved[name], p.detach()) for name, p in result.task.named_parameters())


def test_a_plateau_schedule_without_validation_data_is_refused_in_one_line(compose_train):
    cfg = compose_train("experiment=parity", "data.num_train=64", "data.num_val=0", "model/scheduler=plateau")
    with pytest.raises(ValueError, match="ReduceLROnPlateau steps on a validation metric.*model/scheduler=cosine"):
        train(cfg)
