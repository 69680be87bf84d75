"""Shared plumbing for seqmodels LightningModules: network call, optimizer and scheduler from config."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, Metric, MetricCollection, MinMetric

from seqmodels.data.batch import SequenceBatch

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]
SPLITS = ("train", "val", "test")

# SequenceTask moves batches itself (below); with a datamodule, Lightning warns that the task's hook is the one used.
warnings.filterwarnings("ignore", message=r".*overridden `transfer_batch_to_device` in `LightningModule`.*")


# Where a checkpoint keeps the best-so-far validation value (see on_save_checkpoint).
_BEST_KEY = "seqmodels_val_best"


class SequenceTask(L.LightningModule):
    """Base task: owns the network, builds optimizer/scheduler from ``_partial_`` factories.

    Subclasses implement ``compute_loss`` (and metrics); the network itself is any ``nn.Module`` whose
    ``forward(inputs, lengths)`` accepts a padded batch.

    Args:
        net: the network, already constructed (Hydra ``_target_``).
        optimizer: ``functools.partial`` of a ``torch.optim.Optimizer`` missing only ``params``.
        scheduler: optional ``functools.partial`` of a LR scheduler missing only ``optimizer``.
        scheduler_monitor: metric a ``ReduceLROnPlateau`` scheduler watches.
        scheduler_interval: ``"epoch"`` or ``"step"``.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_monitor: str = "val/loss",
        scheduler_interval: str = "epoch",
    ) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}; check model.net._target_")
        if not callable(optimizer):
            raise TypeError("optimizer must be a callable (a _partial_: true config of a torch.optim class)")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_monitor = scheduler_monitor
        self.scheduler_interval = scheduler_interval
        self._tracked: dict[str, dict[str, tuple[Metric, bool]]] = {split: {} for split in SPLITS}
        self.best_name: str | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets this plain string around every hook call, about 40 times a training step; nn.Module's
        # checks for parameters, buffers and submodules cost about 0.1 ms a step there.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        return self.net(inputs, lengths)

    def configure_optimizers(self) -> Any:
        optimizer = self.build_optimizer([p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "monitor": self.scheduler_monitor,
                "interval": self.scheduler_interval,
                "frequency": 1,
            },
        }

    def build_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        """The configured optimizer over ``params``; a ``fused=True`` request is dropped where it cannot run.

        The Adam/AdamW configs ask for ``fused=True``: one kernel updates every parameter, which on a small
        network's CPU step saves about 0.2 ms of a 4 ms step, with the same arithmetic. Torch's default
        implementation runs instead for an optimizer class without a ``fused`` argument, for parameters on a
        device without fused kernels, and under ``precision=16-mixed``, whose gradient scaler Lightning cannot
        combine with gradient clipping once the optimizer unscales inside its own step.
        """
        factory = self.optimizer_factory
        if not isinstance(factory, functools.partial) or not factory.keywords.get("fused"):
            return factory(params=params)
        unfused = functools.partial(
            factory.func, *factory.args, **{k: v for k, v in factory.keywords.items() if k != "fused"}
        )
        if not self._fused_allowed():
            return unfused(params=params)
        try:
            return factory(params=params)
        except RuntimeError as error:  # torch: "`fused=True` requires all the params to be ... supported devices"
            if "fused" not in str(error):
                raise
            return unfused(params=params)

    def _fused_allowed(self) -> bool:
        """The config asks for a fused optimizer, its class has one, and no gradient scaler is in the way."""
        factory = self.optimizer_factory
        if not isinstance(factory, functools.partial) or not factory.keywords.get("fused"):
            return False
        precision = self._trainer.precision_plugin if self._trainer is not None else None
        scaled = getattr(precision, "scaler", None) is not None
        return "fused" in inspect.signature(factory.func).parameters and not scaled

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The best-so-far record is no weight (old checkpoints load without it), but a resumed run must continue it.
        if self.best_name is not None and self.val_best.update_count > 0:
            checkpoint[_BEST_KEY] = {"name": self.best_name, "value": self.val_best.compute().detach().cpu()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        best = checkpoint.get(_BEST_KEY)
        if self.best_name is not None and isinstance(best, dict) and best.get("name") == self.best_name:
            self._resumed_best = best["value"]
        # An optimizer's saved parameter groups carry its "fused" flag, which loading would restore over this
        # run's choice (a run resumed under 16-mixed precision, say): the choice of build_optimizer wins.
        fused = True if self._fused_allowed() else None
        for state in checkpoint.get("optimizer_states", []):
            for group in state.get("param_groups", []):
                if "fused" in group:
                    group["fused"] = fused

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # A SequenceBatch moves its own tensors; Lightning's generic walk deep-copies the dataclass every step.
        if isinstance(batch, SequenceBatch):
            return batch.to(device, non_blocking=device.type == "cuda")
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    @staticmethod
    def batch_size(batch: SequenceBatch) -> int:
        return batch.inputs.shape[0]

    def step(self, split: str, batch: SequenceBatch) -> Tensor | None:
        """One batch of ``split`` (``"train"``, ``"val"`` or ``"test"``): the loss, logged; subclasses implement."""
        raise NotImplementedError

    def training_step(self, batch: SequenceBatch, batch_idx: int) -> Tensor:
        return self.step("train", batch)  # type: ignore[return-value]

    def validation_step(self, batch: SequenceBatch, batch_idx: int) -> None:
        self.step("val", batch)

    def test_step(self, batch: SequenceBatch, batch_idx: int) -> None:
        self.step("test", batch)

    # ---------------------------------------------------------------- logging
    def track(self, split: str, name: str | None, metric: Metric, *args: Any, prog_bar: bool = False) -> None:
        """Update ``metric`` with this batch; its epoch value is logged as ``{split}/{name}`` when the epoch ends.

        Only ``update`` runs per batch, and nothing is handed to ``self.log`` until the epoch ends: a Metric's
        ``forward`` also computes a per-batch value nobody reads, and every ``self.log`` of a Metric object walks
        it, which together cost more than a small network's whole training step. ``compute`` synchronises
        across processes, so the logged value is the global one. A ``MetricCollection`` (``name=None``) logs
        each member under its own prefixed name.
        """
        metric.update(*args)
        self._tracked[split][name or f"<collection {id(metric)}>"] = (metric, prog_bar)

    def log_step_loss(self, loss: Tensor, batch_size: int) -> None:
        """``train/loss_step``: the per-step training curve, for loggers and the progress bar.

        Loggers write every ``log_every_n_steps`` only, so the value is handed over only on those steps (and
        every step while a progress bar shows it).
        """
        trainer = self._trainer
        if trainer is None:
            return
        # Lightning's own test of "loggers write on this step" (log_every_n_steps, and the last step).
        connector = getattr(trainer, "_logger_connector", None)
        due = bool(trainer.loggers) and (connector is None or connector.should_update_logs)
        if due or trainer.progress_bar_callback is not None:
            self.log(
                "train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True, batch_size=batch_size
            )

    def track_best(self, name: str, higher_is_better: bool) -> None:
        """Also log ``val/{name}_best``: the best ``val/{name}`` of this fit so far (the sanity check excluded)."""
        self.best_name = name
        self.val_best: Metric = MaxMetric() if higher_is_better else MinMetric()

    def epoch_end(self, split: str) -> dict[str, Tensor]:
        """Compute, log and reset what ``track`` collected for ``split`` this epoch; returns the logged values."""
        values: dict[str, Tensor] = {}
        for name, (metric, prog_bar) in self._tracked[split].items():
            computed = metric.compute()
            metric.reset()
            items = computed.items() if isinstance(computed, dict) else [(f"{split}/{name}", computed)]
            for key, value in items:
                self.log_epoch_value(key, value, prog_bar=prog_bar)
                values[key] = value
        self._tracked[split] = {}
        key = f"val/{self.best_name}"
        if split == "val" and key in values and not self.trainer.sanity_checking:
            self.val_best(values[key])
            self.log_epoch_value(f"{key}_best", self.val_best.compute(), prog_bar=True)
        return values

    def log_epoch_value(self, name: str, value: Tensor | float, prog_bar: bool = False) -> None:
        """Logs a value that is already the same in every process: a computed torchmetrics metric (reduced
        across processes) or a setting. ``sync_dist=True`` tells Lightning so; the mean of equal values is the
        value, and without it Lightning warns once per name under DDP."""
        self.log(name, value, prog_bar=prog_bar, on_step=False, on_epoch=True, sync_dist=True)

    def on_train_start(self) -> None:
        if self.best_name is not None:  # a second fit starts its own record; a resumed one continues its own
            self.val_best.reset()
            resumed = getattr(self, "_resumed_best", None)
            if resumed is not None:
                self.val_best.update(resumed.to(self.device))
                self._resumed_best = None

    def on_train_epoch_end(self) -> None:
        self.epoch_end("train")

    def on_validation_epoch_end(self) -> None:
        self.epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self.epoch_end("test")


class SupervisedSequenceTask(SequenceTask):
    """A task with a loss, one metric collection per split and a best-so-far validation metric.

    Subclasses call ``init_metrics`` in ``__init__`` and implement ``shared_step(batch) -> (loss, preds,
    targets)``, where ``preds``/``targets`` are what the metrics take. Logged names: ``train/loss``,
    ``val/loss``, ``test/loss``, ``{split}/{metric}`` and ``val/{best_metric}_best``.
    """

    def init_metrics(self, metrics: MetricCollection, best_metric: str, higher_is_better: bool) -> None:
        # One metric object per split: states never mix between train, val and test.
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.track_best(best_metric, higher_is_better)

    def shared_step(self, batch: SequenceBatch) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def step(self, split: str, batch: SequenceBatch) -> Tensor:
        loss, preds, targets = self.shared_step(batch)
        n = self.batch_size(batch)
        self.track(split, "loss", getattr(self, f"{split}_loss"), loss.detach(), n, prog_bar=split != "test")
        self.track(split, None, getattr(self, f"{split}_metrics"), preds.detach(), targets, prog_bar=split == "val")
        if split == "train":
            self.log_step_loss(loss, n)
        return loss
