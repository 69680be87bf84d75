import lightning as L
import pytest
import torch
from lightning.fabric.utilities.data import _replace_dunder_methods, _set_sampler_epoch
from lightning.pytorch.trainer.states import RunningStage
from lightning.pytorch.utilities.data import _update_dataloader
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from seqmodels.data import AddingProblemDataModule, BucketBatchSampler, SequenceBatch


def _lengths(n=1000, seed=0):
    return torch.randint(5, 200, (n,), generator=torch.Generator().manual_seed(seed))


def _flat(batches):
    return [i for b in batches for i in b]


@pytest.mark.parametrize("shuffle", [True, False])
def test_every_index_exactly_once_per_epoch(shuffle):
    lengths = _lengths(1003)
    sampler = BucketBatchSampler(lengths, batch_size=16, shuffle=shuffle, bucket_size_multiplier=5)
    for _ in range(2):
        batches = list(sampler)
        assert sorted(_flat(batches)) == list(range(1003))
        assert len(batches) == len(sampler) == 63
        assert sum(len(b) < 16 for b in batches) == 1


def test_drop_last_keeps_only_full_batches():
    sampler = BucketBatchSampler(_lengths(1003), batch_size=16, drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 62 and all(len(b) == 16 for b in batches)
    assert len(set(_flat(batches))) == 62 * 16


def _mean_padding_fraction(batches, lengths):
    fractions = []
    for b in batches:
        lens = lengths[torch.tensor(b)]
        fractions.append(1 - lens.sum().item() / (lens.max().item() * len(b)))
    return sum(fractions) / len(fractions)


def test_bucketing_reduces_padding_vs_random_batches():
    lengths = _lengths(2000)
    random_order = torch.randperm(2000, generator=torch.Generator().manual_seed(1)).tolist()
    random_batches = [random_order[i : i + 32] for i in range(0, 2000, 32)]
    bucketed = list(BucketBatchSampler(lengths, batch_size=32, bucket_size_multiplier=50))
    random_pad = _mean_padding_fraction(random_batches, lengths)
    bucket_pad = _mean_padding_fraction(bucketed, lengths)
    assert random_pad > 0.4
    assert bucket_pad < 0.05 < random_pad / 5


def test_seeded_epochs_reproducible_and_different():
    lengths = _lengths(300)
    a = BucketBatchSampler(lengths, batch_size=8, seed=3, bucket_size_multiplier=4)
    b = BucketBatchSampler(lengths, batch_size=8, seed=3, bucket_size_multiplier=4)
    epoch0, epoch1 = list(a), list(a)  # the epoch advances after each pass
    assert epoch0 != epoch1
    assert list(b) == epoch0
    b.set_epoch(1)
    assert list(b) == epoch1
    assert list(BucketBatchSampler(lengths, batch_size=8, seed=4, bucket_size_multiplier=4)) != epoch0


def test_shards_by_rank_disjointly_and_completely():
    lengths = _lengths(640)  # 40 batches of 16: divides among 2 and 4 ranks
    for world in (2, 4):
        shards = [list(BucketBatchSampler(lengths, 16, seed=1, num_replicas=world, rank=r)) for r in range(world)]
        flat = [set(_flat(s)) for s in shards]
        assert all(len(s) == 40 // world for s in shards)
        for i in range(world):
            for j in range(i + 1, world):
                assert not flat[i] & flat[j]
        assert set().union(*flat) == set(range(640))


def test_uneven_shards_have_equal_length():
    lengths = _lengths(650)  # 41 batches
    shards = [BucketBatchSampler(lengths, 16, num_replicas=2, rank=r) for r in range(2)]
    assert [len(s) for s in shards] == [21, 21]
    batches = [list(s) for s in shards]
    assert [len(b) for b in batches] == [21, 21]
    assert set(_flat(batches[0])) | set(_flat(batches[1])) == set(range(650))
    dropped = [list(BucketBatchSampler(lengths, 16, drop_last=True, num_replicas=2, rank=r)) for r in range(2)]
    assert [len(b) for b in dropped] == [20, 20]
    assert not set(_flat(dropped[0])) & set(_flat(dropped[1]))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        BucketBatchSampler([1, 2], batch_size=0)
    with pytest.raises(ValueError, match="rank"):
        BucketBatchSampler([1, 2], batch_size=1, num_replicas=2, rank=2)


def test_lightning_distributed_reinstantiation_keeps_bucketing():
    """What Trainer(use_distributed_sampler=True) does to our loader under DDP, without processes."""
    dm = AddingProblemDataModule(
        length=20,
        variable_length=True,
        num_train=320,
        num_val=8,
        num_test=8,
        batch_size=16,
        bucket_by_length=True,
    )
    dm.setup()
    # Lightning calls the hook inside this context, which records constructor arguments
    # (lightning.pytorch.trainer.connectors.data_connector._request_dataloader) ...
    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = dm.train_dataloader()
    assert isinstance(loader.batch_sampler, BucketBatchSampler)
    # ... and under DDP swaps in a DistributedSampler through the `sampler` argument.
    injected = DistributedSampler(loader.dataset, num_replicas=2, rank=1, shuffle=True, seed=0)
    replaced = _update_dataloader(loader, injected, mode=RunningStage.TRAINING)
    sampler = replaced.batch_sampler
    assert isinstance(sampler, BucketBatchSampler)
    assert (sampler.num_replicas, sampler.rank, sampler.batch_size) == (2, 1, 16)
    assert len(replaced) == 10
    # the fit loop's per-epoch call reaches the bucket sampler
    _set_sampler_epoch(replaced, 5)
    assert sampler.epoch == 5
    batches = list(sampler)
    assert len(batches) == 10
    rank0 = BucketBatchSampler(sampler.lengths, 16, seed=dm.seed, num_replicas=2, rank=0)
    rank0.set_epoch(5)
    assert not set(_flat(batches)) & set(_flat(list(rank0)))


class _Recorder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.seen: list[list[int]] = []

    def training_step(self, batch, batch_idx):
        assert isinstance(batch, SequenceBatch)
        assert batch.inputs.dtype == torch.float32 and batch.lengths.dtype == torch.int64
        self.seen.append(batch.lengths.tolist())
        return self.layer(batch.inputs.mean(dim=1)).squeeze(-1).sub(batch.targets).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_trainer_fit_with_bucketing_sets_epochs(tmp_path):
    dm = AddingProblemDataModule(
        length=30,
        variable_length=True,
        min_length=2,
        num_train=96,
        num_val=0,
        num_test=8,
        batch_size=16,
        bucket_by_length=True,
    )
    model = _Recorder()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert len(model.seen) == 12
    # bucketed: each batch spans a narrow range of lengths
    assert max(max(b) - min(b) for b in model.seen) <= 6
    assert trainer.train_dataloader.batch_sampler.epoch == 2  # set_epoch(1) + one pass


@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_get_equal_counts_of_similar_lengths_and_every_index_once(drop_last):
    """Any data size against 2-4 ranks: every rank yields len() batches; without drop_last the ranks together see
    every index exactly once (no padding by repetition), with it only full batches; at each step the ranks' batches
    come from one length-sorted group, so their lengths are close."""
    for n in (7, 31, 64, 65, 97, 203, 650):
        lengths = _lengths(n)
        for world in (2, 3, 4):
            samplers = [
                BucketBatchSampler(lengths, 8, seed=2, drop_last=drop_last, num_replicas=world, rank=r)
                for r in range(world)
            ]
            shards = [list(s) for s in samplers]
            assert all(len(shard) == len(samplers[0]) for shard in shards), (n, world)
            assert all(len(s) == len(shard) for s, shard in zip(samplers, shards, strict=True))
            flat = [i for shard in shards for i in _flat(shard)]
            assert len(flat) == len(set(flat))  # nothing repeated
            if drop_last:
                assert all(len(batch) == 8 for shard in shards for batch in shard)
                assert len(flat) == (n // (8 * world)) * 8 * world
            else:
                assert sorted(flat) == list(range(n))  # nothing dropped
            for step in zip(*shards, strict=True):
                step_lengths = [int(lengths[i]) for batch in step for i in batch]
                assert all(batch for batch in step)  # no rank idles a step
                assert max(step_lengths) - min(step_lengths) <= int(lengths.max() - lengths.min())


def test_steps_group_similar_lengths_across_ranks():
    lengths = _lengths(640)
    samplers = [BucketBatchSampler(lengths, 16, seed=1, num_replicas=4, rank=r) for r in range(4)]
    spreads = [
        max(int(lengths[i]) for b in step for i in b) - min(int(lengths[i]) for b in step for i in b)
        for step in zip(*(list(s) for s in samplers), strict=True)
    ]
    random_spread = int(lengths.max() - lengths.min())
    assert sum(spreads) / len(spreads) < 0.25 * random_spread
