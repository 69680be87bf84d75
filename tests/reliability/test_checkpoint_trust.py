"""A checkpoint is data: its stored config is rebuilt only through the allow-list, and nothing in it runs.

Each crafted checkpoint holds only dicts and strings (so ``torch.load(weights_only=True)`` accepts it) and names a
callable that would leave a trace: a marker file that must not exist afterwards, or a file it would truncate.
"""

from __future__ import annotations

import base64
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqmodels.callbacks import CHECKPOINT_KEY
from seqmodels.checkpoint import UntrustedCheckpointError, build_from_checkpoint, check_config, load_checkpoint

VALID_DATA = {"_target_": "seqmodels.data.ParityDataModule", "num_train": 8, "num_val": 4, "num_test": 4}
VALID_MODEL = {
    "_target_": "seqmodels.tasks.SequenceClassificationTask",
    "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 0.01},
}


class _TouchOnUnpickle:
    """Unpickling this object creates ``path`` (what a malicious pickle would do, harmlessly)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _write_checkpoint(path: Path, model: dict, data: dict | None = None) -> Path:
    config = {"data": data or VALID_DATA, "model": model, "seed": 1}
    torch.save({CHECKPOINT_KEY: {"config": config}, "state_dict": {}}, path)
    return path


def _payloads(tmp_path: Path) -> dict[str, tuple[dict, dict | None, str]]:
    """name -> (model config, data config, key path the refusal must name)."""
    marker = tmp_path / "marker"
    evil_pickle = tmp_path / "second.pt"
    evil_pickle.write_bytes(pickle.dumps(_TouchOnUnpickle(marker)))
    encoded = base64.b64encode(pickle.dumps(_TouchOnUnpickle(marker))).decode()
    return {
        "torch.load of a second file": (
            {"_target_": "torch.load", "f": str(evil_pickle), "weights_only": False},
            None,
            "config.model._target_",
        ),
        "pickle.loads chain in one file": (
            {"_target_": "pickle.loads", "data": {"_target_": "base64.b64decode", "s": encoded}},
            None,
            "config.model._target_",
        ),
        "target nested under a data length": (
            VALID_MODEL,
            {**VALID_DATA, "min_length": {"_target_": "builtins.open", "file": str(marker), "mode": "w"}},
            "config.data.min_length._target_",
        ),
        "a function reached through a seqmodels module": (
            {**VALID_MODEL, "net": {"_target_": "seqmodels.checkpoint.torch.load", "f": str(evil_pickle)}},
            None,
            "config.model.net._target_",
        ),
        "a foreign class re-exported by a seqmodels module": (
            {**VALID_MODEL, "net": {"_target_": "seqmodels.data.text.Path", "_args_": [str(marker)]}},
            None,
            "config.model.net._target_",
        ),
        "functools.partial around a callable": (
            {**VALID_MODEL, "optimizer": {"_target_": "functools.partial", "_args_": ["builtins.open", str(marker)]}},
            None,
            "config.model.optimizer._target_",
        ),
        "an interpolation a resolver would run": (
            {**VALID_MODEL, "name": "${oc.env:HOME}"},
            None,
            "config.model.name",
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "torch.load of a second file",
        "pickle.loads chain in one file",
        "target nested under a data length",
        "a function reached through a seqmodels module",
        "a foreign class re-exported by a seqmodels module",
        "functools.partial around a callable",
        "an interpolation a resolver would run",
    ],
)
def test_a_crafted_checkpoint_is_refused_naming_the_key_and_runs_nothing(tmp_path, name):
    model, data, key_path = _payloads(tmp_path)[name]
    path = _write_checkpoint(tmp_path / "evil.ckpt", model, data)
    with pytest.raises(UntrustedCheckpointError) as refused:
        load_checkpoint(path)
    assert str(refused.value).startswith(f"{path}: ") and key_path in str(refused.value)
    # A checkpoint dict built in memory (not read from a file) goes through the same check.
    with pytest.raises(UntrustedCheckpointError):
        build_from_checkpoint({CHECKPOINT_KEY: {"config": {"data": data or VALID_DATA, "model": model}}})
    assert not (tmp_path / "marker").exists()


def test_builtins_open_cannot_truncate_a_file(tmp_path):
    victim = tmp_path / "notes.txt"
    victim.write_text("precious\n")
    path = _write_checkpoint(tmp_path / "evil.ckpt", {"_target_": "builtins.open", "file": str(victim), "mode": "w"})
    with pytest.raises(UntrustedCheckpointError, match="config.model._target_='builtins.open'"):
        load_checkpoint(path)
    assert victim.read_text() == "precious\n"


def test_the_allow_list_admits_what_seqmodels_writes():
    """Catches an allow-list so strict that real checkpoints stop loading: every class the configs build."""
    check_config(
        {
            "data": VALID_DATA,
            "model": {
                **VALID_MODEL,
                "net": {
                    "_target_": "seqmodels.nn.ManyToOneNet",
                    "encoder": {"_target_": "seqmodels.nn.RecurrentEncoder"},
                },
                "scheduler": {"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "_partial_": True},
                "cosine": {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "_partial_": True},
                "callback": {"_target_": "lightning.pytorch.callbacks.EarlyStopping", "monitor": "val/loss"},
                "list": [1, 2.5, "text", None, True],
            },
        },
        "config",
        "test",
    )


@pytest.mark.parametrize("cli", ["eval", "predict", "generate", "export"])
def test_every_cli_refuses_the_checkpoint_in_one_line_and_runs_nothing(tmp_path, cli):
    model, data, key_path = _payloads(tmp_path)["target nested under a data length"]
    path = _write_checkpoint(tmp_path / "evil.ckpt", model, data)
    args = [f"ckpt_path={path}", "input=abc"] if cli == "predict" else [f"ckpt_path={path}"]
    env = {**os.environ, "SEQMODELS_LOG_DIR": str(tmp_path / "logs")}
    result = subprocess.run(
        [sys.executable, "-m", f"seqmodels.cli.{cli}", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"seqmodels-{cli}: error: "), result.stderr
    assert key_path in lines[0], result.stderr
    assert not (tmp_path / "marker").exists()
