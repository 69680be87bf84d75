"""Sequence tagging: one label per token (POS, NER), masked cross-entropy, token accuracy, entity-level F1."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from seqmodels.data.batch import SequenceBatch
from seqmodels.tasks.base import OptimizerFactory, SchedulerFactory, SupervisedSequenceTask
from seqmodels.tasks.capabilities import Capabilities, Export, Prediction

IGNORE_INDEX = -100


def bio_spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Entities ``(type, start, end)`` (end exclusive) in a BIO tag sequence, as conlleval counts them.

    An entity starts at ``B-X``, or at an ``I-X`` that does not continue an ``X`` entity; it ends before
    the next tag that is not ``I-X``. Tags without a ``B-``/``I-`` prefix (``O``) are outside.
    """
    spans: set[tuple[str, int, int]] = set()
    kind: str | None = None
    start = 0
    for index, tag in enumerate([*tags, "O"]):
        prefix, _, label = tag.partition("-")
        continues = prefix == "I" and label == kind
        if kind is not None and not continues:
            spans.add((kind, start, index))
            kind = None
        if prefix in ("B", "I") and label and not continues:
            kind, start = label, index
    return spans


class EntityF1(Metric):
    """Micro entity-level F1 over BIO tags: an entity counts only if its type and both boundaries match.

    ``update(preds, targets)`` takes tag ids (N, L); positions where ``targets == -100`` are padding.
    """

    higher_is_better = True
    full_state_update = False

    def __init__(self, tag_names: Sequence[str]) -> None:
        super().__init__()
        self.tag_names = list(tag_names)
        self.add_state("true_positives", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("predicted", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("actual", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: Tensor, targets: Tensor) -> None:
        for pred_row, target_row in zip(preds.tolist(), targets.tolist(), strict=True):
            valid = [i for i, t in enumerate(target_row) if t != IGNORE_INDEX]
            predicted = bio_spans([self.tag_names[pred_row[i]] for i in valid])
            actual = bio_spans([self.tag_names[target_row[i]] for i in valid])
            self.true_positives += len(predicted & actual)
            self.predicted += len(predicted)
            self.actual += len(actual)

    def compute(self) -> Tensor:
        tp = self.true_positives.float()
        denominator = self.predicted + self.actual
        return 2 * tp / denominator if denominator > 0 else torch.tensor(0.0)


class SequenceTaggingTask(SupervisedSequenceTask):
    """Per-token classification with a network ``net(inputs, lengths) -> (N, L, num_tags)``.

    Logs ``{split}/loss`` (cross-entropy over real tokens), ``{split}/acc`` (token accuracy), ``{split}/f1``
    (entity-level F1 when the tags are BIO, e.g. ``B-PER``; else macro F1 over tags) and ``val/f1_best``.
    ``**options``: as :class:`SequenceTask`.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        predict=Prediction.TEXT_TO_TAGS, export=Export.TAG_PROBABILITIES
    )

    def __init__(
        self,
        net: nn.Module,
        num_tags: int,
        tag_names: Sequence[str],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        label_smoothing: float = 0.0,
        **options: Any,
    ) -> None:
        super().__init__(net, optimizer, scheduler, **options)
        tag_names = list(tag_names)
        if len(tag_names) != num_tags:
            raise ValueError(f"num_tags={num_tags} but {len(tag_names)} tag_names; take both from the data")
        self.num_tags = num_tags
        self.tag_names = tag_names
        self.label_smoothing = label_smoothing
        is_bio = any(t.startswith(("B-", "I-")) for t in tag_names)
        # Cross-entropy already rejects out-of-range tags: the metrics' own per-batch checks only cost time.
        f1: Metric = (
            EntityF1(tag_names)
            if is_bio
            else MulticlassF1Score(num_tags, average="macro", ignore_index=IGNORE_INDEX, validate_args=False)
        )
        metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(num_tags, average="micro", ignore_index=IGNORE_INDEX, validate_args=False),
                "f1": f1,
            }
        )
        self.init_metrics(metrics, best_metric="f1", higher_is_better=True)

    def shared_step(self, batch: SequenceBatch) -> tuple[Tensor, Tensor, Tensor]:
        scores = self(batch.inputs, batch.lengths)
        targets = batch.targets[:, : scores.shape[1]]
        loss = F.cross_entropy(
            scores.transpose(1, 2), targets, ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing
        )
        return loss, scores.argmax(-1), targets

    def predict_step(self, batch: SequenceBatch, batch_idx: int) -> list[list[str]]:
        preds = self(batch.inputs, batch.lengths).argmax(-1)
        return [
            [self.tag_names[i] for i in row[: int(n)].tolist()] for row, n in zip(preds, batch.lengths, strict=True)
        ]


__all__ = ["EntityF1", "SequenceTaggingTask", "bio_spans"]
