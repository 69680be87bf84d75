import pytest
import torch

from seqmodels.data import AddingProblemDataModule, ParityDataModule, SequenceBatch


def _check_adding_items(dataset):
    for index in range(len(dataset)):
        x, y = dataset[index]
        length = x.shape[0]
        values, markers = x[:, 0], x[:, 1]
        marked = torch.nonzero(markers).flatten().tolist()
        assert len(marked) == 2 and markers.sum() == 2
        assert marked[0] < length // 2 <= marked[1] < length
        assert torch.isclose(y, values[marked].sum())
        assert values.min() >= 0 and values.max() < 1


def test_adding_problem_targets_are_marked_sums_and_baseline_mse():
    dm = AddingProblemDataModule(length=40, num_train=300, num_val=50, num_test=2000, seed=7)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (300, 50, 2000)
    for dataset in (dm.train_set, dm.val_set):
        _check_adding_items(dataset)
    x, y = dm.train_set[0]
    assert x.shape == (40, 2) and x.dtype == torch.float32 and y.dtype == torch.float32 and y.dim() == 0
    assert dm.baseline_mse == pytest.approx(1 / 6, abs=0.02)
    assert dm.dims() == {"input_size": 2, "num_outputs": 1}


def test_adding_problem_variable_length():
    dm = AddingProblemDataModule(length=30, variable_length=True, num_train=400, num_val=10, num_test=10)
    dm.setup()
    lengths = dm.train_set.lengths
    assert lengths.min() >= 15 and lengths.max() <= 30 and len(set(lengths.tolist())) > 5
    _check_adding_items(dm.train_set)
    dm = AddingProblemDataModule(length=30, variable_length=True, min_length=4, num_train=400, num_val=1, num_test=1)
    dm.setup()
    assert dm.train_set.lengths.min() >= 4 and dm.train_set.lengths.min() < 15
    with pytest.raises(ValueError, match="min_length"):
        AddingProblemDataModule(length=30, variable_length=True, min_length=1)


def test_generation_is_deterministic_per_seed_and_split():
    def test_inputs(**kwargs):
        dm = AddingProblemDataModule(length=10, num_val=5, num_test=20, **kwargs)
        dm.setup()
        return torch.stack(dm.test_set.inputs)

    assert torch.equal(test_inputs(num_train=10, seed=1), test_inputs(num_train=10, seed=1))
    assert torch.equal(test_inputs(num_train=10, seed=1), test_inputs(num_train=50, seed=1))  # test set fixed
    assert not torch.equal(test_inputs(num_train=10, seed=1), test_inputs(num_train=10, seed=2))


def test_setup_is_idempotent():
    dm = ParityDataModule(num_train=20, num_val=5, num_test=5)
    dm.setup("fit")
    train = dm.train_set
    dm.setup("test")
    assert dm.train_set is train


def test_parity_targets_are_xor_of_bits():
    dm = ParityDataModule(min_length=3, max_length=12, num_train=500, num_val=20, num_test=20, seed=5)
    dm.setup()
    lengths = dm.train_set.lengths
    assert lengths.min() >= 3 and lengths.max() <= 12
    for x, y in (dm.train_set[i] for i in range(len(dm.train_set))):
        assert x.dim() == 2 and x.shape[1] == 1 and x.dtype == torch.float32
        assert set(x.flatten().tolist()) <= {0.0, 1.0}
        assert y.dtype == torch.int64 and y.item() == int(x.sum().item()) % 2
    share = dm.train_set.targets.float().mean().item()
    assert 0.4 < share < 0.6
    assert dm.dims() == {"input_size": 1, "num_classes": 2}


def test_dim_lookup_names_available_keys():
    dm = ParityDataModule()
    assert dm.dim("num_classes") == 2
    with pytest.raises(ValueError, match="available: input_size, num_classes"):
        dm.dim("vocab_size")


@pytest.mark.parametrize("bucket", [False, True])
def test_dataloaders_yield_sequence_batches(bucket):
    dm = ParityDataModule(num_train=64, num_val=16, num_test=16, batch_size=8, bucket_by_length=bucket)
    train = list(dm.train_dataloader())
    assert sum(len(b) for b in train) == 64
    for batch in train + list(dm.val_dataloader()) + list(dm.predict_dataloader()):
        assert isinstance(batch, SequenceBatch)
        assert batch.inputs.dtype == torch.float32 and batch.inputs.dim() == 3
        assert batch.lengths.dtype == torch.int64 and batch.targets.dtype == torch.int64
        assert batch.inputs.shape[1] == batch.lengths.max()
    adding = AddingProblemDataModule(length=12, num_train=16, num_val=4, num_test=4, batch_size=8)
    batch = next(iter(adding.test_dataloader()))
    assert batch.inputs.shape == (4, 12, 2) and batch.targets.dtype == torch.float32


def test_val_split_empty_means_no_val_loader():
    dm = ParityDataModule(num_train=16, num_val=0, num_test=4)
    assert dm.val_dataloader() == []


def test_hyperparameters_include_subclass_arguments():
    dm = AddingProblemDataModule(length=12, batch_size=4, seed=3)
    assert dm.hparams["length"] == 12 and dm.hparams["batch_size"] == 4 and dm.hparams["seed"] == 3
