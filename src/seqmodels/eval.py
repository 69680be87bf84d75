"""``seqmodels-eval ckpt_path=...``: evaluate a checkpoint on the test split of the data it was trained on.

The checkpoint carries the run's data and model configs (and the datamodule's vocabulary or scaler), so no
experiment needs to be named again. ``data.*`` overrides (e.g. ``data.num_workers=2``) still apply.
"""

from __future__ import annotations

import logging
import os
import sys

import hydra
import lightning as L
from omegaconf import DictConfig

from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
from seqmodels.config import (
    config_dir,
    describe_error,
    instantiate_loggers,
    silence_library_noise,
)
from seqmodels.train import USER_ERRORS

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    checkpoint = load_checkpoint(cfg.ckpt_path, weights_only=cfg.get("weights_only", True))
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    model, datamodule = build_from_checkpoint(checkpoint, cfg.get("data"))
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=[])
    trainer.test(model=model, datamodule=datamodule)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    print("\n".join(f"{k}: {v:.4f}" for k, v in sorted(metrics.items())), flush=True)
    return metrics


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="eval")
def main(cfg: DictConfig) -> None:
    silence_library_noise()
    try:
        evaluate(cfg)
    except USER_ERRORS as exc:
        if os.environ.get("SEQMODELS_DEBUG"):
            raise
        print(f"seqmodels-eval: error: {describe_error(exc)}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
