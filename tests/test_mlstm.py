"""mLSTM behind RecurrentEncoder: a step-by-step loop of Beck et al. 2024's stabilised equations against the
chunkwise-parallel engine (around chunk boundaries, both directions, two layers, hx, padding), saturated gates,
gradients, the official initialisation and the one-line refusals.

The loop comparisons run in float64: the mLSTM's output C q / max(|n^T q|, exp(-m)) is ill-conditioned by design
(C grows with the memory length while n^T q may cancel to near 0), so two float32 evaluations in different orders
(a loop and the chunkwise sum) differ by more than 1e-5 on outputs of magnitude 10-100; in float64 they agree to
1e-9. The float32 test runs the default cell, whose per-head norm keeps the outputs O(1), within 1e-5.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from seqmodels.nn import RecurrentEncoder
from seqmodels.nn.mlstm import MLSTM, mlstm_chunkwise


def reference_direction(rnn: MLSTM, suffix: str, x: torch.Tensor, state):
    """One direction over an unpadded x (T, H_in), step by step; state (C (heads, d, d), n (heads, d), m (heads,))."""
    heads, H = rnn.heads, rnn.hidden_size
    d = H // heads
    weight = getattr(rnn, f"weight_ih{suffix}")
    bias = getattr(rnn, f"bias_ih{suffix}") if rnn.bias else torch.zeros(weight.shape[0], dtype=weight.dtype)
    C, n, m = state
    outputs = []
    for x_t in x:
        p = weight @ x_t + bias
        q = p[:H].view(heads, d)
        k = p[H : 2 * H].view(heads, d) / math.sqrt(d)
        v = p[2 * H : 3 * H].view(heads, d)
        o = torch.sigmoid(p[3 * H : 4 * H])
        i_tilde, f_tilde = p[4 * H : 4 * H + heads], p[4 * H + heads :]
        log_f = F.logsigmoid(f_tilde)
        m_new = torch.maximum(log_f + m, i_tilde)
        i_gate, f_gate = torch.exp(i_tilde - m_new), torch.exp(log_f + m - m_new)
        C = f_gate[:, None, None] * C + i_gate[:, None, None] * v[:, :, None] * k[:, None, :]
        n = f_gate[:, None] * n + i_gate[:, None] * k
        m = m_new
        h_tilde = torch.einsum("hab,hb->ha", C, q) / torch.maximum((n * q).sum(-1).abs(), torch.exp(-m))[:, None]
        if rnn.head_norm:
            h_tilde = F.layer_norm(h_tilde, (d,), eps=1e-5) * getattr(rnn, f"weight_norm{suffix}").view(heads, d)
        outputs.append(o * h_tilde.reshape(H))
    return torch.stack(outputs), (C, n, m)


def reference(encoder: RecurrentEncoder, x: torch.Tensor, hx=None):
    """One unpadded sequence x (T, H_in) through every layer and direction: (output (T, D H), (h, C, n, m))."""
    rnn, D = encoder.rnn, encoder.num_directions
    heads, d = rnn.heads, rnn.head_size
    inputs, finals = x, []
    for layer in range(encoder.num_layers):
        outputs = []
        for direction in range(D):
            row = layer * D + direction
            if hx is None:
                state = (x.new_zeros(heads, d, d), x.new_zeros(heads, d), x.new_zeros(heads))
            else:
                state = (hx[1][row].view(heads, d, d), hx[2][row].view(heads, d), hx[3][row])
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            y, (C, n, m) = reference_direction(rnn, suffix, inputs.flip(0) if direction else inputs, state)
            finals.append((y[-1], C.reshape(-1), n.reshape(-1), m))
            outputs.append(y.flip(0) if direction else y)
        inputs = torch.cat(outputs, dim=-1)
    return inputs, tuple(torch.stack(column) for column in zip(*finals, strict=True))


def encoder(dtype=torch.float64, perturb: float = 0.3, **kwargs) -> RecurrentEncoder:
    torch.manual_seed(0)
    options = dict(input_size=3, hidden_size=8, batch_first=True) | kwargs
    model = RecurrentEncoder("mlstm", **options).to(dtype).eval()
    with torch.no_grad():  # input-dependent gates, non-zero biases
        for param in model.parameters():
            param.add_(perturb * torch.randn_like(param))
    return model


def random_state(model: RecurrentEncoder, batch: int, dtype=torch.float64):
    generator = torch.Generator().manual_seed(5)
    rows = model.num_directions * model.num_layers
    sizes = model.rnn.state_sizes()
    return tuple(0.3 * torch.randn(rows, batch, size, generator=generator, dtype=dtype) for size in sizes)


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-9) -> None:
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


@pytest.mark.parametrize("length", [1, 7, 64, 65, 200])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_matches_a_loop_of_the_equations(length: int, bidirectional: bool) -> None:
    # chunk_size 64 (the default): 64 is one chunk, 65 two, 200 four; hx given, padding in the batch
    for head_norm in (False, True):
        model = encoder(num_layers=2, bidirectional=bidirectional, cell_options={"heads": 2, "head_norm": head_norm})
        lengths = torch.tensor([length, max(1, length - 5), 1])
        x = torch.randn(3, length, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(length))
        hx = random_state(model, 3)
        with torch.no_grad():
            output, h_n = model(x, hx=hx, lengths=lengths)
            for n_, valid in enumerate(lengths.tolist()):
                expected, expected_state = reference(model, x[n_, :valid], tuple(part[:, n_] for part in hx))
                close(output[n_, :valid], expected)
                assert not output[n_, valid:].any()
                for actual, wanted in zip(h_n, expected_state, strict=True):
                    close(actual[:, n_], wanted)


def test_small_chunks_and_hx_continuation_are_exact() -> None:
    model = encoder(num_layers=2, bidirectional=False, cell_options={"heads": 2, "chunk_size": 8})
    x = torch.randn(2, 61, 3, dtype=torch.float64)
    hx = random_state(model, 2)
    with torch.no_grad():
        output, h_n = model(x, hx=hx)
        for n_ in range(2):
            expected, expected_state = reference(model, x[n_], tuple(part[:, n_] for part in hx))
            close(output[n_], expected)
            for actual, wanted in zip(h_n, expected_state, strict=True):
                close(actual[:, n_], wanted)
        # continuing from a state across chunk boundaries, and one step at a time, equal one forward
        first, h_first = model(x[:, :27], hx=hx)
        second, h_second = model(x[:, 27:], hx=h_first)
        close(torch.cat([first, second], 1), output)
        for a, b in zip(h_second, h_n, strict=True):
            close(a, b)
        state, steps = hx, []
        for t in range(61):
            y, state = model(x[:, t : t + 1], hx=state)
            steps.append(y)
        close(torch.cat(steps, 1), output)


def test_float32_matches_the_loop_within_1e_5() -> None:
    # the default cell (official init, head norm: O(1) outputs) over three chunks, head size 8
    model = encoder(torch.float32, perturb=0.0, input_size=4, hidden_size=16, cell_options={"heads": 2})
    x = torch.randn(2, 150, 4, generator=torch.Generator().manual_seed(0))
    exact = copy.deepcopy(model).double()
    with torch.no_grad():
        output, h_n = model(x)
        assert output.abs().max() > 0.1
        for n_ in range(2):
            expected, expected_state = reference(exact, x[n_].double())
            torch.testing.assert_close(output[n_].double(), expected, atol=1e-5, rtol=0)
            for actual, wanted in zip(h_n, expected_state, strict=True):
                torch.testing.assert_close(actual[:, n_].double(), wanted, atol=1e-5, rtol=0)


def test_saturated_gates_stay_finite_and_exact() -> None:
    # pre-activations in the thousands: exp(i~) and exp(-m) overflow/underflow unless every exponent is <= 0
    model = encoder(num_layers=1, cell_options={"heads": 2, "chunk_size": 16, "head_norm": False})
    with torch.no_grad():
        model.rnn.weight_ih_l0[-4:] *= 2000.0  # i~ and f~ rows
        model.rnn.bias_ih_l0[-4:] = torch.tensor([3000.0, -3000.0, 2000.0, -2000.0])
    x = torch.randn(2, 50, 3, dtype=torch.float64)
    with torch.no_grad():
        output, h_n = model(x)
        expected, expected_state = reference(model, x[0])
    assert torch.isfinite(output).all()
    torch.testing.assert_close(output[0], expected, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(h_n[3][:, 0], expected_state[3], atol=1e-6, rtol=1e-12)  # m itself is ~1e3
    fast = model.float().train()
    x32 = x.float().requires_grad_()
    out32, state32 = fast(x32)
    assert all(torch.isfinite(part).all() for part in (out32, *state32))
    (out32.square().sum() + state32[1].sum()).backward()
    assert torch.isfinite(x32.grad).all()
    for name, param in fast.named_parameters():
        assert torch.isfinite(param.grad).all(), name


def test_long_sequence_trains_in_linear_memory() -> None:
    # 8192 steps: 128 chunks; the quadratic form would hold 8192^2 weights per head
    torch.manual_seed(0)
    model = RecurrentEncoder("mlstm", 4, 8, batch_first=True, cell_options={"heads": 2})
    x = torch.randn(1, 8192, 4)
    output, state = model(x)
    output.square().mean().backward()
    assert torch.isfinite(output).all() and all(torch.isfinite(p.grad).all() for p in model.parameters())
    with torch.no_grad():
        first, h_first = model(x[:, :5000])
        second, _ = model(x[:, 5000:], hx=h_first)
    torch.testing.assert_close(torch.cat([first, second], 1), output.detach(), atol=1e-4, rtol=1e-4)


def test_gradients_of_the_chunkwise_form() -> None:
    torch.manual_seed(0)
    B, L, d = 2, 11, 3
    options = dict(dtype=torch.float64, requires_grad=True)
    q, k, v = (torch.randn(B, L, d, **options) for _ in range(3))
    i_pre, f_pre = torch.randn(B, L, **options), (torch.randn(B, L, dtype=torch.float64) + 2).requires_grad_()
    c0, n0, m0 = torch.randn(B, d, d, **options), torch.randn(B, d, **options), torch.randn(B, **options)

    def chunkwise(q, k, v, i_pre, f_pre, c0, n0, m0):
        return mlstm_chunkwise(q, k, v, i_pre, F.logsigmoid(f_pre), c0, n0, m0, chunk_size=4)

    assert torch.autograd.gradcheck(chunkwise, (q, k, v, i_pre, f_pre, c0, n0, m0))


def test_padding_gets_no_gradient() -> None:
    model = encoder(torch.float32, num_layers=2, bidirectional=True)
    x = torch.randn(3, 20, 3, requires_grad=True)
    output, state = model(x, lengths=torch.tensor([20, 9, 1]))
    (output.sum() + sum(part.sum() for part in state)).backward()
    assert torch.isfinite(x.grad).all()
    assert not x.grad[1, 9:].any() and not x.grad[2, 1:].any()


def test_initialisation_is_the_official_one() -> None:
    torch.manual_seed(0)
    rnn = RecurrentEncoder("mlstm", 256, 512, cell_options={"heads": 4}).rnn
    H, heads = 512, 4
    weight, bias = rnn.weight_ih_l0, rnn.bias_ih_l0
    assert weight.shape == (4 * H + 2 * heads, 256)
    std = math.sqrt(2 / (5 * 256))  # small_init
    assert abs(weight[: 4 * H].std().item() - std) < 0.02 * std and abs(weight[: 4 * H].mean().item()) < 1e-3
    assert not weight[4 * H :].any() and not bias[: 4 * H].any()
    assert bias[4 * H : 4 * H + heads].abs().max() < 0.5  # N(0, 0.1^2)
    torch.testing.assert_close(bias[4 * H + heads :], torch.linspace(3.0, 6.0, heads))
    assert (rnn.weight_norm_l0 == 1).all()
    assert rnn.state_sizes() == (H, heads * 128 * 128, heads * 128, heads)
    xavier = RecurrentEncoder("mlstm", 256, 512, init="orthogonal").rnn.weight_ih_l0
    bound = math.sqrt(6 / (256 + 512))
    assert xavier[: 4 * H].abs().max() <= bound and not xavier[4 * H :].any()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"heads": 3}, "heads"),
        ({"heads": 0}, "heads"),
        ({"heads": True}, "heads"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_options_are_one_line_errors(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match) as error:
        RecurrentEncoder("mlstm", 3, 8, cell_options=options)
    assert "\n" not in str(error.value)
    assert "cell_options" in str(error.value) or "chunk_size" in str(error.value)


def test_state_layout_and_repr() -> None:
    model = RecurrentEncoder("mlstm", 3, 8, num_layers=2, bidirectional=True, cell_options={"heads": 2})
    assert model.state_names == ("h", "C", "n", "m")
    output, (h, C, n, m) = model(torch.randn(5, 2, 3))
    assert output.shape == (5, 2, 16)
    assert h.shape == (4, 2, 8) and C.shape == (4, 2, 32) and n.shape == (4, 2, 8) and m.shape == (4, 2, 2)
    assert "heads=2" in repr(model.rnn)
