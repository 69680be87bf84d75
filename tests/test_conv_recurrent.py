"""ConvLSTM / ConvGRU: shapes, the paper's equations, exact padding, step mode, state continuation, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqmodels.nn.conv_recurrent import ConvGRU, ConvLSTM, reverse_within_lengths

CLASSES = [ConvLSTM, ConvGRU]
ATOL = 1e-6


def _make(cls, **kwargs):
    torch.manual_seed(0)
    options = dict(input_size=2, hidden_size=3, kernel_size=3)
    options.update(kwargs)
    return cls(**options).eval()


def _clip(n=3, length=5, channels=2, h=6, w=5, seed=1):
    return torch.randn(n, length, channels, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_shapes(cls, bidirectional):
    net = _make(cls, num_layers=2, bidirectional=bidirectional)
    out, state = net(_clip())
    D = 2 if bidirectional else 1
    assert out.shape == (3, 5, D * 3, 6, 5)
    h = state[0] if cls is ConvLSTM else state
    assert h.shape == (2 * D, 3, 3, 6, 5)
    if cls is ConvLSTM:
        assert state[1].shape == h.shape
    assert net.output_size == D * 3


def test_time_first_layout_matches_batch_first():
    net = _make(ConvLSTM)
    x = _clip()
    out, _ = net(x)
    net.batch_first = False
    out_t, _ = net(x.transpose(0, 1))
    torch.testing.assert_close(out_t.transpose(0, 1), out, atol=ATOL, rtol=0)


def _hand_lstm(net, x):
    """The ConvLSTM equations of Shi et al. 2015 (no peepholes), written out with one convolution on [x, h]."""
    w = torch.cat([net.conv_x[0].weight, net.conv_h[0].weight], dim=1)
    b = net.conv_x[0].bias
    n, length, _, height, width = x.shape
    h = x.new_zeros(n, net.hidden_size, height, width)
    c = torch.zeros_like(h)
    outs = []
    for t in range(length):
        gates = F.conv2d(torch.cat([x[:, t], h], dim=1), w, b, padding=1)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, 1), h, c


def _hand_gru(net, x):
    """The ConvGRU equations of Ballas et al. 2016."""
    n, length, _, height, width = x.shape
    h = x.new_zeros(n, net.hidden_size, height, width)
    wx, bx = net.conv_x[0].weight, net.conv_x[0].bias
    wh, whn = net.conv_h[0].weight, net.conv_hn[0].weight
    hs = net.hidden_size
    outs = []
    for t in range(length):
        xg = F.conv2d(x[:, t], wx, bx, padding=1)
        z = torch.sigmoid(xg[:, :hs] + F.conv2d(h, wh[:hs], padding=1))
        r = torch.sigmoid(xg[:, hs : 2 * hs] + F.conv2d(h, wh[hs:], padding=1))
        n = torch.tanh(xg[:, 2 * hs :] + F.conv2d(r * h, whn, padding=1))
        h = (1 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs, 1), h


def test_convlstm_equals_hand_written_equations():
    net = _make(ConvLSTM)
    with torch.no_grad():
        net.conv_x[0].bias.normal_()  # not just the forget-gate init
    x = _clip()
    out, (h_n, c_n) = net(x)
    ref_out, ref_h, ref_c = _hand_lstm(net, x)
    torch.testing.assert_close(out, ref_out, atol=ATOL, rtol=0)
    torch.testing.assert_close(h_n[0], ref_h, atol=ATOL, rtol=0)
    torch.testing.assert_close(c_n[0], ref_c, atol=ATOL, rtol=0)


def test_convgru_equals_hand_written_equations():
    net = _make(ConvGRU)
    x = _clip()
    out, h_n = net(x)
    ref_out, ref_h = _hand_gru(net, x)
    torch.testing.assert_close(out, ref_out, atol=ATOL, rtol=0)
    torch.testing.assert_close(h_n[0], ref_h, atol=ATOL, rtol=0)


def _states(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_never_changes_a_result(cls, bidirectional):
    """Each sequence batched with longer, garbage-padded batch-mates gives what it gives alone."""
    net = _make(cls, num_layers=2, bidirectional=bidirectional)
    lengths = torch.tensor([5, 2, 4])
    x = _clip()
    for i, n in enumerate(lengths.tolist()):
        x[i, n:] = 1e3  # garbage past the length
    out, state = net(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone_out, alone_state = net(x[i : i + 1, :n])
        torch.testing.assert_close(out[i : i + 1, :n], alone_out, atol=ATOL, rtol=0)
        assert bool((out[i, n:] == 0).all())
        for batched, alone in zip(_states(state), _states(alone_state), strict=True):
            torch.testing.assert_close(batched[:, i : i + 1], alone, atol=ATOL, rtol=0)


def test_reverse_direction_reads_each_sequence_reversed_within_its_length():
    x = torch.arange(8.0).view(2, 4, 1, 1, 1)
    got = reverse_within_lengths(x, torch.tensor([4, 2])).flatten(1)
    assert got.tolist() == [[3.0, 2.0, 1.0, 0.0], [5.0, 4.0, 6.0, 7.0]]
    # The backward half of a bidirectional output at step 0 is the backward h_n.
    net = _make(ConvGRU, bidirectional=True)
    out, h_n = net(_clip(), torch.tensor([5, 3, 1]))
    torch.testing.assert_close(out[:, 0, 3:], h_n[1], atol=ATOL, rtol=0)


@pytest.mark.parametrize("cls", CLASSES)
def test_step_and_stream_equal_forward(cls):
    net = _make(cls, num_layers=2, frame_size=(6, 5))
    x = _clip(length=7)
    full, full_state = net(x)
    state = net.initial_state(3)
    outs = []
    for t in range(3):
        y, state = net.step(x[:, t], state)
        outs.append(y.unsqueeze(1))
    y, state = net.stream(x[:, 3:5], state)
    outs.append(y)
    y, state = net.stream(x[:, 5:], state)  # state=None start is covered by the test below
    outs.append(y)
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=ATOL, rtol=0)
    for a, b in zip(_states(state), _states(full_state), strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    first, _ = net.stream(x[:, :2], None)
    torch.testing.assert_close(first, full[:, :2], atol=ATOL, rtol=0)


def test_initial_state_needs_a_frame_size():
    net = _make(ConvLSTM)
    with pytest.raises(ValueError, match="frame size"):
        net.initial_state(2)
    h, c = net.initial_state(2, frame_size=(4, 3))
    assert h.shape == c.shape == (1, 2, 3, 4, 3) and not h.any()


@pytest.mark.parametrize("cls", CLASSES)
def test_bidirectional_refuses_step_mode(cls):
    net = _make(cls, bidirectional=True, frame_size=(6, 5))
    x = _clip()
    for call in (lambda: net.initial_state(3), lambda: net.stream(x), lambda: net.step(x[:, 0])):
        with pytest.raises(ValueError, match="bidirectional") as info:
            call()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("cls", CLASSES)
def test_hx_continues_a_sequence(cls):
    net = _make(cls, num_layers=2)
    x = _clip(length=6)
    full, full_state = net(x)
    first, state = net(x[:, :4])
    second, state = net(x[:, 4:], hx=state)
    torch.testing.assert_close(torch.cat([first, second], 1), full, atol=ATOL, rtol=0)
    for a, b in zip(_states(state), _states(full_state), strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="expected"):
        net(x[:, :2, :, :3], hx=state)  # a state of another frame size


@pytest.mark.parametrize("cls", CLASSES)
def test_gradients_reach_every_weight_and_the_first_frame(cls):
    net = _make(cls, num_layers=2, bidirectional=True, dropout=0.2).train()
    x = _clip().requires_grad_()
    out, _ = net(x, torch.tensor([5, 3, 2]))
    out[:, 1].sum().backward()  # a middle step: both directions must carry gradient there
    for name, param in net.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert x.grad[:, 0].abs().sum() > 0 and x.grad[0, 4].abs().sum() > 0  # forward and backward flows
    assert x.grad[1, 3:].abs().sum() == 0  # padded frames receive nothing


def test_dropout_only_between_layers_and_only_in_training():
    net = _make(ConvGRU, num_layers=2, dropout=0.5)
    x = _clip()
    a, _ = net(x)
    b, _ = net(x)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    net.train()
    c, _ = net(x)
    assert not torch.allclose(a, c)
    single = _make(ConvGRU, dropout=0.5).train()
    d, _ = single(x)
    single.eval()
    e, _ = single(x)
    torch.testing.assert_close(d, e, atol=0, rtol=0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(hidden_size=0), "hidden_size"),
        (dict(kernel_size=(3, 3, 3)), "kernel_size"),
        (dict(dropout=1.0), "dropout"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        _make(ConvLSTM, **kwargs)
    assert "\n" not in str(info.value)


def test_bad_inputs_are_refused():
    net = _make(ConvLSTM)
    with pytest.raises(ValueError, match="5-D"):
        net(torch.randn(2, 3, 2, 4))
    with pytest.raises(ValueError, match="channels"):
        net(torch.randn(2, 3, 1, 4, 4))
    with pytest.raises(ValueError, match="exceeds"):
        net(torch.randn(2, 3, 2, 4, 4), torch.tensor([4, 2]))
