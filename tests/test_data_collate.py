import functools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from seqmodels.data import SequenceBatch, pad_collate


def test_float_features_are_padded_with_zeros_and_lengths_are_int64():
    items = [(torch.ones(3, 2), 1), (torch.ones(5, 2), 0), (torch.ones(1, 2), 2)]
    batch = pad_collate(items)
    assert isinstance(batch, SequenceBatch)
    assert batch.inputs.shape == (3, 5, 2) and batch.inputs.dtype == torch.float32
    assert batch.lengths.tolist() == [3, 5, 1] and batch.lengths.dtype == torch.int64
    assert batch.inputs[0, 3:].abs().sum() == 0 and batch.inputs[2, 1:].abs().sum() == 0
    assert batch.inputs[1].sum() == 10
    assert batch.targets.tolist() == [1, 0, 2] and batch.targets.dtype == torch.int64
    assert batch.target_lengths is None and batch.condition is None
    assert len(batch) == 3


def test_token_inputs_pad_with_the_given_index_via_partial():
    collate = functools.partial(pad_collate, padding_value=7)
    batch = collate([(torch.tensor([1, 2, 3]), torch.tensor(0)), (torch.tensor([4]), torch.tensor(1))])
    assert batch.inputs.dtype == torch.int64
    assert batch.inputs.tolist() == [[1, 2, 3], [4, 7, 7]]
    assert batch.lengths.tolist() == [3, 1]


def test_scalar_float_targets_and_float64_become_float32():
    items = [(np.zeros((2, 3)), 0.5), (np.ones((4, 3)), np.float64(1.5))]
    batch = pad_collate(items)
    assert batch.inputs.dtype == torch.float32 and batch.inputs.shape == (2, 4, 3)
    assert batch.targets.dtype == torch.float32 and batch.targets.tolist() == [0.5, 1.5]


def test_fixed_size_vector_targets_are_stacked():
    items = [
        (torch.zeros(2, 1), torch.tensor([1.0, 2.0, 3.0])),
        (torch.zeros(6, 1), torch.tensor([4.0, 5.0, 6.0])),
    ]
    batch = pad_collate(items)
    assert batch.targets.shape == (2, 3) and batch.target_lengths is None


def test_variable_length_targets_are_padded_with_target_padding_value():
    items = [(torch.zeros(4, 1), torch.tensor([1, 2, 3, 4])), (torch.zeros(2, 1), torch.tensor([5, 6]))]
    batch = pad_collate(items)
    assert batch.targets.tolist() == [[1, 2, 3, 4], [5, 6, -100, -100]]
    assert batch.target_lengths.tolist() == [4, 2] and batch.target_lengths.dtype == torch.int64
    custom = pad_collate(items, target_padding_value=-1)
    assert custom.targets[1, 2:].tolist() == [-1, -1]


def test_pad_mode_keeps_target_lengths_for_equal_length_sequence_targets():
    items = [(torch.zeros(2, 1), torch.tensor([1, 2])), (torch.zeros(2, 1), torch.tensor([3, 4]))]
    assert pad_collate(items).target_lengths is None  # auto: equal shapes stack
    batch = pad_collate(items, target_mode="pad")
    assert batch.targets.shape == (2, 2) and batch.target_lengths.tolist() == [2, 2]
    with pytest.raises(ValueError, match="equal-size"):
        pad_collate(
            [(torch.zeros(2, 1), torch.tensor([1])), (torch.zeros(2, 1), torch.tensor([1, 2]))],
            target_mode="stack",
        )


def test_unlabelled_items_and_conditions():
    batch = pad_collate([torch.ones(2, 3), torch.ones(4, 3)])
    assert batch.targets is None and batch.lengths.tolist() == [2, 4]
    batch = pad_collate(
        [(torch.ones(2, 3), 1, torch.tensor([0.1, 0.2])), (torch.ones(1, 3), 0, torch.tensor([0.3, 0.4]))]
    )
    assert batch.condition.shape == (2, 2)


def test_inconsistent_items_raise_clear_errors():
    with pytest.raises(ValueError, match="channels"):
        pad_collate([(torch.ones(2, 3), 0), (torch.ones(2, 4), 0)])
    with pytest.raises(ValueError, match="empty"):
        pad_collate([])
    with pytest.raises(ValueError, match="all or none"):
        pad_collate([(torch.ones(2, 3), 0), (torch.ones(2, 3), None)])
    with pytest.raises(ValueError, match="shape"):
        pad_collate([(torch.ones(2, 3, 4), 0)])


def test_dataloader_yields_sequence_batches_that_move():
    data = [(torch.randn(n, 2), n % 2) for n in range(1, 11)]
    loader = DataLoader(data, batch_size=4, collate_fn=pad_collate)
    batches = list(loader)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert batches[0].inputs.shape == (4, 4, 2)
    moved = batches[0].to("cpu")
    assert moved is batches[0]  # already there: the batch itself, as Tensor.to does
    elsewhere = batches[0].to("meta")
    assert isinstance(elsewhere, SequenceBatch) and elsewhere is not batches[0]
    assert elsewhere.inputs.device.type == "meta" and elsewhere.lengths.device.type == "meta"
    assert elsewhere.targets.device.type == "meta" and batches[0].inputs.device.type == "cpu"
    assert elsewhere.to(torch.device("meta")) is elsewhere


def test_equal_length_batches_stack_to_the_same_batch_as_padding():
    items = [(torch.randn(5, 3), torch.tensor(i)) for i in range(4)]
    stacked = pad_collate(items)
    ragged = pad_collate([*items, (torch.randn(2, 3), torch.tensor(9))])
    assert torch.equal(stacked.inputs, ragged.inputs[:4])
    assert stacked.lengths.tolist() == [5, 5, 5, 5] and stacked.lengths.dtype == torch.int64
    assert torch.equal(stacked.targets, torch.arange(4))
    assert torch.equal(ragged.inputs[4, 2:], torch.zeros(3, 3))
