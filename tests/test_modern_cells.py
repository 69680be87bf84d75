"""The contract every cell of seqmodels' own engines keeps behind RecurrentEncoder (one parametrised suite, so a new
cell in MODERN_CELLS is held to it at once): padding never changes a result in either direction, step/stream equal
forward, hx continues a sequence, every parameter learns, checkpoints round-trip, the block options, the config
group, and the language model and forecaster built on it. Each cell's own equations are checked in its own file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from seqmodels.nn import RecurrentEncoder, RecurrentLanguageModel
from seqmodels.nn.recurrent import MODERN_CELLS

ROOT = Path(__file__).resolve().parents[1]


def parts(state) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def close(actual, expected, atol: float = 1e-5) -> None:
    for a, e in zip(parts(actual), parts(expected), strict=True):
        torch.testing.assert_close(a, e, atol=atol, rtol=0)


def encoder(cell: str, **kwargs) -> RecurrentEncoder:
    torch.manual_seed(0)
    # 16 units: the multi-head cells (4 heads by default) get 4 per head; with 2, a per-head LayerNorm is close to
    # a sign function and magnifies float32 rounding past the 1e-5 the equalities here are held to.
    options = dict(input_size=3, hidden_size=16, batch_first=True) | kwargs
    return RecurrentEncoder(cell, **options).eval()


@pytest.mark.parametrize("cell", MODERN_CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [True, False])
def test_padding_never_changes_a_result(cell: str, bidirectional: bool, batch_first: bool) -> None:
    model = encoder(cell, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)
    generator = torch.Generator().manual_seed(2)
    lengths = torch.tensor([9, 4, 1, 7])
    x = torch.randn(4, 9, 3, generator=generator)  # garbage (not zeros) past each length
    with torch.no_grad():
        output, h_n = model(x if batch_first else x.transpose(0, 1), lengths=lengths)
        output = output if batch_first else output.transpose(0, 1)
        assert output.shape == (4, 9, model.output_size)
        assert parts(h_n)[0].shape == (model.num_directions * 2, 4, 16)
        for n, length in enumerate(lengths.tolist()):
            alone = x[n : n + 1, :length]
            out_alone, h_alone = model(alone if batch_first else alone.transpose(0, 1))
            out_alone = out_alone if batch_first else out_alone.transpose(0, 1)
            close(output[n, :length], out_alone[0])
            close(tuple(p[:, n] for p in parts(h_n)), tuple(p[:, 0] for p in parts(h_alone)))
            assert not output[n, length:].any()


@pytest.mark.parametrize("cell", MODERN_CELLS)
def test_trains_under_bfloat16_autocast_with_low_precision_inputs(cell: str) -> None:
    """Mixed precision: a bf16 input (what a front-end under autocast produces) trains and stays close to float32."""
    torch.manual_seed(0)
    encoder = RecurrentEncoder(cell, input_size=6, hidden_size=8, num_layers=2, batch_first=True)
    x = torch.randn(3, 12, 6)
    lengths = torch.tensor([12, 5, 1])
    reference, _ = encoder(x, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, _ = encoder(x.to(torch.bfloat16), lengths)
        output.float().square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters())
    assert (output.float() - reference).abs().max() < 0.25  # bf16 keeps ~3 significant digits; outputs are O(1)


@pytest.mark.parametrize("cell", MODERN_CELLS)
def test_step_and_stream_equal_forward(cell: str) -> None:
    model = encoder(cell, num_layers=2, residual=True)
    x = torch.randn(2, 40, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, expected_h = model(x)
        state, steps = model.initial_state(2), []
        close(state, tuple(torch.zeros_like(p) for p in parts(expected_h)))
        for x_t in x.unbind(1):
            y_t, state = model.step(x_t, state)
            steps.append(y_t)
        close(torch.stack(steps, 1), expected)
        close(state, expected_h)
        outputs, state = [], None
        for chunk in x.split([1, 17, 2, 20], dim=1):
            y, state = model.stream(chunk, state)
            outputs.append(y)
        close(torch.cat(outputs, 1), expected)
        close(state, expected_h)


@pytest.mark.parametrize("cell", MODERN_CELLS)
def test_hx_continues_a_sequence_and_every_parameter_learns(cell: str) -> None:
    model = encoder(cell, num_layers=2, norm=True, ffn_expansion=2.0).train()
    x = torch.randn(3, 30, 3)
    full, h_full = model(x)
    first, h_first = model(x[:, :12])
    for p in parts(h_first):
        p.retain_grad()
    second, h_second = model(x[:, 12:], hx=h_first)
    close(torch.cat([first, second], 1), full)
    close(h_second, h_full)
    (second.square().sum() + full.sum()).backward()
    # The state's dynamic part gets a gradient (for cells whose "h" only reports the last output, not h).
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in parts(h_first))
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"{name} gets no gradient"


@pytest.mark.parametrize("cell", MODERN_CELLS)
def test_block_options_change_the_network_and_checkpoints_round_trip(cell: str) -> None:
    x = torch.randn(2, 6, 3)
    plain = encoder(cell, num_layers=2)
    for options in (dict(residual=True), dict(norm=True), dict(ffn_expansion=1.5)):
        model = encoder(cell, num_layers=2, **options)
        with torch.no_grad():
            for param in model.parameters():  # LayerNorm's identity start would hide the norm
                param.add_(0.05 * torch.randn_like(param))
        assert not torch.allclose(model(x)[0], plain(x)[0]), options
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        buffer.seek(0)
        copy = encoder(cell, num_layers=2, **options)
        copy.load_state_dict(torch.load(buffer, weights_only=True))
        close(copy(x)[0], model(x)[0])
    assert f"cell={cell!r}" in repr(plain)


def test_block_options_are_refused_for_classic_cells() -> None:
    for options, fix in [
        (dict(residual=True), "residual=false"),
        (dict(norm=True), "norm=false"),
        (dict(ffn_expansion=2.0), "ffn_expansion=0"),
        (dict(cell_options={"heads": 2}), "cell_options=null"),
    ]:
        with pytest.raises(ValueError, match=fix) as error:
            RecurrentEncoder("gru", 3, 8, **options)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("cell", MODERN_CELLS)
def test_wrong_hx_and_unknown_init_are_one_line_errors(cell: str) -> None:
    model = encoder(cell)
    names = model.state_names
    with pytest.raises(ValueError, match="hx") as error:
        model(torch.randn(2, 4, 3), hx=torch.zeros(1, 3, 16))  # wrong batch
    assert "\n" not in str(error.value)
    if len(names) > 1:
        with pytest.raises(ValueError, match=", ".join(names)):
            model(torch.randn(2, 4, 3), hx=torch.zeros(1, 2, 16))
    with pytest.raises(ValueError, match="init=") as error:
        RecurrentEncoder(cell, 3, 16, init="identity")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("cell", MODERN_CELLS)
def test_config_group_builds_the_encoder(cell: str) -> None:
    from hydra.utils import instantiate

    config = OmegaConf.load(ROOT / "configs" / "model" / "encoder" / f"{cell}.yaml")
    config.input_size = 3
    model = instantiate(config)
    assert isinstance(model, RecurrentEncoder) and model.cell == cell
    output, h_n = model(torch.randn(2, 5, 3), lengths=torch.tensor([5, 2]))
    assert output.shape == (2, 5, model.output_size)
    assert parts(h_n)[0].shape == (model.num_directions * model.num_layers, 2, model.hidden_size)


@pytest.mark.learns
@pytest.mark.parametrize("cell", MODERN_CELLS)
def test_language_model_streams_and_learns(cell: str) -> None:
    torch.manual_seed(0)
    lm = RecurrentLanguageModel(vocab_size=7, embedding_dim=8, hidden_size=16, num_layers=2, cell=cell)
    tokens = torch.randint(1, 7, (2, 24))
    lm.eval()
    with torch.no_grad():
        logits, state = lm(tokens)
        pieces, streamed = [], lm.initial_state(2)
        for chunk in tokens.split([5, 1, 18], dim=1):
            out, streamed = lm.stream(chunk, streamed)
            pieces.append(out)
    close(torch.cat(pieces, 1), logits)
    close(streamed, state)
    # A periodic sequence 1 2 3 4 5 6 1 2 ... is learnt: the loss falls well below its start.
    lm.train()
    data = (torch.arange(33).repeat(8, 1) + torch.arange(8).unsqueeze(1)) % 6 + 1
    optimizer = torch.optim.Adam(lm.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        logits, _ = lm(data[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 7), data[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses[::10]


@pytest.mark.parametrize("cell", MODERN_CELLS)
def test_forecaster_streams_on_the_cell(cell: str) -> None:
    from seqmodels.nn import DirectForecaster

    torch.manual_seed(0)
    net = DirectForecaster(RecurrentEncoder(cell, input_size=1, hidden_size=8, batch_first=True), horizon=3).eval()
    history = torch.randn(2, 20, 1)
    with torch.no_grad():
        expected = net(history)
        state = net.initial_state(2)
        for chunk in history.split([7, 13], dim=1):
            forecast, state = net.stream(chunk, state)
    close(forecast, expected)


@pytest.mark.parametrize("cell", MODERN_CELLS)
def test_an_unknown_cell_option_is_a_one_line_error_naming_the_known_ones(cell: str) -> None:
    with pytest.raises(ValueError, match=rf"cell_options bogus do not apply to cell='{cell}'; it takes: ") as error:
        RecurrentEncoder(cell, 3, 16, cell_options={"bogus": 1})
    assert "\n" not in str(error.value)


def test_decoders_of_cells_that_do_not_read_h_start_empty_and_need_another_path_to_the_source() -> None:
    """LRU, mLSTM and QRNN report h but do not read it: a Seq2Seq or ConditionalDecoder on them starts the decoder
    from an empty state (no dead bridge weights) and refuses a configuration that would leave it blind."""
    from seqmodels.nn import ConditionalDecoder, Seq2Seq

    for cell in ("lru", "mlstm", "qrnn"):
        assert not RecurrentEncoder(cell, 3, 16).reads_hidden_state
        model = Seq2Seq(9, 9, bos_id=2, eos_id=3, embedding_dim=8, hidden_size=16, cell=cell)
        assert model.bridge is None
        logits, _ = model(torch.randint(4, 9, (2, 5)), torch.tensor([5, 3]), torch.randint(4, 9, (2, 4)))
        logits.sum().backward()
        assert all(p.grad is not None for p in model.parameters())
        with pytest.raises(ValueError, match="attention='none' would leave the decoder without the source"):
            Seq2Seq(9, 9, bos_id=2, eos_id=3, hidden_size=16, cell=cell, attention="none")
        condition = torch.nn.Linear(4, 6)
        condition.output_size = 6
        with pytest.raises(ValueError, match="feed_condition=false would leave the decoder without it"):
            ConditionalDecoder(condition, vocab_size=7, hidden_size=16, cell=cell, feed_condition=False)
    assert RecurrentEncoder("slstm", 3, 16).reads_hidden_state and RecurrentEncoder("gru", 3, 16).reads_hidden_state


def test_a_language_model_stacks_states_of_different_widths() -> None:
    """QRNN's window state is as wide as its layer's input: the embedding for the first layer, h for the others.
    The model's state pads them to one width and cuts them back, and streaming still equals forward."""
    torch.manual_seed(0)
    lm = RecurrentLanguageModel(
        vocab_size=7,
        embedding_dim=24,
        hidden_size=16,
        num_layers=2,
        cell="qrnn",
        encoder_options={"cell_options": {"window": 3}, "residual": True},
    ).eval()
    tokens = torch.randint(1, 7, (2, 20))
    with torch.no_grad():
        logits, state = lm(tokens)
        assert state[2].shape == (2, 2, 2 * 24)  # (layers, N, (window - 1) * widest input)
        out, streamed = [], lm.initial_state(2)
        for chunk in tokens.split([1, 7, 12], dim=1):
            piece, streamed = lm.stream(chunk, streamed)
            out.append(piece)
    close(torch.cat(out, 1), logits)
    close(streamed, state)


# ------------------------------------------------------------------------------------------- narrow inputs
@pytest.mark.parametrize("cell", ["lru", "mlstm", "slstm"])
@pytest.mark.parametrize("input_size", [1, 2])
def test_the_pre_norm_leaves_a_narrow_first_input_as_it_is(cell, input_size):
    """A LayerNorm over one feature outputs its bias, over two +-1: a univariate series (or the adding problem's
    value and marker) would reach the cell erased. The first layer of a pre-norm stack reads such inputs as they
    are, so inputs that differ only in scale give different outputs."""
    torch.manual_seed(0)
    options = {"heads": 2} if cell in ("mlstm", "slstm") else {}
    encoder = RecurrentEncoder(cell, input_size, 8, batch_first=True, norm=True, cell_options=options)
    x = torch.rand(2, 6, input_size) + 0.5
    with torch.no_grad():
        small, large = encoder(x)[0], encoder(3 * x)[0]
    assert (small - large).abs().max() > 1e-3
    assert isinstance(encoder.rnn.norms[0], torch.nn.Identity)
    if input_size == 1:  # what the LayerNorm did: every input the same
        encoder.rnn.norms[0] = torch.nn.LayerNorm(1)
        with torch.no_grad():
            torch.testing.assert_close(encoder(x)[0], encoder(3 * x)[0])
    stacked = RecurrentEncoder(cell, input_size, 8, num_layers=2, batch_first=True, norm=True, cell_options=options)
    assert isinstance(stacked.rnn.norms[1], torch.nn.LayerNorm)  # the hidden stream is still normalised
    wide = RecurrentEncoder(cell, 3, 8, batch_first=True, norm=True, cell_options=options)
    assert isinstance(wide.rnn.norms[0], torch.nn.LayerNorm)


def test_a_checkpoint_whose_narrow_input_was_normalised_loads_with_its_layernorm_and_outputs():
    torch.manual_seed(1)
    old = RecurrentEncoder("lru", 1, 8, batch_first=True, norm=True)
    old.rnn.norms[0] = torch.nn.LayerNorm(1)  # how such encoders were built before
    with torch.no_grad():
        old.rnn.norms[0].bias.fill_(0.3)
    x = torch.randn(2, 5, 1)
    with torch.no_grad():
        expected = old(x)[0]
    restored = RecurrentEncoder("lru", 1, 8, batch_first=True, norm=True)
    restored.load_state_dict(old.state_dict())  # strict: no unexpected norms.0.* keys
    assert isinstance(restored.rnn.norms[0], torch.nn.LayerNorm)
    with torch.no_grad():
        torch.testing.assert_close(restored(x)[0], expected)
