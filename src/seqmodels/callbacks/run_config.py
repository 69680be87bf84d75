"""Stores the run's resolved config in every checkpoint, so a checkpoint alone rebuilds its data and model."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

CHECKPOINT_KEY = "seqmodels"


class RunConfigCheckpoint(Callback):
    """Adds ``checkpoint["seqmodels"] = {"config": ..., "version": ...}`` (plain dicts: loads with weights_only)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        from seqmodels import __version__

        checkpoint[CHECKPOINT_KEY] = {"config": self.config, "version": __version__}
