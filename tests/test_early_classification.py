"""Early classification: accuracy after each share of every sequence, from one stream pass per batch."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from seqmodels.data import SequenceDataset, pad_collate
from seqmodels.early_classification import (
    PERCENTS,
    early_accuracy_curve,
    prefix_predictions,
    steps_seen,
    supports_early_classification,
)
from seqmodels.nn import ManyToOneNet, RecurrentEncoder
from seqmodels.tasks import SequenceClassificationTask


def _data(n: int, seed: int) -> SequenceDataset:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 14, (n,), generator=g)
    inputs = [torch.randn(int(k), 3, generator=g) for k in lengths]
    targets = torch.randint(0, 3, (n,), generator=g)
    return SequenceDataset(inputs, targets)


def _net(pooling: str = "mean", bidirectional: bool = False) -> ManyToOneNet:
    torch.manual_seed(0)
    encoder = RecurrentEncoder("gru", input_size=3, hidden_size=8, bidirectional=bidirectional, batch_first=True)
    return ManyToOneNet(encoder, 3, pooling=pooling)


def _loader(dataset: SequenceDataset, batch_size: int = 6) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=pad_collate)


def test_steps_seen_is_the_ceiling_of_each_sequences_own_share():
    steps = steps_seen(torch.tensor([1, 5, 10, 29]))
    assert steps.shape == (4, len(PERCENTS))
    assert steps[0].tolist() == [1] * 10  # at least one step, however short the sequence
    assert steps[1].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # ceil(0.3 * 5) = 2, ceil(0.5 * 5) = 3
    assert steps[2].tolist() == list(range(1, 11))
    assert steps[3].tolist() == [3, 6, 9, 12, 15, 18, 21, 24, 27, 29]  # ceil(2.9) = 3, ceil(14.5) = 15
    with pytest.raises(ValueError, match="percents"):
        steps_seen(torch.tensor([3]), [0, 50])


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
def test_prefix_predictions_equal_forward_on_each_rows_own_prefix(pooling):
    net = _net(pooling).eval()
    batch = pad_collate([_data(5, 1)[i] for i in range(5)])
    percents = [10, 50, 100]
    with torch.no_grad():
        got = prefix_predictions(net, batch.inputs, batch.lengths, percents)
        assert got.shape == (5, 3, 3)
        steps = steps_seen(batch.lengths, percents)
        for i in range(5):
            for j in range(len(percents)):
                k = int(steps[i, j])
                expected = net(batch.inputs[i : i + 1, :k], torch.tensor([k]))[0]
                torch.testing.assert_close(got[i, j], expected, atol=1e-6, rtol=0)


def test_curve_values_and_the_full_point_equal_forward_accuracy():
    net = _net().train()
    dataset = _data(23, 2)  # batches 6, 6, 6, 5 of mixed lengths
    curve = early_accuracy_curve(net, _loader(dataset))
    assert net.training  # the caller's mode comes back
    assert list(curve) == list(PERCENTS)
    net.eval()
    correct = dict.fromkeys(PERCENTS, 0)
    full_correct = 0
    with torch.no_grad():
        for batch in _loader(dataset):
            full_correct += int((net(batch.inputs, batch.lengths).argmax(-1) == batch.targets).sum())
            for i in range(len(batch.targets)):
                for p, k in zip(PERCENTS, steps_seen(batch.lengths[i : i + 1])[0].tolist(), strict=True):
                    prediction = net(batch.inputs[i : i + 1, :k], torch.tensor([k])).argmax(-1)
                    correct[p] += int(prediction.item() == batch.targets[i].item())
    assert curve[100] == full_correct / len(dataset)
    assert curve == {p: correct[p] / len(dataset) for p in PERCENTS}


def test_bidirectional_networks_are_refused():
    net = _net(bidirectional=True)
    assert not supports_early_classification(net)
    with pytest.raises(ValueError, match="bidirectional; train with bidirectional=false"):
        early_accuracy_curve(net, _loader(_data(4, 3)))


def _test_metrics(net: ManyToOneNet, tmp_path) -> dict[str, float]:
    task = SequenceClassificationTask(net, num_classes=3, optimizer=lambda params: torch.optim.Adam(params))
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    return {key: float(value) for key, value in trainer.test(task, _loader(_data(17, 4)), verbose=False)[0].items()}


def test_classification_task_logs_the_curve_at_test_time_for_causal_networks_only(tmp_path):
    net = _net()
    metrics = _test_metrics(net, tmp_path)
    curve = early_accuracy_curve(net, _loader(_data(17, 4)))
    for p in PERCENTS:
        assert metrics[f"test/early_acc@{p}%"] == pytest.approx(curve[p])
    assert metrics["test/early_acc@100%"] == pytest.approx(metrics["test/acc"])
    bidirectional = _test_metrics(_net(bidirectional=True), tmp_path)
    assert "test/acc" in bidirectional and not any("early_acc" in key for key in bidirectional)
