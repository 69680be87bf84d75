"""Ensembles of checkpoints in seqmodels-predict and the Python API: forecasters combined (mean, median, Gaussian
mixture, quantiles per level) in forecasts, backtests and conformal calibration; classifiers' probabilities
averaged; the one-line errors for members that are missing, unreadable, set up otherwise or of another kind."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

import seqmodels
from seqmodels.callbacks import CHECKPOINT_KEY
from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
from seqmodels.data.forecasting import Forecast
from seqmodels.predict import label_texts, predict_from_checkpoint, write_forecasts
from seqmodels.train import train

# A noisy sine (noise half the amplitude) so that the seeds' forecasts differ; data.seed is pinned, since the
# noise follows it and the members must forecast the same series. Quick: 2 epochs of a tiny GRU.
NOISY_SINE = [
    "experiment=sunspots",
    "data.source=sine",
    "+data.sine_length=300",
    "+data.sine_noise=0.5",
    "data.seed=0",
    "data.lookback=12",
    "data.horizon=6",
    "data.val_size=60",
    "data.test_size=60",
    "data.seasonal_period=50",
    "data.calendar=null",
    "model.net.encoder.hidden_size=8",
    "model.plot_every_n_epochs=0",
    "trainer.max_epochs=2",
    "trainer.enable_checkpointing=true",
    "test=false",
    "logger=none",
]

_TRAINED: dict[tuple[str, int], list[str]] = {}


@pytest.fixture
def forecasters(compose_train_at, tmp_path_factory):
    """forecasters("mae", 3) -> checkpoint paths of 3 seeds with that output head (trained once per session)."""

    def _make(output: str, count: int) -> list[str]:
        if (output, count) not in _TRAINED:
            root = tmp_path_factory.mktemp(f"ensemble_{output}")
            head = f"model/forecasting_output={output}"
            _TRAINED[output, count] = [
                train(compose_train_at(root / f"seed_{seed}", *NOISY_SINE, head, f"seed={seed}")).best_model_path
                for seed in range(count)
            ]
        return _TRAINED[output, count]

    return _make


def _backtest(path: str, split: str = "test") -> Forecast:
    task, datamodule = build_from_checkpoint(load_checkpoint(path), setup_data=False)
    return datamodule.backtest(task, split)


def _config(ckpt_path, **options) -> DictConfig:
    base = {"ckpt_path": ckpt_path, "input": None, "input_file": None, "output_file": None, "weights_only": True}
    return OmegaConf.create({**base, **options})


def test_an_ensemble_backtest_is_the_mean_or_median_of_its_members(forecasters, tmp_path):
    paths = forecasters("mae", 3)
    members = [_backtest(path) for path in paths]
    points = np.stack([member.point for member in members])
    assert not np.allclose(points[0], points[1])  # seeds differ, or the test proves nothing

    mean = seqmodels.ensemble_backtest(paths)
    np.testing.assert_allclose(mean.point, points.mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(mean.actual, members[0].actual)
    median = seqmodels.ensemble_backtest(paths, combine="median")
    np.testing.assert_allclose(median.point, np.median(points, axis=0), rtol=1e-6, atol=1e-6)

    # The CLI's CSV holds the same forecasts; a glob of the checkpoints is the same ensemble.
    out = tmp_path / "backtest.csv"
    assert write_forecasts(_config(paths, backtest="test", output_file=str(out)))
    written = np.array([float(row["forecast"]) for row in csv.DictReader(out.open())])
    np.testing.assert_allclose(written, mean.point.reshape(-1), rtol=1e-5)
    for seed, path in enumerate(paths):  # as a multirun lays them out: one folder per run
        (tmp_path / "multirun" / str(seed)).mkdir(parents=True)
        shutil.copy(path, tmp_path / "multirun" / str(seed) / "best.ckpt")
    pattern = str(tmp_path / "multirun" / "*" / "best.ckpt")
    globbed = tmp_path / "globbed.csv"
    assert write_forecasts(_config(pattern, backtest="test", output_file=str(globbed)))
    assert globbed.read_text() == out.read_text()

    # Forecasts past the end of the series, from Python: the members' mean too.
    ahead = seqmodels.ensemble_forecast(paths)
    alone = []
    for path in paths:
        task, datamodule = build_from_checkpoint(load_checkpoint(path), setup_data=False)
        alone.append(datamodule.forecast(task).point)
    np.testing.assert_allclose(ahead.point, np.mean(alone, axis=0), rtol=1e-6, atol=1e-6)


def test_an_ensemble_of_seeds_is_no_worse_than_its_members_on_average(forecasters):
    """MAE is convex in the forecast, so the mean forecast's MAE is at most the members' mean MAE: exact."""
    paths = forecasters("mae", 3)
    members = [_backtest(path) for path in paths]
    ensemble = seqmodels.ensemble_backtest(paths)
    member_mae = [np.abs(member.point - member.actual).mean() for member in members]
    ensemble_mae = np.abs(ensemble.point - ensemble.actual).mean()
    assert ensemble_mae <= np.mean(member_mae) + 1e-9, (ensemble_mae, member_mae)


def test_gaussian_members_combine_as_a_mixture(forecasters):
    from seqmodels.nn.forecasting import GaussianOutput

    paths = forecasters("gaussian", 2)
    members = [_backtest(path) for path in paths]
    z = GaussianOutput(interval=0.8).z
    means = np.stack([member.point for member in members]).astype(np.float64)
    stds = np.stack([(member.upper - member.lower) / (2 * z) for member in members]).astype(np.float64)
    variance = (stds**2).mean(0) + means.var(0)  # the mean of the variances plus the variance of the means
    ensemble = seqmodels.ensemble_backtest(paths)
    np.testing.assert_allclose(ensemble.point, means.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ensemble.lower, means.mean(0) - z * np.sqrt(variance), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ensemble.upper, means.mean(0) + z * np.sqrt(variance), rtol=1e-4, atol=1e-4)
    # The mixture is at least as wide as the average member: the means' spread adds to it.
    assert (ensemble.upper - ensemble.lower >= np.mean([m.upper - m.lower for m in members], axis=0) - 1e-4).all()


def test_quantile_members_average_per_level_and_calibrate_conformal_on_the_ensemble(forecasters, tmp_path):
    from seqmodels.conformal import SplitConformal

    paths = forecasters("quantile", 2)
    members = [_backtest(path) for path in paths]
    ensemble = seqmodels.ensemble_backtest(paths)
    np.testing.assert_allclose(ensemble.quantiles, np.mean([m.quantiles for m in members], axis=0), atol=1e-5)
    np.testing.assert_allclose(ensemble.lower, ensemble.quantiles[..., 0], atol=1e-6)
    assert ensemble.quantile_levels == members[0].quantile_levels

    out = tmp_path / "conformal.csv"
    assert write_forecasts(_config(paths, backtest="test", conformal=0.8, conformal_gamma=0, output_file=str(out)))
    rows = list(csv.DictReader(out.open()))
    validation = seqmodels.ensemble_backtest(paths, split="val")
    calibration = SplitConformal.calibrate(validation.point, validation.actual)
    low, high = calibration.interval(ensemble.point, 0.8)
    np.testing.assert_allclose([float(r["conformal_lower_80"]) for r in rows], low.reshape(-1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose([float(r["conformal_upper_80"]) for r in rows], high.reshape(-1), rtol=1e-5, atol=1e-5)


def _altered(path: str, out: Path, change) -> str:
    """A copy of the checkpoint at ``path`` with ``change(checkpoint)`` applied, saved as ``out``."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    change(checkpoint)
    torch.save(checkpoint, out)
    return str(out)


def test_members_set_up_otherwise_are_one_line_errors_naming_the_setting(forecasters, tmp_path):
    first, second = forecasters("mae", 3)[:2]

    def other_lookback(checkpoint):
        checkpoint[CHECKPOINT_KEY]["config"]["data"]["lookback"] = 8

    def other_scaler(checkpoint):
        state = checkpoint["ForecastingDataModule"]
        state["mean"] = [value + 1.0 for value in state["mean"]]

    out = tmp_path / "forecast.csv"
    lookback = _altered(second, tmp_path / "lookback.ckpt", other_lookback)
    with pytest.raises(ValueError, match=r"lookback\.ckpt has data\.lookback=8 but .* has data\.lookback=12") as error:
        write_forecasts(_config([first, lookback], output_file=str(out)))
    assert "\n" not in str(error.value)
    scaler = _altered(second, tmp_path / "scaler.ckpt", other_scaler)
    with pytest.raises(ValueError, match=r"scaler\.ckpt has other scaler statistics \(mean\)"):
        write_forecasts(_config([first, scaler], output_file=str(out)))
    gaussian = forecasters("gaussian", 2)[0]
    with pytest.raises(ValueError, match=r"must share the output head: .* has GaussianOutput\(interval 0\.8\)"):
        seqmodels.ensemble_forecast([first, gaussian])
    assert not out.exists()


def test_missing_unreadable_or_other_kinds_of_members_are_one_line_errors(forecasters, tmp_path):
    first = forecasters("mae", 3)[0]
    out = tmp_path / "forecast.csv"
    missing = tmp_path / "missing.ckpt"
    with pytest.raises(FileNotFoundError, match=f"checkpoint not found: {missing}"):
        predict_from_checkpoint(_config([first, str(missing)], output_file=str(out)))
    junk = tmp_path / "notes.ckpt"
    junk.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="cannot load checkpoint .*notes.ckpt"):
        predict_from_checkpoint(_config([first, str(junk)], output_file=str(out)))
    with pytest.raises(FileNotFoundError, match=r"ckpt_path=.*nothing\*\.ckpt matches no file"):
        predict_from_checkpoint(_config(str(tmp_path / "nothing*.ckpt")))
    with pytest.raises(ValueError, match="ensemble must be one of mean, median"):
        predict_from_checkpoint(_config([first, first], ensemble="mode"))

    def as_task(target: str):
        def change(checkpoint):
            checkpoint[CHECKPOINT_KEY]["config"]["model"]["_target_"] = target

        return change

    seq2seq = _altered(first, tmp_path / "seq2seq.ckpt", as_task("seqmodels.tasks.seq2seq.Seq2SeqTask"))
    with pytest.raises(ValueError, match="only forecasters .* and classifiers .* combine into an ensemble"):
        predict_from_checkpoint(_config([seq2seq, seq2seq], output_file=str(out)))
    classifier_task = as_task("seqmodels.tasks.many_to_one.SequenceClassificationTask")
    classifier = _altered(first, tmp_path / "classifier.ckpt", classifier_task)
    with pytest.raises(ValueError, match=r"same kind of model: .*classifier\.ckpt is a SequenceClassificationTask"):
        predict_from_checkpoint(_config([first, classifier], output_file=str(out)))
    assert not out.exists()

    # On the command line: one line on stderr, exit status 1.
    result = subprocess.run(
        [sys.executable, "-m", "seqmodels.cli.predict", f"ckpt_path=[{first},{missing}]", f"output_file={out}"],
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", "PATH": ""},
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1].startswith(f"seqmodels-predict: error: checkpoint not found: {missing}")
    )
    assert not out.exists()


def test_classifier_ensembles_average_the_class_probabilities(tmp_path):
    from tiny_runs import train_tiny

    overrides = (
        "experiment=text_classification",
        "data.tokenizer=word",
        "data.max_length=6",
        "model.net.frontend.embedding_dim=8",
        "model.net.encoder.hidden_size=8",
    )
    paths = [str(train_tiny(tmp_path / f"seed_{seed}", *overrides, f"seed={seed}")) for seed in range(2)]
    classes = len(build_from_checkpoint(load_checkpoint(paths[0]), setup_data=False)[1].class_names)
    texts = ["great value, works well", "broke after a day"]

    def probabilities(ckpt_path) -> list[dict[str, float]]:
        found = label_texts(_config(ckpt_path, input=None, input_file=str(inputs), n_best=classes, batch_size=8))
        return [dict(outputs) for _, outputs in found]

    inputs = tmp_path / "texts.txt"
    inputs.write_text("\n".join(texts) + "\n")
    members = [probabilities(path) for path in paths]
    ensemble = probabilities(paths)
    assert members[0] != members[1]
    for index in range(len(texts)):
        for label, probability in ensemble[index].items():
            expected = (members[0][index][label] + members[1][index][label]) / 2
            assert probability == pytest.approx(expected, abs=1e-6)
        assert list(ensemble[index].values()) == sorted(ensemble[index].values(), reverse=True)
    with pytest.raises(ValueError, match="averages their class probabilities: set ensemble=mean"):
        label_texts(_config(paths, input="great", n_best=1, batch_size=8, ensemble="median"))
