"""Many-to-one tasks: one label or value per sequence (sentiment, time-series classification, adding problem)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError

from seqmodels.data.batch import SequenceBatch
from seqmodels.early_classification import EarlyAccuracy, prefix_predictions, supports_early_classification
from seqmodels.tasks.base import OptimizerFactory, SchedulerFactory, SupervisedSequenceTask
from seqmodels.tasks.capabilities import Capabilities, Export, Prediction


class SequenceClassificationTask(SupervisedSequenceTask):
    """Cross-entropy classification of whole sequences.

    Logs ``{split}/loss``, ``{split}/acc`` (micro accuracy), ``{split}/f1`` (macro F1) and ``val/acc_best``. With a
    causal network (a :class:`~seqmodels.nn.ManyToOneNet` whose encoder is unidirectional) the test also logs the
    early-classification curve ``test/early_acc@10%`` ... ``test/early_acc@100%``: accuracy after that share of
    each sequence, from one extra ``stream`` pass per test batch (see :mod:`seqmodels.early_classification`).
    ``**options``: ``scheduler_monitor``, ``scheduler_interval``, ``decay_exempt`` (see :class:`SequenceTask`).
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        predict=Prediction.TEXT_TO_LABEL, export=Export.CLASS_PROBABILITIES
    )

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        label_smoothing: float = 0.0,
        **options: Any,
    ) -> None:
        super().__init__(net, optimizer, scheduler, **options)
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}; check the data's labels")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        # Cross-entropy already rejects out-of-range labels: the metrics' own per-batch checks only cost time.
        metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False),
                "f1": MulticlassF1Score(num_classes, average="macro", validate_args=False),
            }
        )
        self.init_metrics(metrics, best_metric="acc", higher_is_better=True)
        # Test only, and outside split_metrics: the per-split metrics stay the same for every classifier.
        self.early_accuracy = EarlyAccuracy() if supports_early_classification(net) else None

    def step(self, split: str, batch: SequenceBatch) -> Tensor:
        loss = super().step(split, batch)
        if split == "test" and self.early_accuracy is not None:
            prefix_logits = prefix_predictions(self.net, batch.inputs, batch.lengths)
            self.early_accuracy.update(prefix_logits.detach(), batch.targets)
        return loss

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if self.early_accuracy is not None and self.early_accuracy.update_called:
            for name, value in self.early_accuracy.compute().items():
                self.log_epoch_value(f"test/{name}", value)
            self.early_accuracy.reset()

    def shared_step(self, batch: SequenceBatch) -> tuple[Tensor, Tensor, Tensor]:
        logits = self(batch.inputs, batch.lengths)
        loss = F.cross_entropy(logits, batch.targets, label_smoothing=self.label_smoothing)
        return loss, logits, batch.targets

    def predict_step(self, batch: SequenceBatch, batch_idx: int) -> dict[str, Tensor]:
        probs = torch.softmax(self(batch.inputs, batch.lengths), dim=-1)
        return {"probs": probs, "preds": probs.argmax(dim=-1)}


class SequenceRegressionTask(SupervisedSequenceTask):
    """Regression of one value (or a fixed-size vector) per sequence.

    ``loss`` is ``"mse"``, ``"l1"`` or ``"huber"``. Logs ``{split}/loss``, ``{split}/mse``, ``{split}/mae`` and
    ``val/mse_best``. ``**options``: as :class:`SequenceTask`.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(export=Export.VALUES)

    losses = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        loss: str = "mse",
        **options: Any,
    ) -> None:
        super().__init__(net, optimizer, scheduler, **options)
        if loss not in self.losses:
            raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(self.losses)}")
        self.loss_fn = self.losses[loss]
        metrics = MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError()})
        self.init_metrics(metrics, best_metric="mse", higher_is_better=False)

    def _predict(self, batch: SequenceBatch) -> Tensor:
        preds = self(batch.inputs, batch.lengths)
        # A single-output head predicts (N, 1); scalar targets are (N,).
        return preds.squeeze(-1) if preds.shape[-1] == 1 else preds

    def shared_step(self, batch: SequenceBatch) -> tuple[Tensor, Tensor, Tensor]:
        preds = self._predict(batch)
        targets = batch.targets.to(preds.dtype)
        if preds.shape != targets.shape:
            raise ValueError(
                f"regression output shape {tuple(preds.shape)} does not match targets {tuple(targets.shape)}; "
                "set model.net.num_outputs to the target size"
            )
        return self.loss_fn(preds, targets), preds, targets

    def predict_step(self, batch: SequenceBatch, batch_idx: int) -> dict[str, Tensor]:
        return {"preds": self._predict(batch)}
