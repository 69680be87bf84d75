"""||dL/dh_t|| against a hand derivation and per-sequence autograd, the GradientFlow callback in a real run,
and the NaN/Inf guard on an injected NaN."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from seqmodels.callbacks import GradientFlow, NonFiniteError, NonFiniteGuard
from seqmodels.callbacks.gradients import layer_of
from seqmodels.config import instantiate_callbacks
from seqmodels.nn import RecurrentEncoder
from seqmodels.train import train


@pytest.mark.parametrize("impl", ["fused", "custom"])
def test_state_gradients_of_a_scalar_rnn_match_the_hand_derivation(impl):
    # h_t = tanh(w h_{t-1} + u x_t), L = h_{T-1}: dL/dh_{T-1} = 1, dL/dh_t = dL/dh_{t+1} * w * (1 - h_{t+1}^2).
    w, u = 0.9, 0.5
    encoder = RecurrentEncoder("rnn_tanh", input_size=1, hidden_size=1, batch_first=True, impl=impl)
    with torch.no_grad():
        encoder.rnn.weight_hh_l0.fill_(w)
        encoder.rnn.weight_ih_l0.fill_(u)
        encoder.rnn.bias_ih_l0.zero_()
        encoder.rnn.bias_hh_l0.zero_()
    xs = [0.3, -1.0, 2.0, 0.1, 0.7, -0.4]
    encoder.probe_states = True
    output, _ = encoder(torch.tensor(xs).view(1, -1, 1))
    output[0, -1, 0].backward()

    h, hs = 0.0, []
    for x in xs:
        h = math.tanh(w * h + u * x)
        hs.append(h)
    expected = [1.0]
    for t in range(len(xs) - 2, -1, -1):
        expected.insert(0, expected[0] * w * (1 - hs[t + 1] ** 2))

    norms = encoder.state_gradient_norms()
    assert list(norms) == ["layer0"]
    torch.testing.assert_close(norms["layer0"], torch.tensor(expected), atol=1e-6, rtol=1e-5)
    assert norms["layer0"][0] < 0.2 * norms["layer0"][-1]  # it does vanish over 6 steps


def _reference_state_grads(encoder, x, lengths, loss_of_outputs):
    """dL/dh_t per layer and direction from torch.nn cells run on each sequence alone, with retain_grad."""
    rnn = encoder.rnn
    cell_type = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn_tanh": nn.RNNCell}[encoder.cell]
    directions = encoder.num_directions
    grads = {}
    loss, states = 0.0, []
    for n, length in enumerate(lengths.tolist()):
        layer_input = x[n, :length]
        for layer in range(encoder.num_layers):
            outputs = []
            for direction in range(directions):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                cell = cell_type(layer_input.shape[-1], encoder.hidden_size)
                cell.load_state_dict(
                    {k: getattr(rnn, k + sfx) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
                )
                order = range(length - 1, -1, -1) if direction else range(length)
                state, hs = None, [None] * length
                for t in order:
                    state = cell(layer_input[t : t + 1], state)
                    h = state[0] if isinstance(state, tuple) else state
                    h.retain_grad()
                    hs[t] = h
                    states.append((f"layer{layer}" + ("_reverse" if direction else ""), n, t, h))
                outputs.append(torch.cat(hs))
            layer_input = torch.cat(outputs, dim=-1)
        loss = loss + loss_of_outputs(layer_input, length)
    loss.backward()
    steps = x.shape[1]
    for name, _, t, h in states:
        grads.setdefault(name, torch.zeros(steps))[t] += h.grad.square().sum()
    return {name: g.sqrt() for name, g in grads.items()}


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("impl", ["fused", "custom"])
def test_state_gradients_match_autograd_on_padded_bidirectional_stacks(cell, impl):
    torch.manual_seed(0)
    encoder = RecurrentEncoder(
        cell, input_size=3, hidden_size=4, num_layers=2, bidirectional=True, batch_first=True, init="torch", impl=impl
    )
    x, lengths = torch.randn(3, 7, 3), torch.tensor([7, 4, 6])
    weights = torch.randn(8)

    def loss_of_outputs(out, length):  # the last valid step matters most, every step a little
        return (out[length - 1] * weights).sum() + 0.1 * out.square().sum()

    encoder.probe_states = True
    output, _ = encoder(x, lengths)
    sum(loss_of_outputs(output[n, :length], length) for n, length in enumerate(lengths.tolist())).backward()
    norms = encoder.state_gradient_norms()

    expected = _reference_state_grads(encoder, x, lengths, loss_of_outputs)
    assert sorted(norms) == ["layer0", "layer0_reverse", "layer1", "layer1_reverse"]
    for name, reference in expected.items():
        torch.testing.assert_close(norms[name], reference, atol=1e-5, rtol=1e-4, msg=name)


def test_probing_leaves_fused_training_numerically_unchanged():
    torch.manual_seed(0)
    encoder = RecurrentEncoder("lstm", input_size=2, hidden_size=5, batch_first=True)
    x, lengths = torch.randn(4, 6, 2), torch.tensor([6, 3, 5, 2])
    plain, _ = encoder(x, lengths)
    encoder.probe_states = True
    probed, _ = encoder(x, lengths)
    torch.testing.assert_close(probed, plain, atol=1e-6, rtol=0)
    assert encoder.state_gradient_norms() == {}  # nothing back-propagated yet


def test_layer_names():
    assert layer_of("net.encoder.rnn.weight_hh_l1_reverse") == "net.encoder.rnn.l1_reverse"
    assert layer_of("net.encoder.rnn.ln_c_weight_l0") == "net.encoder.rnn.l0"
    assert layer_of("net.head.linear.bias") == "net.head.linear"


ADDING_TINY = [
    "experiment=adding_problem",
    "data.length=12",
    "data.num_train=96",
    "data.num_val=32",
    "data.num_test=32",
    "data.batch_size=16",
    "model.net.encoder.hidden_size=8",
    "model.net.encoder.num_layers=2",
    "trainer.max_epochs=1",
    "trainer.gradient_clip_val=0.05",
    "callbacks=none",
    "test=false",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
]


def test_gradient_flow_logs_state_gradients_and_clipping(compose_train, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    flow = GradientFlow(every_n_steps=2, max_heatmap_rows=2)
    train(compose_train(*ADDING_TINY, quiet=False), extra_callbacks=[flow])

    # 6 optimizer steps, probed at 0, 2 and 4; the heat-map keeps the last 2 rows.
    assert sorted(flow.history) == ["net.encoder/layer0", "net.encoder/layer1"]
    assert [step for step, _ in flow.history["net.encoder/layer1"]] == [2, 4]
    for rows in flow.history.values():
        for _, norms in rows:
            assert norms.shape == (12,) and torch.isfinite(norms).all() and (norms > 0).all()
    assert flow.steps == 6 and flow.clipped_steps == 6  # a 0.05 clip catches every step of a fresh model

    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = events.Tags()
    assert {"state_grad/net.encoder/layer0", "state_grad_heatmap/net.encoder/layer1"} <= set(tags["images"])
    scalars = set(tags["scalars"])
    assert {
        "grad_norm/total_before_clip",
        "grad_norm/clipped_fraction",
        "grad_norm/layer/net.encoder.rnn.l1",
        "grad_norm/param/net.encoder.rnn.weight_hh_l0",
        "state_grad/net.encoder/layer0/first_over_last",
    } <= scalars
    after = [e.value for e in events.Scalars("grad_norm/total_after_clip")]
    before = [e.value for e in events.Scalars("grad_norm/total_before_clip")]
    assert [e.step for e in events.Scalars("grad_norm/total_after_clip")] == [0, 2, 4]
    assert all(b > 0.05 and a == pytest.approx(0.05, rel=1e-3) for a, b in zip(after, before, strict=True))
    assert events.Scalars("grad_norm/clipped_fraction")[-1].value == 1.0


def test_gradient_diagnostics_config_builds_both_callbacks(compose_train):
    cfg = compose_train("experiment=adding_problem", "callbacks=gradient_diagnostics")
    callbacks = instantiate_callbacks(cfg.callbacks)
    kinds = {type(cb).__name__ for cb in callbacks}
    assert {"GradientFlow", "NonFiniteGuard", "ModelCheckpoint", "EarlyStopping"} <= kinds


class _Linear(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(3, 1)
        self.snapshots = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x).squeeze(-1), y)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.snapshots.append(self.net.weight.detach().clone())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.1)


def _fit_with_nan_batch(guard):
    torch.manual_seed(0)
    x, y = torch.randn(16, 3), torch.randn(16)
    x[9] = float("nan")  # batch 2 of 4
    model = _Linear()
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[guard],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=1.0,
        accelerator="cpu",
    )
    trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=4))
    return model, trainer


def test_guard_skips_an_injected_nan_step():
    guard = NonFiniteGuard(action="skip")
    model, trainer = _fit_with_nan_batch(guard)
    assert guard.skipped_steps == 1
    assert torch.equal(model.snapshots[2], model.snapshots[1])  # the NaN step changed nothing
    assert not torch.equal(model.snapshots[3], model.snapshots[2])  # and training went on
    assert torch.isfinite(model.net.weight).all()
    adam_state = trainer.optimizers[0].state[model.net.weight]
    assert int(adam_state["step"]) == 3 and torch.isfinite(adam_state["exp_avg_sq"]).all()


def test_guard_raises_naming_the_step_and_parameter():
    with pytest.raises(NonFiniteError, match=r"training step 2 .*net\.weight has 3 of 3 non-finite values"):
        _fit_with_nan_batch(NonFiniteGuard(action="raise"))
    with pytest.raises(NonFiniteError, match="more than max_skips=0"):
        _fit_with_nan_batch(NonFiniteGuard(action="skip", max_skips=0))


class _NaNLossLinear(_Linear):
    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        # A non-finite constant term: the loss is NaN, every gradient stays finite.
        return loss + torch.tensor(float("nan") if batch_idx == 1 else 0.0)


def test_guard_catches_a_nan_loss_with_finite_gradients():
    model = _NaNLossLinear()
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[NonFiniteGuard(action="raise")],
        logger=False,
        accelerator="cpu",
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(NonFiniteError, match=r"non-finite loss \(nan\) at training step 1 .*every gradient is finite"):
        trainer.fit(model, DataLoader(TensorDataset(torch.randn(12, 3), torch.randn(12)), batch_size=4))


def test_bad_callback_arguments():
    with pytest.raises(ValueError, match="unknown action 'stop'"):
        NonFiniteGuard(action="stop")
    with pytest.raises(ValueError, match="every_n_steps must be an integer >= 1"):
        GradientFlow(every_n_steps=0)
