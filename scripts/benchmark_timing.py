"""Training-time bookkeeping shared by the benchmark scripts (run them as ``python scripts/<name>.py``)."""

from __future__ import annotations

import time

import lightning as L


class TrainingTimer(L.Callback):
    """Wall seconds of the training epochs, with the validation run at each epoch's end counted apart."""

    def __init__(self) -> None:
        self.seconds, self.validation_seconds, self.epochs = 0.0, 0.0, 0
        self._start: float | None = None
        self._validation_start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._validation_start = time.perf_counter()
        if self._start is not None:  # validation inside a training epoch pauses its clock
            self.seconds += self._validation_start - self._start
            self._start = None

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        now = time.perf_counter()
        if not trainer.sanity_checking:
            self.validation_seconds += now - self._validation_start
        if trainer.training:
            self._start = now

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self._start is not None:
            self.seconds += time.perf_counter() - self._start
            self._start = None
        self.epochs += 1

    def summary(self) -> str:
        per_epoch = self.seconds / max(self.epochs, 1)
        return (
            f"{self.epochs} epochs, {self.seconds / 60:.1f} min training ({per_epoch:.0f} s/epoch), "
            f"{self.validation_seconds / 60:.1f} min validating"
        )
