"""What the sample-writing callbacks share: whether this validation epoch logs, and where to."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger


def epoch_loggers(trainer: L.Trainer, every_n_epochs: int) -> list[TensorBoardLogger]:
    """The run's TensorBoard loggers when this validation epoch should log samples; [] otherwise.

    Samples are skipped during the sanity check, on other ranks than 0, and between every n-th epoch.
    """
    if trainer.sanity_checking or not trainer.is_global_zero or (trainer.current_epoch + 1) % every_n_epochs:
        return []
    return [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
