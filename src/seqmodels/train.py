"""``seqmodels-train``: compose configs, build data, model, trainer, loggers and callbacks, fit, then test.

seqmodels-train experiment=parity model/encoder=gru trainer.max_epochs=5
seqmodels-train -m model/encoder=rnn,lstm,gru
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seqmodels.callbacks import CHECKPOINT_KEY, EpochSeed, RunConfigCheckpoint
from seqmodels.checkpoint import check_weights_fit, load_checkpoint
from seqmodels.config import (
    check_run_settings,
    config_dir,
    describe_error,
    instantiate_callbacks,
    instantiate_datamodule,
    instantiate_loggers,
    resolve_with_datamodule,
    silence_library_noise,
)

log = logging.getLogger(__name__)

# Errors a user can fix from the command line; anything else is a bug and keeps its traceback.
USER_ERRORS = (
    ValueError,
    TypeError,
    FileNotFoundError,
    ImportError,  # an optional extra (e.g. seqmodels[datasets]) is not installed
    KeyError,
    hydra.errors.InstantiationException,
    OmegaConfBaseException,
)


def _log_hyperparameters(loggers: list, cfg: DictConfig, model: L.LightningModule, metric_name: str) -> None:
    if not loggers:
        return
    params: dict[str, Any] = {
        key: OmegaConf.to_container(cfg[key], resolve=True)
        for key in ("data", "model", "trainer", "callbacks")
        if cfg.get(key) is not None
    }
    params["seed"] = cfg.get("seed")
    params["tags"] = ",".join(cfg.get("tags") or [])
    params["model/params/total"] = sum(p.numel() for p in model.parameters())
    params["model/params/trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    config_text = OmegaConf.to_yaml({key: params[key] for key in ("data", "model", "trainer") if key in params})
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            # A placeholder metric registers the hparams session; the best score replaces it after fit.
            logger.log_hyperparams(params, metrics={"hp_metric": float("nan")})
            # Markdown code block: TensorBoard's text tab keeps the YAML's indentation.
            text = "    " + config_text.replace("\n", "\n    ")
            logger.experiment.add_text("config", text, global_step=0)
        else:
            logger.log_hyperparams(params)


@dataclass
class _Resume:
    run_dir: Path | None  # the run the checkpoint belongs to, continued in place; None: a checkpoint from elsewhere
    state_dict: dict[str, Any]


def _prepare_resume(cfg: DictConfig) -> _Resume | None:
    """Checks ``ckpt_path`` before anything is built, and makes a resumed run continue in its own run folder.

    A checkpoint under ``<run>/checkpoints/`` resumes that run: checkpoints, TensorBoard events and the best score
    so far stay in ``<run>``, as if it had never stopped. Without ``ckpt_path``, a folder that already holds
    another run's checkpoints is refused rather than overwritten.
    """
    output_dir = Path(str(cfg.paths.output_dir))
    if cfg.get("ckpt_path") is None:
        existing = sorted((output_dir / "checkpoints").glob("*.ckpt")) if cfg.get("train", True) else []
        if existing:
            raise ValueError(
                f"{output_dir} already holds another run's checkpoints ({existing[0].name}); start a new run folder, "
                f"or resume that run with ckpt_path={existing[-1]}"
            )
        return None
    path = Path(str(cfg.ckpt_path)).expanduser()
    checkpoint = load_checkpoint(path)
    stored = checkpoint[CHECKPOINT_KEY]["config"]
    for part in ("model", "data"):
        theirs, ours = stored.get(part, {}).get("_target_"), cfg[part].get("_target_")
        if theirs != ours:
            raise ValueError(
                f"ckpt_path={path} holds a {str(theirs).rsplit('.', 1)[-1]} run, but this run builds a "
                f"{str(ours).rsplit('.', 1)[-1]}; resume with the experiment that wrote the checkpoint"
            )
    run_dir = path.resolve().parent.parent if path.resolve().parent.name == "checkpoints" else None
    if run_dir is not None and run_dir != output_dir.resolve():
        cfg.paths.output_dir = str(run_dir)
        # Lightning's CSV logger empties an existing metrics.csv: the resumed part goes beside it.
        for logger_cfg in (cfg.get("logger") or {}).values():
            if logger_cfg is not None and str(logger_cfg.get("_target_", "")).endswith("CSVLogger"):
                logger_cfg.version = f"resumed_from_{path.stem}"
        print(f"resuming {run_dir} from {path.name}", flush=True)
    return _Resume(run_dir, checkpoint["state_dict"])


def train(cfg: DictConfig, extra_callbacks: list[L.Callback] | None = None) -> dict[str, float]:
    """Trains and tests one run; returns every logged metric plus ``best/{optimized_metric}``.

    ``extra_callbacks`` join the configured ones (for scripts that measure a run from the outside).
    """
    check_run_settings(cfg)
    resume = _prepare_resume(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    log.info("Building datamodule <%s>", cfg.data.get("_target_"))
    datamodule = instantiate_datamodule(cfg.data)
    resolve_with_datamodule(cfg, datamodule)

    log.info("Building model <%s>", cfg.model.get("_target_"))
    model: L.LightningModule = hydra.utils.instantiate(cfg.model)
    if resume is not None:
        check_weights_fit(model, resume.state_dict, str(cfg.ckpt_path))

    callbacks = [*instantiate_callbacks(cfg.get("callbacks")), *(extra_callbacks or [])]
    run_config = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("data", "model")}
    callbacks.append(RunConfigCheckpoint({**run_config, "seed": cfg.get("seed")}))
    if cfg.get("seed") is not None:
        callbacks.append(EpochSeed(cfg.seed))
    loggers = instantiate_loggers(cfg.get("logger"))
    if not loggers:  # nothing to write learning rates to (logger=none): Lightning would refuse to start
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]

    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    _log_hyperparameters(loggers, cfg, model, cfg.optimized_metric)

    metrics: dict[str, float] = {}
    if cfg.get("train", True):
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    checkpoint = trainer.checkpoint_callback if isinstance(trainer.checkpoint_callback, ModelCheckpoint) else None
    best_path = checkpoint.best_model_path if checkpoint else ""
    if checkpoint is not None and checkpoint.best_model_score is not None:
        best = float(checkpoint.best_model_score)
    else:
        best = metrics.get(cfg.optimized_metric, float("nan"))
    metrics[f"best/{cfg.optimized_metric}"] = best
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_metrics({"hp_metric": best}, step=trainer.global_step)

    if cfg.get("test", True):
        if not best_path:
            log.warning("No best checkpoint was saved; testing the current weights")
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})

    for logger in loggers:
        logger.finalize("success")
    if trainer.is_global_zero:
        _print_summary(cfg, metrics, best_path, loggers)
    metrics["_best_model_path"] = best_path  # type: ignore[assignment]
    return metrics


def _print_summary(cfg: DictConfig, metrics: dict[str, float], best_path: str, loggers: list) -> None:
    lines = [f"{cfg.optimized_metric} (best): {metrics[f'best/{cfg.optimized_metric}']:.4f}"]
    lines += [f"{k}: {v:.4f}" for k, v in sorted(metrics.items()) if k.startswith("test/")]
    if best_path:
        lines.append(f"checkpoint: {best_path}")
    tb_dirs = sorted({str(Path(lg.save_dir)) for lg in loggers if isinstance(lg, TensorBoardLogger)})
    if tb_dirs:
        lines.append(f"tensorboard --logdir {tb_dirs[0]}")
    print("\n".join(lines), flush=True)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> float:
    """Hydra entrypoint; returns the optimized metric so sweepers (Optuna) can use it."""
    silence_library_noise()
    try:
        metrics = train(cfg)
    except USER_ERRORS as exc:
        if os.environ.get("SEQMODELS_DEBUG"):
            raise
        print(f"seqmodels-train: error: {describe_error(exc)}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    return metrics[f"best/{cfg.optimized_metric}"]


if __name__ == "__main__":
    main()
