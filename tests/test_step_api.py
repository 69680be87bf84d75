"""Step mode (initial_state / step / stream): outputs equal the full-sequence forward for any split into chunks."""

from __future__ import annotations

import io

import pytest
import torch

from seqmodels.nn import (
    AttentionPooling,
    LinearProjection,
    ManyToOneNet,
    RecurrentEncoder,
    RecurrentLanguageModel,
    SequenceTaggerNet,
    TokenEmbedding,
    load_state,
    map_state,
    save_state,
)

CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
POOLINGS = ["last", "mean", "max", "attention", "mean+max", "last+attention"]


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)


def random_splits(length: int, generator: torch.Generator) -> list[int]:
    """Chunk sizes >= 1 summing to ``length``, drawn at random (single steps and long chunks both occur)."""
    sizes, left = [], length
    while left:
        size = int(torch.randint(1, left + 1, (1,), generator=generator))
        sizes.append(size)
        left -= size
    return sizes


def run_stream(model, inputs: torch.Tensor, sizes: list[int], time_dim: int = 1, state=None):
    """Concatenated ``stream`` outputs over chunks of ``sizes`` along ``time_dim``, and the final state."""
    outputs = []
    for chunk in inputs.split(sizes, dim=time_dim):
        y, state = model.stream(chunk, state)
        outputs.append(y)
    return torch.cat(outputs, dim=time_dim), state


def run_steps(model, inputs: torch.Tensor, time_dim: int = 1, state=None):
    """Stacked ``step`` outputs, one call per step (the first with ``state=None``)."""
    outputs = []
    for x_t in inputs.unbind(time_dim):
        y, state = model.step(x_t, state)
        outputs.append(y)
    return torch.stack(outputs, dim=time_dim), state


def assert_states_close(actual, expected) -> None:
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            close(a, e)
    else:
        close(actual, expected)


def make_encoder(cell: str, num_layers: int, impl: str, batch_first: bool = True, **kwargs) -> RecurrentEncoder:
    options = dict(kwargs)
    if impl == "custom":
        # Every custom option, so their eval-mode behaviour (expectations, no masks) is carried step by step too.
        options.update(layer_norm=cell == "lstm", zoneout=0.3, recurrent_dropout=0.2)
    encoder = RecurrentEncoder(
        cell,
        input_size=3,
        hidden_size=6,
        num_layers=num_layers,
        batch_first=batch_first,
        dropout=0.25 if num_layers > 1 else 0.0,
        impl=impl,
        **options,
    )
    if impl == "custom":
        with torch.no_grad():  # layer-norm gains of 1 and shifts of 0 would hide a mix-up of its parameters
            for name, param in encoder.named_parameters():
                if name.startswith("rnn.ln_"):
                    param.add_(0.1 * torch.randn_like(param))
    return encoder.eval()


# ---------------------------------------------------------------------------------------------------- encoder
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("impl", ["fused", "custom"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_encoder_stream_and_step_equal_forward(cell, num_layers, impl, batch_first):
    torch.manual_seed(0)
    encoder = make_encoder(cell, num_layers, impl, batch_first)
    x = torch.randn(3, 9, 3) if batch_first else torch.randn(9, 3, 3)
    if impl == "custom" and cell == "lstm":
        # LayerNorm-LSTM: normalising the small early cell states amplifies float32 rounding so much that forward
        # itself moves by ~5e-6 when its inputs move by 1e-7 (the input projection of a chunk and of the whole
        # sequence round differently), so the exact equality is checked in float64.
        encoder, x = encoder.double(), x.double()
    time_dim = 1 if batch_first else 0
    with torch.no_grad():
        expected, expected_state = encoder(x)
        generator = torch.Generator().manual_seed(len(cell) + 10 * num_layers)
        for _ in range(3):
            streamed, state = run_stream(encoder, x, random_splits(9, generator), time_dim)
            close(streamed, expected)
            assert_states_close(state, expected_state)
        stepped, state = run_steps(encoder, x, time_dim)
    close(stepped, expected)
    assert_states_close(state, expected_state)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("impl", ["fused", "custom"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm_projection_streams(impl, num_layers):
    torch.manual_seed(1)
    encoder = make_encoder("lstm", num_layers, impl, proj_size=4)
    h_0, c_0 = encoder.initial_state(2)
    assert h_0.shape == (num_layers, 2, 4) and c_0.shape == (num_layers, 2, 6)
    x = torch.randn(2, 7, 3)
    with torch.no_grad():
        expected, expected_state = encoder(x)
        streamed, state = run_stream(encoder, x, [3, 1, 3])
        stepped, _ = run_steps(encoder, x)
    assert streamed.shape == (2, 7, 4)
    close(streamed, expected)
    close(stepped, expected)
    assert_states_close(state, expected_state)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_initial_state_is_zeros_and_none_means_initial(cell):
    encoder = make_encoder(cell, 2, "fused")
    state = encoder.initial_state(4, dtype=torch.float64)
    tensors = state if isinstance(state, tuple) else (state,)
    assert all(t.shape == (2, 4, 6) and t.dtype == torch.float64 and not t.any() for t in tensors)
    x = torch.randn(4, 5, 3)
    with torch.no_grad():
        from_none, _ = encoder.stream(x, None)
        from_zeros, _ = encoder.stream(x, encoder.initial_state(4))
        step_none, _ = encoder.step(x[:, 0])
    close(from_none, from_zeros)
    close(step_none, from_zeros[:, 0])


def test_encoder_step_refuses_a_chunk():
    encoder = make_encoder("gru", 1, "fused")
    with pytest.raises(ValueError, match="use stream"):
        encoder.step(torch.randn(2, 4, 3))


# ---------------------------------------------------------------------------------------------------- networks
def make_many_to_one(pooling: str, cell: str = "gru", frontend: str = "linear", num_layers: int = 2) -> ManyToOneNet:
    if frontend == "token":
        front, input_size = TokenEmbedding(11, 4), 4
    elif frontend == "linear":
        front, input_size = LinearProjection(3, 4, activation="tanh"), 4
    else:
        front, input_size = None, 3
    encoder = RecurrentEncoder(cell, input_size=input_size, hidden_size=5, num_layers=num_layers, batch_first=True)
    net = ManyToOneNet(encoder, 3, frontend=front, pooling=pooling, head_hidden_size=7, dropout=0.2, input_noise=0.5)
    return net.eval()


def make_inputs(frontend: str, n: int, length: int) -> torch.Tensor:
    return torch.randint(1, 11, (n, length)) if frontend == "token" else torch.randn(n, length, 3)


@pytest.mark.parametrize("frontend", ["token", "linear", "none"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_many_to_one_stream_is_the_prefix_prediction(pooling, cell, frontend):
    torch.manual_seed(2)
    net = make_many_to_one(pooling, cell, frontend)
    if pooling == "attention":
        net.pooling.stream_block_size = 3  # carries the online softmax across blocks within one chunk, too
    n, length = 3, 8
    inputs = make_inputs(frontend, n, length)
    with torch.no_grad():
        expected = torch.stack(
            [net(inputs[:, : t + 1], torch.full((n,), t + 1)) for t in range(length)], dim=1
        )  # (N, L, num_outputs): forward over every prefix
        streamed, _ = run_stream(net, inputs, random_splits(length, torch.Generator().manual_seed(len(pooling))))
        stepped, _ = run_steps(net, inputs)
    assert streamed.shape == (n, length, 3)
    close(streamed, expected)
    close(stepped, expected)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_many_to_one_stream_at_each_length_equals_padded_forward(pooling):
    torch.manual_seed(3)
    net = make_many_to_one(pooling)
    inputs, lengths = torch.randn(4, 6, 3), torch.tensor([6, 1, 3, 5])
    with torch.no_grad():
        expected = net(inputs, lengths)
        streamed, _ = net.stream(inputs)  # one pass over the padded batch; steps past a length are never read
    close(streamed[torch.arange(4), lengths - 1], expected)


def test_many_to_one_state_layout():
    net = make_many_to_one("attention")
    state = net.initial_state(2)
    assert set(state) == {"encoder", "pooling"}
    assert state["encoder"].shape == (2, 2, 5)
    assert set(state["pooling"]) == {"max_score", "denominator", "weighted_sum"}
    assert torch.isneginf(state["pooling"]["max_score"]).all() and state["pooling"]["weighted_sum"].shape == (2, 5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_attention_pooling_stream_is_exact_over_long_chunks_and_large_scores(cell):
    torch.manual_seed(4)
    pool = AttentionPooling(4).eval()
    with torch.no_grad():
        pool.score.weight.mul_(40.0)  # scores spread over a wide range: the online max must keep exp() finite
    outputs = torch.randn(2, 150, 4)
    with torch.no_grad():
        expected = torch.stack([pool(outputs[:, : t + 1], torch.full((2,), t + 1)) for t in range(150)], dim=1)
        streamed, _ = run_stream(pool, outputs, [70, 1, 79], state=pool.initial_state(2, 4))
    assert torch.isfinite(streamed).all()
    close(streamed, expected)


@pytest.mark.parametrize("frontend", ["token", "linear"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_tagger_stream_and_step_equal_forward(cell, frontend):
    torch.manual_seed(5)
    front = TokenEmbedding(11, 4) if frontend == "token" else LinearProjection(3, 4)
    encoder = RecurrentEncoder(cell, input_size=4, hidden_size=5, num_layers=2, batch_first=True)
    net = SequenceTaggerNet(encoder, 6, frontend=front, dropout=0.3).eval()
    inputs = make_inputs(frontend, 3, 7)
    with torch.no_grad():
        expected = net(inputs, torch.full((3,), 7))
        streamed, _ = run_stream(net, inputs, [2, 4, 1])
        stepped, _ = run_steps(net, inputs)
    close(streamed, expected)
    close(stepped, expected)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_language_model_stream_returns_forward_logits_and_step_masks_pad(cell, num_layers):
    torch.manual_seed(6)
    lm = RecurrentLanguageModel(13, embedding_dim=6, hidden_size=7, num_layers=num_layers, cell=cell).eval()
    tokens = torch.randint(1, 13, (3, 9))
    with torch.no_grad():
        expected, expected_state = lm(tokens)
        streamed, state = run_stream(lm, tokens, [4, 1, 4], state=lm.initial_state(3))
        stepped, _ = run_steps(lm, tokens)
    close(streamed, expected)
    assert_states_close(state, expected_state)
    assert torch.isneginf(stepped[..., 0]).all()  # the generation step never proposes <pad> ...
    close(stepped[..., 1:], expected[..., 1:])  # ... and otherwise equals forward
    initial = lm.initial_state(3)
    assert all(not t.any() and t.shape == (num_layers, 3, 7) for t in (initial if cell == "lstm" else (initial,)))


# ---------------------------------------------------------------------------------------------------- states
@pytest.mark.parametrize("pooling", POOLINGS)
def test_saved_state_resumes_the_stream_identically(pooling, tmp_path):
    torch.manual_seed(7)
    net = make_many_to_one(pooling, cell="lstm")
    inputs = torch.randn(2, 10, 3)
    with torch.no_grad():
        uninterrupted, final = net.stream(inputs)
        first, state = net.stream(inputs[:, :4])
        buffer = io.BytesIO()
        save_state(state, buffer)
        buffer.seek(0)
        restored = load_state(buffer)
        save_state(restored, tmp_path / "state.pt")
        restored = load_state(tmp_path / "state.pt", map_location="cpu")
        second, resumed_final = net.stream(inputs[:, 4:], restored)
    assert isinstance(restored["encoder"], tuple)  # the LSTM's (h, c) keeps its structure
    close(torch.cat([first, second], dim=1), uninterrupted)
    for a, b in zip(state_leaves(resumed_final), state_leaves(final), strict=True):
        # Internal sums (an attention denominator ~10) accumulate in a different order when split: relative rounding.
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def state_leaves(state) -> list[torch.Tensor]:
    leaves: list[torch.Tensor] = []
    map_state(lambda t: leaves.append(t) or t, state)
    return leaves


def test_save_state_refuses_anything_but_tensors():
    with pytest.raises(TypeError, match="Tensors, tuples and dicts"):
        save_state({"encoder": torch.zeros(1), "note": "text"}, io.BytesIO())


# ---------------------------------------------------------------------------------------------------- refusals
def test_bidirectional_networks_refuse_step_mode():
    encoder = RecurrentEncoder("gru", input_size=3, hidden_size=4, bidirectional=True, batch_first=True)
    tagger = SequenceTaggerNet(encoder, 2)
    many_to_one = ManyToOneNet(encoder, 2, pooling="mean")
    message = "step/stream need a causal network: .* bidirectional; train with bidirectional=false"
    calls = [
        lambda: encoder.initial_state(2),
        lambda: encoder.stream(torch.randn(2, 3, 3)),
        lambda: encoder.step(torch.randn(2, 3)),
        lambda: tagger.stream(torch.randn(2, 3, 3)),
        lambda: tagger.initial_state(2),
        lambda: many_to_one.stream(torch.randn(2, 3, 3)),
        lambda: many_to_one.step(torch.randn(2, 3)),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=message):
            call()
