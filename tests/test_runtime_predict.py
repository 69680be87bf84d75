"""The torch-free runtime (seqmodels.runtime) reproduces seqmodels-predict / seqmodels-generate from the .onnx file
alone: WAV reading, resampling and log-mel features in numpy, CTC prefix beam search, taggers, classifiers, and
``python -m seqmodels.runtime``. Each is compared with the PyTorch side on tiny trained checkpoints."""

from __future__ import annotations

import re
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from tiny_runs import train_tiny

from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
from seqmodels.nn.audio import NORMALIZE_MODES, FeatureConfig, LogMelSpectrogram
from seqmodels.nn.audio import resample as torch_resample

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from seqmodels import runtime  # noqa: E402  (after the skips: needs the export extra)
from seqmodels.export import export_onnx  # noqa: E402


class Exported:
    """A tiny trained checkpoint, its datamodule and its exported runtime."""

    def __init__(self, out: Path, *overrides: str) -> None:
        self.ckpt_path = train_tiny(out / "run", *overrides)
        self.checkpoint = load_checkpoint(self.ckpt_path)
        self.model, self.datamodule = build_from_checkpoint(self.checkpoint, setup_data=False)
        self.model.eval()
        self.path = export_onnx(self.checkpoint, out / "model.onnx", verify=False).path
        self.runtime = runtime.load(self.path, threads=1)


@pytest.fixture(scope="module")
def ctc(tmp_path_factory) -> Exported:
    return Exported(
        tmp_path_factory.mktemp("ctc"),
        "experiment=dtmf_ctc",
        "data.num_train=16",
        "data.num_val=8",
        "data.num_test=8",
        "data.features.deltas=1",  # the runtime's delta path too, end to end
        "model.net.encoder.hidden_size=16",
        "~callbacks.speech_samples",
    )


@pytest.fixture(scope="module")
def tagger(tmp_path_factory) -> Exported:
    return Exported(
        tmp_path_factory.mktemp("tagger"),
        "experiment=ner",
        "data.lowercase=true",
        "model.net.frontend.embedding_dim=8",
        "model.net.encoder.hidden_size=8",
    )


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Exported:
    return Exported(
        tmp_path_factory.mktemp("classifier"),
        "experiment=text_classification",
        "data.tokenizer=word",
        "data.max_length=6",
        "model.net.frontend.embedding_dim=8",
        "model.net.encoder.hidden_size=8",
    )


@pytest.fixture(scope="module")
def vowels(tmp_path_factory) -> Exported:
    return Exported(
        tmp_path_factory.mktemp("vowels"),
        "experiment=japanese_vowels",  # reads delta features beside its 12 channels
        "++callbacks.early_stopping={}",  # the recipe has none; the tiny run removes one
        "data.deltas=2",
        "model.net.encoder.hidden_size=8",
    )


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> Exported:
    corpus = tmp_path_factory.mktemp("corpus")
    (corpus / "a.txt").write_text("the cat sat on the mat.\na dog ran to the park.\n" * 20, encoding="utf-8")
    return Exported(
        tmp_path_factory.mktemp("lm"),
        "experiment=char_lm",
        f"data.path={corpus}",
        "data.pattern=*.txt",
        "data.batch_size=4",
        "data.bptt=16",
        "model.net.hidden_size=8",
        "model.net.embedding_dim=4",
        "model.net.num_layers=1",
        "~callbacks.generation_samples",
    )


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


def _predict_cfg(ckpt_path: Path, **options):
    """seqmodels-predict's config (configs/predict.yaml defaults) with ``options``."""
    base = dict(ckpt_path=str(ckpt_path), input=None, input_file=None, output_file=None, beam_size=5, n_best=1)
    base.update(length_penalty=1.0, batch_size=64, device="cpu", weights_only=True, backtest=None, stream=False)
    return OmegaConf.create({**base, **options})


def _write_wav(path: Path, samples: np.ndarray, rate: int, width: int = 2, channels: int = 1) -> Path:
    """Integer PCM of ``width`` bytes; ``samples`` (T,) is copied to every channel, the last one scaled by 0.5."""
    frames = np.stack([samples * (0.5 if c == channels - 1 and channels > 1 else 1.0) for c in range(channels)], 1)
    scale = float(1 << (8 * width - 1)) - 1
    ints = np.clip(np.round(frames * scale), -scale - 1, scale).astype(np.int64).reshape(-1)
    if width == 1:
        raw = (ints + 128).astype(np.uint8).tobytes()
    elif width == 3:
        raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    else:
        raw = ints.astype(f"<i{width}").tobytes()
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(width)
        handle.setframerate(rate)
        handle.writeframes(raw)
    return path


def _keys(keys: str, rate: int, seed: int) -> np.ndarray:
    from seqmodels.data.speech import dtmf_signal

    return dtmf_signal(keys, np.random.default_rng(seed), sample_rate=rate, snr_db=(20, 30)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ front-end
FEATURE_CONFIGS = [
    FeatureConfig(sample_rate=8000, f_min=300.0, f_max=3400.0),  # dtmf: per-utterance normalisation
    FeatureConfig(sample_rate=16000, preemphasis=0.97, deltas=2, normalize="cumulative"),
    FeatureConfig(sample_rate=8000, win_ms=20.0, hop_ms=8.0, deltas=1, normalize=False),
    FeatureConfig(sample_rate=11025, n_mels=23, win_ms=30.0, normalize="utterance", deltas=2),
]


@pytest.mark.parametrize("config", FEATURE_CONFIGS, ids=lambda c: f"{c.sample_rate}-{c.normalize}-d{c.deltas}")
@pytest.mark.parametrize("samples", [37, 900, 6000])
def test_numpy_log_mel_features_equal_the_torch_front_end(config, samples):
    rng = np.random.default_rng(samples)
    t = np.arange(samples) / config.sample_rate
    waveform = (0.3 * np.sin(2 * np.pi * 697 * t) + 0.05 * rng.normal(size=samples)).astype(np.float32)
    expected = LogMelSpectrogram.from_config(config).featurize(torch.from_numpy(waveform)).numpy()
    got = runtime.LogMelFeatures(config.to_dict())(waveform)
    assert got.shape == expected.shape and got.dtype == np.float32
    if config.normalize is False:  # log energies: relative to their size
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-5
    else:
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_the_runtime_knows_every_feature_setting_and_normalisation_mode():
    """A field or normalize mode added to nn/audio.py FeatureConfig must be ported here before exports use it."""
    assert set(runtime.LogMelFeatures.FIELDS) == set(FeatureConfig.field_names())
    for mode in NORMALIZE_MODES:
        config = FeatureConfig(sample_rate=8000, normalize=mode)
        features = runtime.LogMelFeatures(config.to_dict())
        assert features.normalize == {True: "utterance", False: "none"}.get(config.normalize, config.normalize)
    with pytest.raises(runtime.ExportedModelError, match=r"normalize='spectral'.*upgrade seqmodels") as info:
        runtime.LogMelFeatures({**FeatureConfig().to_dict(), "normalize": "spectral"})
    assert "\n" not in str(info.value)
    with pytest.raises(runtime.ExportedModelError, match=r"\['dither'\].*upgrade seqmodels"):
        runtime.LogMelFeatures({**FeatureConfig().to_dict(), "dither": 1e-5})


@pytest.mark.parametrize("rates", [(8000, 16000), (16000, 8000), (44100, 8000), (22050, 16000), (8000, 8000)])
def test_numpy_resampling_equals_torch(rates):
    waveform = np.random.default_rng(0).normal(size=3001).astype(np.float32) * 0.3
    expected = torch_resample(torch.from_numpy(waveform), *rates).numpy()
    got = runtime.resample(waveform, *rates)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("width,channels", [(1, 1), (2, 1), (3, 2), (4, 3)])
def test_wav_reader_equals_the_torch_reader(tmp_path, width, channels):
    from seqmodels.data.audio import read_wav

    path = _write_wav(tmp_path / "x.wav", _keys("12", 8000, 0), 11025, width, channels)
    expected, rate = read_wav(path)
    got, got_rate = runtime.read_wav(path)
    assert got_rate == rate == 11025 and got.dtype == np.float32
    np.testing.assert_array_equal(got, expected.numpy())


def test_wav_reader_refuses_what_the_torch_reader_refuses_in_the_same_words(tmp_path):
    from seqmodels.data.audio import read_wav

    good = _write_wav(tmp_path / "good.wav", _keys("1", 8000, 0), 8000).read_bytes()
    (tmp_path / "cut.wav").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.wav").write_text("not audio")
    _write_wav(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 8000)
    for name in ("absent.wav", "cut.wav", "text.wav", "empty.wav"):
        with pytest.raises(Exception) as expected:
            read_wav(tmp_path / name)
        with pytest.raises((ValueError, FileNotFoundError)) as got:
            runtime.read_wav(tmp_path / name)
        assert str(got.value) == str(expected.value) and "\n" not in str(got.value)


# ------------------------------------------------------------------------------------------------ CTC decoding
def test_prefix_beam_search_equals_torch_and_beam_one_is_greedy():
    from seqmodels.nn.ctc import ctc_greedy_decode, ctc_prefix_beam_search

    g = torch.Generator().manual_seed(0)
    log_probs = (torch.randn(4, 30, 6, generator=g) * 3).log_softmax(-1)
    log_probs[1, :, 0] += 2.0  # mostly blanks: prefixes merge across blanks
    log_probs = log_probs.log_softmax(-1)
    lengths = torch.tensor([30, 17, 1, 0])
    for beam_size, n_best in [(1, 1), (2, 2), (4, 3), (8, 8)]:
        expected = ctc_prefix_beam_search(log_probs, lengths, beam_size, 0, n_best)
        got = runtime.ctc_prefix_beam_search(log_probs.numpy(), lengths.numpy(), beam_size, 0, n_best)
        assert [[ids for ids, _ in h] for h in got] == [[ids for ids, _ in h] for h in expected]
        np.testing.assert_allclose(
            [s for h in got for _, s in h], [s for h in expected for _, s in h], rtol=0, atol=1e-5
        )
        assert any(len(h) > 1 for h in got) or n_best == 1
    greedy = runtime.ctc_prefix_beam_search(log_probs.numpy(), lengths.numpy(), 1)
    assert [h[0][0] for h in greedy] == ctc_greedy_decode(log_probs, lengths)
    with pytest.raises(ValueError, match="1 <= n_best <= beam_size"):
        runtime.ctc_prefix_beam_search(log_probs.numpy(), beam_size=2, n_best=3)


# ------------------------------------------------------------------------------------------------ speech
def test_ctc_export_stores_the_front_end(ctc):
    meta = ctc.runtime.meta
    assert meta["features"] == ctc.datamodule.features.to_dict() and meta["features"]["deltas"] == 1
    assert meta["sample_rate"] == ctc.runtime.sample_rate == 8000
    assert ctc.runtime.features.output_size == ctc.runtime.input_size == 80


def test_transcribe_wav_equals_seqmodels_predict(ctc, tmp_path):
    from seqmodels.data.audio import read_wav
    from seqmodels.predict import transcribe_audio

    wavs = [
        _write_wav(tmp_path / "model_rate.wav", _keys("90#5", 8000, 1), 8000),
        _write_wav(tmp_path / "resampled.wav", _keys("147", 16000, 2), 16000, width=3, channels=2),
        _write_wav(tmp_path / "odd_rate.wav", _keys("*0", 11025, 3), 11025, width=1),
    ]
    for wav in wavs:
        features = ctc.runtime.features_from_wav(wav)
        # seqmodels-predict's float32 front-end; its float64 run, which the numpy one follows to float32 rounding
        np.testing.assert_allclose(features, ctc.datamodule.features_from_wav(wav).numpy(), rtol=0, atol=1e-4)
        waveform, rate = read_wav(wav)
        exact = ctc.datamodule.featurizer.featurize(torch_resample(waveform.double(), rate, 8000)).numpy()
        np.testing.assert_allclose(features, exact, rtol=0, atol=1e-6)
        for beam_size, n_best in [(1, 1), (4, 3)]:
            cfg = _predict_cfg(ctc.ckpt_path, input_file=str(wav), beam_size=beam_size, n_best=n_best)
            ((_, expected),) = transcribe_audio(cfg)
            got = ctc.runtime.decode_wav(wav, beam_size, n_best)
            assert [text for text, _ in got] == [text for text, _ in expected]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=0, atol=1e-4)
            assert ctc.runtime.transcribe_wav(wav, beam_size) == expected[0][0]
        greedy = ctc.runtime.transcribe([ctc.runtime.features_from_wav(wav)])[0]
        assert greedy == ctc.runtime.transcribe_wav(wav, beam_size=1)


def test_short_audio_and_old_exports_are_refused_in_one_line(ctc, tmp_path):
    short = _write_wav(tmp_path / "short.wav", np.zeros(100, dtype=np.float32), 8000)
    with pytest.raises(ValueError, match="shorter than one feature frame") as expected:
        ctc.datamodule.features_from_wav(short)
    with pytest.raises(ValueError, match="shorter than one feature frame") as got:
        ctc.runtime.features_from_wav(short)
    assert str(got.value) == str(expected.value)
    old = runtime.CTCRuntime({k: v for k, v in ctc.runtime.meta.items() if k != "features"}, {"ctc": None})
    with pytest.raises(runtime.ExportedModelError, match="holds no feature settings.*export the checkpoint again"):
        old.transcribe_wav(short)


# ------------------------------------------------------------------------------------------------ text
def test_tagger_tags_equal_seqmodels_predict(tagger):
    from seqmodels.predict import label_texts

    known = [t for t in tagger.runtime.codec.tokens[2:] if t.isalpha()][:5]  # words of the training data
    texts = [" ".join(w.upper() for w in known), f"Zyxwvut {known[0].capitalize()} visits", known[1]]
    expected = [label_texts(_predict_cfg(tagger.ckpt_path, input=text))[0][1][0][0] for text in texts]
    got = tagger.runtime.tag_texts(texts)
    assert [" ".join(tags) for tags in got] == expected
    assert [len(tags) for tags in got] == [len(text.split()) for text in texts]
    assert tagger.runtime.meta["data"]["tokenizer"] == {"type": "whitespace", "lowercase": True}
    assert tagger.runtime.unknown_tokens(f"Zyxwvut {known[0].upper()}") == ["zyxwvut"]
    with pytest.raises(ValueError, match="has no tokens to tag"):
        tagger.runtime.tag_texts(["   "])


def test_classifier_labels_equal_seqmodels_predict(classifier):
    from seqmodels.predict import label_texts

    texts = ["great value, works well and I would buy it again!", "terrible", "zzzqqq unknown words"]
    for n_best in (1, 2):
        cfg = _predict_cfg(classifier.ckpt_path, input_file=None, n_best=n_best)
        expected = [label_texts(OmegaConf.merge(cfg, {"input": text}))[0][1] for text in texts]
        got = classifier.runtime.label_texts(texts, n_best)
        assert [[label for label, _ in row] for row in got] == [[label for label, _ in row] for row in expected]
        np.testing.assert_allclose(
            [p for row in got for _, p in row], [p for row in expected for _, p in row], rtol=0, atol=1e-5
        )
    assert classifier.runtime.tokens("a b c d e f g h") == list("abcdef")  # max_length=6, as in training


def test_a_feature_series_classifier_reads_raw_series_as_its_datamodule_prepared_them(vowels):
    from seqmodels.data import read_ts
    from seqmodels.data.ucr import with_deltas

    dm = vowels.datamodule
    dm.setup()
    raw, _, _ = read_ts(dm.files()[1])  # the test series, as the user would hold them
    series = [x.numpy() for x in raw[:6]]
    for x in series:
        np.testing.assert_allclose(runtime.step_deltas(x, 2), with_deltas(torch.from_numpy(x), 2).numpy())
    for x, prepared in zip(series, dm.test_set.inputs[:6], strict=True):
        np.testing.assert_allclose(vowels.runtime.features(x), prepared.numpy(), rtol=0, atol=1e-5)
    got = vowels.runtime.label_series(series, n_best=2)
    with torch.no_grad():
        for x, answer in zip(dm.test_set.inputs[:6], got, strict=True):
            probs = vowels.model(x[None], torch.tensor([len(x)])).softmax(-1)[0]
            top = probs.topk(2)
            assert [label for label, _ in answer] == [dm.class_names[i] for i in top.indices.tolist()]
            np.testing.assert_allclose([p for _, p in answer], top.values.numpy(), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="a series has 11 channels; this model reads 12 per step"):
        vowels.runtime.label_series([series[0][:, :11]])
    with pytest.raises(ValueError, match="needs a classifier"):
        runtime.SequenceRuntime({"kind": "regressor", "data": {}}, {"net": None}).label_series(series)


# ------------------------------------------------------------------------------------------------ command line
# Runs ``python -m seqmodels.runtime`` with torch made unimportable: any import of it fails the command.
NO_TORCH = (
    "import runpy, sys; sys.modules['torch'] = None; "
    "runpy.run_module('seqmodels.runtime', run_name='__main__', alter_sys=True)"
)


def _cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH, *map(str, args)], capture_output=True, text=True, timeout=120
    )


def _predict_lines(results, n_best: int) -> list[str]:
    """seqmodels-predict's printed lines (src/seqmodels/cli/predict.py)."""
    if n_best == 1:
        return [f"{text}\t{outputs[0][0]}" for text, outputs in results]
    return [f"{text}\t{output}\t{score:.4f}" for text, outputs in results for output, score in outputs]


def test_cli_transcribes_wavs_as_seqmodels_predict_prints_them(ctc, tmp_path):
    from seqmodels.predict import transcribe_audio

    wav = _write_wav(tmp_path / "keys.wav", _keys("90#5", 16000, 1), 16000)
    (expected,) = transcribe_audio(_predict_cfg(ctc.ckpt_path, input_file=str(wav), beam_size=5))
    result = _cli(ctc.path, "--wav", wav)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected[1][0][0] + "\n"  # one recording: the transcript alone
    (expected,) = transcribe_audio(_predict_cfg(ctc.ckpt_path, input_file=str(wav), beam_size=4, n_best=2))
    result = _cli(ctc.path, "--wav", wav, "--beam-size", 4, "--n-best", 2)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(path, text) for path, text, _ in rows] == [(str(wav), text) for text, _ in expected[1]]
    np.testing.assert_allclose([float(s) for *_, s in rows], [s for _, s in expected[1]], atol=2e-4)
    # a list of WAV paths (relative to the list): one line per recording, as seqmodels-predict prints them
    listing = tmp_path / "list.txt"
    listing.write_text("keys.wav\nkeys.wav\n")
    expected = transcribe_audio(_predict_cfg(ctc.ckpt_path, input_file=str(listing), beam_size=2))
    result = _cli(ctc.path, "--input-file", listing, "--beam-size", 2)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == _predict_lines(expected, 1) and len(expected) == 2


def test_cli_tags_and_classifies_as_seqmodels_predict_prints(tagger, classifier, tmp_path):
    from seqmodels.predict import label_texts

    inputs = tmp_path / "sentences.txt"
    inputs.write_text("EU rejects German call\nZyxwvut visits Paris\n\n", encoding="utf-8")
    expected = _predict_lines(label_texts(_predict_cfg(tagger.ckpt_path, input_file=str(inputs))), 1)
    result = _cli(tagger.path, "--input-file", inputs)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == expected
    assert "read as <unk>:" in result.stderr and "'zyxwvut'" in result.stderr

    expected = label_texts(_predict_cfg(classifier.ckpt_path, input="works well", n_best=2))
    result = _cli(classifier.path, "--input", "works well", "--n-best", 2)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(text, label) for text, label, _ in rows] == [("works well", label) for label, _ in expected[0][1]]
    np.testing.assert_allclose([float(p) for *_, p in rows], [p for _, p in expected[0][1]], atol=2e-4)


def test_cli_classifies_series_files_as_seqmodels_predict_prints(vowels, tmp_path):
    from seqmodels.data import read_ts
    from seqmodels.predict import label_texts

    raw, _, _ = read_ts(vowels.datamodule.files()[1])
    folder = tmp_path / "series"
    folder.mkdir()
    np.save(folder / "a.npy", raw[0].numpy())
    np.savetxt(folder / "b.csv", raw[1].numpy(), delimiter=",")
    expected = label_texts(_predict_cfg(vowels.ckpt_path, input_file=str(folder), n_best=2))
    result = _cli(vowels.path, "--input-file", folder, "--n-best", 2)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(name, label) for name, label, _ in rows] == [(name, label) for name, out in expected for label, _ in out]
    np.testing.assert_allclose([float(p) for *_, p in rows], [p for _, out in expected for _, p in out], atol=2e-4)
    refused = _cli(vowels.path, "--input", "0.5 0.5")
    assert refused.returncode == 1 and "classifies feature series: pass --input-file" in refused.stderr


def test_cli_translates_as_seqmodels_predict_prints(seq2seq, tmp_path):
    from seqmodels.predict import predict

    inputs = tmp_path / "words.txt"
    inputs.write_text("abcdef\nba\nfedcbaabc\n", encoding="utf-8")
    expected = predict(_predict_cfg(seq2seq.ckpt_path, input_file=str(inputs), beam_size=3, n_best=2))
    result = _cli(seq2seq.path, "--input-file", inputs, "--beam-size", 3, "--n-best", 2)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(text, out) for text, out, _ in rows] == [(text, out) for text, best in expected for out, _ in best]
    np.testing.assert_allclose([float(s) for *_, s in rows], [s for _, best in expected for _, s in best], atol=2e-4)


def test_cli_generates_as_seqmodels_generate_greedily(lm):
    from seqmodels.generate import generate

    cfg = OmegaConf.create(
        dict(ckpt_path=str(lm.ckpt_path), prompt="the d", max_new_tokens=30, temperature=0, top_k=None, top_p=None)
    )
    cfg = OmegaConf.merge(cfg, dict(num_samples=2, seed=0, device="cpu", weights_only=True))
    printed: list[str] = []
    generate(cfg, printed.append)
    result = _cli(lm.path, "--prompt", "the d", "--max-new-tokens", 30, "--temperature", 0, "--num-samples", 2)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join(printed)


def test_cli_imports_no_torch(tagger):
    """The plain ``python -m seqmodels.runtime``: ``-X importtime`` lists every module it imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "seqmodels.runtime", str(tagger.path), "--input", "EU rejects"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = [line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert "onnxruntime" in imported and "numpy" in imported
    assert not [name for name in imported if name.split(".")[0] in ("torch", "lightning", "hydra")]


def test_cli_errors_are_one_line_with_status_1(ctc, tagger, lm, tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    wav = _write_wav(tmp_path / "k.wav", _keys("1", 8000, 0), 8000)
    cases = [
        ((tmp_path / "absent.onnx", "--input", "x"), "does not exist; export the checkpoint with: seqmodels-export"),
        ((corrupt, "--input", "x"), "not a readable ONNX model"),
        ((ctc.path, "--input", "hello"), r"speech \(CTC\) model, which reads audio: pass --wav"),
        ((ctc.path, "--wav", tmp_path / "absent.wav"), "audio file not found"),
        ((ctc.path, "--wav", corrupt), "cannot read .* as a WAV file"),
        ((ctc.path, "--wav", wav, "--beam-size", 2, "--n-best", 3), "1 <= n_best <= beam_size"),
        ((tagger.path, "--wav", wav), "is a tagger, which reads text: pass --input"),
        ((tagger.path, "--prompt", "the"), "not a language model"),
        ((tagger.path, "--input", "EU", "--n-best", 2), "set --n-best 1"),
        ((tagger.path, "--input-file", tmp_path / "absent.txt"), "input file not found"),
        ((lm.path, "--input", "the"), "is a language model: pass --prompt"),
        ((lm.path, "--prompt", "the", "--max-new-tokens", 0), "--max-new-tokens must be an integer >= 1"),
        ((tagger.path, "--input", "a", "--wav", wav), "pass one of --input, --input-file, --wav or --prompt"),
        ((tagger.path, "--beam-size", "many"), "invalid int value"),
    ]
    for args, message in cases:
        result = _cli(*args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert result.stdout == "" and len(result.stderr.splitlines()) == 1, (args, result.stderr)
        assert result.stderr.startswith("python -m seqmodels.runtime: error: "), result.stderr
        assert re.search(message, result.stderr), (message, result.stderr)
