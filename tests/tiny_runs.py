"""Tiny training runs of the real config tree, for tests that need a checkpoint (export, runtime)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from seqmodels.config import config_dir
from seqmodels.train import train

# Two training batches, one of validation and test: enough for a checkpoint that answers, not one that answers well.
QUICK = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "~callbacks.early_stopping",
    "logger=[]",
    "~callbacks.rich_progress_bar",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
]


def train_tiny(out: Path, *overrides: str) -> Path:
    """A tiny run (as seqmodels-train composes it) writing into ``out``; its checkpoint's path."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*overrides, *QUICK], return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = cfg.paths.log_dir = cfg.hydra.runtime.output_dir = str(out)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return Path(train(cfg).best_model_path)
