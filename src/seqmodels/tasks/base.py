"""Shared plumbing for seqmodels LightningModules: network call, optimizer and scheduler from config, per-split
metrics and their logging."""

from __future__ import annotations

import functools
import inspect
import multiprocessing
import warnings
from collections.abc import Callable, Collection, Iterable
from typing import Any, ClassVar

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import Tensor, nn
from torchmetrics import MaxMetric, Metric, MetricCollection, MinMetric

from seqmodels.data.batch import SequenceBatch
from seqmodels.tasks._lightning_fastpath import CheapHookName, cache_step_signatures, skip_moves_to_the_same_device
from seqmodels.tasks.capabilities import Capabilities

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]
SPLITS = ("train", "val", "test")

# SequenceTask moves batches itself (below); with a datamodule, Lightning warns that the task's hook is the one used.
warnings.filterwarnings("ignore", message=r".*overridden `transfer_batch_to_device` in `LightningModule`.*")


# Where a checkpoint keeps the best-so-far validation value (see on_save_checkpoint).
_BEST_KEY = "seqmodels_val_best"

# Modules whose weights are exempt from weight decay with ``decay_exempt`` (besides every bias and other 1-D
# parameter, norm gains included): embeddings, and norms whose gain may have more than one dimension.
_DECAY_EXEMPT_MODULES: tuple[type[nn.Module], ...] = (
    nn.Embedding,
    nn.EmbeddingBag,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
)

ProgBar = bool | Collection[str]


def close_spawned_process_group() -> None:
    """In a process spawned for one stage (``trainer=ddp_sim``, ``ddp_spawn``), closes the process group once every
    rank has finished the stage.

    Otherwise the group's threads and sockets are torn down by the interpreter's exit, in no set order across
    ranks: a rank that exits while its peer still holds the connection can abort ("terminate called without an
    active exception"), failing a run whose work is done. The parent process and ``torchrun`` workers keep
    their group, which later stages reuse.
    """
    if multiprocessing.parent_process() is None or not torch.distributed.is_initialized():
        return
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


class WeightedMean(Metric):
    """The mean of per-batch values weighted by their batches' sizes (examples, tokens): ``update(value, weight)``.

    The loss metric of every split, updated every training step: a lean ``MeanMetric`` (half its cost per update,
    which on a small network's CPU step is about 10 us), with in-place sums and no per-update NaN check, which on a
    GPU is a device sync every step. A NaN loss makes the epoch's value NaN; a batch of weight 0 counts for nothing.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("weight", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, value: Tensor, weight: Tensor | float = 1.0) -> None:  # type: ignore[override]
        if not isinstance(weight, Tensor) and weight == 0:
            return
        self.total.add_(value.to(self.total.dtype) * weight)
        self.weight.add_(weight)

    def compute(self) -> Tensor:
        return self.total / self.weight


class SequenceTask(CheapHookName, L.LightningModule):
    """Base task: owns the network, builds optimizer/scheduler from ``_partial_`` factories, and owns the per-split
    metrics.

    Subclasses implement ``step(split, batch)``; the network itself is any ``nn.Module`` whose
    ``forward(inputs, lengths)`` accepts a padded batch.

    Metrics: every split has a ``loss`` (a :class:`WeightedMean`, updated with :meth:`track_loss`). A task
    declares its other metrics once, with :meth:`add_metrics`: each split gets its own copy in
    :attr:`split_metrics` (states never mix between train, val and test). :meth:`track` updates one per batch;
    when the epoch ends each is computed, logged as ``{split}/{name}`` and reset (:meth:`epoch_end`).

    Args:
        net: the network, already constructed (Hydra ``_target_``).
        optimizer: ``functools.partial`` of a ``torch.optim.Optimizer`` missing only ``params``.
        scheduler: optional ``functools.partial`` of a LR scheduler missing only ``optimizer``.
        scheduler_monitor: metric a ``ReduceLROnPlateau`` scheduler watches.
        scheduler_interval: ``"epoch"`` or ``"step"``.
        decay_exempt: two parameter groups: biases, norms and embeddings without weight decay, every other weight
            with the optimizer's (the configs of AdamW turn it on; see :meth:`parameter_groups`).

    Subclasses take ``scheduler_monitor``, ``scheduler_interval`` and ``decay_exempt`` as ``**options`` and hand
    them on: they are read here only.
    """

    # What it does from a checkpoint besides evaluation (see seqmodels.tasks.capabilities).
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for klass in cls.__mro__:  # Lightning inspects the step's signature at every batch
            if issubclass(klass, SequenceTask):
                cache_step_signatures(klass)

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_monitor: str = "val/loss",
        scheduler_interval: str = "epoch",
        decay_exempt: bool = False,
    ) -> None:
        super().__init__()
        skip_moves_to_the_same_device()  # every self.log pays for a walk otherwise; see _lightning_fastpath
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
        self.decay_exempt = bool(decay_exempt)
        # Every metric of every split, keyed "{split}/{name}" ("val/loss": logged under that name; a collection
        # logs its members'). Metric states are not persistent: checkpoints hold weights only, whatever is declared.
        self.split_metrics = nn.ModuleDict()
        self.add_metrics(loss=WeightedMean())
        self._tracked: dict[str, dict[str, tuple[Metric, ProgBar]]] = {split: {} for split in SPLITS}
        self.best_name: str | None = None
        self._saved_param_groups: int | None = None  # set when a checkpoint with optimizer state loads

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        return self.net(inputs, lengths)

    def _attached_trainer(self) -> L.Trainer | None:
        try:
            return self.trainer
        except RuntimeError:  # not attached to a Trainer
            return None

    # ---------------------------------------------------------------- optimizer and scheduler
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
        """The configured optimizer over ``params`` (in :meth:`parameter_groups`); a ``fused=True`` request is
        dropped where it cannot run.

        The Adam/AdamW configs ask for ``fused=True``: one kernel updates every parameter, which on a small
        network's CPU step saves about 0.2 ms of a 4 ms step, with the same arithmetic. Torch's default
        implementation runs instead for an optimizer class without a ``fused`` argument, for parameters on a
        device without fused kernels, and under ``precision=16-mixed`` or ``bf16-mixed``, whose plugin Lightning
        cannot combine with gradient clipping once the optimizer unscales inside its own step.
        """
        groups = self.parameter_groups(params)
        factory = self.optimizer_factory
        if not isinstance(factory, functools.partial) or not factory.keywords.get("fused"):
            return factory(params=groups)
        unfused = functools.partial(
            factory.func, *factory.args, **{k: v for k, v in factory.keywords.items() if k != "fused"}
        )
        if not self._fused_allowed():
            return unfused(params=groups)
        try:
            return factory(params=groups)
        except RuntimeError as error:  # torch: "`fused=True` requires all the params to be ... supported devices"
            if "fused" not in str(error):
                raise
            return unfused(params=groups)

    def parameter_groups(self, params: list[nn.Parameter]) -> list[nn.Parameter] | list[dict[str, Any]]:
        """``params`` as the optimizer gets them: one group, or with ``decay_exempt`` the usual two.

        Exempt from weight decay (``weight_decay=0.0``): every parameter with fewer than two dimensions (biases,
        norm gains and shifts, LayerNorm-LSTM gains) and every weight of an embedding or a norm layer (a weight
        tied to an embedding included). The other group keeps the optimizer's weight decay. The groups are named
        ``decay`` and ``no_decay`` (Lightning's LearningRateMonitor logs ``lr-AdamW/decay``, ...). One group stays
        one where the optimizer decays nothing anyway (``weight_decay=0``), and where a checkpoint being resumed
        holds the optimizer state of one group (it was written without ``decay_exempt``).
        """
        if not self.decay_exempt or self._configured_weight_decay() == 0.0:
            return params
        exempt = self.decay_exempt_ids()
        decay = [p for p in params if id(p) not in exempt]
        no_decay = [p for p in params if id(p) in exempt]
        groups: list[dict[str, Any]] = [{"params": decay, "name": "decay"}] if decay else []
        groups += [{"params": no_decay, "weight_decay": 0.0, "name": "no_decay"}] if no_decay else []
        if self._saved_param_groups == 1 and len(groups) == 2:
            warnings.warn(
                "the checkpoint being resumed holds the optimizer state of one parameter group: weight decay applies "
                "to every parameter, as when it was written (decay_exempt is off for this run)",
                stacklevel=2,
            )
            return params
        return groups

    def decay_exempt_ids(self) -> set[int]:
        """``id()`` of every parameter :meth:`parameter_groups` exempts from weight decay."""
        exempt: set[int] = set()
        for module in self.modules():
            whole = isinstance(module, _DECAY_EXEMPT_MODULES)
            exempt.update(id(p) for p in module.parameters(recurse=False) if whole or p.ndim < 2)
        return exempt

    def _configured_weight_decay(self) -> float | None:
        """The optimizer's weight decay where the config says it (or its class's default does); None if unknown."""
        factory = self.optimizer_factory
        if not isinstance(factory, functools.partial):
            return None
        if "weight_decay" in factory.keywords:
            return float(factory.keywords["weight_decay"])
        try:
            default = inspect.signature(factory.func).parameters["weight_decay"].default
        except (KeyError, TypeError, ValueError):
            return None
        return float(default) if isinstance(default, (int, float)) else None

    def _fused_allowed(self) -> bool:
        """The config asks for a fused optimizer, its class has one, and no mixed precision is in the way: Lightning's
        AMP plugin refuses to clip the gradients of an optimizer that unscales them itself (a fused one), in fp16
        (gradient scaler) and bf16 alike."""
        factory = self.optimizer_factory
        if not isinstance(factory, functools.partial) or not factory.keywords.get("fused"):
            return False
        trainer = self._attached_trainer()
        precision = trainer.precision_plugin if trainer is not None else None
        mixed = isinstance(precision, MixedPrecision) or getattr(precision, "scaler", None) is not None
        return "fused" in inspect.signature(factory.func).parameters and not mixed

    # ---------------------------------------------------------------- checkpoints
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
        states = checkpoint.get("optimizer_states") or []
        for state in states:
            for group in state.get("param_groups", []):
                if "fused" in group:
                    group["fused"] = fused
        # Lightning restores the module before it builds the optimizer: parameter_groups matches the saved groups.
        self._saved_param_groups = len(states[0].get("param_groups", [])) if states else None

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # A SequenceBatch moves its own tensors; Lightning's generic walk deep-copies the dataclass every step.
        if isinstance(batch, SequenceBatch):
            return batch.to(device, non_blocking=device.type == "cuda")
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    # ---------------------------------------------------------------- steps
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

    # ---------------------------------------------------------------- metrics
    def add_metrics(self, splits: Iterable[str] = SPLITS, **metrics: Metric) -> None:
        """Declares metrics once: each of ``splits`` gets its own copy of each, ``split_metrics[f"{split}/{name}"]``.

        A metric is logged as ``{split}/{name}``; one whose ``compute`` returns a dict as ``{split}/{key}`` per
        entry; a ``MetricCollection`` as its members' names, prefixed with ``{split}/``.
        """
        for split in splits:
            if split not in SPLITS:
                raise ValueError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
            for name, metric in metrics.items():
                copy = metric.clone(prefix=f"{split}/") if isinstance(metric, MetricCollection) else metric.clone()
                self.split_metrics[f"{split}/{name}"] = copy

    def has_metric(self, split: str, name: str) -> bool:
        return f"{split}/{name}" in self.split_metrics

    def metric(self, split: str, name: str) -> Metric:
        """The ``split`` copy of the metric declared as ``name``."""
        return self.split_metrics[f"{split}/{name}"]  # type: ignore[return-value]

    def track(self, split: str, name: str, *args: Any, prog_bar: ProgBar = False) -> None:
        """Update the ``split`` copy of metric ``name`` with this batch; its epoch value is logged when the epoch
        ends. ``prog_bar``: show it on the progress bar (True), or those of its entries (a dict-valued metric's
        keys, a collection's member names) that are in the given set.

        Only ``update`` runs per batch, and nothing is handed to ``self.log`` until the epoch ends: a Metric's
        ``forward`` also computes a per-batch value nobody reads, and every ``self.log`` of a Metric object walks
        it, which together cost more than a small network's whole training step. ``compute`` synchronises
        across processes, so the logged value is the global one.
        """
        metric = self.split_metrics[f"{split}/{name}"]
        metric.update(*args)
        self._tracked[split][name] = (metric, prog_bar)  # type: ignore[assignment]

    def track_loss(self, split: str, loss: Tensor, batch_size: int, weight: Tensor | float | None = None) -> None:
        """``{split}/loss``: the epoch mean of the batch losses weighted by ``weight`` (examples, or tokens; the
        batch size by default), on the progress bar but for test. Training also logs ``train/loss_step``."""
        self.track(split, "loss", loss.detach(), batch_size if weight is None else weight, prog_bar=split != "test")
        if split == "train":
            self.log_step_loss(loss, batch_size)

    def log_step_loss(self, loss: Tensor, batch_size: int) -> None:
        """``train/loss_step``: the per-step training curve, for loggers and the progress bar.

        Loggers write every ``log_every_n_steps`` only, so the value is handed over only on those steps (and
        every step while a progress bar shows it). Call it before the batch's optimizer step.
        """
        trainer = self._attached_trainer()
        if trainer is None:
            return
        if (trainer.loggers and self._loggers_write_this_step(trainer)) or trainer.progress_bar_callback is not None:
            self.log(
                "train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True, batch_size=batch_size
            )

    @staticmethod
    def _loggers_write_this_step(trainer: L.Trainer) -> bool:
        """Lightning's test of "loggers write on this training step", from public trainer state: every
        ``log_every_n_steps``-th step (counted from 1) and the last one. Before this batch's optimizer step,
        ``global_step`` counts the steps done."""
        every = trainer.log_every_n_steps
        return every > 0 and ((trainer.global_step + 1) % every == 0 or trainer.should_stop)

    def track_best(self, name: str, higher_is_better: bool) -> None:
        """Also log ``val/{name}_best``: the best ``val/{name}`` of this fit so far (the sanity check excluded)."""
        self.best_name = name
        self.val_best: Metric = MaxMetric() if higher_is_better else MinMetric()

    def logs_epoch_value(self, key: str) -> bool:
        """Whether :meth:`epoch_end` logs ``key`` (e.g. ``"val/acc"``) this epoch; every value by default."""
        return True

    def epoch_end(self, split: str) -> dict[str, Tensor]:
        """Compute, log and reset what ``track`` collected for ``split`` this epoch; returns every computed value."""
        values: dict[str, Tensor] = {}
        for name, (metric, prog_bar) in self._tracked[split].items():
            computed = metric.compute()
            metric.reset()
            if not isinstance(computed, dict):
                items: Iterable[tuple[str, Tensor]] = [(f"{split}/{name}", computed)]
            elif isinstance(metric, MetricCollection):  # its keys carry the split's prefix already
                items = computed.items()
            else:
                items = ((f"{split}/{key}", value) for key, value in computed.items())
            for key, value in items:
                values[key] = value
                if self.logs_epoch_value(key):
                    shown = prog_bar if isinstance(prog_bar, bool) else key.split("/", 1)[1] in prog_bar
                    self.log_epoch_value(key, value, prog_bar=shown)
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

    def teardown(self, stage: str) -> None:
        close_spawned_process_group()


class SupervisedSequenceTask(SequenceTask):
    """A task with a loss, one metric collection per split and a best-so-far validation metric.

    Subclasses call ``init_metrics`` in ``__init__`` and implement ``shared_step(batch) -> (loss, preds,
    targets)``, where ``preds``/``targets`` are what the metrics take. Logged names: ``train/loss``,
    ``val/loss``, ``test/loss``, ``{split}/{metric}`` and ``val/{best_metric}_best``.
    """

    def init_metrics(self, metrics: MetricCollection, best_metric: str, higher_is_better: bool) -> None:
        self.add_metrics(scores=metrics)
        self.track_best(best_metric, higher_is_better)

    def shared_step(self, batch: SequenceBatch) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def step(self, split: str, batch: SequenceBatch) -> Tensor:
        loss, preds, targets = self.shared_step(batch)
        self.track_loss(split, loss, self.batch_size(batch))
        self.track(split, "scores", preds.detach(), targets, prog_bar=split == "val")
        return loss
