"""Tasks log each split's epoch value over the whole split, once per epoch, and the best validation value."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from seqmodels.data import SequenceDataset, pad_collate
from seqmodels.nn import ManyToOneNet, RecurrentEncoder
from seqmodels.tasks import SequenceClassificationTask


class RecordValidation(L.Callback):
    def __init__(self) -> None:
        self.acc: list[float] = []

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.acc.append(float(trainer.callback_metrics["val/acc"]))


def _data(n: int, seed: int) -> SequenceDataset:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 12, (n,), generator=g)
    inputs = [torch.randn(int(k), 4, generator=g) for k in lengths]
    targets = torch.tensor([int(x[:, 0].sum() > 0) for x in inputs])
    return SequenceDataset(inputs, targets)


def test_epoch_metrics_cover_the_whole_split_and_best_tracks_the_maximum(tmp_path):
    torch.manual_seed(0)
    train_set, val_set = _data(96, 0), _data(50, 1)
    net = ManyToOneNet(RecurrentEncoder("gru", input_size=4, hidden_size=16, batch_first=True), num_outputs=2)
    task = SequenceClassificationTask(net, num_classes=2, optimizer=lambda params: torch.optim.Adam(params, lr=0.02))
    record = RecordValidation()
    trainer = L.Trainer(
        max_epochs=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[record],
        num_sanity_val_steps=1,
        default_root_dir=tmp_path,
    )
    # Batches of unequal size (16, 16, 16, 2): a mean of per-batch means would differ from the split's mean.
    trainer.fit(
        task,
        torch.utils.data.DataLoader(train_set, batch_size=16, shuffle=True, collate_fn=pad_collate),
        torch.utils.data.DataLoader(val_set, batch_size=16, collate_fn=pad_collate),
    )

    task.eval()
    with torch.no_grad():
        whole = pad_collate([val_set[i] for i in range(len(val_set))])
        logits = task(whole.inputs, whole.lengths)
    metrics = trainer.callback_metrics
    assert float(metrics["val/loss"]) == pytest.approx(float(F.cross_entropy(logits, whole.targets)), rel=1e-4)
    assert float(metrics["val/acc"]) == pytest.approx(float((logits.argmax(-1) == whole.targets).float().mean()))
    assert len(record.acc) == 4
    assert float(metrics["val/acc_best"]) == pytest.approx(max(record.acc))
    # Training logs its epoch mean, and nothing of an epoch leaks into the next one's value.
    assert "train/loss" in metrics and "train/acc" in metrics
    assert not task._tracked["train"] and not task._tracked["val"]
