"""IndRNN behind RecurrentEncoder: a step-by-step loop of Li et al. 2018's equation, hx continuation, the one-line
refusals and the config group (padding invariance and step mode: the contract in tests/test_modern_cells.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from seqmodels.nn import IndRNN, RecurrentEncoder

ROOT = Path(__file__).resolve().parents[1]


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def reference(encoder: RecurrentEncoder, x: torch.Tensor, hx: torch.Tensor | None = None):
    """One unpadded sequence x (T, H_in), step by step: h_t = relu(W x_t + b + u * h_{t-1}); (output, h_n)."""
    rnn, H, D = encoder.rnn, encoder.hidden_size, encoder.num_directions
    inputs, h_n = x, []
    for layer in range(encoder.num_layers):
        outputs = []
        for direction in range(D):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            weight, u = getattr(rnn, f"weight_ih{suffix}"), getattr(rnn, f"weight_hh{suffix}")
            bias = getattr(rnn, f"bias_ih{suffix}") if encoder.bias else torch.zeros(H)
            h = hx[layer * D + direction] if hx is not None else torch.zeros(H)
            steps = []
            for x_t in inputs.flip(0) if direction else inputs:
                h = torch.relu(weight @ x_t + bias + u * h)
                steps.append(h)
            h_n.append(h)
            y = torch.stack(steps)
            outputs.append(y.flip(0) if direction else y)
        inputs = torch.cat(outputs, dim=-1)
    return inputs, torch.stack(h_n)


def encoder(**kwargs) -> RecurrentEncoder:
    torch.manual_seed(0)
    options = dict(input_size=3, hidden_size=5, batch_first=True) | kwargs
    return RecurrentEncoder("indrnn", **options).eval()


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_a_loop_of_the_equation(bidirectional: bool, bias: bool) -> None:
    model = encoder(num_layers=2, bidirectional=bidirectional, bias=bias)
    with torch.no_grad():
        for p in model.parameters():  # non-zero biases, some negative u
            p.add_(0.1 * torch.randn_like(p))
        x = torch.randn(3, 12, 3)
        hx = torch.rand(model.num_directions * 2, 3, 5)
        output, h_n = model(x, hx=hx)
        for n in range(3):
            expected, expected_h = reference(model, x[n], hx[:, n])
            close(output[n], expected)
            close(h_n[:, n], expected_h)


def test_hx_continues_a_sequence_and_gets_gradients() -> None:
    model = encoder(num_layers=2, dropout=0.0).train()
    x = torch.randn(3, 30, 3)
    full, h_full = model(x)
    first, h_first = model(x[:, :12])
    h_first.retain_grad()
    second, h_second = model(x[:, 12:], hx=h_first)
    close(torch.cat([first, second], 1), full)
    close(h_second, h_full)
    second.sum().backward()
    assert h_first.grad is not None and h_first.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())


def test_refusals_are_one_line_and_name_the_fix() -> None:
    for options, fix in [
        (dict(impl="custom"), "impl=fused"),
        (dict(proj_size=2), "proj_size=0"),
        (dict(forget_bias=1.0), "forget_bias=null"),
        (dict(layer_norm=True), "layer_norm=false"),
        (dict(recurrent_dropout=0.1), "recurrent_dropout=0"),
        (dict(zoneout=0.1), "zoneout=0"),
        (dict(init="identity"), "init=torch"),
    ]:
        with pytest.raises(ValueError, match=fix) as error:
            RecurrentEncoder("indrnn", 3, 5, **options)
        assert "\n" not in str(error.value)
    model = encoder()
    with pytest.raises(ValueError, match="hx=h"):
        model(torch.randn(1, 4, 3), hx=(torch.zeros(1, 1, 5), torch.zeros(1, 1, 5)))


def test_weights_init_and_recurrent_max_abs() -> None:
    model = RecurrentEncoder("indrnn", 4, 5, num_layers=2, bidirectional=True)
    assert model.init == "torch" and model.is_modern
    names = {
        "rnn.weight_ih_l0": (5, 4),
        "rnn.bias_ih_l0": (5,),
        "rnn.weight_hh_l0": (5,),
        "rnn.weight_ih_l1_reverse": (5, 10),
        "rnn.weight_hh_l1_reverse": (5,),
    }
    state = model.state_dict()
    for name, shape in names.items():
        assert tuple(state[name].shape) == shape
    u = state["rnn.weight_hh_l0"]
    assert (u >= 0).all() and (u < 1).all() and not state["rnn.bias_ih_l0"].any()
    assert state["rnn.weight_ih_l0"].abs().max() <= 0.5  # nn.Linear's U(-1/sqrt(4), 1/sqrt(4))
    copy = RecurrentEncoder("indrnn", 4, 5, num_layers=2, bidirectional=True, init="orthogonal")
    copy.load_state_dict(state)
    x = torch.randn(2, 6, 4)
    close(copy(x)[0], model(x)[0])
    rnn = IndRNN(3, 4, batch_first=True, recurrent_max_abs=0.5)
    assert (rnn.weight_hh_l0 <= 0.5).all()
    with torch.no_grad():
        rnn.weight_hh_l0.fill_(3.0)
        out, _ = rnn(torch.ones(1, 3, 3))
        rnn.recurrent_max_abs = None
        rnn.weight_hh_l0.fill_(0.5)
        close(out, rnn(torch.ones(1, 3, 3))[0])  # |u| clipped to 0.5 at every forward


def test_config_group_builds_the_encoder() -> None:
    from hydra.utils import instantiate

    config = OmegaConf.load(ROOT / "configs" / "model" / "encoder" / "indrnn.yaml")
    config.input_size = 3
    model = instantiate(config)
    assert isinstance(model, RecurrentEncoder) and model.cell == "indrnn" and isinstance(model.rnn, IndRNN)
    output, h_n = model(torch.randn(2, 5, 3), lengths=torch.tensor([5, 2]))
    assert output.shape == (2, 5, model.output_size) and h_n.shape == (model.num_layers, 2, model.hidden_size)
