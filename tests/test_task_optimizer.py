"""Tasks build the configured optimizer, fused where torch has the kernel and nothing prevents it."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from seqmodels.config import instantiate_datamodule, resolve_with_datamodule
from seqmodels.nn import ManyToOneNet, RecurrentEncoder
from seqmodels.tasks import SequenceClassificationTask


def _task(optimizer) -> SequenceClassificationTask:
    net = ManyToOneNet(RecurrentEncoder("gru", input_size=4, hidden_size=8, batch_first=True), num_outputs=2)
    return SequenceClassificationTask(net, num_classes=2, optimizer=optimizer)


def test_configs_ask_for_the_fused_optimizer_and_tasks_drop_it_where_it_cannot_run(compose_train):
    cfg = compose_train("experiment=parity")
    assert cfg.model.optimizer.fused is True
    resolve_with_datamodule(cfg, instantiate_datamodule(cfg.data))
    task = instantiate(cfg.model)
    optimizer = task.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    assert optimizer.defaults["fused"] is True  # CPU has fused Adam/AdamW kernels
    # An optimizer class without the argument (a command-line swap of _target_) runs unfused.
    rmsprop = _task(functools.partial(torch.optim.RMSprop, lr=0.01, fused=True))
    assert isinstance(rmsprop.configure_optimizers(), torch.optim.RMSprop)
    # fp16 mixed precision's gradient scaler and a fused step do not mix with Lightning's clipping.
    scaled = _task(functools.partial(torch.optim.AdamW, lr=0.01, fused=True))
    scaled._trainer = SimpleNamespace(precision_plugin=SimpleNamespace(scaler=object()))
    assert not scaled.configure_optimizers().defaults["fused"]
    # Other errors are not swallowed.
    bad = _task(functools.partial(torch.optim.Adam, lr=-1.0, fused=True))
    with pytest.raises(ValueError, match="Invalid learning rate"):
        bad.configure_optimizers()


def test_the_fused_optimizer_trains_like_torch_s_default():
    results = []
    for fused in (None, True):
        torch.manual_seed(0)
        task = _task(functools.partial(torch.optim.AdamW, lr=0.02, fused=fused))
        optimizer = task.configure_optimizers()
        g = torch.Generator().manual_seed(1)
        inputs, lengths = torch.randn(32, 10, 4, generator=g), torch.randint(3, 11, (32,), generator=g)
        targets = (inputs[:, 0, 0] > 0).long()
        for _ in range(20):
            optimizer.zero_grad()
            F.cross_entropy(task.net(inputs, lengths), targets).backward()
            optimizer.step()
        results.append(torch.cat([p.detach().flatten() for p in task.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-5)


def test_a_resumed_run_keeps_this_run_s_fused_choice():
    # The saved parameter groups say fused=True; resumed under a gradient scaler, the optimizer must not fuse.
    task = _task(functools.partial(torch.optim.AdamW, lr=0.01, fused=True))
    saved = task.configure_optimizers().state_dict()
    assert saved["param_groups"][0]["fused"] is True
    checkpoint = {"optimizer_states": [saved]}
    task._trainer = SimpleNamespace(precision_plugin=SimpleNamespace(scaler=object()))
    task.on_load_checkpoint(checkpoint)
    optimizer = task.configure_optimizers()
    optimizer.load_state_dict(checkpoint["optimizer_states"][0])
    assert not optimizer.param_groups[0]["fused"]
    # Without a scaler the fused flag stays.
    task._trainer = None
    checkpoint = {"optimizer_states": [saved]}
    task.on_load_checkpoint(checkpoint)
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["fused"] is True
