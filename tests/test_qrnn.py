"""QRNN behind RecurrentEncoder: a step-by-step loop of Bradbury et al. 2016's equations (every window and pooling,
uni- and bidirectional, padding, hx), streaming with the input window, saturation, the fused layer's gradients,
zoneout, the init and the one-line refusals."""

from __future__ import annotations

import pytest
import torch

from seqmodels.nn import RecurrentEncoder
from seqmodels.nn.qrnn import QRNN, qrnn_layer


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5) -> None:
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


def reference(rnn: QRNN, x: torch.Tensor, hx: tuple[torch.Tensor, ...] | None = None, keep: float = 1.0):
    """One unpadded sequence x (T, H_in), step by step; hx: (h, c, window) rows (D * num_layers, S); keep scales
    1 - f_t (and i_t), the evaluation form of zoneout. Returns (output (T, D * H), (h_n, c_n, window_n))."""
    H, D, k, width = rnn.hidden_size, rnn.num_directions, rnn.window, rnn.window_features
    inputs, finals = x, []
    for layer in range(rnn.num_layers):
        outputs = []
        features = inputs.shape[-1]
        for direction in range(D):
            row = layer * D + direction
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            weight = getattr(rnn, f"weight_ih{suffix}")
            bias = getattr(rnn, f"bias_ih{suffix}") if rnn.bias else torch.zeros(weight.shape[0], dtype=x.dtype)
            c = hx[1][row] if hx is not None else torch.zeros(H, dtype=x.dtype)
            if hx is not None and k > 1:
                history = list(hx[2][row].view(k - 1, width)[:, :features].unbind(0))  # oldest first
            else:
                history = [torch.zeros(features, dtype=x.dtype)] * (k - 1)
            h, steps = None, []
            for x_t in inputs.flip(0) if direction else inputs:
                history.append(x_t)
                pre = weight @ torch.cat([history[-1 - j] for j in range(k)]) + bias  # [x_t; x_{t-1}; ...]
                z, f = torch.tanh(pre[:H]), torch.sigmoid(pre[H : 2 * H])
                if rnn.pooling == "ifo":
                    i = torch.sigmoid(pre[3 * H :])
                    c = (1 - (1 - f) * keep) * c + i * keep * z
                else:
                    c = (1 - (1 - f) * keep) * c + (1 - f) * keep * z
                h = c if rnn.pooling == "f" else torch.sigmoid(pre[2 * H : 3 * H]) * c
                steps.append(h)
            if k > 1:
                recent = torch.stack(history[-(k - 1) :])
                window = torch.nn.functional.pad(recent, (0, width - features)).reshape(-1)
            else:
                window = torch.zeros(0, dtype=x.dtype)
            finals.append((h, c, window))
            y = torch.stack(steps)
            outputs.append(y.flip(0) if direction else y)
        inputs = torch.cat(outputs, dim=-1)
    return inputs, tuple(torch.stack(column) for column in zip(*finals, strict=True))


def encoder(**kwargs) -> RecurrentEncoder:
    torch.manual_seed(0)
    cell_options = kwargs.pop("cell_options", {})
    options = dict(input_size=3, hidden_size=5, batch_first=True) | kwargs
    return RecurrentEncoder("qrnn", **options, cell_options=cell_options).eval()


def perturb(model: RecurrentEncoder, scale: float = 0.3) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))


@pytest.mark.parametrize("window", [1, 2, 3])
@pytest.mark.parametrize("pooling", ["fo", "f", "ifo"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_matches_a_loop_of_the_equations(window: int, pooling: str, bidirectional: bool) -> None:
    """float64 engine vs the loop: 2 layers, hx (c and the input window) given, lengths 1 and 2 (< window - 1 + 1)."""
    model = encoder(num_layers=2, bidirectional=bidirectional, cell_options=dict(window=window, pooling=pooling))
    model.double()
    perturb(model)
    rnn = model.rnn
    generator = torch.Generator().manual_seed(1)
    lengths = torch.tensor([9, 1, 2, 5])
    x = torch.randn(4, 9, 3, generator=generator, dtype=torch.float64)  # garbage past each length
    hx = tuple(torch.randn(rnn.num_directions * 2, 4, size, generator=generator, dtype=torch.float64)
               for size in rnn.state_sizes())  # fmt: skip
    with torch.no_grad():
        output, h_n = model(x, lengths=lengths, hx=hx)
        assert [p.shape[-1] for p in h_n] == [5, 5, (window - 1) * max(3, rnn.num_directions * 5)]
        for n, length in enumerate(lengths.tolist()):
            expected, expected_h = reference(rnn, x[n, :length], tuple(p[:, n] for p in hx))
            close(output[n, :length], expected, atol=1e-12)
            assert not output[n, length:].any()
            for actual, wanted in zip(h_n, expected_h, strict=True):
                close(actual[:, n], wanted, atol=1e-12)


@pytest.mark.parametrize("window", [1, 2, 3])
def test_float32_matches_the_loop_over_several_blocks(window: int) -> None:
    """float32 within 1e-5 over 150 steps at batch 16 (64-step blocks: three blocks), without hx."""
    model = encoder(input_size=4, hidden_size=6, cell_options=dict(window=window))
    perturb(model)
    x = torch.randn(16, 150, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        output, h_n = model(x)
        reference_model = encoder(input_size=4, hidden_size=6, cell_options=dict(window=window)).double()
        reference_model.load_state_dict(model.state_dict())
        for n in (0, 7, 15):
            expected, expected_h = reference(reference_model.rnn, x[n].double())
            close(output[n], expected.float())
            for actual, wanted in zip(h_n, expected_h, strict=True):
                close(actual[:, n], wanted.float())


def test_results_do_not_depend_on_the_block_size() -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(3, 23, 4, generator=generator)
    weight = 0.5 * torch.randn(15, 8, generator=generator)  # fo-pooling, H = 5, window 2
    bias, c0 = torch.randn(15, generator=generator), torch.randn(3, 5, generator=generator)
    past = torch.randn(3, 1, 4, generator=generator)
    mask = (torch.arange(23).unsqueeze(0) < torch.tensor([[23], [10], [1]])).unsqueeze(-1).float()
    expected = qrnn_layer(x, weight, bias, c0, past, mask, mask)
    for block_steps in (1, 2, 7, 23):
        actual = qrnn_layer(x, weight, bias, c0, past, mask, mask, block_steps=block_steps)
        for a, e in zip(actual, expected, strict=True):
            close(a, e)


@pytest.mark.parametrize("pooling", ["fo", "f", "ifo"])
def test_fused_layer_gradients(pooling: str) -> None:
    """gradcheck of the fused layer's backward (float64) over several blocks, with c0, a window, padding and a
    zoneout-like keep multiplier."""
    generator = torch.Generator().manual_seed(4)
    blocks = {"f": 2, "fo": 3, "ifo": 4}[pooling]
    N, L, features, H, k = 2, 7, 3, 4, 3
    x = torch.randn(N, L, features, generator=generator, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(blocks * H, k * features, generator=generator, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(blocks * H, generator=generator, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(N, H, generator=generator, dtype=torch.float64, requires_grad=True)
    past = torch.randn(N, k - 1, features, generator=generator, dtype=torch.float64, requires_grad=True)
    mask = (torch.arange(L).unsqueeze(0) < torch.tensor([[L], [4]])).unsqueeze(-1).double()
    keep = torch.rand(N, L, H, generator=generator, dtype=torch.float64).round() * 0.7 + 0.3

    def layer(x, weight, bias, c0, past):
        output, c_last, _ = qrnn_layer(x, weight, bias, c0, past, keep * mask, mask, pooling, block_steps=3)
        return output, c_last

    assert torch.autograd.gradcheck(layer, (x, weight, bias, c0, past))


@pytest.mark.parametrize("pooling", ["fo", "ifo"])
def test_saturated_gates_stay_finite(pooling: str) -> None:
    model = encoder(num_layers=2, cell_options=dict(window=2, pooling=pooling)).train()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1e4)
    x = 100 * torch.randn(2, 300, 3)
    output, h_n = model(x)
    (output.sum() + h_n[1].sum()).backward()
    assert torch.isfinite(output).all()
    if pooling == "fo":  # c_t is a convex combination of c_{t-1} and z_t in [-1, 1]
        assert output.abs().max() <= 1
    for name, param in model.named_parameters():
        assert torch.isfinite(param.grad).all(), name


@pytest.mark.parametrize("options", [dict(window=1), dict(window=3, pooling="ifo"), dict(window=4, pooling="f")])
def test_step_and_stream_carry_the_window(options: dict) -> None:
    model = encoder(num_layers=2, input_size=7, cell_options=options)  # window padded to input_size = 7 > H = 5
    perturb(model)
    x = torch.randn(2, 20, 7, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected, expected_h = model(x)
        state, steps = model.initial_state(2), []
        assert state[2].shape == (2, 2, (options["window"] - 1) * 7)
        for x_t in x.unbind(1):
            y_t, state = model.step(x_t, state)
            steps.append(y_t)
        close(torch.stack(steps, 1), expected)
        for a, e in zip(state, expected_h, strict=True):
            close(a, e)
        outputs, state = [], None
        for chunk in x.split([1, 2, 1, 9, 7], dim=1):  # chunks shorter than the window too
            y, state = model.stream(chunk, state)
            outputs.append(y)
        close(torch.cat(outputs, 1), expected)
        for a, e in zip(state, expected_h, strict=True):
            close(a, e)


def test_zoneout_keeps_units_in_training_and_takes_the_expectation_in_evaluation() -> None:
    p = 0.3
    model = encoder(input_size=4, hidden_size=64, cell_options=dict(window=1, pooling="f", zoneout=p))
    x = torch.randn(4, 200, 4, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        output, _ = model(x)  # evaluation: 1 - f_t scaled by 1 - p
        expected, _ = reference(model.rnn, x[1], keep=1 - p)
        close(output[1], expected)
        model.train()
        torch.manual_seed(7)
        trained, _ = model(x)  # f-pooling: h = c, so a zoned unit repeats its previous output exactly
        kept = (trained[:, 1:] == trained[:, :-1]).double().mean().item()
        assert abs(kept - p) < 0.02, kept
        torch.manual_seed(7)
        assert torch.equal(model(x)[0], trained)
        model.train(False)
        assert torch.equal(model(x)[0], output)


def test_weights_and_init() -> None:
    model = RecurrentEncoder("qrnn", 40, 50, num_layers=2, bidirectional=True)
    assert model.init == "torch" and model.state_names == ("h", "c", "window")
    state = model.state_dict()
    # fo-pooling: [Z, F, O] rows, window 2: [x_t, x_{t-1}] columns
    assert state["rnn.weight_ih_l0"].shape == (150, 80)
    assert state["rnn.bias_ih_l0"].shape == (150,)
    assert state["rnn.weight_ih_l1_reverse"].shape == (150, 200)
    for name, fan_in in (("rnn.weight_ih_l0", 80), ("rnn.bias_ih_l1", 200), ("rnn.weight_ih_l1_reverse", 200)):
        bound = fan_in**-0.5  # nn.Linear over the window, as the official code
        assert state[name].abs().max() <= bound
        assert abs(state[name].std().item() - bound / 3**0.5) < 0.1 * bound
    orthogonal = RecurrentEncoder("qrnn", 40, 50, init="orthogonal", cell_options=dict(window=3, pooling="ifo"))
    assert orthogonal.rnn.weight_ih_l0.shape == (200, 120)
    assert not orthogonal.rnn.bias_ih_l0.any()
    bound = (6 / (50 + 120)) ** 0.5  # Xavier per gate block
    assert orthogonal.rnn.weight_ih_l0.abs().max() <= bound
    assert "window=3, pooling='ifo'" in repr(orthogonal)


def test_refusals_are_one_line_and_name_the_fix() -> None:
    for options, fix in [
        (dict(window=0), "window"),
        (dict(window=2.0), "window"),
        (dict(pooling="fio"), "pooling=fo"),
        (dict(zoneout=1.0), "zoneout"),
        (dict(zoneout=-0.1), "zoneout"),
    ]:
        with pytest.raises(ValueError, match=fix) as error:
            RecurrentEncoder("qrnn", 3, 5, cell_options=options)
        assert "\n" not in str(error.value)
    for options, fix in [(dict(init="identity"), "init=torch"), (dict(zoneout=0.1), "zoneout=0")]:
        with pytest.raises(ValueError, match=fix) as error:
            RecurrentEncoder("qrnn", 3, 5, **options)
        assert "\n" not in str(error.value)
    model = encoder()
    with pytest.raises(ValueError, match="h, c, window"):
        model(torch.randn(1, 4, 3), hx=torch.zeros(1, 1, 5))
