"""Randomness that a resumed run reproduces: every training epoch starts from a seed of its own."""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of training epoch ``epoch`` of a run seeded with ``seed`` (distinct for every pair)."""
    return (int(seed) * 1_000_003 + int(epoch)) % (2**63)


class EpochSeed(L.Callback):
    """Seeds torch, numpy and ``random`` at the start of every training epoch from ``(seed, epoch)``.

    A run seeded once at start-up draws its dropout masks (and any other random choice) from one stream that runs
    through every epoch; a run resumed from a checkpoint starts that stream afresh and diverges. Seeding each epoch
    from the run's seed and the epoch number makes epoch ``e`` draw the same numbers whether the run was interrupted
    before it or not. The data order is already a function of ``seed + epoch`` (see ``seqmodels.data.samplers``).
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning tells samplers the epoch, not datasets that draw their own batches (language-model streams).
        dataset = getattr(trainer.train_dataloader, "dataset", None)
        if callable(getattr(dataset, "set_epoch", None)):
            dataset.set_epoch(trainer.current_epoch)
        value = epoch_seed(self.seed, trainer.current_epoch)
        torch.manual_seed(value)
        np.random.seed(value % 2**32)
        random.seed(value)
