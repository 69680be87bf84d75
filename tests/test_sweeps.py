"""Sweeps: an Optuna study kept in SQLite (resumed, shared by parallel runs), runs pruned by their trial, the best
trial written for seqmodels-eval, and multiruns as parallel processes (hydra/launcher=submitit_local)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

optuna = pytest.importorskip("optuna")

from seqmodels.callbacks.optuna_pruning import (  # noqa: E402 -- after the skip when seqmodels[sweeps] is missing
    CHECKPOINT_ATTR,
    OUTPUT_DIR_ATTR,
    PRUNER_ATTR,
    build_pruner,
    open_storage,
)
from seqmodels.train import train  # noqa: E402

# Parity on short strings: a few batches an epoch, so that a run of several epochs takes seconds.
TINY_PARITY = [
    "experiment=parity",
    "data.max_length=6",
    "data.num_train=256",
    "data.num_val=64",
    "data.num_test=64",
    "~callbacks.early_stopping",
]
# What the compose_train fixture adds, for the command-line runs.
QUIET = ["~callbacks.rich_progress_bar", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]
# Minimise the validation loss: a learning rate of 100 makes it explode at once, so such a trial must be pruned.
ON_VAL_LOSS = ["optimized_metric=val/loss", "optimized_mode=min"]


def _cli(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEQMODELS_LOG_DIR": str(cwd / "logs"), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    env.pop("SEQMODELS_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _study(storage_url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(storage_url))


def test_pruner_specs_build_optuna_pruners_or_name_the_fix():
    assert isinstance(build_pruner({"name": "median", "n_startup_trials": 1}), optuna.pruners.MedianPruner)
    assert isinstance(build_pruner(None), optuna.pruners.NopPruner)
    assert isinstance(build_pruner({"name": "none"}), optuna.pruners.NopPruner)
    with pytest.raises(ValueError, match=r"name=bogus is not a pruner; use one of median, .*=null disables"):
        build_pruner({"name": "bogus"})
    with pytest.raises(ValueError, match=r"the hyperband pruner takes min_resource, .*; remove n_warmup_steps"):
        build_pruner({"name": "hyperband", "n_warmup_steps": 2})


def test_a_storage_that_cannot_be_opened_is_a_one_line_error(tmp_path):
    not_a_database = tmp_path / "notes.db"
    not_a_database.write_text("not a database\n")
    with pytest.raises(ValueError, match="cannot be opened") as info:
        open_storage(f"sqlite:///{not_a_database}")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="driver for this URL is not installed; install it"):
        open_storage("postgresql://nobody@127.0.0.1:1/none")


def test_cli_unknown_pruner_is_a_one_line_error(tmp_path):
    result = _cli(
        ["seqmodels.cli.train", "-m", "hparams_search=optuna", "experiment=parity", "hydra.sweeper.pruner.name=bogus"],
        tmp_path,
        timeout=120,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("seqmodels-train: error: hydra.sweeper.pruner.name=bogus is not a pruner"), result.stderr


@pytest.mark.filterwarnings("ignore:.*is experimental")  # Optuna 2.10's create_trial and add_trial
def test_a_run_worse_than_the_finished_trials_stops_and_is_recorded_pruned(compose_train, tmp_path):
    """The callback reports each epoch's val/loss to the run's trial; one far worse than the finished trial's at the
    same epoch is pruned after its first epoch of four, and its trial ends PRUNED with the run folder and checkpoint.
    """
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="pruning", storage=open_storage(url), direction="minimize")
    study.set_user_attr(PRUNER_ATTR, {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0})
    finished = {0: 0.70, 1: 0.69, 2: 0.68, 3: 0.67}  # a warm-up trial that reached a low validation loss
    study.add_trial(optuna.trial.create_trial(value=0.67, intermediate_values=finished))
    running = study.ask()

    cfg = compose_train(
        *TINY_PARITY,
        *ON_VAL_LOSS,
        "hparams_search=optuna",
        "logger=[]",
        "test=false",
        "trainer.max_epochs=4",
        "model.optimizer.lr=100",
        f"+optuna_trial.storage='{url}'",
        "+optuna_trial.study_name=pruning",
        f"+optuna_trial.number={running.number}",
    )
    result = train(cfg)

    trial = _study(url, "pruning").trials[running.number]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [0], trial.intermediate_values  # reported once, then stopped
    assert trial.intermediate_values[0] > 0.70
    last = torch.load(Path(trial.user_attrs[OUTPUT_DIR_ATTR]) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0  # trained one epoch of four
    assert trial.user_attrs[CHECKPOINT_ATTR] == str(Path(result.best_model_path).resolve())


@pytest.mark.slow
def test_sweep_resumes_its_study_prunes_and_writes_the_best_trial_for_seqmodels_eval(tmp_path):
    """Two sessions of one study: the first completes a trial; the second, asked for two trials in all, runs only one,
    whose run is pruned. <sweep dir>/best/ then names the first session's trial, and seqmodels-eval runs on it."""
    sweep = [
        "seqmodels.cli.train",
        "-m",
        "hparams_search=optuna",
        *TINY_PARITY,
        *QUIET,
        *ON_VAL_LOSS,
        "logger=csv",
        "trainer.max_epochs=3",
        "hydra.sweeper.params=null",  # the learning rate is fixed per session, to make the second trial bad
        "hydra.sweeper.pruner.n_startup_trials=1",
        "hydra.sweeper.pruner.n_warmup_steps=0",
    ]
    first = _cli([*sweep, "model.optimizer.lr=0.01", "hydra.sweeper.n_trials=1"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    second = _cli([*sweep, "model.optimizer.lr=100", "hydra.sweeper.n_trials=2"], tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]

    url = f"sqlite:///{tmp_path / 'logs' / 'optuna' / 'parity.db'}"
    trials = _study(url, "parity").trials
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"]
    assert list(trials[1].intermediate_values) == [0]  # stopped after its first epoch of three
    sweep_dirs = sorted((tmp_path / "logs" / "parity" / "multiruns").iterdir())
    assert len(sweep_dirs) == 2
    assert sorted(p.name for p in sweep_dirs[1].iterdir() if p.name.isdigit()) == ["0"]  # one new trial only

    best = sweep_dirs[1] / "best"
    assert (best / "best.ckpt").resolve() == Path(trials[0].user_attrs[CHECKPOINT_ATTR])
    assert (best / "best_checkpoint.txt").read_text().strip() == trials[0].user_attrs[CHECKPOINT_ATTR]
    overrides = (best / "overrides.yaml").read_text()
    assert "model.optimizer.lr=0.01" in overrides and "optuna_trial" not in overrides
    assert "hparams_search" not in overrides
    config = OmegaConf.load(best / "config.yaml")
    assert "optuna_trial" not in config and config.model.optimizer.lr == 0.01  # a rerun is not that trial
    summary = (sweep_dirs[1] / "optimization_results.yaml").read_text()
    assert "complete: 1" in summary and "pruned: 1" in summary and "best_trial: 0" in summary

    evaluated = _cli(["seqmodels.cli.eval", f"ckpt_path={best / 'best.ckpt'}", *QUIET[1:]], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "test/loss:" in evaluated.stdout


@pytest.mark.slow
def test_optuna_trials_of_a_batch_run_in_parallel_processes_on_one_study(tmp_path):
    """n_jobs=2 with submitit_local (a 2-job multirun): both trials run at once, as processes of their own
    reporting to the same SQLite study, each writing its run folder and checkpoint."""
    result = _cli(
        [
            "seqmodels.cli.train",
            "-m",
            "hparams_search=optuna",
            "hydra/launcher=submitit_local",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=2",
            *TINY_PARITY,
            *QUIET,
            "data.num_train=128",
            "trainer.max_epochs=2",
            "logger=csv",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = _study(f"sqlite:///{tmp_path / 'logs' / 'optuna' / 'parity.db'}", "parity").trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert all(list(t.intermediate_values) == [0, 1] for t in trials)  # each run reported both epochs
    (sweep_dir,) = (tmp_path / "logs" / "parity" / "multiruns").iterdir()
    assert len([p for p in (sweep_dir / ".submitit").iterdir() if p.name.isdigit()]) == 2  # one process per job
    for job in ("0", "1"):
        assert (sweep_dir / job / "csv" / "metrics.csv").read_text().count("val/acc") >= 1
        assert list((sweep_dir / job / "checkpoints").glob("epoch_*.ckpt"))
    assert (sweep_dir / "best" / "best.ckpt").is_file()
