"""Synthetic benchmark tasks generated in-process, deterministic from ``seed`` (nothing is downloaded)."""

from __future__ import annotations

import math
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


class CopyMemoryDataModule(GeneratedDataModule):
    """The copy (memory) task of Arjovsky, Shah & Bengio (2016): recall ``num_symbols`` symbols after ``length``
    blank steps.

    Inputs are one-hot ``(length + 2 * num_symbols, alphabet_size + 2)`` floats: ``num_symbols`` symbols drawn
    uniformly from ``1 .. alphabet_size``, then ``length - 1`` blanks (0), the delimiter (``alphabet_size + 1``)
    and ``num_symbols`` more blanks. Targets are one int64 class per step: blank for the first
    ``length + num_symbols`` steps, then the symbols in their order. A model without memory at best predicts blank,
    then guesses: cross-entropy per step ``num_symbols * log(alphabet_size) / (length + 2 * num_symbols)``
    (:attr:`baseline_cross_entropy`; 0.173 for T=100, 0.095 for T=200).

    Args:
        length: T, the blank steps between the symbols and the end of the delimiter (>= 1).
        num_symbols: symbols to copy (10 in the paper).
        alphabet_size: distinct symbols (8 in the paper).
        num_train, num_val, num_test: number of sequences per split.
        **base: :class:`SequenceDataModule` arguments (``batch_size``, ``seed``, ...).

    dims: ``input_size=alphabet_size + 2``, ``num_tags=alphabet_size + 1`` (blank and the symbols), ``tag_names``.
    """

    name = "copy memory"
    target_mode = "pad"  # per-step targets

    def __init__(self, length: int = 100, num_symbols: int = 10, alphabet_size: int = 8, **base: Any) -> None:
        super().__init__(**base)
        if length < 1:
            raise ValueError(f"copy memory: length (blank steps T) must be >= 1, got {length}")
        if num_symbols < 1 or alphabet_size < 2:
            raise ValueError(
                f"copy memory: need num_symbols >= 1 and alphabet_size >= 2, got {num_symbols}, {alphabet_size}"
            )
        self.length, self.num_symbols, self.alphabet_size = length, num_symbols, alphabet_size

    @property
    def sequence_length(self) -> int:
        """Steps of every sequence: the symbols, T blanks (the delimiter last among them), the recall steps."""
        return self.length + 2 * self.num_symbols

    @property
    def delimiter(self) -> int:
        return self.alphabet_size + 1

    def generate(self, n: int, rng: np.random.Generator) -> SequenceDataset:
        symbols = rng.integers(1, self.alphabet_size + 1, size=(n, self.num_symbols))
        tokens = np.zeros((n, self.sequence_length), dtype=np.int64)
        tokens[:, : self.num_symbols] = symbols
        tokens[:, self.length + self.num_symbols - 1] = self.delimiter
        targets = np.zeros((n, self.sequence_length), dtype=np.int64)
        targets[:, -self.num_symbols :] = symbols
        one_hot = torch.nn.functional.one_hot(torch.from_numpy(tokens), self.alphabet_size + 2).float()
        target_rows = torch.from_numpy(targets)
        return SequenceDataset(list(one_hot), list(target_rows))

    def _dims(self) -> dict[str, Any]:  # type: ignore[override]
        return {"input_size": self.alphabet_size + 2, "num_tags": self.alphabet_size + 1, "tag_names": self.tag_names}

    @property
    def tag_names(self) -> list[str]:
        """``blank``, then the symbols ``1`` .. ``alphabet_size``."""
        return ["blank", *(str(s) for s in range(1, self.alphabet_size + 1))]

    @property
    def baseline_cross_entropy(self) -> float:
        """Cross-entropy per step of the best memoryless guess: blanks, then uniform over the alphabet."""
        return self.num_symbols * math.log(self.alphabet_size) / self.sequence_length
