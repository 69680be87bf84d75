"""Encoder-decoder training and evaluation: teacher forcing, decoding, exact match, token error rate, BLEU."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.text import BLEUScore, WordErrorRate

from seqmodels.data.batch import SequenceBatch
from seqmodels.tasks.base import OptimizerFactory, SchedulerFactory, SequenceTask
from seqmodels.tasks.capabilities import Capabilities, Export, Prediction


def trim(ids: list[int], eos_id: int, padding_idx: int) -> list[int]:
    """Token ids up to (not including) the first ``<eos>``, without padding."""
    out = []
    for token in ids:
        if token == eos_id:
            break
        if token != padding_idx:
            out.append(token)
    return out


class Seq2SeqTask(SequenceTask):
    """Trains a :class:`~seqmodels.nn.Seq2Seq` with masked cross-entropy and evaluates what it decodes.

    Batches: ``inputs`` (N, S) source ids with ``lengths``, ``targets`` (N, T) = ``<bos> ... <eos>`` padded.

    Logs ``{split}/loss`` and ``{split}/acc`` (teacher-forced next-token accuracy) for every split; for
    validation and test, the decoded outputs give ``{split}/exact`` (whole-sequence exact match),
    ``{split}/ter`` (token error rate: edit distance / reference tokens; phoneme error rate for G2P,
    character or word error rate for text) and, with ``bleu``, ``{split}/bleu``. Validation decodes greedily;
    test uses beam search when ``test_beam_size > 1``.

    Args:
        net: the encoder-decoder.
        label_smoothing: cross-entropy label smoothing.
        teacher_forcing: probability of feeding the gold previous token while training (1: always).
        teacher_forcing_decay: subtracted from it after every epoch (a linear schedule) ...
        teacher_forcing_min: ... down to this floor.
        test_beam_size, length_penalty: beam search settings for the test split.
        max_length_ratio, max_length_offset: decode at most ``ratio * source length + offset`` tokens.
        bleu: also compute corpus BLEU-4 (translation).
        **options: ``scheduler_monitor``, ``scheduler_interval``, ``decay_exempt`` (see :class:`SequenceTask`).
    """

    capabilities: ClassVar[Capabilities] = Capabilities(predict=Prediction.TEXT_TO_TEXT, export=Export.ENCODER_DECODER)

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        label_smoothing: float = 0.0,
        teacher_forcing: float = 1.0,
        teacher_forcing_decay: float = 0.0,
        teacher_forcing_min: float = 0.0,
        test_beam_size: int = 1,
        length_penalty: float = 1.0,
        max_length_ratio: float = 2.0,
        max_length_offset: int = 10,
        bleu: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(net, optimizer, scheduler, **options)
        for name, value in (("teacher_forcing", teacher_forcing), ("teacher_forcing_min", teacher_forcing_min)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if test_beam_size < 1:
            raise ValueError(f"test_beam_size must be >= 1, got {test_beam_size}")
        self.label_smoothing = label_smoothing
        self.teacher_forcing = teacher_forcing
        self.teacher_forcing_decay = teacher_forcing_decay
        self.teacher_forcing_min = teacher_forcing_min
        self.test_beam_size = test_beam_size
        self.length_penalty = length_penalty
        self.max_length_ratio, self.max_length_offset = max_length_ratio, max_length_offset
        self.padding_idx = getattr(net, "padding_idx", 0)
        self.eos_id = net.eos_id
        self.add_metrics(acc=MeanMetric())
        decoded = {"exact": MeanMetric(), "ter": WordErrorRate(), **({"bleu": BLEUScore(n_gram=4)} if bleu else {})}
        self.add_metrics(("val", "test"), **decoded)
        self.track_best("exact", higher_is_better=True)

    @property
    def teacher_forcing_ratio(self) -> float:
        epoch = self.current_epoch if self._trainer is not None else 0
        return max(self.teacher_forcing_min, self.teacher_forcing - self.teacher_forcing_decay * epoch)

    def forward(self, source: Tensor, lengths: Tensor, target_inputs: Tensor, teacher_forcing: float = 1.0) -> Any:
        return self.net(source, lengths, target_inputs, teacher_forcing)

    def _loss(self, split: str, batch: SequenceBatch) -> Tensor:
        target_inputs, gold = batch.targets[:, :-1], batch.targets[:, 1:]
        ratio = self.teacher_forcing_ratio if split == "train" else 1.0
        logits, _ = self(batch.inputs, batch.lengths, target_inputs, ratio)
        loss = F.cross_entropy(
            logits.transpose(1, 2).float(), gold, ignore_index=self.padding_idx, label_smoothing=self.label_smoothing
        )
        real = gold != self.padding_idx
        count = int(real.sum())
        accuracy = ((logits.argmax(-1) == gold) & real).sum() / max(count, 1)
        self.track_loss(split, loss, len(batch), weight=count)
        self.track(split, "acc", accuracy, count)
        return loss

    def max_decode_length(self, lengths: Tensor) -> int:
        return int(self.max_length_ratio * int(lengths.max()) + self.max_length_offset)

    @torch.no_grad()
    def decode_batch(self, batch: SequenceBatch, beam_size: int = 1) -> list[list[int]]:
        """Decoded target ids per example (no ``<bos>``/``<eos>``/padding)."""
        max_len = self.max_decode_length(batch.lengths)
        if beam_size == 1:
            tokens, _ = self.net.greedy(batch.inputs, batch.lengths, max_len)
            return [trim(row, self.eos_id, self.padding_idx) for row in tokens.tolist()]
        results = self.net.beam_search(
            batch.inputs, batch.lengths, beam_size=beam_size, max_len=max_len, length_penalty=self.length_penalty
        )
        return [trim(best[0][0], self.eos_id, self.padding_idx) for best in results]

    def _evaluate(self, split: str, batch: SequenceBatch) -> None:
        self._loss(split, batch)
        beam = self.test_beam_size if split == "test" else 1
        predictions = self.decode_batch(batch, beam)
        references = [trim(row[1:], self.eos_id, self.padding_idx) for row in batch.targets.tolist()]
        exact = torch.tensor([p == r for p, r in zip(predictions, references, strict=True)], dtype=torch.float)
        self.track(split, "exact", exact, prog_bar=split == "val")
        as_text = lambda ids: " ".join(map(str, ids))  # noqa: E731  (edit distance over token ids)
        hypotheses, targets = [as_text(p) for p in predictions], [as_text(r) for r in references]
        self.track(split, "ter", hypotheses, targets, prog_bar=split == "val")
        if self.has_metric(split, "bleu"):
            self.track(split, "bleu", hypotheses, [[r] for r in targets])

    def step(self, split: str, batch: SequenceBatch) -> Tensor | None:
        if split == "train":
            return self._loss(split, batch)
        self._evaluate(split, batch)
        return None

    def on_train_epoch_start(self) -> None:
        self.log_epoch_value("train/teacher_forcing", self.teacher_forcing_ratio)

    def predict_step(self, batch: SequenceBatch, batch_idx: int) -> list[list[int]]:
        return self.decode_batch(batch, self.test_beam_size)


__all__ = ["Seq2SeqTask", "trim"]
