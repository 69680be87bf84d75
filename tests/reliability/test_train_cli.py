"""seqmodels-train on bad settings and bad checkpoints: one line naming the problem, nothing written lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from seqmodels.config import describe_error
from seqmodels.train import train

TINY = ["experiment=parity", "data.num_train=64", "data.num_val=32", "data.num_test=32", "trainer.max_epochs=1"]


def _error(cfg) -> str:
    with pytest.raises(ValueError) as raised:
        train(cfg)
    return describe_error(raised.value)


def test_two_runs_started_at_once_get_their_own_folders(compose_train):
    first, second = compose_train(*TINY), compose_train(*TINY)
    dirs = {OmegaConf.select(cfg, "hydra.run.dir") for cfg in (first, second)}
    assert len(dirs) == 2 and all("/parity/runs/" in d for d in dirs), dirs


def test_a_folder_with_another_run_s_checkpoints_is_not_overwritten(compose_train_at, tmp_path):
    train(compose_train_at(tmp_path, *TINY))
    last = tmp_path / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    message = _error(compose_train_at(tmp_path, *TINY))
    assert message.startswith(f"{tmp_path} already holds another run's checkpoints") and "ckpt_path=" in message
    assert last.read_bytes() == before


@pytest.mark.parametrize("kind", ["empty", "truncated", "folder", "not a checkpoint"])
def test_an_unreadable_resume_checkpoint_is_one_line_naming_it(compose_train_at, tmp_path, kind):
    path = tmp_path / "bad.ckpt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        torch.save({"state_dict": {"w": torch.zeros(1000)}}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "folder":
        path.mkdir()
    else:
        torch.save({"state_dict": {}}, path)
    message = _error(compose_train_at(tmp_path / "run", *TINY, f"ckpt_path={path}"))
    assert str(path) in message and "\n" not in message, message
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_resuming_with_another_task_s_checkpoint_names_both_tasks(compose_train_at, tmp_path):
    train(
        compose_train_at(tmp_path / "adding", "experiment=adding_problem", "data.num_train=64", "trainer.max_epochs=1")
    )
    other = tmp_path / "adding" / "checkpoints" / "last.ckpt"
    message = _error(compose_train_at(tmp_path / "parity", *TINY, f"ckpt_path={other}"))
    assert "SequenceRegressionTask" in message and "SequenceClassificationTask" in message, message


def test_resuming_with_other_sizes_names_the_weight(compose_train_at, tmp_path):
    train(compose_train_at(tmp_path / "small", *TINY))
    small = tmp_path / "small" / "checkpoints" / "last.ckpt"
    message = _error(
        compose_train_at(tmp_path / "big", *TINY, "model.net.encoder.hidden_size=48", f"ckpt_path={small}")
    )
    assert "has shape" in message and "build the model with the sizes it was trained with" in message, message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.optimizer.lr=abc", "model.optimizer.lr must be a number, got 'abc'"),
        ("model.optimizer.weight_decay=high", "model.optimizer.weight_decay must be a number, got 'high'"),
        ("seed=abc", "seed must be an integer (or null), got 'abc'"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 trains nothing"),
    ],
)
def test_a_setting_of_the_wrong_kind_is_named_before_anything_is_built(compose_train_at, tmp_path, override, expected):
    message = _error(compose_train_at(tmp_path, *TINY[:-1], override))
    assert message.startswith(expected), message
    assert not (tmp_path / "checkpoints").exists()


def _cli(cli: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEQMODELS_LOG_DIR": str(cwd / "logs")}
    return subprocess.run(
        [sys.executable, "-m", f"seqmodels.cli.{cli}", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def test_cli_names_a_bad_learning_rate_in_one_line(tmp_path):
    result = _cli("train", *TINY, "model.optimizer.lr=abc", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "seqmodels-train: error: model.optimizer.lr must be a number, got 'abc'"
    ), result.stderr
    assert "Traceback" not in result.stderr


def test_an_empty_checkpoint_keeps_the_message_that_names_it(tmp_path):
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    result = _cli("eval", f"ckpt_path={empty}", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"seqmodels-eval: error: cannot load checkpoint {empty}: the file is empty"
    ), result.stderr


def test_a_device_that_is_not_one_is_named_with_the_choices():
    from seqmodels.config import requested_device

    with pytest.raises(ValueError, match=r"^device='foo' is not a device; use device=cpu or device=cuda$"):
        requested_device(OmegaConf.create({"device": "foo"}))
    assert requested_device(OmegaConf.create({})) == torch.device("cpu")


@pytest.mark.parametrize(
    ("overrides", "refused"),
    [
        (["data=parity"], True),
        (["model=regression", "trainer.max_epochs=2"], True),
        (["experiment=parity", "data.num_train=10"], False),
        (["experiment=none", "data=parity"], False),
        (["experiment=adding_problem", "data=adding_problem"], False),
        (["data.batch_size=8"], False),
    ],
)
def test_data_or_model_without_a_recipe_is_refused(overrides, refused):
    """Catches ``seqmodels-train data=parity`` silently training with the default recipe's name, metric and model."""
    from seqmodels.config import check_experiment_choice

    if not refused:
        check_experiment_choice(overrides)
        return
    with pytest.raises(ValueError, match=r"without experiment= keeps experiment=japanese_vowels .*experiment=none"):
        check_experiment_choice(overrides)


def test_cli_refuses_data_without_experiment_in_one_line(tmp_path):
    result = _cli("train", "data=parity", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("seqmodels-train: error: data=parity without experiment= keeps experiment=japanese_vowels")
    ), result.stderr
