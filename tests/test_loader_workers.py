"""Data-loading workers change nothing: num_workers=2 gives the same batches, in the same order, over several epochs,
as num_workers=0, with bucketing, shuffling and per-item random augmentation."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from seqmodels.data import AddingProblemDataModule
from seqmodels.data.collate import pad_collate
from seqmodels.data.datamodule import SequenceDataset
from seqmodels.data.genomic import RevCompAugmented
from seqmodels.data.samplers import EpochRandomSampler


def epochs(loader: DataLoader, count: int = 2) -> list:
    seen = []
    for epoch in range(count):
        for sampler in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)  # as Lightning does before every training epoch
        seen.extend(loader)
    return seen


def same(batches: list, others: list) -> None:
    assert len(batches) == len(others) > 0
    for a, b in zip(batches, others, strict=True):
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.lengths, b.lengths)
        assert torch.equal(a.targets, b.targets)


@pytest.mark.parametrize("bucket_by_length", [False, True])
def test_workers_give_the_batches_of_the_main_process(bucket_by_length):
    def loader(num_workers: int) -> DataLoader:
        dm = AddingProblemDataModule(
            num_train=48,
            num_val=8,
            num_test=8,
            length=12,
            batch_size=8,
            num_workers=num_workers,
            bucket_by_length=bucket_by_length,
            seed=5,
        )
        dm.setup()
        return dm.train_dataloader()

    same(epochs(loader(2)), epochs(loader(0)))


def test_random_augmentation_draws_the_same_in_every_worker_layout():
    complement = torch.tensor([0, 1, 5, 4, 3, 2, 6])  # pad, unk, A C G T -> T G C A, N
    torch.manual_seed(0)
    items = [torch.randint(2, 7, (int(n),)) for n in torch.randint(3, 9, (40,))]
    tags = [torch.randint(0, 3, (len(x),)) for x in items]

    def loader(num_workers: int) -> DataLoader:
        dataset = RevCompAugmented(SequenceDataset(items, tags), complement, p=0.5, seed=3)
        return DataLoader(
            dataset,
            batch_size=6,
            sampler=EpochRandomSampler(dataset, seed=1),
            collate_fn=pad_collate,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
        )

    in_process, with_workers = epochs(loader(0), 3), epochs(loader(2), 3)
    same(with_workers, in_process)
    # The augmentation does happen, and differs between epochs for the same item.
    first_epoch = {
        tuple(x[: int(n)].tolist()) for b in in_process[:7] for x, n in zip(b.inputs, b.lengths, strict=True)
    }
    third_epoch = {
        tuple(x[: int(n)].tolist()) for b in in_process[14:] for x, n in zip(b.inputs, b.lengths, strict=True)
    }
    originals = {tuple(x.tolist()) for x in items}
    assert 0 < len(first_epoch - originals) < len(items)  # some items reverse-complemented, not all
    assert first_epoch != third_epoch
