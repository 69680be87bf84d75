"""Shared fixtures: compose the real config tree the way the entrypoints do, writing into a temp dir."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from seqmodels.config import config_dir

# Quiet, CPU-only, no progress bars in the test logs.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

TEST_OVERRIDES = ["~callbacks.rich_progress_bar", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]


def _compose(config_name: str, overrides: list[str], out_dir: Path) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out_dir)
        cfg.paths.log_dir = str(out_dir)
        cfg.hydra.runtime.output_dir = str(out_dir)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


@pytest.fixture
def compose_train(tmp_path: Path) -> Callable[..., DictConfig]:
    """compose_train("experiment=parity", "debug=fdr") -> a train config writing under tmp_path."""

    def _make(*overrides: str, quiet: bool = True) -> DictConfig:
        extra = TEST_OVERRIDES if quiet else []
        return _compose("train", [*overrides, *extra], tmp_path)

    return _make


@pytest.fixture
def compose_train_at() -> Callable[..., DictConfig]:
    """compose_train_at(out_dir, "experiment=parity") -> a train config writing under out_dir (several runs a test)."""

    def _make(out_dir: Path, *overrides: str) -> DictConfig:
        return _compose("train", [*overrides, *TEST_OVERRIDES], Path(out_dir))

    return _make


@pytest.fixture
def compose_eval(tmp_path: Path) -> Callable[..., DictConfig]:
    def _make(*overrides: str) -> DictConfig:
        return _compose("eval", list(overrides), tmp_path / "eval")

    return _make
