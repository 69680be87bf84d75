"""Sequential digits: scikit-learn's bundled 8x8 handwritten digits read one pixel per step.

The small offline cousin of sequential and permuted MNIST (Le et al., 2015): each 8x8 image becomes a sequence of
64 one-channel steps in row-major order, or with ``permute`` in one fixed, seeded order that scatters neighbouring
pixels across the sequence, so the class depends on steps far apart. Nothing is downloaded: the 1797 images ship
inside scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from seqmodels.data.datamodule import SequenceDataModule, SequenceDataset, stratified_split

NUM_PIXELS = 64
NUM_CLASSES = 10


def pixel_order(permute: bool, permutation_seed: int) -> np.ndarray:
    """The order pixels are read in: row-major (0 .. 63), or one permutation fixed by ``permutation_seed``."""
    if not permute:
        return np.arange(NUM_PIXELS)
    return np.random.default_rng(permutation_seed).permutation(NUM_PIXELS)


class SequentialDigitsDataModule(SequenceDataModule):
    """Classify a handwritten digit (0-9) read pixel by pixel: inputs ``(64, 1)`` float in [0, 1], target int64.

    Splits are stratified by class and seeded by ``seed``: ``test_fraction`` of the 1797 images for test, then
    ``val_fraction`` of the rest for validation (defaults: 1294/144/359). The pixel order depends on
    ``permutation_seed`` only, so every split seed reads the same permuted task.

    Args:
        permute: read the pixels in a fixed random order (permuted MNIST style) instead of row by row.
        permutation_seed: seeds that order.
        val_fraction: share of the non-test images held out for validation.
        test_fraction: share of all images held out for test.
        **base: :class:`SequenceDataModule` arguments (``batch_size``, ``seed``, ...).

    ``dims``: ``input_size=1``, ``num_classes=10``.
    """

    dims_need_data = False

    def __init__(
        self,
        permute: bool = False,
        permutation_seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        **base: Any,
    ) -> None:
        super().__init__(val_fraction=val_fraction, **base)
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        self.permute = permute
        self.permutation_seed = permutation_seed
        self.test_fraction = test_fraction
        self.order = pixel_order(permute, permutation_seed)

    def build(self) -> None:
        try:
            from sklearn.datasets import load_digits
        except ImportError as exc:
            raise ImportError("sequential digits need scikit-learn: pip install scikit-learn") from exc
        digits = load_digits()
        pixels = torch.from_numpy(digits.data[:, self.order] / 16.0).float().unsqueeze(-1)  # (1797, 64, 1)
        labels = torch.from_numpy(digits.target).long()
        rest, test = stratified_split(labels, self.test_fraction, self.seed)
        train_pos, val_pos = stratified_split(labels[rest], self.val_fraction, self.seed + 1)
        train = [rest[i] for i in train_pos]
        val = [rest[i] for i in val_pos]
        self.train_set = SequenceDataset(list(pixels[train]), labels[train])
        self.val_set = SequenceDataset(list(pixels[val]), labels[val])
        self.test_set = SequenceDataset(list(pixels[test]), labels[test])

    def _dims(self) -> dict[str, int]:
        return {"input_size": 1, "num_classes": NUM_CLASSES}


__all__ = ["SequentialDigitsDataModule", "pixel_order"]
