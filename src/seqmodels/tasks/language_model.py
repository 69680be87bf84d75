"""Language modelling: next-token cross-entropy, perplexity, bits per character, truncated BPTT.

Truncated BPTT: when a batch continues the previous one (``batch.continues``, consecutive windows of token
streams), the network starts from the state the previous batch ended in, detached so gradients stop at the
window boundary. The carried state is reset at the start of every train, validation and test epoch, so
evaluation reads each split exactly as training does.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmodels.data.batch import SequenceBatch
from seqmodels.nn.language_model import detach_state
from seqmodels.nn.recurrent import State
from seqmodels.tasks.base import SPLITS, OptimizerFactory, SchedulerFactory, SequenceTask
from seqmodels.tasks.capabilities import Capabilities, Export

IGNORE_INDEX = -100


class LanguageModelTask(SequenceTask):
    """Next-token prediction with a network ``net(tokens, lengths, state) -> (logits, state)``.

    Logs ``{split}/loss`` (nats per token, averaged over tokens), ``{split}/ppl`` (perplexity),
    ``{split}/bpc`` (bits per character; with ``char_level``) and ``val/loss_best``.

    Args:
        net: e.g. :class:`~seqmodels.nn.RecurrentLanguageModel`.
        optimizer, scheduler: see :class:`SequenceTask`.
        char_level: tokens are characters: also log bits per character.
        carry_state: carry the recurrent state across consecutive stream batches (truncated BPTT); False
            starts every window from a zero state.
        **options: ``scheduler_monitor``, ``scheduler_interval``, ``decay_exempt`` (see :class:`SequenceTask`).
    """

    capabilities: ClassVar[Capabilities] = Capabilities(generate=True, export=Export.LANGUAGE_MODEL)

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        char_level: bool = False,
        carry_state: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(net, optimizer, scheduler, **options)
        self.char_level = bool(char_level)
        self.carry_state = carry_state
        self.track_best("loss", higher_is_better=False)
        self._carried: dict[str, State | None] = {split: None for split in SPLITS}

    # ---------------------------------------------------------------- state carry
    def _initial_state(self, split: str, batch: SequenceBatch) -> State | None:
        state = self._carried[split]
        if not (self.carry_state and batch.continues) or state is None:
            return None
        batch_dim = state[0].shape[1] if isinstance(state, tuple) else state.shape[1]
        return state if batch_dim == batch.inputs.shape[0] else None

    def _reset(self, split: str) -> None:
        self._carried[split] = None

    def on_train_epoch_start(self) -> None:
        self._reset("train")

    def on_validation_epoch_start(self) -> None:
        self._reset("val")

    def on_test_epoch_start(self) -> None:
        self._reset("test")

    # ---------------------------------------------------------------- steps
    def forward(self, tokens: Tensor, lengths: Tensor | None = None, state: State | None = None) -> Any:
        return self.net(tokens, lengths, state)

    def loss_sum(self, batch: SequenceBatch, state: State | None) -> tuple[Tensor, Tensor, State]:
        """Summed next-token loss, the number of target tokens, and the final state."""
        tokens = batch.inputs
        # Stream windows are never padded: skip packing when every row is full.
        full = batch.continues or bool((batch.lengths == tokens.shape[1]).all())
        logits, final = self(tokens, None if full else batch.lengths, state)
        targets = batch.targets
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            targets.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        count = (targets != IGNORE_INDEX).sum()
        return loss, count, final

    def step(self, split: str, batch: SequenceBatch) -> Tensor:
        loss_sum, count, final = self.loss_sum(batch, self._initial_state(split, batch))
        self._carried[split] = detach_state(final) if self.carry_state else None
        loss = loss_sum / count.clamp(min=1)
        self.track_loss(split, loss, batch.inputs.shape[0], weight=count)  # the mean over the split's tokens
        return loss

    # ---------------------------------------------------------------- epoch metrics
    def epoch_end(self, split: str) -> dict[str, Tensor]:
        values = super().epoch_end(split)
        loss = values.get(f"{split}/loss")
        if loss is None:
            return values
        self.log_epoch_value(f"{split}/ppl", torch.exp(loss.clamp(max=50.0)), prog_bar=split == "val")
        if self.char_level:
            self.log_epoch_value(f"{split}/bpc", loss / math.log(2.0), prog_bar=split == "val")
        return values


__all__ = ["LanguageModelTask"]
