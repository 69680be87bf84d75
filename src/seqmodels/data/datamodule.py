"""Base LightningDataModule: seeded splits, padded batches, optional length bucketing, model dimensions."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import PurePath
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset, random_split

from seqmodels.data.collate import pad_collate
from seqmodels.data.samplers import BucketBatchSampler, EpochRandomSampler


class MissingDataFileError(FileNotFoundError, ValueError):
    """A data file or folder that is not there (both a ``FileNotFoundError`` and a ``ValueError``)."""


def fewest_for_holdout(held_out: Callable[[int], int], limit: int = 10_000_000) -> int:
    """The fewest items ``n`` for which ``held_out(n)`` (a split's share, rounded as the split rounds it) is >= 1."""
    return next((n for n in range(1, limit) if held_out(n) >= 1), limit)


class SequenceDataset(Dataset):
    """In-memory map-style dataset of ``(inputs, target)`` pairs that knows its sequence lengths.

    Args:
        inputs: one tensor per sequence, ``(L,)`` token ids or ``(L, C)`` features.
        targets: one target per sequence (a tensor of shape ``(N, ...)`` or a sequence of tensors / numbers).
    """

    def __init__(self, inputs: Sequence[Tensor], targets: Sequence[Any] | Tensor) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"SequenceDataset: {len(inputs)} inputs but {len(targets)} targets")
        self.inputs = list(inputs)
        self.targets = targets
        self.lengths = torch.tensor([x.shape[0] for x in self.inputs], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[Tensor, Any]:
        return self.inputs[index], self.targets[index]


def sequence_lengths(dataset: Dataset) -> Tensor:
    """Lengths of all sequences of a dataset.

    Read from a ``lengths`` attribute (also through ``Subset``), else by loading every item.
    """
    if isinstance(dataset, Subset):
        return sequence_lengths(dataset.dataset)[torch.as_tensor(dataset.indices, dtype=torch.int64)]
    lengths = getattr(dataset, "lengths", None)
    if lengths is not None:
        return torch.as_tensor(lengths, dtype=torch.int64)
    return torch.tensor([len(dataset[i][0]) for i in range(len(dataset))], dtype=torch.int64)  # type: ignore[arg-type]


def seeded_split(dataset: Dataset, lengths: Sequence[int | float], seed: int) -> list[Subset]:
    """``torch.utils.data.random_split`` with its own ``torch.Generator().manual_seed(seed)``.

    The same seed gives the same split, whatever the global RNG state. ``lengths`` are counts or fractions
    summing to 1.
    """
    return random_split(dataset, lengths, generator=torch.Generator().manual_seed(seed))


def stratified_split(labels: Sequence[Any] | Tensor, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split indices so that ``fraction`` of them go to the second part with (nearly) equal class proportions.

    The second part gets ``round(fraction * N)`` indices, allocated to classes by largest remainder; every
    class keeps at least one index in the first part, so it still appears in training. Deterministic from
    ``seed``.

    Returns:
        ``(first, second)`` index lists, each in increasing order.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"split fraction must be in [0, 1), got {fraction}")
    labels = labels.tolist() if isinstance(labels, Tensor) else list(labels)
    n = len(labels)
    by_class: dict[Any, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    classes = sorted(by_class, key=str)
    target_total = round(fraction * n)
    exact = {c: fraction * len(by_class[c]) for c in classes}
    counts = {c: min(math.floor(exact[c]), len(by_class[c]) - 1) for c in classes}
    # largest remainder, ties broken by class order, never taking a class's last index
    remainders = sorted(classes, key=lambda c: -(exact[c] - math.floor(exact[c])))
    missing = target_total - sum(counts.values())
    for c in remainders:
        if missing <= 0:
            break
        if counts[c] < len(by_class[c]) - 1:
            counts[c] += 1
            missing -= 1

    generator = torch.Generator().manual_seed(seed)
    second: list[int] = []
    for c in classes:
        members = by_class[c]
        picked = torch.randperm(len(members), generator=generator)[: counts[c]].tolist()
        second.extend(members[i] for i in picked)
    second_set = set(second)
    return [i for i in range(n) if i not in second_set], sorted(second)


class SequenceDataModule(L.LightningDataModule):
    """Base class of all seqmodels datamodules.

    Subclasses implement :meth:`build` (create ``self.train_set``, ``self.val_set``, ``self.test_set``:
    map-style datasets of ``(inputs, target)`` items) and :meth:`_dims`. ``setup`` calls ``build`` once,
    however often Lightning calls ``setup`` (fit, then test, ...). Every dataloader yields
    :class:`SequenceBatch` via :func:`pad_collate`; ``predict_dataloader`` is the test loader.

    Args:
        batch_size: sequences per batch.
        num_workers: DataLoader worker processes (kept alive between epochs when > 0).
        pin_memory: pin batches in page-locked memory (faster host-to-GPU copies).
        bucket_by_length: batch training sequences of similar length (:class:`BucketBatchSampler`); evaluation
            loaders keep the dataset order.
        seed: seeds the data generation, the splits and the order of training batches.
        val_fraction: share of the training data held out for validation, for datasets without a
            validation split (ignored by datamodules that take explicit split sizes).
    """

    #: fills padded positions of ``inputs``; token datamodules return their padding index
    input_padding_value: float = 0.0
    #: fills padded positions of variable-length targets
    target_padding_value: float = -100
    # How pad_collate combines 1-D targets: "pad" for per-step targets (always padded, with target_lengths).
    target_mode: str = "auto"
    #: whether :meth:`dims` needs the data built (False when they follow from the constructor arguments)
    dims_need_data: bool = True

    def __init__(
        self,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool = False,
        bucket_by_length: bool = False,
        seed: int = 0,
        val_fraction: float = 0.1,
    ) -> None:
        super().__init__()
        # Constructor arguments of the concrete class (subclass ones included) go into checkpoints, so
        # ``SubClass.load_from_checkpoint(path)`` rebuilds the same datamodule.
        self.save_hyperparameters(logger=False)
        for key, value in list(self.hparams.items()):
            # Plain strings, lists and dicts load under torch.load(weights_only=True); Paths and OmegaConf
            # containers (from Hydra) do not.
            if isinstance(value, PurePath):
                self.hparams[key] = str(value)
            elif isinstance(value, (ListConfig, DictConfig)):
                self.hparams[key] = OmegaConf.to_container(value, resolve=True)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.bucket_by_length = bucket_by_length
        self.seed = seed
        self.val_fraction = val_fraction
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self._built = False

    # ----------------------------------------------------------------- building
    def build(self) -> None:
        """Create ``train_set``, ``val_set`` and ``test_set``. Called once, by the first ``setup``."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self._built:
            return
        self.build()
        self._built = True

    @property
    def is_built(self) -> bool:
        return self._built

    # ------------------------------------------------------------- dimensions
    def _dims(self) -> dict[str, int]:
        raise NotImplementedError

    def dims(self) -> dict[str, int]:
        """What the model must know about the data (``input_size``, ``num_classes``, ``vocab_size``, ...).

        Builds the data first if a dimension depends on it (vocabulary size, number of channels in a file).
        """
        if self.dims_need_data and not self._built:
            self.setup()
        return dict(self._dims())

    def dim(self, name: str) -> int:
        """One entry of :meth:`dims`; a ``ValueError`` listing the available names if it does not exist."""
        available = self.dims()
        if name not in available:
            raise ValueError(
                f"{type(self).__name__} has no dimension {name!r}; available: {', '.join(sorted(available))}"
            )
        return available[name]

    # ------------------------------------------------------------- dataloaders
    @property
    def collate_fn(self) -> Callable[[Sequence[Any]], Any]:
        return functools.partial(
            pad_collate,
            padding_value=self.input_padding_value,
            target_padding_value=self.target_padding_value,
            target_mode=self.target_mode,
        )

    def _require(self, name: str) -> Dataset:
        if not self._built:
            self.setup()
        dataset = getattr(self, name)
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.build() did not create {name}")
        return dataset

    def _distributed_info(self) -> tuple[int | None, int | None]:
        trainer = self.trainer
        if trainer is None:
            return None, None
        return trainer.world_size, trainer.global_rank

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        common: dict[str, Any] = dict(
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            # The loader's own generator (it seeds the workers): drawing from the global one would shift every
            # later random draw by how many loaders were started, which a resumed run cannot reproduce.
            generator=torch.Generator().manual_seed(self.seed),
        )
        # A resumed run builds its loader for the epoch it resumes at, and a loader with workers draws that epoch's
        # first indices at once, before Lightning calls set_epoch: start the sampler at that epoch.
        epoch = self.trainer.fit_loop.epoch_progress.current.processed if self.trainer is not None else 0
        if train and self.bucket_by_length:
            num_replicas, rank = self._distributed_info()
            sampler = BucketBatchSampler(
                sequence_lengths(dataset),
                batch_size=self.batch_size,
                shuffle=True,
                drop_last=False,
                seed=self.seed,
                num_replicas=num_replicas,
                rank=rank,
            )
            sampler.set_epoch(epoch)
            return DataLoader(dataset, batch_sampler=sampler, **common)
        sampler = EpochRandomSampler(dataset, seed=self.seed, epoch=epoch) if train else None  # resumable order
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, **common)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._require("train_set"), train=True)

    def _eval_loader(self, name: str) -> DataLoader | list:
        dataset = self._require(name)
        # An empty split (e.g. val_fraction=0): Lightning skips the loop for an empty list of loaders.
        return self._loader(dataset, train=False) if len(dataset) > 0 else []  # type: ignore[arg-type]

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_loader("val_set")

    def test_dataloader(self) -> DataLoader | list:
        return self._eval_loader("test_set")

    def predict_dataloader(self) -> DataLoader | list:
        """The test split, in dataset order (predictions line up with ``test_set``)."""
        return self._eval_loader("test_set")

    def __repr__(self) -> str:
        sizes = (
            ", ".join(
                f"{name}={len(getattr(self, name + '_set'))}"  # type: ignore[arg-type]
                for name in ("train", "val", "test")
                if getattr(self, name + "_set") is not None
            )
            if self._built
            else "not built"
        )
        return f"{type(self).__name__}({sizes})"
