"""Speech recognition with CTC: loss, greedy / prefix beam search decoding, character and word error rates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.text import CharErrorRate, WordErrorRate

from seqmodels.data.batch import SequenceBatch
from seqmodels.nn.ctc import ctc_greedy_decode, ctc_prefix_beam_search
from seqmodels.tasks.base import OptimizerFactory, SchedulerFactory, SequenceTask
from seqmodels.tasks.capabilities import Capabilities, Export, Prediction


class CTCTask(SequenceTask):
    """Trains a :class:`~seqmodels.nn.CTCNet` with ``torch.nn.functional.ctc_loss`` and scores its transcripts.

    Batches: ``inputs`` (N, L, C) features with ``lengths``, ``targets`` (N, S) label ids (never the blank) with
    ``target_lengths``. The loss is CTC's negative log-likelihood divided by each target's length, averaged over
    the batch; an input too short for its target (fewer steps than labels and repeats) contributes zero.

    Logs ``{split}/loss``, ``{split}/cer`` (character error rate: edit distance over reference characters) and
    ``{split}/wer`` (the same over space-separated words) for every split, and ``val/cer_best``. Training and
    validation decode greedily; the test split uses prefix beam search when ``test_beam_size > 1``.

    Args:
        net: the network, ``net(inputs, lengths) -> (log_probs (N, L', K), lengths (N,))``.
        labels: the text of each label id (``labels[blank]`` is never printed).
        blank: the blank's label id (0 in every seqmodels config).
        test_beam_size: beam for the test split (1: greedy).
        **options: ``scheduler_monitor``, ``scheduler_interval``, ``decay_exempt`` (see :class:`SequenceTask`).
    """

    capabilities: ClassVar[Capabilities] = Capabilities(predict=Prediction.AUDIO_TO_TEXT, export=Export.CTC)

    def __init__(
        self,
        net: nn.Module,
        labels: Sequence[str],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        blank: int = 0,
        test_beam_size: int = 1,
        **options: Any,
    ) -> None:
        super().__init__(net, optimizer, scheduler, **options)
        self.labels = list(labels)
        num_classes = getattr(net, "num_classes", len(self.labels))
        if len(self.labels) != num_classes:
            raise ValueError(
                f"{len(self.labels)} labels for a network with num_classes={num_classes}; take both from the data"
            )
        if not 0 <= blank < len(self.labels) or getattr(net, "blank", blank) != blank:
            raise ValueError(f"blank={blank} must be a label id and match the network's blank")
        if test_beam_size < 1:
            raise ValueError(f"test_beam_size must be >= 1, got {test_beam_size}")
        self.blank = blank
        self.test_beam_size = test_beam_size
        self.add_metrics(cer=CharErrorRate(), wer=WordErrorRate())
        self.track_best("cer", higher_is_better=False)

    def forward(self, inputs: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        return self.net(inputs, lengths)

    def text(self, ids: Sequence[int]) -> str:
        return "".join(self.labels[i] for i in ids if i != self.blank)

    def decode(self, log_probs: Tensor, lengths: Tensor, beam_size: int = 1) -> list[str]:
        """Transcripts of network outputs: greedy, or prefix beam search with ``beam_size`` > 1."""
        if beam_size == 1:
            ids = ctc_greedy_decode(log_probs, lengths, self.blank)
        else:
            ids = [hyps[0][0] for hyps in ctc_prefix_beam_search(log_probs, lengths, beam_size, self.blank)]
        return [self.text(row) for row in ids]

    @torch.no_grad()
    def transcribe(self, inputs: Tensor, lengths: Tensor, beam_size: int = 1) -> list[str]:
        """Transcripts of padded features (N, L, C) with ``lengths`` (N,)."""
        log_probs, out_lengths = self.net(inputs, lengths)
        return self.decode(log_probs, out_lengths, beam_size)

    def step(self, split: str, batch: SequenceBatch) -> Tensor:
        if batch.targets is None or batch.target_lengths is None:
            raise ValueError("CTCTask needs batches with targets and target_lengths (target_mode='pad')")
        log_probs, out_lengths = self(batch.inputs, batch.lengths)
        targets, target_lengths = batch.targets, batch.target_lengths
        # ctc_loss takes (L', N, K); cuDNN is not used, so lengths may live on any device.
        loss = F.ctc_loss(
            log_probs.transpose(0, 1),
            targets,
            out_lengths,
            target_lengths,
            blank=self.blank,
            reduction="mean",
            zero_infinity=True,
        )
        self.track_loss(split, loss, self.batch_size(batch))

        beam = self.test_beam_size if split == "test" else 1
        hypotheses = self.decode(log_probs.detach(), out_lengths, beam)
        references = [
            self.text(row[: int(k)]) for row, k in zip(targets.tolist(), target_lengths.tolist(), strict=True)
        ]
        self.track(split, "cer", hypotheses, references, prog_bar=split == "val")
        self.track(split, "wer", hypotheses, references)
        return loss

    def predict_step(self, batch: SequenceBatch, batch_idx: int) -> list[str]:
        return self.transcribe(batch.inputs, batch.lengths, self.test_beam_size)


__all__ = ["CTCTask"]
