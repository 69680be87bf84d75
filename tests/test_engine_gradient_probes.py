"""||dL/dh_t|| probes inside seqmodels' own engines (StackedRecurrence.run_probed), for every cell of MODERN_CELLS:
against a reference built from single-layer engines run at full length and split at step t, on padded and
bidirectional stacks; probing on vs off; the GradientFlow callback on a modern cell; and vanishing gradients at
initialisation."""

from __future__ import annotations

import pytest
import torch

from seqmodels.callbacks import GradientFlow
from seqmodels.nn import RecurrentEncoder
from seqmodels.nn.recurrent import ENGINES, MODERN_CELLS
from seqmodels.train import train

# 2 heads of 4 units for the multi-head cells: a per-head LayerNorm over fewer units flattens the output.
OPTIONS = {"mlstm": {"heads": 2}, "slstm": {"heads": 2}}
HIDDEN = 8
# Cells whose recurrence reads h_t (probed as the state); the others' probe is their output only.
STATE_PROBED = tuple(cell for cell in MODERN_CELLS if ENGINES[cell].reads_h)


def make(cell: str, input_size: int = 3, **kwargs) -> RecurrentEncoder:
    torch.manual_seed(0)
    options = dict(hidden_size=HIDDEN, batch_first=True, cell_options=OPTIONS.get(cell)) | kwargs
    return RecurrentEncoder(cell, input_size, **options)


def parts(state) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def loss_of(output: torch.Tensor, h_n: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Reads the last step, every step a little, and h_n (as last-state pooling does): every probe path counts."""
    return (output[:, -1] * weights).sum() + 0.1 * output.square().sum() + 0.5 * h_n.sum()


def single_layer(encoder: RecurrentEncoder, layer: int, direction: int) -> RecurrentEncoder:
    """A 1-layer, forward-only encoder with the weights of one layer-direction of ``encoder``."""
    rnn = encoder.rnn
    width = rnn.input_size if layer == 0 else rnn.num_directions * rnn.hidden_size
    single = make(encoder.cell, width).to(next(encoder.parameters()).dtype)
    suffix = rnn.suffix(layer, direction)
    own = {name[: -len(suffix)] + "_l0": value for name, value in rnn.state_dict().items() if name.endswith(suffix)}
    single.rnn.load_state_dict(own, strict=True)
    return single


def run_with_bump(single: RecurrentEncoder, x: torch.Tensor, t: int, bump: torch.Tensor):
    """``single`` over x (N, L, F) with ``bump`` (N, H) added to h_t wherever h_t goes: the output at t, and the
    state at t (so h_n if t is the last step, and step t + 1 where the recurrence reads h). Full-length runs of
    the engine split at t and continued from the state, so no step-by-step loop."""
    out_a, state = single(x[:, : t + 1])
    state = tuple(part[0] for part in parts(state))
    h_t = state[0] + bump
    out_a = torch.cat([out_a[:, :t], (out_a[:, t] + bump).unsqueeze(1)], dim=1)
    if t + 1 == x.shape[1]:
        return out_a, h_t
    hx = tuple(part.unsqueeze(0) for part in (h_t, *state[1:]))
    out_b, final = single(x[:, t + 1 :], hx=hx if len(hx) > 1 else hx[0])
    return torch.cat([out_a, out_b], dim=1), parts(final)[0][0]


def reference_norms(encoder: RecurrentEncoder, x: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """||dL/dh_t|| per layer and direction, by autograd w.r.t. a bump on h_t of one layer-direction at a time."""
    D, layers, steps = encoder.num_directions, encoder.num_layers, x.shape[1]
    singles = {(k, d): single_layer(encoder, k, d) for k in range(layers) for d in range(D)}
    norms = {}
    for probed in singles:
        name = f"layer{probed[0]}" + ("_reverse" if probed[1] else "")
        norms[name] = torch.zeros(steps, dtype=x.dtype)
        for t in range(steps):
            bump = torch.zeros(x.shape[0], HIDDEN, dtype=x.dtype, requires_grad=True)
            layer_input, finals = x, []
            for k in range(layers):
                outputs = []
                for d in range(D):
                    inputs = layer_input.flip(1) if d else layer_input
                    if (k, d) == probed:  # t in real time; the reverse direction meets it at L - 1 - t
                        out, h_last = run_with_bump(singles[k, d], inputs, steps - 1 - t if d else t, bump)
                    else:
                        out, state = singles[k, d](inputs)
                        h_last = parts(state)[0][0]
                    outputs.append(out.flip(1) if d else out)
                    finals.append(h_last)
                layer_input = torch.cat(outputs, dim=-1)
            loss = loss_of(layer_input, torch.stack(finals), weights)
            (grad,) = torch.autograd.grad(loss, bump)
            norms[name][t] = grad.norm()
    return norms


def probed_norms(encoder: RecurrentEncoder, x: torch.Tensor, weights: torch.Tensor, lengths=None):
    encoder.probe_states = True
    output, h_n = encoder(x, lengths)
    if lengths is None:
        loss_of(output, parts(h_n)[0], weights).backward()
    else:  # each sequence's loss over its own steps, as if it ran alone
        sum(
            loss_of(output[n : n + 1, :length], parts(h_n)[0][:, n : n + 1], weights)
            for n, length in enumerate(lengths.tolist())
        ).backward()
    return encoder.state_gradient_norms()


@pytest.mark.parametrize("cell", MODERN_CELLS)
def test_probes_match_split_engine_reference_on_a_bidirectional_stack(cell):
    encoder = make(cell, num_layers=2, bidirectional=True).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    weights = torch.randn(2 * HIDDEN, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    norms = probed_norms(encoder, x, weights)
    expected = reference_norms(encoder, x, weights)
    assert sorted(norms) == ["layer0", "layer0_reverse", "layer1", "layer1_reverse"]
    for name, reference in expected.items():
        assert norms[name].shape == (5,)
        torch.testing.assert_close(norms[name], reference, atol=1e-9, rtol=1e-7, msg=f"{cell} {name}")
    # The reference itself sees the recurrence: a state-probed cell's earlier steps get more than the head's
    # direct 0.1 * 2 * h_t from the loss (not so for the output-probed cells, whose recurrence does not read h).
    direct = 0.2 * encoder(x)[0][..., :HIDDEN].detach().transpose(0, 1).flatten(1).norm(dim=1)
    if cell in STATE_PROBED:
        assert not torch.allclose(expected["layer1"][:-1], direct[:-1], atol=1e-6)
    else:
        torch.testing.assert_close(expected["layer1"][:-1], direct[:-1], atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("cell", MODERN_CELLS)
def test_padded_steps_read_zero_and_rows_match_their_own_runs(cell):
    encoder = make(cell, num_layers=2, bidirectional=True).double()
    lengths = torch.tensor([6, 3, 5])
    x = torch.randn(3, 7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))  # garbage padding
    weights = torch.randn(2 * HIDDEN, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    norms = probed_norms(encoder, x, lengths=lengths, weights=weights)
    squares = {name: torch.zeros(7, dtype=torch.float64) for name in norms}
    for n, length in enumerate(lengths.tolist()):
        # every row's raw probe gradient is exactly 0 past its length, in both directions
        for name, probe in encoder.rnn.state_probes.items():
            assert probe.grad.shape == (7, 3, HIDDEN)
            assert not probe.grad[length:, n].any(), name
    for n, length in enumerate(lengths.tolist()):
        alone = probed_norms(encoder, x[n : n + 1, :length], weights)
        for name, row in alone.items():
            squares[name][:length] += row.square()
    for name, total in squares.items():
        assert norms[name][6] == 0  # no sequence reaches the last step
        # sums of squares over rows: the padded batch's reverse direction is in real time row by row
        torch.testing.assert_close(norms[name], total.sqrt(), atol=1e-9, rtol=1e-7, msg=f"{cell} {name}")


@pytest.mark.parametrize("cell", MODERN_CELLS)
@pytest.mark.parametrize("blocks", [{}, {"residual": True, "norm": True, "ffn_expansion": 2.0}])
def test_probing_changes_neither_outputs_nor_parameter_gradients(cell, blocks):
    lengths = torch.tensor([6, 2, 5])
    x = torch.randn(3, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    weights = torch.randn(2 * HIDDEN, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    results = []
    for probing in (False, True):
        encoder = make(cell, num_layers=2, bidirectional=True, **blocks).double()
        with torch.no_grad():  # a state to continue from, as a real one is (the cells' states have constraints)
            _, warm = encoder(torch.randn(3, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(7)))
        encoder.probe_states = probing
        output, h_n = encoder(x, lengths, hx=warm)
        loss_of(output, parts(h_n)[0], weights).backward()
        grads = {name: p.grad.clone() for name, p in encoder.named_parameters()}
        results.append((output.detach(), tuple(p.detach() for p in parts(h_n)), grads))
        assert bool(encoder.rnn.state_probes) == probing  # off: no probe tensors at all
        assert (len(encoder.state_gradient_norms()) == 4) == probing
    (plain_out, plain_state, plain_grads), (out, state, grads) = results
    torch.testing.assert_close(out, plain_out, atol=1e-12, rtol=0)
    for probed, plain in zip(state, plain_state, strict=True):
        torch.testing.assert_close(probed, plain, atol=1e-12, rtol=0)
    assert grads.keys() == plain_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, plain_grads[name], atol=1e-10, rtol=1e-9, msg=name)


def test_probing_off_records_nothing_and_no_grad_runs_plain():
    encoder = make("mingru")
    x = torch.randn(2, 4, 3)
    output, _ = encoder(x)
    output.sum().backward()
    assert encoder.rnn.state_probes == {} and encoder.state_gradient_norms() == {}
    encoder.probe_states = True
    with torch.no_grad():
        encoder(x)
    assert encoder.rnn.state_probes == {}  # no backward can come, so nothing is probed
    output, _ = encoder(x)
    assert encoder.state_gradient_norms() == {}  # probed, not yet back-propagated
    output[:, -1].sum().backward()
    assert list(encoder.state_gradient_norms()) == ["layer0"]


@pytest.mark.parametrize("cell", MODERN_CELLS)
def test_gradients_vanish_back_from_a_last_step_loss_at_initialisation(cell):
    encoder = make(cell, hidden_size=16)  # the cell's own default init
    x = torch.randn(8, 30, 3, generator=torch.Generator().manual_seed(7))
    encoder.probe_states = True
    output, _ = encoder(x)
    output[:, -1].sum().backward()
    norms = encoder.state_gradient_norms()["layer0"]
    assert norms.shape == (30,) and torch.isfinite(norms).all()
    assert int(norms.argmax()) == 29  # largest at the step the loss reads
    if cell in STATE_PROBED:  # the gradient flows back through the recurrence, shrinking on the way
        assert (norms[:-1] > 0).all()
        assert norms[0] < 0.5 * norms[-1]
        assert norms[:20].mean() < norms[20:].mean()
    else:  # the output is not read by the recurrence: nothing reaches it before the last step
        assert not norms[:-1].any()


TINY = [
    "experiment=adding_problem",
    "data.length=10",
    "data.num_train=64",
    "data.num_val=16",
    "data.num_test=16",
    "data.batch_size=16",
    "model.net.encoder.hidden_size=8",
    "model.net.encoder.num_layers=2",
    "trainer.max_epochs=1",
    "callbacks=none",
    "test=false",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
]


@pytest.mark.parametrize("cell", ["mingru", "lru"])
def test_gradient_flow_logs_curves_for_a_modern_cell(compose_train, tmp_path, cell):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    flow = GradientFlow(every_n_steps=2, max_heatmap_rows=4)
    cfg = compose_train(*TINY, f"model/encoder={cell}", quiet=False)
    assert cfg.model.net.encoder.cell == cell
    train(cfg, extra_callbacks=[flow])

    # 4 optimizer steps, probed at 0 and 2
    assert sorted(flow.history) == ["net.encoder/layer0", "net.encoder/layer1"]
    for rows in flow.history.values():
        assert [step for step, _ in rows] == [0, 2]
        for _, norms in rows:
            assert norms.shape == (10,) and torch.isfinite(norms).all() and norms[-1] > 0
            if cell in STATE_PROBED:  # the last-step loss reaches earlier steps through the recurrence
                assert (norms > 0).all()
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    assert {"state_grad/net.encoder/layer0", "state_grad_heatmap/net.encoder/layer1"} <= set(events.Tags()["images"])
    assert "state_grad/net.encoder/layer1/first_over_last" in events.Tags()["scalars"]
