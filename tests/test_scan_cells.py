"""minGRU / minLSTM behind RecurrentEncoder: the parallel scan against a step-by-step loop of the paper's equations,
saturated gates, hx continuation and the one-line refusals (padding invariance and step mode: the contract in
tests/test_modern_cells.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from seqmodels.nn import RecurrentEncoder
from seqmodels.nn.scan_cells import linear_scan, min_rnn_layer

CELLS = ["mingru", "minlstm"]
ROOT = Path(__file__).resolve().parents[1]


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def g_reference(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def reference(encoder: RecurrentEncoder, x: torch.Tensor, hx: torch.Tensor | None = None):
    """One unpadded sequence x (T, H_in), step by step from Feng et al. 2024's equations: (output (T, D*H), h_n)."""
    rnn, H, D = encoder.rnn, encoder.hidden_size, encoder.num_directions
    inputs, h_n = x, []
    for layer in range(encoder.num_layers):
        outputs = []
        for direction in range(D):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            weight = getattr(rnn, f"weight_ih{suffix}")
            bias = getattr(rnn, f"bias_ih{suffix}") if encoder.bias else torch.zeros(weight.shape[0])
            h = hx[layer * D + direction] if hx is not None else torch.zeros(H)
            steps = []
            for x_t in inputs.flip(0) if direction else inputs:
                pre = weight @ x_t + bias
                if encoder.cell == "mingru":
                    z = torch.sigmoid(pre[:H])
                    h = (1 - z) * h + z * g_reference(pre[H:])
                else:
                    f, i = torch.sigmoid(pre[:H]), torch.sigmoid(pre[H : 2 * H])
                    h = f / (f + i) * h + i / (f + i) * g_reference(pre[2 * H :])
                steps.append(h)
            h_n.append(h)
            y = torch.stack(steps)
            outputs.append(y.flip(0) if direction else y)
        out = torch.cat(outputs, dim=-1)
        inputs = out + inputs if encoder.residual and layer else out
    return inputs, torch.stack(h_n)


def encoder(cell: str, **kwargs) -> RecurrentEncoder:
    torch.manual_seed(0)
    options = dict(input_size=3, hidden_size=5, batch_first=True) | kwargs
    return RecurrentEncoder(cell, **options).eval()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize(("batch", "length"), [(3, 1), (3, 6), (3, 130), (40, 37)])
def test_scan_matches_sequential_reference(cell: str, bidirectional: bool, batch: int, length: int) -> None:
    # batch 40: several fused time blocks; length 37 (prime): chunks padded with identity steps
    model = encoder(cell, num_layers=2, bidirectional=bidirectional, residual=True)
    generator = torch.Generator().manual_seed(1)
    x = 2 * torch.randn(batch, length, 3, generator=generator)
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    lengths[0] = length
    hx = torch.randn(model.num_directions * 2, batch, 5, generator=generator)
    with torch.no_grad():
        output, h_n = model(x, lengths=lengths, hx=hx)
        for n in range(0, batch, 7 if batch > 10 else 1):
            expected, expected_h = reference(model, x[n, : lengths[n]], hx[:, n])
            close(output[n, : lengths[n]], expected)
            close(h_n[:, n], expected_h)
        assert not output[torch.arange(length)[None] >= lengths[:, None]].any()  # exactly 0 at padded steps


@pytest.mark.parametrize("cell", CELLS)
def test_no_bias_and_dropout_between_layers(cell: str) -> None:
    model = encoder(cell, num_layers=2, bias=False, dropout=0.5)
    assert not any("bias" in name for name, _ in model.named_parameters())
    x = torch.randn(2, 9, 3)
    with torch.no_grad():
        output, h_n = model(x)  # eval: no dropout
        expected, expected_h = reference(model, x[1])
        close(output[1], expected)
        close(h_n[:, 1], expected_h)
        model.train()
        torch.manual_seed(0)
        dropped, _ = model(x)
        torch.manual_seed(0)
        close(model(x)[0], dropped)  # one mask per call, from torch's generator
    assert not torch.allclose(dropped, output)


@pytest.mark.parametrize("cell", CELLS)
def test_hx_continues_a_sequence_and_gets_gradients(cell: str) -> None:
    model = encoder(cell, num_layers=2).train()
    x = torch.randn(3, 50, 3)
    full, h_full = model(x)
    first, h_first = model(x[:, :20])
    h_first.retain_grad()
    second, h_second = model(x[:, 20:], hx=h_first)
    close(torch.cat([first, second], 1), full)
    close(h_second, h_full)
    second.sum().backward()
    assert h_first.grad is not None and h_first.grad.abs().sum() > 0


@pytest.mark.parametrize("cell", CELLS)
def test_custom_backward_matches_finite_differences(cell: str) -> None:
    blocks = 2 if cell == "mingru" else 3
    options = dict(dtype=torch.float64, requires_grad=True)
    x, h0 = torch.randn(3, 11, 2, **options), torch.randn(3, 4, **options)
    weight, bias = torch.randn(blocks * 4, 2, **options), torch.randn(blocks * 4, **options)
    mask = (torch.arange(11)[None] < torch.tensor([11, 6, 1])[:, None]).unsqueeze(-1).double()
    for block_steps in (None, 4):  # one block; three blocks (the last one short)
        assert torch.autograd.gradcheck(
            lambda *args, steps=block_steps: min_rnn_layer(cell, *args, mask=mask, block_steps=steps),
            (x, weight, bias, h0),
        )


def test_linear_scan_matches_a_loop_and_finite_differences() -> None:
    a, b = torch.rand(2, 41, 3, dtype=torch.float64), torch.randn(2, 41, 3, dtype=torch.float64)
    h0 = torch.randn(2, 3, dtype=torch.float64)
    h, expected = h0, []
    for t in range(41):
        h = a[:, t] * h + b[:, t]
        expected.append(h)
    torch.testing.assert_close(linear_scan(a, b, h0), torch.stack(expected, 1))
    inputs = (a.requires_grad_(), b.requires_grad_(), h0.requires_grad_())
    assert torch.autograd.gradcheck(linear_scan, inputs)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_saturated_gates_stay_finite(cell: str, bidirectional: bool) -> None:
    model = encoder(cell, bidirectional=bidirectional, num_layers=2).train()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(1e4)  # pre-activations of +-1e4..1e6: every gate 0 or 1 in float32
    x = 100 * torch.randn(4, 300, 3)
    output, h_n = model(x, lengths=torch.tensor([300, 17, 1, 250]))
    (output.sum() + h_n.sum()).backward()
    assert torch.isfinite(output).all() and torch.isfinite(h_n).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


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
            RecurrentEncoder("minlstm", 3, 5, **options)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="residual=false"):
        RecurrentEncoder("gru", 3, 5, residual=True)
    model = encoder("mingru")
    with pytest.raises(ValueError, match="hx=h"):
        model(torch.randn(1, 4, 3), hx=(torch.zeros(1, 1, 5), torch.zeros(1, 1, 5)))


def test_weights_init_and_checkpoints() -> None:
    model = RecurrentEncoder("minlstm", 4, 5, num_layers=2, bidirectional=True)
    assert model.init == "torch" and RecurrentEncoder("gru", 4, 5).init == "orthogonal"
    names = {"rnn.weight_ih_l0": (15, 4), "rnn.bias_ih_l0": (15,), "rnn.weight_ih_l1_reverse": (15, 10)}
    state = model.state_dict()
    for name, shape in names.items():
        assert tuple(state[name].shape) == shape
    assert state["rnn.weight_ih_l0"].abs().max() <= 0.5  # nn.Linear's U(-1/sqrt(4), 1/sqrt(4)), the paper's init
    assert not RecurrentEncoder("mingru", 4, 5, init="orthogonal").state_dict()["rnn.bias_ih_l0"].any()
    copy = RecurrentEncoder("minlstm", 4, 5, num_layers=2, bidirectional=True, init="orthogonal")
    copy.load_state_dict(state)
    x = torch.randn(2, 6, 4)
    close(copy(x)[0], model(x)[0])


@pytest.mark.parametrize("cell", CELLS)
def test_config_group_builds_the_encoder(cell: str) -> None:
    from hydra.utils import instantiate

    config = OmegaConf.load(ROOT / "configs" / "model" / "encoder" / f"{cell}.yaml")
    config.input_size = 3
    model = instantiate(config)
    assert isinstance(model, RecurrentEncoder) and model.cell == cell and model.init == "torch"
    output, h_n = model(torch.randn(2, 5, 3), lengths=torch.tensor([5, 2]))
    assert output.shape == (2, 5, model.output_size) and h_n.shape == (model.num_layers, 2, model.hidden_size)


def test_language_models_weight_drop_export_and_probes_know_scan_cells():
    """A minGRU language model takes the paper's init; what needs recurrent weights refuses."""
    from seqmodels.callbacks.gradients import _encoders
    from seqmodels.export import unpacked
    from seqmodels.nn import RecurrentLanguageModel, WeightDrop

    lm = RecurrentLanguageModel(vocab_size=11, embedding_dim=6, hidden_size=8, num_layers=2, cell="mingru")
    assert all(layer.init == "torch" for layer in lm.layers)
    logits, state = lm(torch.randint(1, 11, (3, 5)))
    assert logits.shape == (3, 5, 11) and state.shape == (2, 3, 8)
    encoder = RecurrentEncoder("minlstm", input_size=4, hidden_size=8, batch_first=True)
    with pytest.raises(ValueError, match="no hidden-to-hidden weights .* set weight_drop=0"):
        WeightDrop(encoder, p=0.5)
    with pytest.raises(ValueError, match="export does not trace cell='minlstm'"), unpacked(encoder):
        pass
    classic = RecurrentEncoder("gru", input_size=4, hidden_size=8, batch_first=True)
    holder = torch.nn.ModuleDict({"scan": encoder, "classic": classic})
    assert list(_encoders(holder)) == ["scan", "classic"]
