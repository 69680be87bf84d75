"""seqmodels-export for decoding models (language models, encoder-decoders, CTC) and the torch-free runtime
(seqmodels.runtime) that decodes with the exported graphs: both compared with the PyTorch models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import train_tiny

from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from seqmodels import runtime  # noqa: E402  (after the skips: needs the export extra)
from seqmodels.export import export_onnx  # noqa: E402


class Exported:
    """A trained checkpoint, its PyTorch model and datamodule, and the exported file."""

    def __init__(self, out: Path, *overrides: str) -> None:
        self.ckpt_path = train_tiny(out / "run", *overrides)
        self.checkpoint = load_checkpoint(self.ckpt_path)
        self.model, self.datamodule = build_from_checkpoint(self.checkpoint, setup_data=False)
        self.model.eval()
        self.report = export_onnx(self.checkpoint, out / "model.onnx")
        self.runtime = runtime.load(self.report.path, threads=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "a.txt").write_text("the cat sat on the mat.\na dog ran to the park.\n" * 40, encoding="utf-8")
    return folder


def _language_model(tmp_path_factory, corpus: Path, cell: str) -> Exported:
    return Exported(
        tmp_path_factory.mktemp(f"lm_{cell}"),
        "experiment=char_lm",
        f"model/encoder={cell}",
        f"data.path={corpus}",
        "data.pattern=*.txt",
        "data.batch_size=4",
        "data.bptt=16",
        "model.net.hidden_size=16",
        "model.net.embedding_dim=8",
        "~callbacks.generation_samples",
    )


@pytest.fixture(scope="module")
def lstm_lm(tmp_path_factory, corpus) -> Exported:
    return _language_model(tmp_path_factory, corpus, "lstm")


@pytest.fixture(scope="module")
def gru_lm(tmp_path_factory, corpus) -> Exported:
    return _language_model(tmp_path_factory, corpus, "gru")


@pytest.fixture(scope="module")
def seq2seq(tmp_path_factory) -> Exported:
    return Exported(
        tmp_path_factory.mktemp("seq2seq"),
        "experiment=reverse",
        "data.num_train=64",
        "data.num_val=16",
        "data.num_test=16",
        "model.net.hidden_size=16",
        "model.net.embedding_dim=8",
    )


@pytest.fixture(scope="module")
def ctc(tmp_path_factory) -> Exported:
    return Exported(
        tmp_path_factory.mktemp("ctc"),
        "experiment=dtmf_ctc",
        "data.num_train=16",
        "data.num_val=8",
        "data.num_test=8",
        "model.net.encoder.hidden_size=16",
        "~callbacks.speech_samples",
    )


def _close(got: np.ndarray, expected: torch.Tensor, atol: float = 1e-4) -> None:
    """Equal within ``atol``; -inf (masked logits) exactly where PyTorch has it."""
    expected_np = expected.detach().numpy()
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(expected_np))
    finite = np.isfinite(expected_np)
    np.testing.assert_allclose(got[finite], expected_np[finite], atol=atol, rtol=0)


# ------------------------------------------------------------------------------------------------ language models
@pytest.mark.parametrize("which", ["lstm_lm", "gru_lm"])
def test_language_model_step_graph_matches_the_torch_step_for_any_batch(request, which):
    exported = request.getfixturevalue(which)
    net, rt = exported.model.net, exported.runtime
    assert exported.report.max_abs_diff is not None and exported.report.max_abs_diff < 1e-5
    assert rt.state_names == (["h", "c"] if which == "lstm_lm" else ["h"])
    g = torch.Generator().manual_seed(1)
    for batch in (1, 7):
        tokens = torch.randint(1, net.vocab_size, (batch,), generator=g)
        state_np = {
            name: np.random.default_rng(batch).normal(size=(2, batch, 16)).astype(np.float32) for name in rt.state_names
        }
        state = tuple(torch.from_numpy(state_np[name]) for name in rt.state_names)
        with torch.no_grad():
            logits, new_state = net.step(tokens, state if net.is_lstm else state[0])
        got, got_state = rt.step(tokens.numpy(), state_np)
        _close(got, logits)
        assert np.isneginf(got[:, 0]).all()  # <pad> is never generated
        for name, value in zip(rt.state_names, new_state if net.is_lstm else (new_state,), strict=True):
            _close(got_state[name], value)


@pytest.mark.parametrize("which", ["lstm_lm", "gru_lm"])
def test_runtime_greedy_generation_equals_torch_token_for_token(request, which):
    exported = request.getfixturevalue(which)
    net, dm, rt = exported.model.net, exported.datamodule, exported.runtime
    ids = dm.encode_prompt("the dog")
    assert rt.encode_prompt("the dog") == ids
    prompt = torch.tensor([ids, ids[::-1]])
    expected, expected_lengths = net.generate(prompt, 60, temperature=0, eos_id=dm.stop_id)
    got, got_lengths = rt.generate(prompt.numpy(), 60, temperature=0, eos_id=dm.stop_id)
    np.testing.assert_array_equal(got, expected.numpy())
    np.testing.assert_array_equal(got_lengths, expected_lengths.numpy())
    # seqmodels-generate's text: the prompt (without the line-start token) and the continuation
    skip = len(dm.prompt_prefix())
    (text,) = rt.generate_text("the dog", max_new_tokens=60, temperature=0)
    assert text == dm.decode(ids[skip:] + expected[0].tolist())


def test_runtime_sampling_is_reproducible_from_its_numpy_seed(lstm_lm):
    rt = lstm_lm.runtime
    first = rt.generate_text("the", max_new_tokens=40, temperature=1.0, top_k=5, num_samples=2, seed=3)
    assert first == rt.generate_text("the", max_new_tokens=40, temperature=1.0, top_k=5, num_samples=2, seed=3)
    assert first != rt.generate_text("the", max_new_tokens=40, temperature=1.0, top_k=5, num_samples=2, seed=4)
    # top_k=1 keeps only the argmax: sampling then is greedy decoding
    assert rt.generate_text("the", 30, temperature=1.0, top_k=1) == rt.generate_text("the", 30, temperature=0)


def test_runtime_filters_logits_as_torch_does():
    from seqmodels.nn.decoding import filter_logits

    logits = torch.randn(6, 30, generator=torch.Generator().manual_seed(0))
    for top_k, top_p in [(5, None), (None, 0.7), (8, 0.5), (None, 1.0)]:
        expected = filter_logits(logits, top_k, top_p)
        got = runtime.filter_logits(logits.numpy(), top_k, top_p)
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(expected.numpy()))


# ------------------------------------------------------------------------------------------------ seq2seq
def test_seq2seq_encoder_and_decoder_graphs_match_torch(seq2seq):
    net, rt = seq2seq.model.net, seq2seq.runtime
    assert seq2seq.report.max_abs_diff is not None and seq2seq.report.max_abs_diff < 1e-5
    source, lengths = rt.source_ids(["abc", "abcdefgh", "hgf"])
    for text, row, n in zip(["abc", "abcdefgh", "hgf"], source, lengths, strict=True):
        assert row[:n].tolist() == seq2seq.datamodule.source_from_text(text).tolist()
    with torch.no_grad():
        memory, state = net.encode(torch.from_numpy(source), torch.from_numpy(lengths))
    encoded = rt.encode(source, lengths)
    _close(encoded["memory"], memory.outputs)
    np.testing.assert_array_equal(encoded["mask"], memory.mask.numpy())
    # the bridge from the encoder's final states: LSTM h and c at each row's last step, as the packed encoder
    _close(encoded["h"], state.rnn[0])
    _close(encoded["c"], state.rnn[1])
    tokens = torch.full((3,), net.bos_id)
    with torch.no_grad():
        logits, new_state = net._step_fn(memory)(tokens, state)
    got, got_state = rt.step(tokens.numpy(), encoded)
    _close(got, logits)
    _close(got_state["feed"], new_state.feed)
    _close(got_state["c"], new_state.rnn[1])


def test_runtime_seq2seq_greedy_and_beam_search_equal_torch(seq2seq):
    net, rt, dm = seq2seq.model.net, seq2seq.runtime, seq2seq.datamodule
    texts = ["abcdef", "ba", "fedcbaabc", "cab"]
    source, lengths = rt.source_ids(texts)
    src, lens = torch.from_numpy(source), torch.from_numpy(lengths)
    expected, expected_lengths = net.greedy(src, lens, 15)
    got, got_lengths = rt.greedy(source, lengths, 15)
    np.testing.assert_array_equal(got, expected.numpy())
    np.testing.assert_array_equal(got_lengths, expected_lengths.numpy())
    for beam_size, n_best, penalty in [(1, 1, 1.0), (4, 3, 1.0), (3, 2, 0.0)]:
        expected_beams = net.beam_search(src, lens, beam_size, 15, penalty, n_best)
        got_beams = rt.beam_search(source, lengths, beam_size, 15, penalty, n_best)
        assert [[t for t, _ in h] for h in got_beams] == [[t for t, _ in h] for h in expected_beams]
        scores = [s for h in got_beams for _, s in h]
        np.testing.assert_allclose(scores, [s for h in expected_beams for _, s in h], atol=1e-4)
    # seqmodels-predict's text output: each text decoded with the output length its own length allows
    expected_text = []
    for row in range(len(texts)):
        one_src, one_len = src[row : row + 1, : int(lens[row])], lens[row : row + 1]
        max_len = seq2seq.model.max_decode_length(one_len)
        (best,) = net.beam_search(one_src, one_len, 3, max_len, seq2seq.model.length_penalty, 2)
        expected_text.append([(dm.target_text(ids), score) for ids, score in best])
    got_text = rt.translate(texts, beam_size=3, n_best=2)
    assert [[t for t, _ in h] for h in got_text] == [[t for t, _ in h] for h in expected_text]


# ------------------------------------------------------------------------------------------------ CTC
def test_ctc_graph_matches_torch_and_transcribes_as_it_does(ctc):
    net, model, rt = ctc.model.net, ctc.model, ctc.runtime
    assert ctc.report.max_abs_diff is not None and ctc.report.max_abs_diff < 1e-5
    assert rt.multiple == 2  # frame stacking in pairs: the graph takes an even number of frames
    g = torch.Generator().manual_seed(5)
    features = [torch.randn(n, net.input_size, generator=g) for n in (1, 8, 31, 20)]
    log_probs, lengths = rt.log_probs([f.numpy() for f in features])
    for i, f in enumerate(features):
        with torch.no_grad():
            expected, expected_lengths = net(f.unsqueeze(0), torch.tensor([len(f)]))
        assert lengths[i] == int(expected_lengths[0])
        _close(log_probs[i, : lengths[i]], expected[0])
        assert (log_probs[i, lengths[i] :] == 0).all()
    expected_text = [model.decode(*net(f.unsqueeze(0), torch.tensor([len(f)])))[0] for f in features]
    assert rt.transcribe([f.numpy() for f in features]) == expected_text


def test_frame_stacking_traces_with_a_symbolic_length_and_keeps_its_outputs():
    from seqmodels.nn.ctc import FrameStacking

    stacking = FrameStacking(3, factor=3)
    x = torch.arange(2 * 7 * 3, dtype=torch.float32).view(2, 7, 3)
    out, lengths = stacking(x, torch.tensor([7, 4]))
    assert out.shape == (2, 3, 9) and lengths.tolist() == [3, 2]
    assert out[0, 2].tolist() == [*x[0, 6].tolist(), 0, 0, 0, 0, 0, 0]  # the last group completed with zeros
    assert out[1, 1].tolist() == [*x[1, 3].tolist(), 0, 0, 0, 0, 0, 0]  # frames past the length are zero


# ------------------------------------------------------------------------------------------------ runtime contract
def test_importing_the_runtime_does_not_import_torch():
    code = "import sys, seqmodels.runtime; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_runtime_generation_runs_in_a_process_without_torch(lstm_lm):
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
        "from seqmodels.runtime import load\n"
        f"print(load({str(lstm_lm.report.path)!r}).generate_text('the', 20, temperature=0)[0])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip("\n") == lstm_lm.runtime.generate_text("the", 20, temperature=0)[0]


def test_missing_or_corrupt_files_are_one_line_errors_naming_the_fix(tmp_path, seq2seq):
    with pytest.raises(
        runtime.ExportedModelError, match=r"does not exist; export the checkpoint with: seqmodels-export"
    ):
        runtime.load(tmp_path / "absent.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    with pytest.raises(runtime.ExportedModelError, match=r"not a readable ONNX model .*export it again") as info:
        runtime.load(corrupt)
    assert "\n" not in str(info.value)
    # the encoder without its decoder graph next to it
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(seq2seq.report.path.read_bytes())
    with pytest.raises(runtime.ExportedModelError, match=r"lonely\.decoder\.onnx does not exist"):
        runtime.load(lonely)


def test_a_graph_without_runtime_metadata_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(runtime.ExportedModelError, match="holds no seqmodels runtime description"):
        runtime.load(path)


def test_tasks_that_do_not_export_are_refused_in_one_line(tmp_path):
    from seqmodels.callbacks import CHECKPOINT_KEY

    conditional = {
        CHECKPOINT_KEY: {"config": {"model": {"_target_": "seqmodels.tasks.ConditionalGenerationTask"}}},
        "state_dict": {},
    }
    with pytest.raises(ValueError, match="ConditionalGenerationTask checkpoints do not export yet") as info:
        export_onnx(conditional, tmp_path / "c.onnx")
    assert "\n" not in str(info.value)


def test_seqmodels_export_cli_writes_a_runnable_language_model(lstm_lm, tmp_path):
    output = tmp_path / "cli.onnx"
    result = subprocess.run(
        [sys.executable, "-m", "seqmodels.cli.export", f"ckpt_path={lstm_lm.ckpt_path}", f"output_file={output}"],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "onnxruntime matches PyTorch within" in result.stdout
    assert runtime.load(output).generate_text("the", 25, temperature=0) == lstm_lm.runtime.generate_text(
        "the", 25, temperature=0
    )


def test_a_language_model_export_does_not_fix_the_length_of_later_exports(lstm_lm, tmp_path):
    """Exporting the LM step (an LSTM of length 1) must not leave torch's LSTM decomposition cached: a later
    export in the same process would unroll its LSTM over the traced length and refuse any other."""
    from seqmodels.export import export_sequence_net
    from seqmodels.nn import ManyToOneNet, RecurrentEncoder, TokenEmbedding

    export_onnx(lstm_lm.checkpoint, tmp_path / "lm.onnx", verify=False)
    net = ManyToOneNet(RecurrentEncoder("lstm", 8, 8, batch_first=True), 2, frontend=TokenEmbedding(50, 8)).eval()
    report = export_sequence_net(net, "probs", False, tmp_path / "classifier.onnx")  # verified at another length
    assert report.max_abs_diff is not None and report.max_abs_diff < 1e-5
