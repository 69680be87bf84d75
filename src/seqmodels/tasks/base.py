"""Shared plumbing for seqmodels LightningModules: network call, optimizer and scheduler from config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from torchmetrics import MaxMetric, MeanMetric, Metric, MetricCollection, MinMetric

from seqmodels.data.batch import SequenceBatch

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


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

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        return self.net(inputs, lengths)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
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
        self.best_metric = best_metric
        self.val_best: Metric = MaxMetric() if higher_is_better else MinMetric()

    def shared_step(self, batch: SequenceBatch) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def on_train_start(self) -> None:
        # The sanity check ran validation already; its numbers must not count as "best".
        self.val_loss.reset()
        self.val_metrics.reset()
        self.val_best.reset()

    def step(self, split: str, batch: SequenceBatch) -> Tensor:
        loss, preds, targets = self.shared_step(batch)
        n = self.batch_size(batch)
        loss_metric: MeanMetric = getattr(self, f"{split}_loss")
        metrics: MetricCollection = getattr(self, f"{split}_metrics")
        loss_metric(loss, n)
        metrics(preds, targets)
        is_train = split == "train"
        self.log(f"{split}/loss", loss_metric, on_step=is_train, on_epoch=True, prog_bar=split != "test",
                 batch_size=n)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=split == "val", batch_size=n)
        return loss

    def on_validation_epoch_end(self) -> None:
        self.val_best(self.val_metrics[f"val/{self.best_metric}"].compute())
        self.log(f"val/{self.best_metric}_best", self.val_best.compute(), prog_bar=True, sync_dist=True)
