"""Weight averaging over the last epochs of training (SWA's equal mean of the iterates, fairseq's checkpoint
averaging done in memory).

Once a schedule has decayed, consecutive weights scatter around a minimum; their mean usually sits nearer its centre
and generalises a little better than any one of them. :class:`LastEpochsAveraging` keeps that mean over every
optimizer step of the last ``epochs`` epochs. Validation during those epochs scores the mean, so checkpoints chosen
on a validation metric hold it (``state_dict``), with the raw weights beside it (``current_model_state``) for
resuming; when training ends the task holds the mean. Before the last epochs nothing changes: validation, checkpoints
and the weights are those of plain training.

    seqmodels-train experiment=cmudict_g2p "callbacks=[default,weight_averaging]" callbacks.weight_averaging.epochs=3
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


class LastEpochsAveraging(WeightAveraging):
    """Averages the weights over every optimizer step of the last ``epochs`` epochs (``trainer.max_epochs`` must be
    set). ``every_n_steps`` thins the updates (each costs one pass over the weights)."""

    def __init__(self, epochs: int = 3, every_n_steps: int = 1, use_buffers: bool = True) -> None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"LastEpochsAveraging: epochs must be a whole number >= 1, got {epochs!r}")
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"LastEpochsAveraging: every_n_steps must be a whole number >= 1, got {every_n_steps!r}")
        super().__init__(use_buffers=use_buffers)
        self.epochs = epochs
        self.every_n_steps = every_n_steps
        self._first_epoch = 0
        self._trainer: L.Trainer | None = None
        self._swapped = False

    @property
    def first_epoch(self) -> int:
        """The zero-based epoch whose steps are averaged first."""
        return self._first_epoch

    @property
    def num_averaged(self) -> int:
        """How many sets of weights the mean holds (0 before the last epochs)."""
        if self._average_model is None:
            return 0
        return int(self._average_model.n_averaged.item())

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            max_epochs = trainer.max_epochs
            if max_epochs is None or max_epochs < 1:
                raise ValueError(
                    "LastEpochsAveraging averages the last epochs of a run, so it needs trainer.max_epochs >= 1 "
                    f"(got {max_epochs}); set trainer.max_epochs or remove callbacks.weight_averaging"
                )
            self._first_epoch = max(0, max_epochs - self.epochs)
            self._trainer = trainer
        super().setup(trainer, pl_module, stage)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        if step_idx is None or self._trainer is None:
            return False
        return self._trainer.current_epoch >= self._first_epoch and step_idx % self.every_n_steps == 0

    # The mean is swapped in only once it exists: before the last epochs, validation scores the weights being trained.
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swapped = self.num_averaged > 0
        if self._swapped:
            self._swap_models(pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._swapped:
            self._swap_models(pl_module)
            self._swapped = False

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.num_averaged > 0:  # a run stopped before its last epochs keeps its own weights
            self._copy_average_to_current(pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.num_averaged > 0:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "epochs": self.epochs, "every_n_steps": self.every_n_steps}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # Resuming a fit restores the raw weights and the mean beside them; testing, validating or predicting
        # keeps the mean the checkpoint's state_dict holds. A checkpoint from before the last epochs holds no mean:
        # the first update starts it from the weights.
        if "current_model_state" in checkpoint and trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
