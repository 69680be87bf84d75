"""Speech: log-mel features against numpy, WAV reading, subsampled lengths, CTC decoding, DTMF learning, prediction."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import wave

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqmodels.data import DTMFDataModule, MissingDataFileError, SpokenDigitsDataModule, read_wav, write_wav
from seqmodels.data.speech import dtmf_signal, espeak_available
from seqmodels.nn import (
    ConvSubsampling,
    CTCNet,
    FeatureConfig,
    FrameStacking,
    LogMelSpectrogram,
    RecurrentEncoder,
    SpecAugment,
    compute_deltas,
    ctc_greedy_decode,
    ctc_prefix_beam_search,
    resample,
)
from seqmodels.train import train

needs_espeak = pytest.mark.skipif(
    not espeak_available(), reason="espeak-ng is not installed (apt-get install espeak-ng)"
)


# ------------------------------------------------------------------------------------------------ features
def numpy_log_mel(
    signal: np.ndarray, sample_rate: int, n_fft: int, win_length: int, hop: int, n_mels: int, f_min: float, f_max: float
) -> tuple[np.ndarray, np.ndarray]:
    """Direct computation: frames, periodic Hann window, |rfft|^2, HTK triangular mel filters, log."""
    frames = 1 + (len(signal) - n_fft) // hop
    window = np.zeros(n_fft)
    left = (n_fft - win_length) // 2
    window[left : left + win_length] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)
    framed = np.stack([signal[i * hop : i * hop + n_fft] * window for i in range(frames)])
    power = np.abs(np.fft.rfft(framed, axis=1)) ** 2
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = hz(np.linspace(mel(f_min), mel(f_max), n_mels + 2))
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    bank = np.zeros((len(bins), n_mels))
    for m in range(n_mels):
        lower, centre, upper = edges[m], edges[m + 1], edges[m + 2]
        for k, f in enumerate(bins):
            if lower < f <= centre:
                bank[k, m] = (f - lower) / (centre - lower)
            elif centre < f < upper:
                bank[k, m] = (upper - f) / (upper - centre)
    return np.log(np.maximum(power @ bank, 1e-10)), edges[1:-1]


@pytest.mark.parametrize(
    "sample_rate,frequency,n_fft,win_length,hop",
    [(16000, 1000.0, 512, 400, 160), (8000, 697.0, 256, 200, 80), (16000, 3150.0, 512, 512, 128)],
)
def test_log_mel_matches_numpy_and_a_tone_peaks_in_its_mel_bin(sample_rate, frequency, n_fft, win_length, hop):
    t = np.arange(int(0.4 * sample_rate)) / sample_rate
    signal = 0.5 * np.sin(2 * np.pi * frequency * t)
    f_min, f_max = 100.0, sample_rate / 2
    frontend = LogMelSpectrogram(sample_rate, n_fft, win_length, hop, n_mels=40, f_min=f_min, normalize=False)
    features, frames = frontend(torch.tensor(signal, dtype=torch.float64).unsqueeze(0))  # float64 in, float64 out
    expected, centres = numpy_log_mel(signal, sample_rate, n_fft, win_length, hop, 40, f_min, f_max)
    assert features.shape == (1, expected.shape[0], 40) and int(frames[0]) == expected.shape[0]
    np.testing.assert_allclose(features[0].numpy(), expected, atol=1e-6, rtol=1e-6)
    single, _ = frontend(torch.tensor(signal, dtype=torch.float32).unsqueeze(0))
    loud = expected > expected.max() - 10  # float32: within 43 dB of the peak, far above its rounding noise
    np.testing.assert_allclose(single[0].numpy()[loud], expected[loud], atol=1e-3)
    # The tone's energy sits in the filter whose centre is nearest to it, in every frame.
    nearest = int(np.argmin(np.abs(centres - frequency)))
    assert (features[0].argmax(-1) == nearest).all(), (features[0].argmax(-1), nearest)


def test_features_of_a_padded_batch_equal_each_signal_alone():
    frontend = LogMelSpectrogram(8000, 256, 200, 80, n_mels=20, deltas=2, normalize=True, preemphasis=0.97)
    assert frontend.output_size == 60
    torch.manual_seed(0)
    lengths = torch.tensor([4001, 2345, 100, 256])
    waves = torch.randn(4, 4001) * 0.1
    batch, frames = frontend(waves, lengths)
    assert frames.tolist() == [1 + (n - 256) // 80 if n >= 256 else 1 for n in lengths.tolist()]
    for i, n in enumerate(lengths.tolist()):
        alone = frontend.featurize(waves[i, :n])
        torch.testing.assert_close(batch[i, : frames[i]], alone, atol=1e-4, rtol=1e-4)
        assert (batch[i, frames[i] :] == 0).all()
    normalised = batch[0, : frames[0]]
    torch.testing.assert_close(normalised.mean(0), torch.zeros(60), atol=1e-4, rtol=0)


def test_deltas_of_a_ramp_are_its_slope_and_edges_repeat():
    ramp = torch.arange(10, dtype=torch.float).reshape(1, 10, 1) * 3.0
    deltas = compute_deltas(ramp, torch.tensor([7]))
    assert torch.allclose(deltas[0, 2:5, 0], torch.full((3,), 3.0))  # interior: the slope
    # At the ends the first and last valid frames repeat: frames 7.. of the padding never enter.
    assert deltas[0, 6, 0] == pytest.approx((1 * (18 - 15) + 2 * (18 - 12)) / 10)


def test_resampling_keeps_a_tone_and_gives_the_exact_length():
    t = torch.arange(22050) / 22050
    tone = torch.sin(2 * math.pi * 440 * t)
    out = resample(tone, 22050, 16000)
    assert out.shape == (16000,)
    reference = torch.sin(2 * math.pi * 440 * torch.arange(16000) / 16000)
    assert (out[200:-200] - reference[200:-200]).abs().max() < 1e-2
    high = torch.sin(2 * math.pi * 7000 * t)  # above the new Nyquist frequency (4 kHz): filtered out
    assert resample(high, 22050, 8000)[200:-200].abs().max() < 0.02
    assert resample(tone, 16000, 16000) is tone


def test_spec_augment_masks_only_while_training():
    augment = SpecAugment(freq_masks=2, freq_width=4, time_masks=2, time_width=5, groups=2)
    features = torch.ones(3, 30, 16)
    lengths = torch.tensor([30, 20, 8])
    torch.manual_seed(0)
    masked = augment(features, lengths)
    assert (masked == 0).any() and (masked == 1).any()
    # A frequency mask hits the same bins in both blocks (log-mels and deltas).
    assert torch.equal((masked[..., :8] == 0).all(1), (masked[..., 8:] == 0).all(1))
    assert torch.equal(augment.eval()(features, lengths), features)


# ------------------------------------------------------------------------------------------------ WAV files
def test_wav_round_trip_and_other_sample_formats(tmp_path):
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(800) / 8000)
    waveform, rate = read_wav(write_wav(tmp_path / "tone.wav", tone, 8000))
    assert rate == 8000 and waveform.dtype == torch.float32
    np.testing.assert_allclose(waveform.numpy(), tone, atol=1e-4)
    for width in (1, 3, 4):  # 8-bit unsigned, 24-bit and 32-bit stereo
        scale = 1 << (8 * width - 1)
        values = np.round(tone * (scale - 1)).astype(np.int64)
        with wave.open(str(tmp_path / f"w{width}.wav"), "wb") as handle:
            handle.setnchannels(2)
            handle.setsampwidth(width)
            handle.setframerate(8000)
            stereo = np.repeat(values, 2)
            if width == 1:
                data = (stereo + 128).astype(np.uint8).tobytes()
            else:
                data = b"".join(int(v).to_bytes(width, "little", signed=True) for v in stereo)
            handle.writeframes(data)
        read, _ = read_wav(tmp_path / f"w{width}.wav")
        np.testing.assert_allclose(read.numpy(), tone, atol=2.0 / scale)


def test_bad_audio_files_give_one_line_errors(tmp_path):
    with pytest.raises(MissingDataFileError, match="audio file not found"):
        read_wav(tmp_path / "missing.wav")
    (tmp_path / "notes.wav").write_text("not audio at all")
    with pytest.raises(ValueError, match=r"cannot read .*notes.wav as a WAV file .*integer PCM"):
        read_wav(tmp_path / "notes.wav")
    # A 32-bit float WAV (format tag 3): the standard library reads integer PCM only.
    data = np.zeros(100, dtype="<f4").tobytes()
    header = (
        b"RIFF"
        + (36 + len(data)).to_bytes(4, "little")
        + b"WAVEfmt "
        + (16).to_bytes(4, "little")
        + (3).to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + (8000).to_bytes(4, "little")
        + (32000).to_bytes(4, "little")
        + (4).to_bytes(2, "little")
        + (32).to_bytes(2, "little")
        + b"data"
        + len(data).to_bytes(4, "little")
    )
    (tmp_path / "float.wav").write_bytes(header + data)
    with pytest.raises(ValueError, match="float.wav as a WAV file"):
        read_wav(tmp_path / "float.wav")
    write_wav(tmp_path / "empty.wav", np.zeros(0), 8000)
    with pytest.raises(ValueError, match="holds no audio samples"):
        read_wav(tmp_path / "empty.wav")


# ------------------------------------------------------------------------------------------------ lengths
ODD_LENGTHS = list(range(1, 40, 2))


@pytest.mark.parametrize(
    "module",
    [
        FrameStacking(6, factor=2),
        FrameStacking(6, factor=3, output_size=5),
        ConvSubsampling(6, 8, num_layers=2),
        ConvSubsampling(6, 8, 1, kernel_size=5, stride=3),
        ConvSubsampling(6, 8, 3, kernel_size=4, stride=2),
    ],
    ids=["stack2", "stack3", "conv3x2x2", "conv5x3", "conv4x2x3"],
)
def test_subsampled_lengths_are_exact_for_odd_lengths(module):
    torch.manual_seed(0)
    module.eval()
    expected = module.output_lengths(torch.tensor(ODD_LENGTHS))
    alone = []
    for n in ODD_LENGTHS:
        out, length = module(torch.randn(1, n, 6), torch.tensor([n]))
        assert out.shape[1] == int(length[0]), (n, out.shape)  # nothing beyond the computed length
        alone.append(out[0])
    assert [a.shape[0] for a in alone] == expected.tolist()
    assert min(expected.tolist()) >= 1
    # In a padded batch (garbage past each length) every sequence gets the same steps as alone.
    torch.manual_seed(0)
    inputs = torch.randn(len(ODD_LENGTHS), max(ODD_LENGTHS), 6) * 5
    for i, n in enumerate(ODD_LENGTHS):
        torch.manual_seed(0)
        inputs[i, :n] = torch.randn(n, 6)
    batch, lengths = module(inputs, torch.tensor(ODD_LENGTHS))
    assert lengths.tolist() == expected.tolist()
    for i, n in enumerate(ODD_LENGTHS):
        single, _ = module(inputs[i : i + 1, :n], torch.tensor([n]))
        torch.testing.assert_close(batch[i, : lengths[i]], single[0], atol=1e-5, rtol=1e-5)
        assert (batch[i, lengths[i] :] == 0).all()


def _ctc_net(subsampling=None, blank: int = 0) -> CTCNet:
    torch.manual_seed(0)
    size = subsampling.output_size if subsampling is not None else 6
    encoder = RecurrentEncoder("gru", size, 8, bidirectional=True, batch_first=True)
    return CTCNet(encoder, num_classes=5, subsampling=subsampling, blank=blank).eval()


def test_ctc_net_output_lengths_and_padding_invariance():
    net = _ctc_net(ConvSubsampling(6, 10, num_layers=2))
    lengths = torch.tensor([17, 9, 1, 12])
    inputs = torch.randn(4, 17, 6)
    log_probs, out_lengths = net(inputs, lengths)
    assert out_lengths.tolist() == [5, 3, 1, 3] == net.output_lengths(lengths).tolist()
    assert log_probs.shape == (4, 5, 5)
    torch.testing.assert_close(log_probs[0].exp().sum(-1), torch.ones(5))
    alone, _ = net(inputs[1:2, :9], torch.tensor([9]))
    torch.testing.assert_close(log_probs[1, :3], alone[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="encoder.input_size"):
        CTCNet(RecurrentEncoder("gru", 7, 8, batch_first=True), 5, subsampling=FrameStacking(6, 2))
    with pytest.raises(ValueError, match="blank must be in"):
        _ctc_net(blank=5)


# ------------------------------------------------------------------------------------------------ decoding
def _one_hot_path(path: list[int], num_classes: int = 4) -> torch.Tensor:
    return torch.log(F.one_hot(torch.tensor(path), num_classes).float() * 0.97 + 0.01)


def test_greedy_ctc_merges_repeats_then_removes_blanks():
    path = [1, 1, 0, 1, 2, 2, 0, 0, 3, 3]  # a a _ a b b _ _ c c
    assert ctc_greedy_decode(_one_hot_path(path)) == [[1, 1, 2, 3]]
    assert ctc_greedy_decode(_one_hot_path(path).unsqueeze(0), torch.tensor([4])) == [[1, 1]]
    assert ctc_greedy_decode(_one_hot_path([0, 0, 0])) == [[]]
    # Another blank index: label 0 is then an ordinary label.
    assert ctc_greedy_decode(_one_hot_path([0, 3, 0, 0, 2, 3]), blank=3) == [[0, 0, 2]]
    batch = torch.stack([_one_hot_path(path), _one_hot_path([2] * 10)])
    assert ctc_greedy_decode(batch, torch.tensor([10, 3])) == [[1, 1, 2, 3], [2]]


def test_prefix_beam_search_with_beam_one_is_greedy():
    generator = torch.Generator().manual_seed(0)
    for trial in range(50):
        scale = 0.5 + 3 * trial / 50  # from flat to peaked distributions
        log_probs = (scale * torch.randn(4, 15, 6, generator=generator)).log_softmax(-1)
        lengths = torch.randint(1, 16, (4,), generator=generator)
        greedy = ctc_greedy_decode(log_probs, lengths)
        beam = [hyps[0][0] for hyps in ctc_prefix_beam_search(log_probs, lengths, beam_size=1)]
        assert beam == greedy


def _labelling_probabilities(log_probs: torch.Tensor, blank: int = 0) -> dict[tuple[int, ...], float]:
    """Brute force: every alignment, collapsed, probabilities summed per labelling."""
    totals: dict[tuple[int, ...], float] = {}
    steps, classes = log_probs.shape
    for path in itertools.product(range(classes), repeat=steps):
        labels = tuple(c for i, c in enumerate(path) if c != blank and (i == 0 or c != path[i - 1]))
        totals[labels] = totals.get(labels, 0.0) + math.exp(sum(float(log_probs[t, c]) for t, c in enumerate(path)))
    return totals


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prefix_beam_search_finds_the_most_probable_labelling_by_brute_force(seed):
    torch.manual_seed(seed)
    log_probs = (1.5 * torch.randn(6, 4)).log_softmax(-1)
    totals = _labelling_probabilities(log_probs)
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:3]
    found = ctc_prefix_beam_search(log_probs, beam_size=64, n_best=3)[0]
    assert [tuple(labels) for labels, _ in found] == [labels for labels, _ in ranked]
    for (_, score), (_, probability) in zip(found, ranked, strict=True):
        assert score == pytest.approx(math.log(probability), abs=1e-5)
    # ... which is also what torch's CTC loss says of that labelling.
    best = torch.tensor([found[0][0]])
    nll = F.ctc_loss(log_probs.unsqueeze(1), best, torch.tensor([6]), torch.tensor([best.shape[1]]), reduction="sum")
    assert -float(nll) == pytest.approx(found[0][1], abs=1e-4)


def test_prefix_beam_search_can_beat_greedy():
    # Frame 2 splits between continuing "a" (blank or a: 0.6 together) and starting "b" (0.4): greedy reads
    # "ab" (probability 0.4), the sum over alignments prefers "a" (0.6).
    probs = torch.tensor([[0.0, 1.0, 0.0], [0.3, 0.3, 0.4]]).clamp(min=1e-9)
    log_probs = probs.log()
    assert ctc_greedy_decode(log_probs) == [[1, 2]]
    ((labels, score),) = ctc_prefix_beam_search(log_probs, beam_size=3)[0]
    assert labels == [1] and score == pytest.approx(math.log(0.6), abs=1e-6)


# ------------------------------------------------------------------------------------------------ data
def test_dtmf_data_is_seeded_and_transcribes_the_keys():
    dm = DTMFDataModule(num_train=20, num_val=4, num_test=4, max_keys=4, seed=3)
    dm.setup()
    again = DTMFDataModule(num_train=50, num_val=4, num_test=4, max_keys=4, seed=3)
    again.setup()
    assert dm.texts["test"] == again.texts["test"]  # a split depends on the seed, not on the other sizes
    torch.testing.assert_close(dm.test_set[0][0], again.test_set[0][0])
    features, ids = dm.train_set[0]
    assert features.shape[1] == dm.dim("input_size") == 40
    assert dm.decode(ids) == dm.texts["train"][0] and dm.labels[0] == "<blank>" and 0 not in ids.tolist()
    assert all(1 <= len(text.split()) <= 4 for text in dm.texts["train"])
    batch = next(iter(dm.train_dataloader()))
    assert batch.target_lengths is not None and batch.inputs.dim() == 3
    # A key is its two tones: the loudest mel bins of a clean "1" are 697 and 1209 Hz.
    rng = np.random.default_rng(0)
    signal = dtmf_signal("1", rng, tone_ms=(200, 200), gap_ms=(50, 50), snr_db=(40, 40), frequency_jitter=0.0)
    raw = LogMelSpectrogram.from_milliseconds(8000, n_mels=40, f_min=300, f_max=3400, normalize=False)
    spectrum = raw.featurize(torch.from_numpy(signal))[10]
    from seqmodels.nn.audio import mel_centres

    centres = mel_centres(40, 300, 3400)
    loudest = set(spectrum.topk(2).indices.tolist())
    assert loudest == {int((centres - 697).abs().argmin()), int((centres - 1209).abs().argmin())}


def test_spoken_digits_refuses_shared_voices_and_names_espeak_when_missing(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="held out from training"):
        SpokenDigitsDataModule(train_voices=["en+m1"], test_voices=["en+m1"])
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng on this PATH
    dm = SpokenDigitsDataModule(cache_dir=tmp_path / "cache", num_train=2, num_val=1, num_test=1)
    with pytest.raises(MissingDataFileError, match="apt-get install espeak-ng"):
        dm.setup()


@needs_espeak
def test_spoken_digits_are_synthesised_once_with_held_out_voices(tmp_path, monkeypatch):
    settings = dict(cache_dir=tmp_path, num_train=6, num_val=2, num_test=3, max_digits=3, seed=1)
    dm = SpokenDigitsDataModule(**settings)
    dm.prepare_data()
    dm.setup()
    plan = {split: dm.plan(split) for split in ("train", "test")}
    assert not {p["voice"] for p in plan["train"]} & {p["voice"] for p in plan["test"]}
    assert all(
        text.split()
        and set(text.split()) <= {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
        for text in dm.texts["train"]
    )
    features, ids = dm.test_set[0]
    assert features.shape[1] == 40 and features.shape[0] > 20 and dm.decode(ids) == dm.texts["test"][0]
    # The second build reads the cache: espeak-ng is not needed any more.
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    again = SpokenDigitsDataModule(**settings, transcript="digits")
    again.setup()
    assert again.texts["test"][0] == " ".join(
        str(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"].index(w))
        for w in dm.texts["test"][0].split()
    )
    torch.testing.assert_close(again.test_set[0][0], features)


# ------------------------------------------------------------------------------------------------ learning
@pytest.mark.learns
def test_dtmf_is_learned_and_predict_transcribes_a_wav(compose_train, tmp_path):
    """A CTC model learns keypad tones (CER < 5%) and predict transcribes a WAV.

    Catches: misaligned CTC lengths, a broken front-end or decoder.
    """
    cfg = compose_train("experiment=dtmf_ctc", "trainer.max_epochs=8")
    trained = train(cfg)
    assert trained.metrics["test/cer"] < 0.05, trained.metrics
    assert trained.metrics["test/wer"] < 0.10, trained.metrics
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: dict[str, set] = {"images": set(), "tensors": set()}
    for event_file in (tmp_path / "tensorboard").rglob("events.out.tfevents.*"):
        events = EventAccumulator(str(event_file), size_guidance={"images": 0, "tensors": 0})
        events.Reload()
        for kind in tags:
            tags[kind] |= set(events.Tags()[kind])
    assert "speech/0" in tags["images"] and any(t.startswith("speech/transcripts") for t in tags["tensors"])

    # A clean keypad recording at 16 kHz (the model's data is 8 kHz: the WAV is resampled when read).
    signal = dtmf_signal(
        "90#5", np.random.default_rng(1), sample_rate=16000, tone_ms=(90, 90), gap_ms=(70, 70), snr_db=(30, 30)
    )
    wav = write_wav(tmp_path / "keys.wav", signal, 16000)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "seqmodels.cli.predict", f"ckpt_path={trained.best_model_path}"]
    result = subprocess.run(
        [*command, f"input_file={wav}"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "9 0 # 5"
    missing = subprocess.run(
        [*command, "input_file=missing.wav"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("seqmodels-predict: error: audio file not found: missing.wav")

    from omegaconf import OmegaConf

    from seqmodels.predict import transcribe_audio

    options = dict(ckpt_path=trained.best_model_path, input=None, beam_size=4, n_best=2, device="cpu")
    (tmp_path / "list.txt").write_text("keys.wav\n\nkeys.wav\n")  # paths relative to the list
    results = transcribe_audio(OmegaConf.create({**options, "input_file": str(tmp_path / "list.txt")}))
    assert [path for path, _ in results] == [str(wav.resolve())] * 2
    (best, best_score), (_, second_score) = results[0][1]
    assert best == "9 0 #" + " 5" and best_score >= second_score
    with pytest.raises(ValueError, match="a speech model reads audio"):
        transcribe_audio(OmegaConf.create({**options, "input": "hello", "input_file": None}))


# ------------------------------------------------------------------------------------------------ front-end settings
def test_feature_config_gives_the_sample_sizes_and_builds_the_same_front_end():
    config = FeatureConfig(sample_rate=8000, n_mels=20, f_min=300, f_max=3400, deltas=1)
    assert (config.win_length, config.hop_length, config.n_fft, config.output_size) == (200, 80, 256, 40)
    assert config.f_min == 300.0 and isinstance(config.f_min, float)  # YAML ints become the field's type
    built = LogMelSpectrogram.from_config(config)
    same = LogMelSpectrogram.from_milliseconds(8000, n_mels=20, f_min=300.0, f_max=3400.0, deltas=1)
    assert repr(built) == repr(same) and built.output_size == 40
    assert FeatureConfig(**config.to_dict()) == config
    assert config.replace({"n_mels": 30}, deltas=0) == FeatureConfig(8000, n_mels=30, f_min=300, f_max=3400)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['n_fft'\]"):
        config.replace(n_fft=512)
    with pytest.raises(ValueError, match="deltas must be 0, 1 or 2"):
        LogMelSpectrogram.from_config(FeatureConfig(deltas=3))


# The data config of a dtmf_ctc checkpoint written before the front-end settings became one ``features`` node, and
# the datamodule hyperparameters Lightning stored beside it (``alphabet`` included).
OLD_DTMF_DATA = {
    "_target_": "seqmodels.data.DTMFDataModule",
    "num_train": 12,
    "num_val": 2,
    "num_test": 2,
    "keys": "0123456789*#",
    "min_keys": 1,
    "max_keys": 6,
    "tone_ms": [40, 120],
    "gap_ms": [30, 120],
    "snr_db": [5, 30],
    "frequency_jitter": 0.015,
    "separator": " ",
    "sample_rate": 8000,
    "win_ms": 25.0,
    "hop_ms": 10.0,
    "n_mels": 32,
    "f_min": 300.0,
    "f_max": 3400.0,
    "deltas": 1,
    "normalize": True,
    "preemphasis": 0.0,
    "batch_size": 32,
    "num_workers": 0,
    "pin_memory": False,
    "bucket_by_length": True,
    "seed": 12345,
}
OLD_DTMF_HPARAMS = {
    **{k: v for k, v in OLD_DTMF_DATA.items() if k != "_target_"},
    "val_fraction": 0.1,
    "alphabet": "0123456789*# ",
}


def test_speech_datamodules_load_old_flat_front_end_settings(tmp_path):
    from omegaconf import OmegaConf

    from seqmodels.config import instantiate_datamodule

    nested = {k: v for k, v in OLD_DTMF_DATA.items() if k not in FeatureConfig.field_names()}
    nested["features"] = {k: OLD_DTMF_DATA[k] for k in FeatureConfig.field_names()}
    new = instantiate_datamodule(OmegaConf.create(nested))
    expected = FeatureConfig(8000, n_mels=32, f_min=300, f_max=3400, deltas=1)
    assert new.features == expected and new.dims()["input_size"] == 64 and new.dims()["feature_groups"] == 2
    # How seqmodels rebuilds a checkpoint's datamodule: its stored data config, through Hydra, and its state.
    old = instantiate_datamodule(OmegaConf.create(OLD_DTMF_DATA), state={})
    assert old.features == expected and old.dims() == new.dims()
    torch.testing.assert_close(old.train_set[0][0], new.train_set[0][0], rtol=0, atol=0)
    # Lightning's own route: the saved hyperparameters, flat keys and alphabet included.
    import lightning

    path = tmp_path / "old.ckpt"

    def save(hparams: dict) -> None:
        version = {"pytorch-lightning_version": lightning.__version__}
        torch.save({**version, "datamodule_hyper_parameters": hparams, "datamodule_hparams_name": "kwargs"}, path)

    save(OLD_DTMF_HPARAMS)
    assert DTMFDataModule.load_from_checkpoint(path).features == expected
    with pytest.raises(ValueError, match="alphabet"):
        DTMFDataModule(**{**OLD_DTMF_HPARAMS, "alphabet": "0123"})
    # New hyperparameters: the whole front-end as one plain dict, loadable with weights_only=True.
    save(dict(new.hparams))
    saved = torch.load(path, weights_only=True)["datamodule_hyper_parameters"]
    assert saved["features"] == expected.to_dict() and "alphabet" not in saved and "n_mels" not in saved
    assert DTMFDataModule.load_from_checkpoint(path).features == expected
    # A flat field overrides the features node (`+data.n_mels=20` on the command line still works).
    assert DTMFDataModule(features={"n_mels": 16}, n_mels=20).features.n_mels == 20
    spoken = SpokenDigitsDataModule(cache_dir=None, features={"n_mels": 24})
    assert spoken.features == FeatureConfig(16000, n_mels=24, preemphasis=0.97) and spoken.sample_rate == 16000
