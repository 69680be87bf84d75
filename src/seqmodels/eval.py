"""``seqmodels-eval ckpt_path=...``: evaluate a checkpoint on the test split of the data it was trained on.

The checkpoint carries the run's data and model configs (and the datamodule's vocabulary or scaler), so no
experiment needs to be named again. ``data.*`` overrides (e.g. ``data.num_workers=2``) still apply.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from seqmodels.callbacks import CHECKPOINT_KEY
from seqmodels.config import config_dir, describe_error, instantiate_datamodule, instantiate_loggers
from seqmodels.train import USER_ERRORS

log = logging.getLogger(__name__)


def load_checkpoint(path: str | os.PathLike, weights_only: bool = True) -> dict[str, Any]:
    """Loads a seqmodels checkpoint on the CPU, with ``weights_only=True`` unless asked otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}; pass ckpt_path=/path/to/run/checkpoints/epoch_NNN.ckpt")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # torch raises several types for unreadable or unsafe files
        hint = " (it holds pickled objects; pass weights_only=false only if you trust it)" if weights_only else ""
        raise ValueError(f"cannot load checkpoint {path}{hint}: {' '.join(str(exc).split())[:300]}") from exc
    if CHECKPOINT_KEY not in checkpoint or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a seqmodels checkpoint (no '{CHECKPOINT_KEY}' config); train it with seqmodels-train")
    return checkpoint


def task_name(checkpoint: dict[str, Any]) -> str:
    """The class name of the checkpoint's task (``"ForecastingTask"``, ``"SequenceTaggingTask"``, ...)."""
    return str(checkpoint[CHECKPOINT_KEY]["config"]["model"].get("_target_", "")).rsplit(".", 1)[-1]


def requested_device(cfg: DictConfig) -> torch.device:
    """``cfg.device`` (default cpu), refused in one line when it names CUDA on a machine without it."""
    device = torch.device(cfg.get("device", "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA device is available; use device=cpu")
    return device


def build_from_checkpoint(
    checkpoint: dict[str, Any], data_overrides: DictConfig | None = None, setup_data: bool = True
) -> tuple[L.LightningModule, L.LightningDataModule]:
    """Rebuilds the datamodule (with its saved state) and the model (with its weights) from a checkpoint.

    ``setup_data=False`` reads no data: enough to encode and decode with the saved vocabulary.
    """
    saved = OmegaConf.create(checkpoint[CHECKPOINT_KEY]["config"])
    data_cfg = OmegaConf.merge(saved.data, data_overrides or {})
    datamodule_state = checkpoint.get(hydra.utils.get_class(data_cfg._target_).__qualname__)
    datamodule = instantiate_datamodule(data_cfg, state=datamodule_state, setup=setup_data)
    model: L.LightningModule = hydra.utils.instantiate(saved.model)
    model.load_state_dict(checkpoint["state_dict"])
    return model, datamodule


def evaluate(cfg: DictConfig) -> dict[str, float]:
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    checkpoint = load_checkpoint(cfg.ckpt_path, weights_only=cfg.get("weights_only", True))
    model, datamodule = build_from_checkpoint(checkpoint, cfg.get("data"))
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=[])
    trainer.test(model=model, datamodule=datamodule)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    print("\n".join(f"{k}: {v:.4f}" for k, v in sorted(metrics.items())), flush=True)
    return metrics


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="eval")
def main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    except USER_ERRORS as exc:
        if os.environ.get("SEQMODELS_DEBUG"):
            raise
        print(f"seqmodels-eval: error: {describe_error(exc)}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
