"""RecurrentEncoder against torch.nn.RNN/LSTM/GRU, padding invariance, gradients and argument validation."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqmodels.nn import RecurrentEncoder

CELL_TO_TORCH = {
    "rnn_tanh": lambda **kw: nn.RNN(nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: nn.RNN(nonlinearity="relu", **kw),
    "lstm": nn.LSTM,
    "gru": nn.GRU,
}
CONFIGS = [
    (cell, bidirectional, num_layers)
    for cell in CELL_TO_TORCH
    for bidirectional in (False, True)
    for num_layers in (1, 2)
]


def _pair(cell, bidirectional, num_layers, batch_first=True, proj_size=0, input_size=5, hidden_size=7):
    torch.manual_seed(0)
    kwargs = dict(
        input_size=input_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
    )
    if proj_size:
        kwargs["proj_size"] = proj_size
    reference = CELL_TO_TORCH[cell](**kwargs)
    encoder = RecurrentEncoder(cell=cell, **kwargs)
    encoder.rnn.load_state_dict(reference.state_dict())
    return encoder, reference


def _states(h):
    return h if isinstance(h, tuple) else (h,)


@pytest.mark.parametrize("cell,bidirectional,num_layers", CONFIGS)
@pytest.mark.parametrize("batch_first", [True, False])
def test_matches_torch_without_lengths(cell, bidirectional, num_layers, batch_first):
    encoder, reference = _pair(cell, bidirectional, num_layers, batch_first)
    x = torch.randn(3, 6, 5) if batch_first else torch.randn(6, 3, 5)
    out, h = encoder(x)
    ref_out, ref_h = reference(x)
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=0)
    for mine, theirs in zip(_states(h), _states(ref_h), strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell,bidirectional,num_layers", CONFIGS)
def test_matches_torch_packed_with_lengths(cell, bidirectional, num_layers):
    encoder, reference = _pair(cell, bidirectional, num_layers)
    x = torch.randn(4, 9, 5)
    lengths = torch.tensor([3, 9, 1, 6])
    out, h = encoder(x, lengths)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    ref_packed, ref_h = reference(packed)
    ref_out, _ = pad_packed_sequence(ref_packed, batch_first=True, total_length=9)
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=0)
    for mine, theirs in zip(_states(h), _states(ref_h), strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_projection_matches_torch(bidirectional):
    encoder, reference = _pair("lstm", bidirectional, 2, proj_size=3)
    x, lengths = torch.randn(3, 5, 5), torch.tensor([5, 2, 4])
    out, (h, c) = encoder(x, lengths)
    assert out.shape == (3, 5, 3 * (2 if bidirectional else 1)) and encoder.output_size == out.shape[-1]
    assert h.shape[-1] == 3 and c.shape[-1] == 7
    ref_out, (ref_h, ref_c) = reference(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    torch.testing.assert_close(out, pad_packed_sequence(ref_out, batch_first=True, total_length=5)[0])
    torch.testing.assert_close(h, ref_h)
    torch.testing.assert_close(c, ref_c)


@pytest.mark.parametrize("cell,bidirectional,num_layers", CONFIGS)
def test_padding_never_changes_outputs_or_states(cell, bidirectional, num_layers):
    encoder, _ = _pair(cell, bidirectional, num_layers)
    encoder.eval()
    torch.manual_seed(1)
    lengths = torch.tensor([2, 7, 4])
    seqs = [torch.randn(int(n), 5) for n in lengths]
    batch = torch.full((3, 7, 5), 1e3)  # garbage in padded slots must not leak in
    for i, s in enumerate(seqs):
        batch[i, : len(s)] = s
    out, h = encoder(batch, lengths)
    for i, s in enumerate(seqs):
        alone_out, alone_h = encoder(s.unsqueeze(0), torch.tensor([len(s)]))
        torch.testing.assert_close(out[i, : len(s)], alone_out[0], atol=1e-5, rtol=0)
        assert torch.all(out[i, len(s) :] == 0)
        for mine, alone in zip(_states(h), _states(alone_h), strict=True):
            torch.testing.assert_close(mine[:, i], alone[:, 0], atol=1e-5, rtol=0)


def test_gradients_reach_valid_inputs_only():
    encoder = RecurrentEncoder("gru", input_size=3, hidden_size=4, bidirectional=True, batch_first=True)
    x = torch.randn(2, 5, 3, requires_grad=True)
    out, h = encoder(x, torch.tensor([5, 2]))
    (out.sum() + h.sum()).backward()
    assert torch.all(x.grad[1, 2:] == 0)
    assert x.grad[1, :2].abs().sum() > 0 and x.grad[0].abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


def test_lengths_on_any_device_and_as_list():
    encoder = RecurrentEncoder("lstm", input_size=2, hidden_size=3, batch_first=True)
    x = torch.randn(2, 4, 2)
    a, _ = encoder(x, [4, 2])
    b, _ = encoder(x, torch.tensor([4, 2], dtype=torch.int32))
    torch.testing.assert_close(a, b)


def test_orthogonal_init_and_forget_bias():
    encoder = RecurrentEncoder("lstm", input_size=3, hidden_size=8)
    w_hh = encoder.rnn.weight_hh_l0.detach()
    for block in w_hh.chunk(4, dim=0):
        torch.testing.assert_close(block @ block.T, torch.eye(8), atol=1e-5, rtol=0)
    assert torch.all(encoder.rnn.bias_ih_l0[8:16] == 1) and torch.all(encoder.rnn.bias_ih_l0[:8] == 0)
    torch_init = RecurrentEncoder("lstm", input_size=3, hidden_size=8, init="torch")
    assert torch_init.rnn.bias_ih_l0.abs().max() <= 1 / 8**0.5


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(cell="transformer"), "unknown cell 'transformer'"),
        (dict(num_layers=0), "num_layers must be an integer >= 1, got 0"),
        (dict(hidden_size=0), "hidden_size"),
        (dict(dropout=1.5), r"dropout must be in \[0, 1\), got 1.5"),
        (dict(dropout=-0.1), "dropout"),
        (dict(cell="gru", proj_size=2), "proj_size is only supported by cell='lstm'"),
        (dict(cell="lstm", proj_size=8), "proj_size must be 0 or in"),
        (dict(init="kaiming"), "unknown init"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    base = dict(input_size=3, hidden_size=8)
    with pytest.raises(ValueError, match=match) as info:
        RecurrentEncoder(**{**base, **kwargs})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "x,lengths,match",
    [
        (torch.randn(2, 4), None, "3-D input"),
        (torch.randn(2, 4, 5), None, "5 features per step but input_size=3"),
        (torch.randn(2, 4, 3), torch.tensor([0, 3]), "every length must be >= 1"),
        (torch.randn(2, 4, 3), torch.tensor([5, 3]), "exceeds the padded length 4"),
        (torch.randn(2, 4, 3), torch.tensor([4]), "got 1 lengths for a batch of 2"),
        (torch.randn(2, 4, 3), torch.tensor([4.0, 2.0]), "integer"),
    ],
)
def test_bad_inputs_raise_clear_errors(x, lengths, match):
    encoder = RecurrentEncoder("gru", input_size=3, hidden_size=4, batch_first=True)
    with pytest.raises(ValueError, match=match):
        encoder(x, lengths)


def test_nn_imports_without_lightning_or_hydra():
    code = (
        "import sys, torch, seqmodels.nn as n\n"
        "enc = n.RecurrentEncoder('lstm', input_size=2, hidden_size=3, batch_first=True)\n"
        "n.ManyToOneNet(enc, 2)(torch.randn(1, 4, 2), torch.tensor([3])).sum().backward()\n"
        "frameworks = ('lightning', 'pytorch_lightning', 'hydra', 'omegaconf')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in frameworks]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("cell", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [True, False])
def test_unpacked_forward_matches_packing(cell, bidirectional, batch_first):
    # pack_sequences=False (export): outputs and h_n as with packing, for every length, initial state or
    # not; an LSTM's c_n only for the full-length sequences.
    torch.manual_seed(0)
    proj = 3 if cell == "lstm" else 0
    encoder = RecurrentEncoder(
        cell, 5, 8, num_layers=2, bidirectional=bidirectional, proj_size=proj, batch_first=batch_first
    ).eval()
    lengths = torch.tensor([11, 3, 7, 1, 11, 5])
    x = torch.randn(6, 11, 5) if batch_first else torch.randn(11, 6, 5)
    D = 2 if bidirectional else 1
    h_0 = torch.randn(2 * D, 6, proj or 8)
    for hx in (None, (h_0, torch.randn(2 * D, 6, 8)) if cell == "lstm" else h_0):
        packed_out, packed_state = encoder(x, lengths, hx)
        encoder.pack_sequences = False
        out, state = encoder(x, lengths, hx)
        encoder.pack_sequences = True
        torch.testing.assert_close(out, packed_out, atol=1e-5, rtol=1e-5)
        if cell == "lstm":
            full = lengths == 11
            torch.testing.assert_close(state[1][:, full], packed_state[1][:, full], atol=1e-5, rtol=1e-5)
            state, packed_state = state[0], packed_state[0]
        torch.testing.assert_close(state, packed_state, atol=1e-5, rtol=1e-5)
        valid = torch.arange(11).unsqueeze(0) < lengths.unsqueeze(1)
        assert (out if batch_first else out.transpose(0, 1))[~valid].abs().max() == 0
    encoder.pack_sequences = False
    with pytest.raises(ValueError, match="exceeds the padded length"):
        encoder(x, lengths + 1)
