"""Polyphonic next-step prediction: one independent Bernoulli per pitch and step (piano rolls, multi-label BCE)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmodels.data.batch import SequenceBatch
from seqmodels.nn.masking import lengths_to_mask
from seqmodels.tasks.base import OptimizerFactory, SchedulerFactory, SequenceTask, WeightedMean
from seqmodels.tasks.capabilities import Capabilities


class PianoRollTask(SequenceTask):
    """Multi-label prediction per step with a network ``net(inputs, lengths) -> (N, L, num_pitches)`` logits.

    Targets are ``(N, L, num_pitches)`` 0/1 (which pitches sound at each step); padded rows are skipped, by
    ``lengths``. The loss is the Bernoulli negative log-likelihood summed over pitches and averaged over real
    steps, the unit polyphonic-music results are published in (nats per time step). Logs ``{split}/loss``,
    ``{split}/nll`` (the same quantity, weighted by steps across batches; in evaluation both equal) and
    ``val/nll_best``. ``**options``: as :class:`SequenceTask`.
    """

    # Evaluation only: predict and export have no reader or graph for piano rolls yet.
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(
        self,
        net: nn.Module,
        num_pitches: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        **options: Any,
    ) -> None:
        super().__init__(net, optimizer, scheduler, **options)
        if num_pitches < 1:
            raise ValueError(f"num_pitches must be >= 1, got {num_pitches}; take it from the data")
        self.num_pitches = num_pitches
        self.add_metrics(nll=WeightedMean())
        self.track_best("nll", higher_is_better=False)

    def step_nll(self, batch: SequenceBatch) -> tuple[Tensor, Tensor]:
        """The batch's NLL per real step (summed over pitches) and the number of real steps."""
        logits = self(batch.inputs, batch.lengths)
        if logits.shape[-1] != self.num_pitches:
            raise ValueError(
                f"the network scores {logits.shape[-1]} pitches per step, the task {self.num_pitches}; "
                "set model.net.num_tags to model.num_pitches"
            )
        targets = batch.targets[:, : logits.shape[1]]
        if targets.shape != logits.shape:
            raise ValueError(
                f"targets {tuple(targets.shape)} do not match the scores {tuple(logits.shape)}; "
                "piano-roll targets are (N, L, num_pitches)"
            )
        mask = lengths_to_mask(batch.lengths.to(logits.device), logits.shape[1])
        # Padded target rows hold -100: zero them so the (masked-out) loss there stays finite.
        targets = torch.where(mask.unsqueeze(-1), targets, 0.0).to(logits.dtype)
        per_step = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(-1)
        steps = mask.sum()
        return per_step.masked_select(mask).sum() / steps.clamp(min=1), steps

    def step(self, split: str, batch: SequenceBatch) -> Tensor:
        nll, steps = self.step_nll(batch)
        self.track_loss(split, nll, self.batch_size(batch), weight=steps)
        self.track(split, "nll", nll.detach(), steps, prog_bar=split == "val")
        return nll

    def predict_step(self, batch: SequenceBatch, batch_idx: int) -> dict[str, Tensor]:
        """Per step, the probability that each pitch sounds next."""
        return {"probs": torch.sigmoid(self(batch.inputs, batch.lengths))}


__all__ = ["PianoRollTask"]
