"""One-to-many generation: teacher-forced training, and what the model generates on its own for evaluation."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric

from seqmodels.data.batch import SequenceBatch
from seqmodels.tasks.base import OptimizerFactory, SchedulerFactory, SequenceTask
from seqmodels.tasks.capabilities import Capabilities
from seqmodels.tasks.seq2seq import trim

IGNORE_INDEX = -100


class ConditionalGenerationTask(SequenceTask):
    """Trains a :class:`~seqmodels.nn.ConditionalDecoder` with teacher forcing.

    Token outputs log ``{split}/loss`` (cross-entropy), ``{split}/acc`` (teacher-forced token accuracy) and,
    for validation and test, ``{split}/exact``: the share of conditions whose greedy generation equals the
    target. Real-valued outputs log ``{split}/loss`` (MSE, teacher-forced) and ``{split}/generated_mse``: the
    MSE of the free-running generation (each prediction fed back).

    Args:
        max_length: longest generation for evaluation (tokens).
        **options: ``scheduler_monitor``, ``scheduler_interval``, ``decay_exempt`` (see :class:`SequenceTask`).
    """

    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        max_length: int = 30,
        **options: Any,
    ) -> None:
        super().__init__(net, optimizer, scheduler, **options)
        self.max_length = max_length
        self.is_token = bool(getattr(net, "is_token", True))
        if self.is_token:
            self.add_metrics(acc=MeanMetric())
        # What the model generates on its own: exact match of the tokens, or the MSE of the values.
        self.add_metrics(("val", "test"), **{"exact" if self.is_token else "generated_mse": MeanMetric()})
        self.track_best("loss", higher_is_better=False)

    def forward(self, condition: Tensor, inputs: Tensor) -> Tensor:
        return self.net(condition, inputs)

    def _loss(self, split: str, batch: SequenceBatch) -> Tensor:
        outputs = self(batch.condition, batch.inputs)
        if self.is_token:
            targets = batch.targets
            loss = F.cross_entropy(outputs.transpose(1, 2).float(), targets, ignore_index=IGNORE_INDEX)
            real = targets != IGNORE_INDEX
            count = int(real.sum())
            accuracy = ((outputs.argmax(-1) == targets) & real).sum() / max(count, 1)
            self.track(split, "acc", accuracy, count)
        else:
            loss = F.mse_loss(outputs, batch.targets)
            count = batch.targets.numel()
        self.track_loss(split, loss, len(batch), weight=count)
        return loss

    @torch.no_grad()
    def generate_batch(self, batch: SequenceBatch) -> list[list[int]] | Tensor:
        """Greedy tokens per condition (without ``<eos>``), or the generated values (N, T, C)."""
        if not self.is_token:
            return self.net.generate_values(batch.condition, batch.targets.shape[1])
        tokens, _ = self.net.generate(batch.condition, self.max_length)
        return [trim(row, self.net.eos_id, self.net.padding_idx) for row in tokens.tolist()]

    def _evaluate(self, split: str, batch: SequenceBatch) -> None:
        self._loss(split, batch)
        generated = self.generate_batch(batch)
        if self.is_token:
            references = [
                trim([t for t in row if t != IGNORE_INDEX], self.net.eos_id, self.net.padding_idx)
                for row in batch.targets.tolist()
            ]
            exact = torch.tensor([g == r for g, r in zip(generated, references, strict=True)], dtype=torch.float)
            self.track(split, "exact", exact, prog_bar=split == "val")
        else:
            error = F.mse_loss(generated, batch.targets)
            self.track(split, "generated_mse", error, batch.targets.numel(), prog_bar=split == "val")

    def step(self, split: str, batch: SequenceBatch) -> Tensor | None:
        if split == "train":
            return self._loss(split, batch)
        self._evaluate(split, batch)
        return None


__all__ = ["ConditionalGenerationTask"]
