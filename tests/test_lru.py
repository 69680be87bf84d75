"""LRU behind RecurrentEncoder: a complex128 loop of Orvieto et al. 2023's equations against the engine (directions,
layers, hx, padding, lengths across the scan's chunks), the scan's gradients, saturation, the paper's initialisation
and the cell_options refusals."""

from __future__ import annotations

import math

import pytest
import torch

from seqmodels.nn import RecurrentEncoder
from seqmodels.nn.lru import LRU, lru_eigenvalues, lru_scan


def encoder(dtype: torch.dtype = torch.float32, **kwargs) -> RecurrentEncoder:
    torch.manual_seed(0)
    options = dict(input_size=3, hidden_size=5, batch_first=True) | kwargs
    return RecurrentEncoder("lru", **options).to(dtype).eval()


def reference(model: RecurrentEncoder, x: torch.Tensor, hx: tuple[torch.Tensor, ...] | None = None):
    """One unpadded sequence x (T, H_in), step by step in complex128:
    x_t = lambda x_{t-1} + gamma (B u_t), y_t = Re(C x_t) + D u_t (+ bias). Returns (output, (h, x_re, x_im))."""
    rnn, D = model.rnn, model.num_directions
    inputs, finals = x.double(), []
    for layer in range(model.num_layers):
        outputs = []
        for direction in range(D):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")

            def get(name: str, suffix: str = suffix) -> torch.Tensor:
                return getattr(rnn, name + suffix).detach().double()

            lam = torch.exp(torch.complex(-torch.exp(get("nu_log")), torch.exp(get("theta_log"))))
            B = torch.complex(get("B_re"), get("B_im"))
            C = torch.complex(get("C_re"), get("C_im"))
            gamma = torch.exp(get("gamma_log"))
            bias = get("bias") if model.bias else 0.0
            row = layer * D + direction
            state = torch.zeros(rnn.state_size, dtype=torch.complex128)
            if hx is not None:
                state = torch.complex(hx[1][row].double(), hx[2][row].double())
            steps = []
            for u in inputs.flip(0) if direction else inputs:
                state = lam * state + gamma * (B @ u.to(torch.complex128))
                steps.append((C @ state).real + get("D") @ u + bias)
            finals.append((steps[-1], state.real, state.imag))
            y = torch.stack(steps)
            outputs.append(y.flip(0) if direction else y)
        inputs = torch.cat(outputs, dim=-1)
    return inputs, tuple(torch.stack(column) for column in zip(*finals, strict=True))


def perturb(model: RecurrentEncoder, scale: float = 0.1) -> None:
    with torch.no_grad():
        for param in model.parameters():  # non-zero biases and off-diagonal skips
            param.add_(scale * torch.randn_like(param))


# 131 is prime and > 64 (the largest chunk): several chunks, the last one padded inside the scan
LENGTHS = torch.tensor([131, 1, 5, 70])


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_hx", [False, True])
def test_matches_a_complex_loop_of_the_equations(bidirectional: bool, bias: bool, with_hx: bool) -> None:
    model = encoder(num_layers=2, bidirectional=bidirectional, bias=bias, cell_options={"state_size": 6, "r_max": 0.99})
    perturb(model)
    rows = model.num_directions * 2
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4, 131, 3, generator=generator)
    hx = tuple(torch.randn(rows, 4, size, generator=generator) for size in (5, 6, 6)) if with_hx else None
    with torch.no_grad():
        output, h_n = model(x, hx=hx, lengths=LENGTHS)
    for n, length in enumerate(LENGTHS.tolist()):
        expected, expected_h = reference(model, x[n, :length], None if hx is None else tuple(p[:, n] for p in hx))
        torch.testing.assert_close(output[n, :length].double(), expected, atol=1e-5, rtol=0)
        assert not output[n, length:].any()
        for actual, wanted in zip(h_n, expected_h, strict=True):
            torch.testing.assert_close(actual[:, n].double(), wanted, atol=1e-5, rtol=0)


def test_float64_engine_equals_the_loop_to_rounding() -> None:
    model = encoder(torch.float64, num_layers=2, bidirectional=True, cell_options={"state_size": 4})
    perturb(model)
    x = torch.randn(2, 300, 3, dtype=torch.float64)
    hx = tuple(torch.randn(4, 2, size, dtype=torch.float64) for size in (5, 4, 4))
    with torch.no_grad():
        output, h_n = model(x, hx=hx)
    for n in range(2):
        expected, expected_h = reference(model, x[n], tuple(p[:, n] for p in hx))
        torch.testing.assert_close(output[n], expected, atol=1e-10, rtol=0)
        for actual, wanted in zip(h_n, expected_h, strict=True):
            torch.testing.assert_close(actual[:, n], wanted, atol=1e-10, rtol=0)


def test_the_state_h_is_reported_only() -> None:
    model = encoder(num_layers=2)
    x = torch.randn(2, 7, 3)
    _, (h, x_re, x_im) = model(x[:, :3])
    with torch.no_grad():
        continued, _ = model(x[:, 3:], hx=(h, x_re, x_im))
        replaced, _ = model(x[:, 3:], hx=(torch.randn_like(h), x_re, x_im))
    torch.testing.assert_close(continued, replaced, atol=0, rtol=0)


def test_scan_gradients_match_finite_differences() -> None:
    generator = torch.Generator().manual_seed(0)
    modulus = torch.tensor([0.5, 0.95, 0.0, 1.0], dtype=torch.float64)
    angle = torch.tensor([0.3, -2.0, 1.0, 0.7], dtype=torch.float64)
    lam_re = (modulus * torch.cos(angle)).requires_grad_()
    lam_im = (modulus * torch.sin(angle)).requires_grad_()
    for steps in (1, 9, 23):  # one step, three chunks of 3, six chunks of 4 with a padded last one
        b = torch.randn(1, steps, 2, 4, dtype=torch.float64, generator=generator).requires_grad_()
        x0 = torch.randn(1, 2, 4, dtype=torch.float64, generator=generator).requires_grad_()
        assert torch.autograd.gradcheck(lru_scan, (lam_re, lam_im, b, x0))
        assert torch.autograd.gradcheck(lambda a, c, d: lru_scan(a, c, d), (lam_re, lam_im, b))


def test_engine_gradients_match_finite_differences() -> None:
    model = encoder(torch.float64, hidden_size=3, num_layers=2, bidirectional=True, cell_options={"state_size": 2})
    perturb(model)
    names = [name for name, _ in model.named_parameters()]
    x = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    hx = tuple(torch.randn(4, 2, size, dtype=torch.float64, requires_grad=True) for size in (3, 2, 2))
    lengths = torch.tensor([6, 4])

    def run(x, x_re, x_im, *params):
        state = dict(zip(names, params, strict=True))
        inputs = {"lengths": lengths, "hx": (hx[0], x_re, x_im)}
        output, (h, *rest) = torch.func.functional_call(model, state, (x,), inputs)
        return output, h, *rest

    params = tuple(p.detach().clone().requires_grad_() for p in model.parameters())
    assert torch.autograd.gradcheck(run, (x, hx[1], hx[2], *params))


def test_saturated_eigenvalues_give_finite_outputs_and_gradients() -> None:
    model = encoder(num_layers=2, cell_options={"state_size": 4})
    with torch.no_grad():
        for layer in range(2):
            # |lambda| = 0 (nu huge), |lambda| -> 1 (nu very negative), huge phases (theta huge)
            getattr(model.rnn, f"nu_log_l{layer}").copy_(torch.tensor([200.0, 90.0, -60.0, -200.0]))
            getattr(model.rnn, f"theta_log_l{layer}").copy_(torch.tensor([200.0, 85.0, -200.0, 3.0]))
    x = 10 * torch.randn(3, 150, 3)
    output, h_n = model(x, lengths=torch.tensor([150, 20, 1]))
    assert torch.isfinite(output).all() and all(torch.isfinite(p).all() for p in h_n)
    (output.square().mean() + sum(p.sum() for p in h_n)).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    lam_re, lam_im = lru_eigenvalues(torch.tensor([200.0, -200.0]), torch.tensor([200.0, 0.0]))
    assert torch.hypot(lam_re, lam_im).tolist() == [0.0, 1.0]


def test_long_sequence_near_the_unit_circle_stays_exact() -> None:
    generator = torch.Generator().manual_seed(0)
    nu_log = torch.log(-torch.log(torch.tensor([0.9999, 0.999, 0.5])))
    lam_re, lam_im = lru_eigenvalues(nu_log, torch.log(torch.tensor([0.01, 3.0, 1.0])))
    b = torch.randn(2, 5000, 2, 3, generator=generator)
    x = lru_scan(lam_re, lam_im, b)
    lam = torch.complex(lam_re, lam_im).to(torch.complex128)
    state, expected = torch.zeros(2, 3, dtype=torch.complex128), []
    for step in torch.complex(b[:, :, 0], b[:, :, 1]).to(torch.complex128).unbind(1):
        state = lam * state + step
        expected.append(state)
    expected = torch.stack(expected, 1)
    scale = expected.abs().max()  # |x| grows to ~ 1 / sqrt(1 - |lambda|^2) ~ 70: compare in relative terms
    torch.testing.assert_close(x[:, :, 0].double() / scale, expected.real / scale, atol=1e-5, rtol=0)
    torch.testing.assert_close(x[:, :, 1].double() / scale, expected.imag / scale, atol=1e-5, rtol=0)


def test_initialisation_is_the_papers() -> None:
    torch.manual_seed(0)
    P, H = 20000, 8  # noqa: N806 (the paper's state size P)
    r_min, r_max, max_phase = 0.4, 0.9, math.pi
    model = LRU(8, H, 1, state_size=P, r_min=r_min, r_max=r_max, max_phase=max_phase, bidirectional=True)
    for suffix in ("_l0", "_l0_reverse"):

        def get(name: str, suffix: str = suffix) -> torch.Tensor:
            return getattr(model, name + suffix).detach().double()

        lam_re, lam_im = lru_eigenvalues(get("nu_log"), get("theta_log"))
        modulus_sq = lam_re.square() + lam_im.square()
        # ring: |lambda|^2 ~ U(r_min^2, r_max^2); phase ~ U(0, max_phase)
        assert r_min**2 <= modulus_sq.min() and modulus_sq.max() <= r_max**2
        uniform = (modulus_sq - r_min**2) / (r_max**2 - r_min**2)
        assert abs(uniform.mean() - 0.5) < 0.01 and abs(uniform.var() - 1 / 12) < 0.005
        phase = torch.exp(get("theta_log"))
        assert phase.min() > 0 and phase.max() < max_phase
        assert abs(phase.mean() / max_phase - 0.5) < 0.01
        torch.testing.assert_close(torch.exp(get("gamma_log")), torch.sqrt(1 - modulus_sq), atol=1e-6, rtol=1e-5)
        # Glorot-style complex normals: B ~ N(0, 1 / (2 H_in)) per part, C ~ N(0, 1 / P) per part
        for name, variance in (("B_re", 1 / 16), ("B_im", 1 / 16), ("C_re", 1 / P), ("C_im", 1 / P)):
            assert abs(get(name).mean()) < 0.01 * math.sqrt(variance) * 10
            assert abs(get(name).var() / variance - 1) < 0.02, name
        skip = get("D")  # H_in = H: the paper's diagonal D ~ N(0, 1)
        assert torch.equal(skip, torch.diag(torch.diagonal(skip))) and torch.diagonal(skip).abs().min() > 0
        assert not get("bias").any()
    wide = LRU(4000, 50, 1, state_size=4)  # H_in != H: N(0, 1 / H_in) entries
    assert abs(wide.D_l0.var().item() * 4000 - 1) < 0.02
    default = LRU(3, 6, 1)
    assert default.state_size == 6  # P = H
    lam_re, lam_im = lru_eigenvalues(default.nu_log_l0, default.theta_log_l0)
    assert torch.hypot(lam_re, lam_im).max() < 1


@pytest.mark.parametrize(
    ("options", "fix"),
    [
        ({"state_size": 0}, "state_size must be an integer >= 1"),
        ({"state_size": 2.5}, "state_size must be an integer >= 1"),
        ({"r_min": 0.9, "r_max": 0.5}, "0 <= r_min <= r_max <= 1"),
        ({"r_max": 1.5}, "0 <= r_min <= r_max <= 1"),
        ({"r_min": 1.0, "r_max": 1.0}, "r_min < 1"),
        ({"r_max": 0.0}, "r_max > 0"),
        ({"r_min": float("nan")}, "r_min must be a finite number"),
        ({"max_phase": 0.0}, "max_phase must be > 0"),
        ({"heads": 2}, "it takes: state_size, r_min, r_max, max_phase"),
    ],
)
def test_bad_cell_options_are_one_line_errors(options: dict, fix: str) -> None:
    with pytest.raises(ValueError, match=fix) as error:
        RecurrentEncoder("lru", 3, 5, cell_options=options)
    assert "\n" not in str(error.value)


def test_refusals_and_repr() -> None:
    with pytest.raises(ValueError, match="init=torch") as error:
        RecurrentEncoder("lru", 3, 5, init="orthogonal")
    assert "\n" not in str(error.value)
    model = RecurrentEncoder("lru", 3, 5, cell_options={"state_size": 7, "r_min": 0.9, "r_max": 0.999})
    assert "state_size=7" in repr(model) and "r_min=0.9" in repr(model)
    assert model.rnn.state_sizes() == (5, 7, 7) and model.state_names == ("h", "x_re", "x_im")
