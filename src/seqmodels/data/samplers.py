"""Samplers whose order depends on ``seed + epoch`` only, so a resumed run reads the batches the uninterrupted run
read: a shuffling sampler, and a length-bucketing batch sampler (batches of similar-length sequences waste less
compute on padding)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence, Sized

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import BatchSampler, RandomSampler, Sampler, SequentialSampler


class EpochRandomSampler(RandomSampler):
    """``RandomSampler`` (each index once per pass) whose permutation comes from ``seed + epoch`` alone.

    torch's own ``RandomSampler`` draws from the global RNG, whose state a resumed run cannot reproduce; this one
    gives epoch ``e`` the same order in an interrupted and an uninterrupted run. Lightning calls ``set_epoch``
    before every training epoch; used alone, the epoch advances by one after each pass. It subclasses
    ``RandomSampler`` so that Lightning, under DDP, knows the loader shuffles (its ``DistributedSampler`` then
    shuffles by ``seed + epoch`` too).
    """

    def __init__(self, data_source: Sized, seed: int = 0, epoch: int = 0) -> None:
        super().__init__(data_source)
        self.seed = int(seed)
        self.epoch = int(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.data_source), generator=generator).tolist()
        self.epoch += 1
        yield from order


class _EpochForwarder:
    """What ``BucketBatchSampler.sampler`` points at.

    Lightning's fit loop calls ``set_epoch`` on ``dataloader.sampler`` and on
    ``dataloader.batch_sampler.sampler`` at the start of every epoch, never on the batch sampler itself; this
    object passes the call on.
    """

    def __init__(self, owner: BucketBatchSampler) -> None:
        self.owner = owner

    def set_epoch(self, epoch: int) -> None:
        self.owner.set_epoch(epoch)


class BucketBatchSampler(BatchSampler):
    """Yields batches of indices whose sequences have similar lengths.

    Each epoch: shuffle all indices, cut them into chunks of ``batch_size * bucket_size_multiplier``, sort
    each chunk by length, cut the sorted chunks into batches, shuffle the order of the batches. Only the last
    chunk can yield a short batch (dropped when ``drop_last``). With ``shuffle=False`` the order is the
    dataset order, sorted within chunks, with batches in sequence.

    Randomness comes from ``seed + epoch`` only, so every process builds the same batches. The epoch advances
    by one after each pass; ``set_epoch(e)`` pins it (Lightning calls it before every training epoch, which
    makes a resumed run see the same batches).

    Distributed training (``W`` ranks): each step's batches come from one length-sorted group of ``W *
    batch_size`` indices cut into ``W`` consecutive parts, rank ``r`` taking part ``r``, so at every step all ranks
    hold sequences of similar lengths and none waits long for the others at the gradient all-reduce. Every rank
    yields ``len(self)`` batches and, without ``drop_last``, every index exactly once per epoch: the last, short
    group is cut into ``W`` nearly equal parts (merged with the group before it if it has fewer than ``W``
    indices). Only a data set smaller than ``W`` repeats indices (as ``DistributedSampler`` pads); with
    ``drop_last`` the short group is dropped. ``num_replicas``/``rank`` default to the initialised
    ``torch.distributed`` group (or 1/0).

    Decision on Lightning's ``Trainer(use_distributed_sampler=True)`` (the default), from reading
    ``lightning/pytorch/trainer/connectors/data_connector.py`` and ``lightning/pytorch/utilities/data.py``
    (Lightning 2.6): under DDP, a DataLoader whose ``.sampler`` is not a ``DistributedSampler`` is re-created.
    With a custom ``batch_sampler``, Lightning builds a ``DistributedSampler`` (``num_replicas=W``,
    ``rank=r``) and re-instantiates the batch sampler from the arguments it captured when the
    ``*_dataloader`` hook created it, replacing only the argument called ``sampler``; a ``BatchSampler``
    subclass without such an argument makes it raise ``TypeError``, and a batch sampler that is not a
    ``BatchSampler`` subclass gets called as ``cls(sampler, batch_size=..., drop_last=...)``. Hence this class
    subclasses ``BatchSampler`` and accepts ``sampler``: we read ``num_replicas``/``rank`` from the injected
    sampler (and turn shuffling off if Lightning asks for that, via a ``SequentialSampler`` or
    ``shuffle=False``) and ignore its index order, which would undo the bucketing. Both settings work: with
    ``use_distributed_sampler=True`` Lightning hands us the rank, with ``False`` we read it from
    ``torch.distributed`` (or take the explicit ``num_replicas``/``rank``). Build this sampler inside a
    ``*_dataloader`` hook (``SequenceDataModule`` does), otherwise Lightning cannot capture its arguments.

    Args:
        lengths: the length of every sequence in the dataset (index ``i`` -> ``lengths[i]``).
        batch_size: sequences per batch.
        shuffle: shuffle within and across buckets each epoch.
        drop_last: drop the short last batch (and, sharded, the batches that do not divide among ranks).
        seed: base seed; the epoch is added to it.
        bucket_size_multiplier: chunk size in batches; larger = less padding, less randomness.
        num_replicas: number of ranks sharing the data; ``None`` = from ``torch.distributed``.
        rank: this process's rank; ``None`` = from ``torch.distributed``.
        sampler: set by Lightning (see above); only its ``num_replicas``, ``rank`` and ``shuffle`` are read.
    """

    def __init__(
        self,
        lengths: Sequence[int] | Tensor,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        bucket_size_multiplier: int = 50,
        num_replicas: int | None = None,
        rank: int | None = None,
        sampler: Sampler | None = None,
    ) -> None:
        # BatchSampler.__init__ is deliberately not called: it wants an index sampler we do not have.
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(bucket_size_multiplier, int) or bucket_size_multiplier < 1:
            raise ValueError(f"bucket_size_multiplier must be a positive integer, got {bucket_size_multiplier!r}")
        self.lengths = torch.as_tensor(lengths, dtype=torch.int64).reshape(-1)
        if self.lengths.numel() == 0:
            raise ValueError("BucketBatchSampler needs at least one sequence length")
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.bucket_size_multiplier = bucket_size_multiplier

        if sampler is not None:
            num_replicas = getattr(sampler, "num_replicas", num_replicas)
            rank = getattr(sampler, "rank", rank)
            if isinstance(sampler, SequentialSampler) or getattr(sampler, "shuffle", True) is False:
                self.shuffle = False
        if num_replicas is None:
            num_replicas = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, got {num_replicas=} {rank=}")
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0
        self.sampler = _EpochForwarder(self)

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next pass (its shuffling is ``seed + epoch``)."""
        self.epoch = int(epoch)

    def _num_global_batches(self) -> int:
        n = self.lengths.numel()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __len__(self) -> int:
        if self.num_replicas == 1:
            return self._num_global_batches()
        n, group = self.lengths.numel(), self.num_replicas * self.batch_size
        if self.drop_last:
            return n // group
        steps = math.ceil(n / group)
        return steps - 1 if steps > 1 and n % group and n % group < self.num_replicas else steps

    def global_batches(self, epoch: int) -> list[list[int]]:
        """All batches of ``epoch`` across ranks, before sharding."""
        n = self.lengths.numel()
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        chunk = self.batch_size * self.bucket_size_multiplier
        batches: list[list[int]] = []
        for start in range(0, n, chunk):
            indices = order[start : start + chunk]
            # stable sort: equal lengths keep their (shuffled) order
            indices = indices[torch.sort(self.lengths[indices], stable=True).indices]
            batches.extend(indices[i : i + self.batch_size].tolist() for i in range(0, len(indices), self.batch_size))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def steps(self, epoch: int) -> list[list[list[int]]]:
        """Every step of ``epoch`` under ``world`` ranks: ``world`` batches per step (rank ``r`` takes the ``r``-th)."""
        world = self.num_replicas
        n, group = self.lengths.numel(), world * self.batch_size
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        if n < world:  # too few to give every rank one index: repeat from the start (DistributedSampler's padding)
            order = order.repeat(math.ceil(world / n))[:world]
        groups: list[Tensor] = []
        chunk = group * self.bucket_size_multiplier
        for start in range(0, len(order), chunk):
            indices = order[start : start + chunk]
            indices = indices[torch.sort(self.lengths[indices], stable=True).indices]
            groups.extend(indices[i : i + group] for i in range(0, len(indices), group))
        if len(groups[-1]) < group:
            if self.drop_last:
                groups.pop()
            elif len(groups[-1]) < world and len(groups) > 1:  # a part per rank: merge with the group before
                merged = torch.cat([groups[-2], groups.pop()])
                groups[-1] = merged[torch.sort(self.lengths[merged], stable=True).indices]
        steps = [[part.tolist() for part in torch.tensor_split(g, world)] for g in groups]
        if self.shuffle:
            steps = [steps[i] for i in torch.randperm(len(steps), generator=generator).tolist()]
        return steps

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self.epoch
        self.epoch += 1
        if self.num_replicas == 1:
            yield from self.global_batches(epoch)
            return
        for step in self.steps(epoch):
            yield step[self.rank]
