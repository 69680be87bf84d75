"""ConvBranch (LSTM-FCN's convolutional branch) and its masked BatchNorm: equal to torch's BatchNorm without
padding, padding-invariant with it, wired into ManyToOneNet and the config tree, and rebuilt from a checkpoint."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
from seqmodels.nn import ConvBranch, ManyToOneNet, MaskedBatchNorm1d, RecurrentEncoder
from seqmodels.train import train


def test_masked_batchnorm_without_padding_is_torchs_batchnorm_in_both_modes():
    torch.manual_seed(0)
    ours, reference = MaskedBatchNorm1d(6), nn.BatchNorm1d(6)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5), ours.bias.uniform_(-1, 1)
    reference.load_state_dict(ours.state_dict())
    for _ in range(3):
        x = torch.randn(4, 6, 9) * 3 + 1
        torch.testing.assert_close(ours(x, torch.ones(4, 1, 9)), reference(x), atol=1e-5, rtol=1e-5)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(reference, name))
    ours.eval(), reference.eval()
    x = torch.randn(4, 6, 9)
    torch.testing.assert_close(ours(x, torch.ones(4, 1, 9)), reference(x))


def test_masked_batchnorm_statistics_ignore_padded_steps():
    torch.manual_seed(1)
    norm = MaskedBatchNorm1d(3, affine=False)
    valid = torch.randn(2, 3, 5)
    padded = torch.cat([valid, torch.full((2, 3, 4), 100.0)], dim=-1)  # huge values where the mask is 0
    mask = torch.cat([torch.ones(2, 1, 5), torch.zeros(2, 1, 4)], dim=-1)
    out = norm(padded, mask)[..., :5]
    flat = valid.transpose(0, 1).reshape(3, -1)
    expected = (valid - flat.mean(1)[:, None]) / (flat.var(1, unbiased=False)[:, None] + norm.eps).sqrt()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(norm.running_mean, 0.1 * flat.mean(1))


@pytest.mark.parametrize("training", [False, True])
def test_conv_branch_gives_each_sequence_the_same_output_however_much_it_is_padded(training):
    torch.manual_seed(2)
    branch = ConvBranch(3, channels=(8, 16, 8), kernel_sizes=(8, 5, 3)).train(training)
    lengths = torch.tensor([11, 4, 7])
    x = torch.randn(3, 11, 3)
    snug = branch(x, lengths)
    longer = branch(torch.cat([x, torch.randn(3, 6, 3) * 50], dim=1), lengths)  # garbage in the padding
    torch.testing.assert_close(snug, longer, atol=1e-5, rtol=1e-5)
    if not training:  # eval mode: each sequence alone gives its row of the batch
        for i, n in enumerate(lengths.tolist()):
            alone = branch(x[i : i + 1, :n], lengths[i : i + 1])
            torch.testing.assert_close(alone[0], snug[i], atol=1e-5, rtol=1e-5)
    assert snug.shape == (3, 8)


def test_conv_branch_rejects_bad_settings_and_inputs_in_one_line():
    with pytest.raises(ValueError, match="one entry per block"):
        ConvBranch(3, channels=(8, 8), kernel_sizes=(3,))
    with pytest.raises(ValueError, match="input_size"):
        ConvBranch(0)
    with pytest.raises(ValueError, match=r"\(N, L, 3\)"):
        ConvBranch(3)(torch.randn(2, 5, 4), torch.tensor([5, 5]))


def test_many_to_one_net_concatenates_the_branch_and_trains_it():
    torch.manual_seed(3)
    encoder = RecurrentEncoder("gru", input_size=3, hidden_size=5, batch_first=True, bidirectional=True)
    net = ManyToOneNet(encoder, 4, pooling="mean", conv_branch=ConvBranch(3, channels=(6, 7), kernel_sizes=(3, 3)))
    assert net.head.layers[-1].in_features == 10 + 7
    x, lengths = torch.randn(5, 9, 3), torch.tensor([9, 3, 5, 9, 1])
    net(x, lengths).logsumexp(-1).sum().backward()
    assert net.conv_branch.convs[0].weight.grad.abs().sum() > 0
    assert net.encoder.rnn.weight_ih_l0.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="conv_branch has no step mode"):
        net.initial_state(2)
    with pytest.raises(ValueError, match="conv_branch.input_size=4 but the encoder reads 3"):
        ManyToOneNet(encoder, 4, conv_branch=ConvBranch(4))


def test_the_fcn_config_trains_from_the_cli_and_its_checkpoint_rebuilds(compose_train):
    cfg = compose_train(
        "experiment=japanese_vowels",
        "model/conv_branch=fcn",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "+trainer.limit_test_batches=1",
        "logger=[]",
    )
    task, datamodule = build_from_checkpoint(load_checkpoint(train(cfg).best_model_path))
    branch = task.net.conv_branch
    assert isinstance(branch, ConvBranch) and [conv.out_channels for conv in branch.convs] == [128, 256, 128]
    assert branch.input_size == 24  # the 12 LPC channels and their deltas, through the encoder's input_size
    batch = next(iter(datamodule.test_dataloader()))
    task.eval()
    assert task(batch.inputs, batch.lengths).shape == (len(batch.lengths), 9)
