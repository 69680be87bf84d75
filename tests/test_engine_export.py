"""ONNX export of seqmodels' own engines (MODERN_CELLS): the traceable forms (torch's scan operator, an ONNX Scan
over a dynamic length) against the engines' own forward, in PyTorch and in onnxruntime, at several batch sizes and
lengths with padding, with saturated gates at L = 2048, and the refusals that remain."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from seqmodels.nn import RecurrentEncoder
from seqmodels.nn.recurrent import MODERN_CELLS

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

from seqmodels.export import export_sequence_net, trace_to_onnx, traceable_engines, unpacked  # noqa: E402

# Small heads so that hidden_size 8 divides; QRNN with its language-model window of 2 (a window state to carry).
OPTIONS = {"mlstm": {"heads": 2}, "slstm": {"heads": 2}, "qrnn": {"window": 2}}


def make_encoder(cell: str, num_layers: int = 1, bidirectional: bool = False, **options) -> RecurrentEncoder:
    torch.manual_seed(0)
    encoder = RecurrentEncoder(
        cell,
        3,
        8,
        num_layers=num_layers,
        batch_first=True,
        bidirectional=bidirectional,
        cell_options=OPTIONS.get(cell, {}),
        **options,
    )
    return encoder.eval()


def ragged(batch: int, length: int, seed: int, scale: float = 1.0) -> tuple[Tensor, Tensor]:
    """Features (N, L, 3) and lengths (N,) with the longest sequence filling L and padding that is not 0."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[0] = length
    return scale * torch.randn(batch, length, 3, generator=g), lengths


def flat(result: tuple[Tensor, Tensor | tuple[Tensor, ...]]) -> list[Tensor]:
    output, state = result
    return [output, *(state if isinstance(state, tuple) else (state,))]


class EncoderGraph(nn.Module):
    """What the exported graph computes: the encoder's outputs and every tensor of its final state."""

    def __init__(self, encoder: RecurrentEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, inputs: Tensor, lengths: Tensor) -> tuple[Tensor, ...]:
        return tuple(flat(self.encoder(inputs, lengths)))


@pytest.mark.parametrize("cell", MODERN_CELLS)
def test_traceable_form_equals_the_engine(cell):
    """2 layers, both directions, padding and a given state, with the block options the stack applies around the
    engines: the traceable forward equals the engine's own within 1e-5, and the engine's fast path is back after."""
    encoder = make_encoder(cell, num_layers=2, bidirectional=True, residual=True, norm=True, ffn_expansion=1.0)
    inputs, lengths = ragged(4, 11, seed=1)
    zeros = encoder.rnn.initial_state(4)  # (the encoder's own refuses a bidirectional stack: not causal)
    hx = tuple(0.3 * torch.randn_like(part) for part in (zeros if isinstance(zeros, tuple) else (zeros,)))
    if cell == "slstm":  # a continued sLSTM memory has a normaliser n >= 1
        hx = tuple(part.abs() + 1 if name == "n" else part for name, part in zip(encoder.state_names, hx, strict=True))
    hx = hx[0] if len(hx) == 1 else hx
    with torch.no_grad():
        expected = flat(encoder(inputs, lengths, hx))
        with traceable_engines(encoder):
            assert encoder.rnn.traceable
            got = flat(encoder(inputs, lengths, hx))
        assert "forward" not in vars(encoder.rnn) and "traceable" not in vars(encoder.rnn)
        again = flat(encoder(inputs, lengths, hx))
    assert len(got) == len(expected) == len(encoder.state_names) + 1
    for name, g, e, a in zip(("output", *encoder.state_names), got, expected, again, strict=True):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=0, msg=lambda m, name=name: f"{name}: {m}")
        assert torch.equal(a, e)
    padded = torch.arange(11).unsqueeze(0) >= lengths.unsqueeze(1)
    assert (got[0][padded] == 0).all()


@pytest.mark.parametrize("cell", MODERN_CELLS)
def test_exported_engine_runs_any_batch_and_length_in_onnxruntime(cell, tmp_path):
    """One graph with dynamic N and L (traced at N = 3, L = 13): outputs (0 at padded steps) and final states equal
    PyTorch's engine at other batch sizes and lengths (one step; no padding), within 1e-4 up to L = 512, and stay
    finite and close with saturated gates (inputs x 1000) at L = 2048."""
    encoder = make_encoder(cell)  # both directions: the test above and the tagger's below
    graph = EncoderGraph(encoder).eval()
    names = ["output", *encoder.state_names]
    batch, steps = torch.export.Dim("N"), torch.export.Dim("L")
    path = tmp_path / f"{cell}.onnx"
    with unpacked(graph, modern_cells=True):
        trace_to_onnx(graph, ragged(3, 13, seed=0), ({0: batch, 1: steps}, {0: batch}), ["inputs", "lengths"],
                      [f"{name}_out" for name in names], path)  # fmt: skip
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    cases = [(2, 7, 1.0, 1e-5), (1, 1, 1.0, 1e-5), (4, 6, 1.0, 1e-5), (5, 512, 1.0, 1e-4), (2, 2048, 1000.0, None)]
    for n, length, scale, atol in cases:
        inputs, lengths = ragged(n, length, seed=length, scale=scale)
        if length == 6:  # nothing padded: the PyTorch engine then runs unmasked, the graph masks nothing
            lengths = torch.full_like(lengths, length)
        got = session.run(None, {"inputs": inputs.numpy(), "lengths": lengths.numpy()})
        with torch.no_grad():
            expected = graph(inputs, lengths)
        for name, g, e in zip(names, got, expected, strict=True):
            g = torch.from_numpy(g)
            assert torch.isfinite(g).all(), f"{name} at L={length}"
            if atol is None:  # saturated: relative to the values' scale (LRU and IndRNN are not bounded)
                atol = 1e-4 * max(1.0, float(e.abs().max()))
            torch.testing.assert_close(g, e, atol=atol, rtol=1e-4, msg=lambda m, name=name: f"{name}: {m}")
        padded = torch.arange(length).unsqueeze(0) >= lengths.unsqueeze(1)
        assert (torch.from_numpy(got[0])[padded] == 0).all()


def test_export_sequence_net_takes_modern_cells_and_verifies_them(tmp_path):
    """The public path (seqmodels-export's for classifiers, regressors and taggers): a bidirectional minLSTM tagger,
    verified against PyTorch and run by seqmodels.runtime unchanged."""
    from seqmodels.export import RUNTIME_KEY, _sequence_metadata, _write_metadata
    from seqmodels.nn import SequenceTaggerNet
    from seqmodels.runtime import SequenceRuntime, load
    from seqmodels.tasks.capabilities import Export

    net = SequenceTaggerNet(make_encoder("minlstm", bidirectional=True), 4).eval()
    report = export_sequence_net(net, "probs", True, tmp_path / "net.onnx")
    # verify: onnxruntime against PyTorch (the engines' own forward) on a batch of another size and length
    assert report.max_abs_diff is not None and report.max_abs_diff < 1e-5
    # the torch-free runtime runs it as it runs a classic tagger (the metadata seqmodels-export writes)
    _write_metadata(report.path, {RUNTIME_KEY: _sequence_metadata(Export.TAG_PROBABILITIES, report.path, None)})
    runtime = load(report.path)
    assert isinstance(runtime, SequenceRuntime) and runtime.kind == "tagger"
    inputs, lengths = ragged(6, 40, seed=5)
    got = runtime.run(inputs.numpy(), lengths.numpy())
    with torch.no_grad():
        expected = torch.softmax(net(inputs, lengths), dim=-1)
    expected = expected * (torch.arange(40) < lengths.unsqueeze(1)).unsqueeze(-1)
    torch.testing.assert_close(torch.from_numpy(got), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell", MODERN_CELLS)
def test_a_language_models_step_graph_carries_every_state_tensor_and_generates_as_pytorch(cell, tmp_path):
    """seqmodels-export's language-model graph with a modern cell: one input and output per state tensor (their
    widths in the metadata), verified against PyTorch, and the torch-free runtime reads a prompt and decodes
    greedily exactly as the network's own step does."""
    from seqmodels.export import export_language_model
    from seqmodels.nn import RecurrentLanguageModel
    from seqmodels.runtime import LanguageModelRuntime, load

    torch.manual_seed(0)
    net = RecurrentLanguageModel(11, 8, 8, 2, cell=cell, encoder_options={"cell_options": OPTIONS.get(cell, {})})
    net.eval()
    tokens = ["<pad>", "<unk>", *"abcdefghi"]
    vocabulary = {"tokens": tokens, "tokenizer": None, "special_ids": {"pad": 0, "unk": 1}, "prompt_prefix": []}
    report = export_language_model(net, tmp_path / "lm.onnx", {**vocabulary, "stop_id": None})
    assert report.max_abs_diff is not None and report.max_abs_diff < 1e-4
    runtime = load(report.path)
    assert isinstance(runtime, LanguageModelRuntime) and runtime.state_names == list(net.state_names)
    prompt = torch.tensor([[2, 3, 4, 5], [6, 7, 8, 9]])
    logits, state = runtime.read(prompt.numpy())
    expected_state = None
    with torch.no_grad():
        for index in range(prompt.shape[1]):
            expected, expected_state = net.step(prompt[:, index], expected_state)
        torch.testing.assert_close(torch.from_numpy(logits), expected, atol=1e-4, rtol=1e-4)
        generated, _ = runtime.generate(prompt.numpy(), 6, top_k=1)
        own, _ = net.generate(prompt, 6, top_k=1)
    assert generated.tolist() == own.tolist()


def test_step_graphs_still_refuse_modern_cells():
    """An encoder-decoder's step graph (unpacked() without modern_cells) names what exports."""
    encoder = make_encoder("mingru")
    refusal = r"^export does not trace cell='mingru' in an encoder-decoder's step graph.*whole-sequence graphs"
    with pytest.raises(ValueError, match=refusal), unpacked(EncoderGraph(encoder)):
        pass
    assert encoder.pack_sequences and not hasattr(encoder.rnn, "traceable")  # refused before changing anything
