"""Masked pooling, heads and ManyToOneNet: padding invariance, agreement with h_n, and learning in plain torch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from seqmodels.nn import (
    AttentionPooling,
    ClassificationHead,
    ConcatPooling,
    LastStepPooling,
    LinearProjection,
    ManyToOneNet,
    MaxPooling,
    MeanPooling,
    RecurrentEncoder,
    RegressionHead,
    TokenEmbedding,
    build_pooling,
)

POOLINGS = ["last", "mean", "max", "attention", "mean+max", "last+attention"]


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_last_step_pooling_equals_final_hidden_state(num_layers, bidirectional):
    torch.manual_seed(0)
    encoder = RecurrentEncoder(
        "lstm", input_size=3, hidden_size=5, num_layers=num_layers, bidirectional=bidirectional, batch_first=True
    )
    x, lengths = torch.randn(4, 6, 3), torch.tensor([6, 1, 3, 5])
    out, (h, _) = encoder(x, lengths)
    pooled = LastStepPooling(encoder.num_directions)(out, lengths)
    last_layer = h[-encoder.num_directions :]  # (D, N, H)
    torch.testing.assert_close(pooled, torch.cat(list(last_layer), dim=-1))


def test_mean_and_max_ignore_padding():
    outputs = torch.tensor([[[-1.0], [-3.0], [100.0]], [[2.0], [4.0], [6.0]]])
    lengths = torch.tensor([2, 3])
    torch.testing.assert_close(MeanPooling()(outputs, lengths), torch.tensor([[-2.0], [4.0]]))
    torch.testing.assert_close(MaxPooling()(outputs, lengths), torch.tensor([[-1.0], [6.0]]))


def test_joined_poolings_are_each_pooling_side_by_side_and_size_the_head():
    outputs, lengths = torch.randn(3, 5, 4), torch.tensor([5, 2, 4])
    joined = build_pooling("mean+max+last", 4)
    assert isinstance(joined, ConcatPooling)
    expected = torch.cat(
        [MeanPooling()(outputs, lengths), MaxPooling()(outputs, lengths), outputs[[0, 1, 2], [4, 1, 3]]], -1
    )
    torch.testing.assert_close(joined(outputs, lengths), expected)
    encoder = RecurrentEncoder("gru", input_size=3, hidden_size=6, bidirectional=True, batch_first=True)
    net = ManyToOneNet(encoder, num_outputs=2, pooling="mean+max")
    assert net.encode(torch.randn(2, 4, 3), torch.tensor([4, 3])).shape == (2, 24)
    assert net(torch.randn(2, 4, 3), torch.tensor([4, 3])).shape == (2, 2)


@pytest.mark.parametrize(
    "name,message", [("mean+median", "unknown pooling 'median'"), ("max+max", "names a pooling twice")]
)
def test_a_bad_joined_pooling_is_named(name, message):
    with pytest.raises(ValueError, match=message):
        build_pooling(name, 4)


def test_attention_weights_are_zero_on_padding_and_sum_to_one():
    pool = AttentionPooling(4)
    outputs, lengths = torch.randn(2, 5, 4), torch.tensor([3, 5])
    pooled, weights = pool(outputs, lengths, return_weights=True)
    assert pooled.shape == (2, 4)
    assert torch.all(weights[0, 3:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn_tanh"])
def test_network_outputs_and_loss_are_padding_invariant(pooling, cell):
    torch.manual_seed(0)
    encoder = RecurrentEncoder(cell, input_size=3, hidden_size=6, num_layers=2, bidirectional=True, batch_first=True)
    net = ManyToOneNet(encoder, num_outputs=4, pooling=pooling).eval()
    seqs = [torch.randn(n, 3) for n in (2, 8, 5)]
    targets = torch.tensor([1, 3, 0])
    batch = pad_sequence(seqs, batch_first=True, padding_value=-7.0)
    lengths = torch.tensor([2, 8, 5])
    logits = net(batch, lengths)
    pooled = net.encode(batch, lengths)
    losses = F.cross_entropy(logits, targets, reduction="none")
    for i, s in enumerate(seqs):
        alone = s.unsqueeze(0), torch.tensor([len(s)])
        torch.testing.assert_close(pooled[i], net.encode(*alone)[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(logits[i], net(*alone)[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(losses[i], F.cross_entropy(net(*alone), targets[i : i + 1]), atol=1e-5, rtol=0)


def test_token_frontend_network_shapes_and_padding_embedding():
    embedding = TokenEmbedding(num_embeddings=10, embedding_dim=4, padding_idx=0)
    net = ManyToOneNet(
        RecurrentEncoder("gru", input_size=4, hidden_size=5, batch_first=True),
        3,
        frontend=embedding,
        pooling="attention",
    )
    tokens = torch.tensor([[3, 4, 0], [1, 2, 9]])
    assert net(tokens, torch.tensor([2, 3])).shape == (2, 3)
    assert torch.all(embedding(torch.tensor([[0]])) == 0)


def test_building_block_errors():
    with pytest.raises(ValueError, match="token id 12 is out of range for a vocabulary of 10"):
        TokenEmbedding(10, 4)(torch.tensor([[1, 12]]))
    with pytest.raises(ValueError, match="integer token ids"):
        TokenEmbedding(10, 4)(torch.randn(1, 2))
    with pytest.raises(ValueError, match="expected 3 input channels, got 2"):
        LinearProjection(3, 4)(torch.randn(1, 2, 2))
    with pytest.raises(ValueError, match="unknown pooling 'median'"):
        build_pooling("median", 4)
    with pytest.raises(ValueError, match="batch_first=True"):
        ManyToOneNet(RecurrentEncoder("gru", input_size=2, hidden_size=3), 2)
    with pytest.raises(ValueError, match="frontend outputs 4 features but encoder.input_size=2"):
        ManyToOneNet(
            RecurrentEncoder("gru", input_size=2, hidden_size=3, batch_first=True), 2, frontend=TokenEmbedding(5, 4)
        )
    with pytest.raises(ValueError, match="num_classes|out_features"):
        ClassificationHead(4, 0)
    with pytest.raises(ValueError, match="dropout"):
        RegressionHead(4, 1, dropout=1.0)


def _parity(n, gen, min_len=2, max_len=8):
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=gen)
    seqs = [torch.randint(0, 2, (int(n_), 1), generator=gen).float() for n_ in lengths]
    targets = torch.stack([s.sum().long() % 2 for s in seqs])
    return pad_sequence(seqs, batch_first=True), lengths, targets


@pytest.mark.learns
def test_small_gru_learns_parity_in_plain_torch():
    """Plain torch: a GRU learns the parity of variable-length bit strings (accuracy > 0.95).

    Catches: pooling that reads a padded step instead of each sequence's last real one.
    """
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = ManyToOneNet(RecurrentEncoder("gru", input_size=1, hidden_size=32, batch_first=True), num_outputs=2)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(300):
        inputs, lengths, targets = _parity(64, gen)
        loss = F.cross_entropy(net(inputs, lengths), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    inputs, lengths, targets = _parity(1000, torch.Generator().manual_seed(123))
    with torch.no_grad():
        accuracy = (net(inputs, lengths).argmax(-1) == targets).float().mean().item()
    assert accuracy > 0.95, accuracy


def test_input_noise_only_while_training():
    torch.manual_seed(0)
    net = ManyToOneNet(RecurrentEncoder("gru", input_size=2, hidden_size=4, batch_first=True), 2, input_noise=0.5)
    x, lengths = torch.randn(3, 5, 2), torch.tensor([5, 3, 1])
    assert not torch.allclose(net(x, lengths), net(x, lengths))  # fresh noise each call
    net.eval()
    torch.testing.assert_close(net(x, lengths), net(x, lengths))
    with pytest.raises(ValueError, match="input_noise must be >= 0"):
        ManyToOneNet(RecurrentEncoder("gru", input_size=2, hidden_size=4, batch_first=True), 2, input_noise=-1)


@pytest.mark.parametrize("hidden_size", [None, 8])
def test_a_head_without_dropout_keeps_the_layer_indices_of_one_with_dropout(hidden_size):
    with_dropout, without = ClassificationHead(4, 3, hidden_size, dropout=0.5), ClassificationHead(4, 3, hidden_size)
    assert with_dropout.state_dict().keys() == without.state_dict().keys()  # checkpoints load across both
    without.load_state_dict(with_dropout.state_dict())
    assert not any(isinstance(m, torch.nn.Dropout) for m in without.modules())
    assert sum(isinstance(m, torch.nn.Dropout) for m in with_dropout.modules()) == (1 if hidden_size is None else 2)
    x = torch.randn(5, 4)
    with_dropout.eval()
    assert torch.equal(with_dropout(x), without(x))
