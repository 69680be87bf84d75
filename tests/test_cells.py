"""Research cells and CustomRNN against torch.nn (values and gradients), LayerNorm-LSTM, recurrent dropout,
zoneout, initialisation options, and RecurrentEncoder(impl="custom")."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqmodels.nn import CustomRNN, GRUCell, LayerNormLSTMCell, LSTMCell, RecurrentEncoder, RNNCell

TOL = dict(atol=1e-5, rtol=0)
TORCH_MODULES = {
    "rnn_tanh": lambda **kw: nn.RNN(nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: nn.RNN(nonlinearity="relu", **kw),
    "lstm": nn.LSTM,
    "gru": nn.GRU,
}


def _states(h):
    return h if isinstance(h, tuple) else (h,)


def _grads(module):
    return {name: p.grad.clone() for name, p in module.named_parameters()}


@pytest.mark.parametrize(
    "mine,theirs",
    [
        (lambda: RNNCell(4, 6), lambda: nn.RNNCell(4, 6)),
        (lambda: RNNCell(4, 6, nonlinearity="relu"), lambda: nn.RNNCell(4, 6, nonlinearity="relu")),
        (lambda: RNNCell(4, 6, bias=False), lambda: nn.RNNCell(4, 6, bias=False)),
        (lambda: LSTMCell(4, 6), lambda: nn.LSTMCell(4, 6)),
        (lambda: LSTMCell(4, 6, bias=False), lambda: nn.LSTMCell(4, 6, bias=False)),
        (lambda: GRUCell(4, 6), lambda: nn.GRUCell(4, 6)),
        (lambda: GRUCell(4, 6, bias=False), lambda: nn.GRUCell(4, 6, bias=False)),
    ],
)
def test_cells_match_torch_cells_over_a_sequence(mine, theirs):
    torch.manual_seed(0)
    reference, cell = theirs(), mine()
    cell.load_state_dict(reference.state_dict())
    xs = torch.randn(5, 3, 4)
    x_mine, x_ref = xs.clone().requires_grad_(), xs.clone().requires_grad_()
    is_lstm = isinstance(cell, LSTMCell)
    h_mine = h_ref = None
    loss_mine = loss_ref = 0.0
    for t in range(xs.shape[0]):
        h_mine, h_ref = cell(x_mine[t], h_mine), reference(x_ref[t], h_ref)
        for a, b in zip(_states(h_mine), _states(h_ref), strict=True):
            torch.testing.assert_close(a, b, **TOL)
        out_mine, out_ref = (h_mine[0], h_ref[0]) if is_lstm else (h_mine, h_ref)
        loss_mine, loss_ref = loss_mine + out_mine.sin().sum(), loss_ref + out_ref.sin().sum()
    loss_mine.backward()
    loss_ref.backward()
    torch.testing.assert_close(x_mine.grad, x_ref.grad, **TOL)
    for name, grad in _grads(reference).items():
        torch.testing.assert_close(dict(cell.named_parameters())[name].grad, grad, **TOL)


def test_cells_take_unbatched_input():
    torch.manual_seed(0)
    reference, cell = nn.LSTMCell(3, 5), LSTMCell(3, 5)
    cell.load_state_dict(reference.state_dict())
    x, h, c = torch.randn(3), torch.randn(5), torch.randn(5)
    for a, b in zip(cell(x, (h, c)), reference(x, (h, c)), strict=True):
        assert a.shape == (5,)
        torch.testing.assert_close(a, b, **TOL)
    with pytest.raises(ValueError, match=r"expects input \(N, 3\)"):
        cell(torch.randn(2, 4))


STACKS = [
    (cell, bidirectional, layers) for cell in TORCH_MODULES for bidirectional in (False, True) for layers in (1, 2)
]


@pytest.mark.parametrize("cell,bidirectional,num_layers", STACKS)
def test_custom_rnn_matches_torch_forward_and_gradients(cell, bidirectional, num_layers):
    torch.manual_seed(0)
    kwargs = dict(input_size=4, hidden_size=6, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    reference = TORCH_MODULES[cell](**kwargs)
    custom = CustomRNN(cell, **kwargs)
    custom.load_state_dict(reference.state_dict())  # same parameter names, same shapes
    x = torch.randn(3, 7, 4)
    directions = 2 if bidirectional else 1
    h0 = torch.randn(directions * num_layers, 3, 6)
    hx = (h0, torch.randn_like(h0)) if cell == "lstm" else h0
    x_mine, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, h_n = custom(x_mine, hx)
    ref_out, ref_h = reference(x_ref, hx)
    torch.testing.assert_close(out, ref_out, **TOL)
    for a, b in zip(_states(h_n), _states(ref_h), strict=True):
        torch.testing.assert_close(a, b, **TOL)
    (out.tanh().sum() + sum(s.square().sum() for s in _states(h_n))).backward()
    (ref_out.tanh().sum() + sum(s.square().sum() for s in _states(ref_h))).backward()
    torch.testing.assert_close(x_mine.grad, x_ref.grad, **TOL)
    for name, grad in _grads(reference).items():
        torch.testing.assert_close(dict(custom.named_parameters())[name].grad, grad, **TOL, msg=name)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_custom_lstm_with_projection_matches_torch(bidirectional):
    torch.manual_seed(0)
    reference = nn.LSTM(3, 8, num_layers=2, proj_size=4, bidirectional=bidirectional)
    custom = CustomRNN("lstm", 3, 8, num_layers=2, proj_size=4, bidirectional=bidirectional)
    custom.load_state_dict(reference.state_dict())
    x = torch.randn(6, 2, 3)
    (out, (h, c)), (ref_out, (ref_h, ref_c)) = custom(x), reference(x)
    assert out.shape == ref_out.shape == (6, 2, 4 * (2 if bidirectional else 1))
    for a, b in ((out, ref_out), (h, ref_h), (c, ref_c)):
        torch.testing.assert_close(a, b, **TOL)
    out.sum().backward()
    ref_out.sum().backward()
    for name, grad in _grads(reference).items():
        torch.testing.assert_close(dict(custom.named_parameters())[name].grad, grad, **TOL, msg=name)


@pytest.mark.parametrize("cell", list(TORCH_MODULES))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_custom_encoder_matches_fused_encoder_on_padded_batches(cell, bidirectional):
    torch.manual_seed(0)
    kwargs = dict(cell=cell, input_size=3, hidden_size=5, num_layers=2, bidirectional=bidirectional, batch_first=True)
    fused, custom = RecurrentEncoder(**kwargs), RecurrentEncoder(**kwargs, impl="custom")
    custom.load_state_dict(fused.state_dict())
    lengths = torch.tensor([6, 2, 4])
    x = torch.randn(3, 6, 3)
    x[1, 2:] = 1e3  # garbage padding must not leak into anything
    x[2, 4:] = float("nan")
    x_f, x_c = x.clone().requires_grad_(), x.clone().requires_grad_()
    (out_f, h_f), (out_c, h_c) = fused(x_f, lengths), custom(x_c, lengths)
    torch.testing.assert_close(out_c, out_f, **TOL)
    assert (out_c[1, 2:] == 0).all() and (out_c[2, 4:] == 0).all()
    for a, b in zip(_states(h_c), _states(h_f), strict=True):
        torch.testing.assert_close(a, b, **TOL)
    out_f.sum().backward()
    out_c.sum().backward()
    assert torch.isfinite(x_c.grad).all()
    torch.testing.assert_close(x_c.grad, x_f.grad.nan_to_num(0.0), **TOL)
    fused_grads = _grads(fused)
    for name, param in custom.named_parameters():
        torch.testing.assert_close(param.grad, fused_grads[name], **TOL, msg=name)


def test_eager_and_scripted_loops_agree():
    torch.manual_seed(0)
    scripted = CustomRNN("lstm", 3, 5, layer_norm=True, zoneout=0.2)
    eager = CustomRNN("lstm", 3, 5, layer_norm=True, zoneout=0.2, backend="eager")
    eager.load_state_dict(scripted.state_dict())
    x, lengths = torch.randn(7, 4, 3), torch.tensor([7, 3, 5, 1])
    scripted.eval(), eager.eval()
    torch.testing.assert_close(scripted(x, lengths=lengths)[0], eager(x, lengths=lengths)[0], atol=1e-6, rtol=0)


def test_layer_norm_lstm_cell_matches_the_stack_and_is_scale_invariant():
    torch.manual_seed(0)
    cell = LayerNormLSTMCell(3, 5)
    stack = CustomRNN("lstm", 3, 5, layer_norm=True)
    with torch.no_grad():  # non-trivial gains and shifts
        for p in cell.parameters():
            p.uniform_(-1, 1)
    stack.load_state_dict({f"{name}_l0": value for name, value in cell.state_dict().items()})
    x = torch.randn(6, 2, 3)
    state, outputs = None, []
    for t in range(6):
        state = cell(x[t], state)
        outputs.append(state[0])
    torch.testing.assert_close(stack(x)[0], torch.stack(outputs), **TOL)
    # Layer norm makes the gates independent of the weights' scale: W_ih x and W_hh h are each normalised.
    with torch.no_grad():
        stack.weight_ih_l0.mul_(7.0)
        stack.weight_hh_l0.mul_(7.0)
    torch.testing.assert_close(stack(x)[0], torch.stack(outputs), atol=1e-4, rtol=0)


def test_layer_norm_lstm_trains_through_the_encoder():
    torch.manual_seed(0)
    encoder = RecurrentEncoder("lstm", input_size=2, hidden_size=8, batch_first=True, impl="custom", layer_norm=True)
    names = {name for name, _ in encoder.named_parameters()}
    assert {"rnn.ln_ih_weight_l0", "rnn.ln_hh_bias_l0", "rnn.ln_c_weight_l0"} <= names
    assert torch.equal(encoder.rnn.ln_c_weight_l0, torch.ones(8))
    out, _ = encoder(torch.randn(4, 5, 2), torch.tensor([5, 4, 3, 2]))
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters())


@pytest.mark.parametrize("option", ["recurrent_dropout", "zoneout"])
@pytest.mark.parametrize("cell", list(TORCH_MODULES))
def test_regularisers_are_random_in_training_and_deterministic_in_eval(option, cell):
    torch.manual_seed(0)
    plain = RecurrentEncoder(cell, input_size=3, hidden_size=6, num_layers=2, batch_first=True, impl="custom")
    regularised = RecurrentEncoder(
        cell, input_size=3, hidden_size=6, num_layers=2, batch_first=True, impl="custom", **{option: 0.5}
    )
    regularised.load_state_dict(plain.state_dict())
    x = torch.randn(4, 8, 3)
    first, second = regularised(x)[0], regularised(x)[0]
    assert not torch.allclose(first, second)  # a new mask per call in training
    regularised.eval()
    plain.eval()
    evaluated = regularised(x)[0]
    torch.testing.assert_close(regularised(x)[0], evaluated, atol=0, rtol=0)
    if option == "recurrent_dropout":
        torch.testing.assert_close(evaluated, plain(x)[0], **TOL)  # inverted scaling: eval is the plain network


def test_zoneout_in_eval_is_the_expected_update():
    # Eval zoneout (Krueger et al.): h' = z h + (1 - z) cell(x, h), the same for c; checked against torch's cell.
    torch.manual_seed(0)
    z = 0.3
    custom = CustomRNN("lstm", 3, 5, zoneout=z).eval()
    reference = nn.LSTMCell(3, 5)
    reference.load_state_dict({name.removesuffix("_l0"): value for name, value in custom.state_dict().items()})
    x = torch.randn(6, 2, 3)
    h = c = torch.zeros(2, 5)
    outputs = []
    for t in range(6):
        h_new, c_new = reference(x[t], (h, c))
        h, c = z * h + (1 - z) * h_new, z * c + (1 - z) * c_new
        outputs.append(h)
    out, (h_n, c_n) = custom(x)
    torch.testing.assert_close(out, torch.stack(outputs), **TOL)
    torch.testing.assert_close(c_n[0], c, **TOL)


def test_zoneout_in_training_keeps_units_at_their_previous_value():
    torch.manual_seed(0)
    custom = CustomRNN("gru", 3, 64, zoneout=0.25)
    out, _ = custom(torch.randn(50, 8, 3))
    kept = (out[1:] == out[:-1]).float().mean().item()
    assert 0.2 < kept < 0.3


def test_recurrent_dropout_mask_is_shared_across_time():
    # A ReLU RNN with W_hh = I and no input: h_t = relu(mask * h_{t-1}). One mask per sequence makes each unit
    # either 0 from step 1 on or (1 / (1 - p)) ** t; a fresh mask per step would kill units at random later steps.
    p = 0.5
    custom = CustomRNN("rnn_relu", 1, 200, recurrent_dropout=p)
    with torch.no_grad():
        custom.weight_ih_l0.zero_()
        custom.weight_hh_l0.copy_(torch.eye(200))
        custom.bias_ih_l0.zero_()
        custom.bias_hh_l0.zero_()
    torch.manual_seed(0)
    out, _ = custom(torch.zeros(6, 3, 1), torch.ones(1, 3, 200))
    alive = out[0] > 0
    assert 0.35 < alive.float().mean() < 0.65
    for t in range(6):
        torch.testing.assert_close(out[t], alive * (1 / (1 - p)) ** (t + 1), **TOL)


def test_custom_and_fused_checkpoints_load_into_each_other():
    torch.manual_seed(0)
    fused = RecurrentEncoder("gru", input_size=2, hidden_size=4, num_layers=2, bidirectional=True)
    custom = RecurrentEncoder("gru", input_size=2, hidden_size=4, num_layers=2, bidirectional=True, impl="custom")
    assert fused.state_dict().keys() == custom.state_dict().keys()
    fused.load_state_dict(custom.state_dict())
    x = torch.randn(5, 2, 2)
    torch.testing.assert_close(fused(x)[0], custom(x)[0], **TOL)
    assert "impl='custom'" in repr(custom)


def test_init_options():
    torch.manual_seed(0)
    irnn = RecurrentEncoder("rnn_relu", input_size=2, hidden_size=5, num_layers=2, init="identity", impl="custom")
    for layer in range(2):
        assert torch.equal(getattr(irnn.rnn, f"weight_hh_l{layer}"), torch.eye(5))
        assert torch.equal(getattr(irnn.rnn, f"bias_hh_l{layer}"), torch.zeros(5))
    lstm = RecurrentEncoder("lstm", input_size=2, hidden_size=5, init="orthogonal")
    for block in lstm.rnn.weight_hh_l0.detach().chunk(4):
        torch.testing.assert_close(block @ block.T, torch.eye(5), atol=1e-5, rtol=0)
    gates = (lstm.rnn.bias_ih_l0 + lstm.rnn.bias_hh_l0).detach().chunk(4)
    assert torch.equal(gates[1], torch.ones(5)) and torch.equal(gates[0], torch.zeros(5))
    # forget_bias is applied on top of any init, torch's included, as the total of both bias vectors.
    torch_init = RecurrentEncoder("lstm", input_size=2, hidden_size=5, init="torch", forget_bias=2.0, impl="custom")
    total = (torch_init.rnn.bias_ih_l0 + torch_init.rnn.bias_hh_l0).detach().chunk(4)
    assert torch.equal(total[1], torch.full((5,), 2.0))
    assert total[0].abs().max() > 0  # the other gates keep torch's draw
    zero_forget = RecurrentEncoder("lstm", input_size=2, hidden_size=5, forget_bias=0.0)
    assert torch.equal(zero_forget.rnn.bias_ih_l0[5:10], torch.zeros(5))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(impl="cudnn"), "unknown impl 'cudnn'"),
        (dict(zoneout=0.1), "zoneout needs impl='custom'"),
        (dict(layer_norm=True), "layer_norm needs impl='custom'"),
        (dict(recurrent_dropout=0.2), "recurrent_dropout needs impl='custom'"),
        (dict(impl="custom", zoneout=1.0), r"zoneout must be in \[0, 1\)"),
        (dict(impl="custom", recurrent_dropout=-0.1), r"recurrent_dropout must be in \[0, 1\)"),
        (dict(cell="gru", impl="custom", layer_norm=True), "layer_norm is only supported by mode='lstm'"),
        (dict(cell="gru", forget_bias=1.0), "forget_bias is only used by cell='lstm'"),
        (dict(init="xavier"), "unknown init 'xavier'"),
    ],
)
def test_bad_arguments_raise_one_line_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        RecurrentEncoder(**{"cell": "lstm", "input_size": 2, "hidden_size": 4, **kwargs})
    assert "\n" not in str(info.value)


def test_custom_rnn_argument_errors():
    with pytest.raises(ValueError, match="unknown backend"):
        CustomRNN("lstm", 2, 4, backend="numba")
    with pytest.raises(ValueError, match="unknown mode"):
        CustomRNN("LSTM", 2, 4)
    with pytest.raises(ValueError, match="3-D input"):
        CustomRNN("gru", 2, 4)(torch.randn(5, 2))
    with pytest.raises(ValueError, match="exceeds the padded length"):
        CustomRNN("gru", 2, 4)(torch.randn(5, 2, 2), lengths=torch.tensor([5, 6]))


def test_custom_cells_train_from_the_config_tree(compose_train):
    from seqmodels.callbacks import CHECKPOINT_KEY
    from seqmodels.train import train

    cfg = compose_train(
        "experiment=adding_problem",
        "data.length=10",
        "data.num_train=64",
        "data.num_val=32",
        "data.num_test=32",
        "data.batch_size=32",
        "trainer.max_epochs=1",
        "model.net.encoder.hidden_size=8",
        "model.net.encoder.impl=custom",
        "model.net.encoder.layer_norm=true",
        "model.net.encoder.zoneout=0.1",
        "model.net.encoder.recurrent_dropout=0.1",
        "model.net.encoder.forget_bias=2.0",
    )
    result = train(cfg)
    assert result.metrics["test/mse"] == result.metrics["test/mse"]  # a number, not NaN
    checkpoint = torch.load(result.best_model_path, map_location="cpu", weights_only=True)
    assert "net.encoder.rnn.ln_c_weight_l0" in checkpoint["state_dict"]
    saved = checkpoint[CHECKPOINT_KEY]["config"]["model"]["net"]["encoder"]
    assert (saved["impl"], saved["zoneout"], saved["forget_bias"]) == ("custom", 0.1, 2.0)
