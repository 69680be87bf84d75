"""Training (the library behind ``seqmodels-train``): build data, model, trainer, loggers and callbacks, fit, test.

seqmodels-train experiment=parity model/encoder=gru trainer.max_epochs=5
seqmodels-train -m model/encoder=rnn,lstm,gru
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from seqmodels.callbacks import CHECKPOINT_KEY, EpochSeed, RunConfigCheckpoint
from seqmodels.checkpoint import check_weights_fit, load_checkpoint
from seqmodels.config import (
    check_run_settings,
    instantiate_callbacks,
    instantiate_datamodule,
    instantiate_loggers,
    resolve_with_datamodule,
)

log = logging.getLogger(__name__)


# Trainer settings that change what a run learns (the rest, devices and logging, does not).
_TRAINER_HPARAMS = (
    "max_epochs",
    "max_steps",
    "gradient_clip_val",
    "gradient_clip_algorithm",
    "accumulate_grad_batches",
    "precision",
    "limit_train_batches",
)
# Data settings that change speed or where files are, not results.
_DATA_PLUMBING = ("num_workers", "pin_memory", "cache_dir")


def _comparable(node: Any, prefix: str, out: dict[str, Any]) -> None:
    """Flattens ``node`` into ``out`` as ``prefix/key`` entries a person compares runs by: a ``_target_`` becomes
    its class name, Hydra keys and paths are left out, lists become text."""
    if isinstance(node, dict):
        if "_target_" in node:
            out[prefix] = str(node["_target_"]).rsplit(".", 1)[-1]
        for key, value in node.items():
            plumbing = key.startswith("_") or key in _DATA_PLUMBING or key.endswith(("path", "dir", "file"))
            if not plumbing and key != "fused":
                _comparable(value, f"{prefix}/{key}", out)
    elif isinstance(node, (list, tuple)):
        out[prefix] = ",".join(map(str, node))
    elif node is None or isinstance(node, (bool, int, float, str)):
        out[prefix] = "none" if node is None else node


def comparable_hparams(cfg: DictConfig, model: L.LightningModule) -> dict[str, Any]:
    """The hyperparameters of a run that TensorBoard's HParams table compares runs by."""
    params: dict[str, Any] = {"experiment": str(cfg.get("task_name")), "seed": cfg.get("seed") or "none"}
    for key in ("data", "model"):
        if cfg.get(key) is not None:
            _comparable(OmegaConf.to_container(cfg[key], resolve=True), key, params)
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True) if cfg.get("trainer") is not None else {}
    _comparable({k: trainer.get(k) for k in _TRAINER_HPARAMS if k in trainer}, "trainer", params)
    params["model/params"] = sum(p.numel() for p in model.parameters())
    return params


def _log_config(loggers: list, cfg: DictConfig) -> None:
    """The whole resolved config: ``hparams.yaml`` beside the events, and TensorBoard's Text tab."""
    full = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("data", "model", "trainer") if key in cfg}
    full["seed"] = cfg.get("seed")
    for logger in loggers:
        logger.log_hyperparams(full)  # a TensorBoard logger registers no HParams session yet (see _log_hparams)
        if isinstance(logger, TensorBoardLogger):
            # Markdown code block: TensorBoard's text tab keeps the YAML's indentation.
            text = "    " + OmegaConf.to_yaml(full).replace("\n", "\n    ")
            logger.experiment.add_text("config", text, global_step=0)


def _log_hparams(loggers: list, params: dict[str, Any], metrics: dict[str, float], step: int) -> None:
    """Registers the run in TensorBoard's HParams tab: its comparable hyperparameters, and as metrics the best value
    of the optimized metric and every ``test/*`` (their values are the scalars logged under those names)."""
    from torch.utils.tensorboard.summary import hparams
    from torch.utils.tensorboard.writer import FileWriter

    names = {name: value for name, value in metrics.items() if name.startswith(("best/", "test/"))}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            # An event file of its own: Lightning has closed the logger's writer after testing.
            writer = FileWriter(logger.log_dir)
            for summary in hparams(params, names):
                writer.add_summary(summary, step)
            writer.close()


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


def has_validation_data(datamodule: L.LightningDataModule) -> bool:
    """False when the datamodule's validation split exists and is empty (a datamodule without ``val_set`` is taken
    to have validation data)."""
    val_set = getattr(datamodule, "val_set", None)
    return val_set is None or not hasattr(val_set, "__len__") or len(val_set) > 0


def _run_callbacks(
    cfg: DictConfig,
    extra_callbacks: list[L.Callback] | None,
    has_loggers: bool,
    has_validation: bool,
    trainer_options: dict[str, Any],
) -> list[L.Callback]:
    """The configured callbacks, the caller's, and the run's own (its config in checkpoints, per-epoch seeds),
    less those the run cannot feed."""
    callbacks = [*instantiate_callbacks(cfg.get("callbacks")), *(extra_callbacks or [])]
    run_config = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("data", "model")}
    callbacks.append(RunConfigCheckpoint({**run_config, "seed": cfg.get("seed")}))
    if cfg.get("seed") is not None:
        callbacks.append(EpochSeed(cfg.seed))
    if not has_loggers:  # nothing to write learning rates to (logger=none): Lightning would refuse to start
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if not has_validation:
        callbacks = _without_validation(cfg, callbacks, trainer_options)
    return callbacks


def _without_validation(cfg: DictConfig, callbacks: list[L.Callback], trainer_options: dict[str, Any]) -> list:
    """Settings for a run whose datamodule has no validation data: no validation loop, and no callback that
    watches a validation metric. A plateau schedule, which steps on one, is refused."""
    scheduler = str((cfg.model.get("scheduler") or {}).get("_target_", ""))
    if scheduler.endswith("ReduceLROnPlateau"):
        raise ValueError(
            "model.scheduler ReduceLROnPlateau steps on a validation metric, but there is no validation data "
            "(e.g. data.val_fraction=0); use model/scheduler=cosine or none, or keep a validation split"
        )
    log.warning(
        "No validation data (e.g. data.val_fraction=0): training runs without validation, early stopping or a "
        "best checkpoint, and the final weights are tested (checkpoints/last.ckpt holds them)"
    )
    trainer_options["limit_val_batches"] = 0
    return [c for c in callbacks if not (isinstance(c, (ModelCheckpoint, EarlyStopping)) and c.monitor)]


@dataclass
class TrainResult:
    """What one run produced."""

    metrics: dict[str, float]  # every logged metric (train/*, val/*, test/*) and best/{optimized_metric}
    best_model_path: str  # the best checkpoint on the optimized metric ("" when none was saved)
    task: L.LightningModule  # the trained task (its weights as after training, not the best checkpoint's)
    datamodule: L.LightningDataModule


def train(
    cfg: DictConfig,
    extra_callbacks: list[L.Callback] | None = None,
    datamodule: L.LightningDataModule | None = None,
) -> TrainResult:
    """Trains and tests one run; returns its metrics (``best/{optimized_metric}`` included), best checkpoint path,
    task and datamodule.

    ``extra_callbacks`` join the configured ones (for scripts that measure a run from the outside). ``datamodule``
    replaces the one ``cfg.data`` would build (e.g. one holding in-memory data, see :func:`seqmodels.fit`); it is
    set up here if it was not.
    """
    check_run_settings(cfg)
    resume = _prepare_resume(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    log.info("Building datamodule <%s>", cfg.data.get("_target_"))
    if datamodule is None:
        datamodule = instantiate_datamodule(cfg.data)
    else:
        datamodule.prepare_data()
        datamodule.setup("fit")
    resolve_with_datamodule(cfg, datamodule)

    log.info("Building model <%s>", cfg.model.get("_target_"))
    model: L.LightningModule = hydra.utils.instantiate(cfg.model)
    if resume is not None:
        check_weights_fit(model, resume.state_dict, str(cfg.ckpt_path))

    loggers = instantiate_loggers(cfg.get("logger"))
    trainer_options: dict[str, Any] = {}
    callbacks = _run_callbacks(cfg, extra_callbacks, bool(loggers), has_validation_data(datamodule), trainer_options)
    if getattr(model, "clips_own_gradients", False):
        # One clipping setting, trainer.gradient_clip_val: a task that runs its own optimizer step clips there.
        model.gradient_clip_val = cfg.trainer.get("gradient_clip_val")
        trainer_options["gradient_clip_val"] = None
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, **trainer_options
    )
    _log_config(loggers, cfg)

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
        if isinstance(logger, TensorBoardLogger) and not math.isnan(best):
            logger.log_metrics({f"best/{cfg.optimized_metric}": best}, step=trainer.global_step)

    if cfg.get("test", True):
        if not best_path:
            log.warning("No best checkpoint was saved; testing the current weights")
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})

    if trainer.is_global_zero:
        _log_hparams(loggers, comparable_hparams(cfg, model), metrics, trainer.global_step)
    for logger in loggers:
        logger.finalize("success")
    if trainer.is_global_zero:
        _print_summary(cfg, metrics, best_path, loggers)
    return TrainResult(metrics=metrics, best_model_path=best_path, task=model, datamodule=datamodule)


def _print_summary(cfg: DictConfig, metrics: dict[str, float], best_path: str, loggers: list) -> None:
    best = metrics[f"best/{cfg.optimized_metric}"]
    lines = [] if math.isnan(best) else [f"{cfg.optimized_metric} (best): {best:.4f}"]  # nan: no validation
    lines += [f"{k}: {v:.4f}" for k, v in sorted(metrics.items()) if k.startswith("test/")]
    if best_path:
        lines.append(f"checkpoint: {best_path}")
    tb_dirs = sorted({str(Path(lg.save_dir)) for lg in loggers if isinstance(lg, TensorBoardLogger)})
    if tb_dirs:
        lines.append(f"tensorboard --logdir {tb_dirs[0]}")
    print("\n".join(lines), flush=True)
