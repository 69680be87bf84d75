"""Evaluation of a checkpoint on the test split of the data it was trained on (the library behind seqmodels-eval).

The checkpoint carries the run's data and model configs (and the datamodule's vocabulary or scaler), so no
experiment needs to be named again. ``data.*`` overrides (e.g. ``data.num_workers=2``) still apply.
"""

from __future__ import annotations

import hydra
import lightning as L
from omegaconf import DictConfig

from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
from seqmodels.config import instantiate_loggers


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Tests ``cfg.ckpt_path`` with ``cfg.trainer``; returns the ``test/*`` metrics."""
    checkpoint = load_checkpoint(cfg.ckpt_path, weights_only=cfg.get("weights_only", True))
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    model, datamodule = build_from_checkpoint(checkpoint, cfg.get("data"))
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=[])
    trainer.test(model=model, datamodule=datamodule)
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
