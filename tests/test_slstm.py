"""sLSTM behind RecurrentEncoder: a float64 step-by-step loop of Beck et al. 2024's equations against the engine
(both forget gates, heads, 2 layers, both directions, hx, padding), saturated gates, gradients, the empty-memory
rule, the official initialisation, WeightDrop on the block-diagonal recurrence and the one-line refusals."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqmodels.nn import RecurrentEncoder
from seqmodels.nn.regularization import WeightDrop
from seqmodels.nn.slstm import SLSTM


def encoder(**kwargs) -> RecurrentEncoder:
    torch.manual_seed(0)
    options = dict(input_size=3, hidden_size=8, batch_first=True) | kwargs
    return RecurrentEncoder("slstm", **options).eval()


def block_diagonal(weight_hh: torch.Tensor) -> list[torch.Tensor]:
    """The four (H, H) recurrent matrices R_i, R_f, R_z, R_o (acting as R h) from weight_hh (heads, dh, 4 dh)."""
    heads, dh = weight_hh.shape[0], weight_hh.shape[1]
    H = heads * dh
    gates = []
    for g in range(4):
        r = torch.zeros(H, H, dtype=torch.float64)
        for j in range(heads):
            r[j * dh : (j + 1) * dh, j * dh : (j + 1) * dh] = weight_hh[j, :, g * dh : (g + 1) * dh].double().T
        gates.append(r)
    return gates


def reference(model: RecurrentEncoder, x: torch.Tensor, hx: tuple[torch.Tensor, ...] | None = None):
    """One unpadded sequence x (T, H_in), step by step in float64 with the paper's equations; (output, (h, c, n, m)).

    A state with n = 0 is an empty memory: its first step takes m_0 = i~_0 (m_{-1} = -inf)."""
    rnn, H, D = model.rnn, model.hidden_size, model.num_directions
    exp_forget = rnn.forget_gate == "exp"
    inputs, finals = x.double(), []
    for layer in range(model.num_layers):
        outputs = []
        for direction in range(D):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            w_ih = getattr(rnn, f"weight_ih{suffix}").double()
            b = getattr(rnn, f"bias_ih{suffix}").double() if model.bias else torch.zeros(4 * H, dtype=torch.float64)
            w_i, w_f, w_z, w_o = w_ih.chunk(4)
            b_i, b_f, b_z, b_o = b.chunk(4)
            r_i, r_f, r_z, r_o = block_diagonal(getattr(rnn, f"weight_hh{suffix}"))
            row = layer * D + direction
            if hx is None:
                h, c, n, m = (torch.zeros(H, dtype=torch.float64) for _ in range(4))
            else:
                h, c, n, m = (s[row].double() for s in hx)
            steps = []
            for x_t in inputs.flip(0) if direction else inputs:
                z = torch.tanh(w_z @ x_t + r_z @ h + b_z)
                i_pre = w_i @ x_t + r_i @ h + b_i
                f_pre = w_f @ x_t + r_f @ h + b_f
                o = torch.sigmoid(w_o @ x_t + r_o @ h + b_o)
                log_f = f_pre if exp_forget else F.logsigmoid(f_pre)
                m_prev = torch.where(n == 0, torch.full_like(m, -math.inf), m)
                m = torch.maximum(log_f + m_prev, i_pre)
                i_gate = torch.exp(i_pre - m)
                f_gate = torch.exp(log_f + m_prev - m)
                c = f_gate * c + i_gate * z
                n = f_gate * n + i_gate
                h = o * c / n
                steps.append(h)
            finals.append((h, c, n, m))
            y = torch.stack(steps)
            outputs.append(y.flip(0) if direction else y)
        inputs = torch.cat(outputs, dim=-1)
    return inputs, tuple(torch.stack(column) for column in zip(*finals, strict=True))


def random_state(rows: int, batch: int, H: int) -> tuple[torch.Tensor, ...]:
    """A state a run could have left: |h| < 1, n >= 1, any m."""
    g = torch.Generator().manual_seed(5)
    h = torch.rand(rows, batch, H, generator=g) * 2 - 1
    n = 1 + 3 * torch.rand(rows, batch, H, generator=g)
    c = n * (torch.rand(rows, batch, H, generator=g) * 2 - 1)
    m = 4 * torch.randn(rows, batch, H, generator=g)
    return h, c, n, m


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5) -> None:
    torch.testing.assert_close(actual.double(), expected.double(), atol=atol, rtol=0)


@pytest.mark.parametrize("forget_gate", ["sigmoid", "exp"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_hx", [False, True])
def test_matches_a_float64_loop_of_the_equations(forget_gate: str, bidirectional: bool, with_hx: bool) -> None:
    model = encoder(num_layers=2, bidirectional=bidirectional, cell_options={"heads": 2, "forget_gate": forget_gate})
    with torch.no_grad():
        for p in model.parameters():  # recurrence of both signs, biases away from their init
            p.add_(0.3 * torch.randn_like(p))
    D = model.num_directions
    lengths = torch.tensor([70, 1, 9])  # a single step, a short one, a long one in one padded batch
    x = torch.randn(3, 70, 3, generator=torch.Generator().manual_seed(1))
    hx = random_state(2 * D, 3, 8) if with_hx else None
    with torch.no_grad():
        output, h_n = model(x, hx=hx, lengths=lengths)
    for n, length in enumerate(lengths.tolist()):
        expected, expected_state = reference(model, x[n, :length], None if hx is None else tuple(s[:, n] for s in hx))
        close(output[n, :length], expected)
        assert not output[n, length:].any()
        for name, actual, want in zip(model.state_names, h_n, expected_state, strict=True):
            # c and n grow with the memory's span and m with the log-gate sums: float32 holds them to 1e-5 relative.
            close(actual[:, n], want, atol=1e-5 * max(1.0, want.abs().max().item()) if name != "h" else 1e-5)


@pytest.mark.parametrize("forget_gate", ["sigmoid", "exp"])
def test_saturated_gates_stay_finite_and_exact(forget_gate: str) -> None:
    model = encoder(cell_options={"forget_gate": forget_gate}).double()
    with torch.no_grad():
        for p in model.parameters():  # pre-activations in the thousands: exp would overflow without the stabiliser
            p.copy_(300 * torch.randn_like(p))
    x = torch.randn(2, 50, 3, dtype=torch.float64, requires_grad=True)
    output, (h, c, n, m) = model(x)
    assert torch.isfinite(output).all() and output.abs().max() <= 1
    assert (n >= 1).all()
    expected, _ = reference(model, x[0].detach())
    close(output[0], expected, atol=1e-10)
    output.sum().backward()
    assert torch.isfinite(x.grad).all()
    for name, param in model.named_parameters():
        assert torch.isfinite(param.grad).all(), name
    # float32 too, from huge inputs
    model32 = encoder(cell_options={"forget_gate": forget_gate})
    x32 = 1e4 * torch.randn(2, 50, 3)
    x32.requires_grad_(True)
    y32, _ = model32(x32)
    y32.square().sum().backward()
    assert torch.isfinite(y32).all() and torch.isfinite(x32.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model32.parameters())


def test_gradients_match_finite_differences() -> None:
    model = encoder(hidden_size=4, num_layers=2, bidirectional=True, cell_options={"heads": 2}).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    hx = tuple(s.double().requires_grad_(True) for s in random_state(4, 2, 4))
    lengths = torch.tensor([5, 3])

    def run(x, h, c, n, m, *params):
        return model(x, hx=(h, c, n, m), lengths=lengths)[0]

    assert torch.autograd.gradcheck(run, (x, *hx))
    names = [name for name, _ in model.named_parameters()]

    def run_params(*params):
        out, _ = torch.func.functional_call(model, dict(zip(names, params, strict=True)), (x.detach(),))
        return out

    assert torch.autograd.gradcheck(run_params, tuple(p.detach().requires_grad_(True) for p in model.parameters()))


def test_padding_past_the_longest_sequence() -> None:
    model = encoder(num_layers=2, bidirectional=True)
    x = torch.randn(2, 8, 3)
    with torch.no_grad():
        output, h_n = model(x, lengths=torch.tensor([5, 2]))  # no sequence reaches the last 3 steps
        assert not output[:, 5:].any() and not output[1, 2:].any()
        for n, length in enumerate((5, 2)):
            alone, h_alone = model(x[n : n + 1, :length])
            close(output[n, :length], alone[0])
            for part, part_alone in zip(h_n, h_alone, strict=True):
                close(part[:, n], part_alone[:, 0])


def test_empty_memory_rule() -> None:
    model = encoder(num_layers=2)
    x = torch.randn(2, 6, 3)
    with torch.no_grad():
        y_none, state_none = model(x)
        y_zero, state_zero = model(x, hx=model.initial_state(2))
        close(y_zero, y_none)
        for a, b in zip(state_zero, state_none, strict=True):
            close(a, b)
        # After one step from the empty memory: m_0 = i~_0, n_0 = 1, c_0 = z_0.
        _, (h, c, n, m) = model(x[:, :1])
    torch.testing.assert_close(n, torch.ones_like(n))
    rnn = model.rnn
    pre = F.linear(x[:, 0], rnn.weight_ih_l0, rnn.bias_ih_l0)  # h_{-1} = 0: no recurrent term
    i_pre, _, z_pre, _ = pre.chunk(4, dim=-1)
    close(m[0], i_pre)
    close(c[0], torch.tanh(z_pre))


def test_official_initialisation() -> None:
    torch.manual_seed(0)
    model = RecurrentEncoder("slstm", 64, 256, num_layers=3, bidirectional=True)
    assert model.init == "torch" and model.rnn.heads == 4 and model.rnn.forget_gate == "sigmoid"
    rnn, H, dh = model.rnn, 256, 64
    assert rnn.weight_hh_l0.shape == (4, dh, 4 * dh) and rnn.weight_ih_l1.shape == (4 * H, 2 * H)
    for layer, fan_in in ((0, 64), (1, 2 * H), (2, 2 * H)):
        for suffix in (f"_l{layer}", f"_l{layer}_reverse"):
            w_ih = getattr(rnn, f"weight_ih{suffix}")
            assert abs(w_ih.std().item() / math.sqrt(2 / (5 * fan_in)) - 1) < 0.03
            assert abs(w_ih.mean().item()) < 3e-3
            r = getattr(rnn, f"weight_hh{suffix}")
            assert r.abs().max() <= 1 / math.sqrt(H) and abs(r.std().item() * math.sqrt(3 * H) - 1) < 0.05
            b_i, b_f, b_z, b_o = getattr(rnn, f"bias_ih{suffix}").detach().chunk(4)
            assert not b_i.any() and not b_z.any() and not b_o.any()
            power = 0.3 + 1.3 * layer / 2
            expected = 5 - 12 * (torch.arange(dh, dtype=torch.float64) / (dh - 1)) ** power
            close(b_f, expected.repeat(4))
            assert b_f[0] == 5 and b_f[dh - 1] == -7
    orth = RecurrentEncoder("slstm", 8, 16, init="orthogonal", cell_options={"heads": 2})
    for head in orth.rnn.weight_hh_l0.detach():
        for block in head.chunk(4, dim=1):
            close(block.T @ block, torch.eye(8))


def test_weight_drop_reaches_the_block_diagonal_recurrence() -> None:
    model = encoder(hidden_size=16, num_layers=2)
    dropped = WeightDrop(model, p=0.5)
    assert dropped.weights == ["rnn.weight_hh_l0", "rnn.weight_hh_l1"]
    x = torch.randn(2, 7, 3)
    dropped.eval()
    close(dropped(x)[0], model(x)[0])
    dropped.train()
    torch.manual_seed(3)
    y, _ = dropped(x)
    assert not torch.allclose(y, model(x)[0])
    y.sum().backward()
    assert model.rnn.weight_hh_l0.grad is not None and model.rnn.weight_hh_l0.grad.abs().sum() > 0


def test_refusals_are_one_line_and_name_the_fix() -> None:
    for options, fix in [
        (dict(hidden_size=10, cell_options={"heads": 4}), "heads"),
        (dict(cell_options={"heads": 0}), "heads"),
        (dict(cell_options={"heads": 2.0}), "heads"),
        (dict(cell_options={"forget_gate": "tanh"}), "forget_gate must be one of sigmoid, exp"),
        (dict(init="identity"), "init=torch"),
    ]:
        with pytest.raises(ValueError, match=fix) as error:
            RecurrentEncoder("slstm", **(dict(input_size=3, hidden_size=8) | options))
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="divisible by heads=3"):
        SLSTM(3, 8, heads=3)
    model = encoder()
    with pytest.raises(ValueError, match="h, c, n, m"):
        model(torch.randn(2, 4, 3), hx=torch.zeros(1, 2, 8))
    assert "heads=4" in repr(model) and "forget_gate='sigmoid'" in repr(model)
