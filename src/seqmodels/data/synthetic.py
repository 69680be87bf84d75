"""Synthetic benchmark tasks generated in-process, deterministic from ``seed`` (nothing is downloaded)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from seqmodels.data.datamodule import SequenceDataModule, SequenceDataset

_SPLITS = {"train": 0, "val": 1, "test": 2}


def _rng(seed: int, split: str) -> np.random.Generator:
    # One independent stream per split: the test set depends only on (seed, its own size), not on num_train.
    return np.random.default_rng([int(seed), _SPLITS[split]])


class GeneratedDataModule(SequenceDataModule):
    """Base of datamodules whose splits are generated in-process: subclasses implement :meth:`generate`.

    Each split draws from its own random stream seeded by ``(seed, split)``, so the validation and test sets
    depend only on the seed and their own size, never on ``num_train``.
    """

    dims_need_data = False
    name = "generated data"

    def __init__(self, num_train: int = 10000, num_val: int = 1000, num_test: int = 1000, **base: Any) -> None:
        super().__init__(**base)
        if min(num_train, num_val, num_test) < 0 or num_train == 0:
            raise ValueError(
                f"{self.name}: need num_train > 0 and num_val, num_test >= 0, got {num_train}, {num_val}, {num_test}"
            )
        self.num_train, self.num_val, self.num_test = num_train, num_val, num_test

    def generate(self, n: int, rng: np.random.Generator) -> SequenceDataset:
        raise NotImplementedError

    def build(self) -> None:
        self.train_set = self.generate(self.num_train, _rng(self.seed, "train"))
        self.val_set = self.generate(self.num_val, _rng(self.seed, "val"))
        self.test_set = self.generate(self.num_test, _rng(self.seed, "test"))


class AddingProblemDataModule(GeneratedDataModule):
    """The adding problem (Hochreiter & Schmidhuber, 1997).

    Each sequence has two channels: channel 0 holds values uniform in [0, 1), channel 1 is 0 except for
    exactly two 1s, one in the first half and one in the second half of the sequence's valid length. The
    target is the sum of the two marked values (a float scalar). Predicting the mean (1.0) always gives an MSE
    of 1/6 ~ 0.167 (:attr:`baseline_mse`); solving the task needs memory across the whole sequence.

    Args:
        length: sequence length (the maximum, with ``variable_length``).
        num_train, num_val, num_test: number of sequences per split.
        variable_length: draw each length uniformly from ``[min_length, length]``.
        min_length: shortest length with ``variable_length`` (default ``length // 2``; at least 2).
        **base: :class:`SequenceDataModule` arguments (``batch_size``, ``seed``, ...).

    dims: ``input_size=2``, ``num_outputs=1``.
    """

    name = "adding problem"

    def __init__(
        self,
        length: int = 100,
        variable_length: bool = False,
        min_length: int | None = None,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        if length < 2:
            raise ValueError(f"adding problem: length must be >= 2 (two marked positions), got {length}")
        min_length = length // 2 if min_length is None else min_length
        if variable_length and not 2 <= min_length <= length:
            raise ValueError(f"adding problem: min_length must be in [2, length={length}], got {min_length}")
        self.length = length
        self.variable_length = variable_length
        self.min_length = min_length

    def generate(self, n: int, rng: np.random.Generator) -> SequenceDataset:
        if self.variable_length:
            lengths = rng.integers(self.min_length, self.length + 1, size=n)
        else:
            lengths = np.full(n, self.length)
        values = rng.random((n, self.length), dtype=np.float32)
        half = lengths // 2
        first = rng.integers(0, half)  # in [0, half)
        second = rng.integers(half, lengths)  # in [half, length)
        rows = np.arange(n)
        markers = np.zeros((n, self.length), dtype=np.float32)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        targets = torch.from_numpy(values[rows, first] + values[rows, second])
        data = torch.from_numpy(np.stack([values, markers], axis=-1))  # (n, length, 2)
        inputs = [data[i, : int(lengths[i])] for i in range(n)]
        return SequenceDataset(inputs, targets)

    def _dims(self) -> dict[str, int]:
        return {"input_size": 2, "num_outputs": 1}

    @property
    def baseline_mse(self) -> float:
        """MSE on the test set of always predicting 1.0 (the expected sum); about 0.167."""
        test_set = self._require("test_set")
        targets = test_set.targets  # type: ignore[attr-defined]
        return float(((targets - 1.0) ** 2).mean())


class ParityDataModule(GeneratedDataModule):
    """Parity of random bit strings: is the number of ones odd?

    Inputs are ``(L, 1)`` float 0/1 with ``L`` uniform in ``[min_length, max_length]``; the target is the XOR
    of all bits as an int64 class (0 or 1). Every bit matters, so the task needs memory of the whole sequence.

    dims: ``input_size=1``, ``num_classes=2``.
    """

    name = "parity"

    def __init__(
        self,
        min_length: int = 1,
        max_length: int = 16,
        num_train: int = 4000,
        num_val: int = 500,
        num_test: int = 500,
        **base: Any,
    ) -> None:
        super().__init__(num_train=num_train, num_val=num_val, num_test=num_test, **base)
        if not 1 <= min_length <= max_length:
            raise ValueError(f"parity: need 1 <= min_length <= max_length, got {min_length}, {max_length}")
        self.min_length, self.max_length = min_length, max_length

    def generate(self, n: int, rng: np.random.Generator) -> SequenceDataset:
        lengths = rng.integers(self.min_length, self.max_length + 1, size=n)
        bits = rng.integers(0, 2, size=(n, self.max_length)).astype(np.float32)
        bits[np.arange(self.max_length)[None, :] >= lengths[:, None]] = 0.0  # beyond the length: not part of it
        targets = torch.from_numpy(bits.sum(axis=1).astype(np.int64) % 2)
        data = torch.from_numpy(bits).unsqueeze(-1)  # (n, max_length, 1)
        inputs = [data[i, : int(lengths[i])] for i in range(n)]
        return SequenceDataset(inputs, targets)

    def _dims(self) -> dict[str, int]:
        return {"input_size": 1, "num_classes": 2}
