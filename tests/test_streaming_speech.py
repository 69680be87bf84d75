"""Streaming speech recognition: chunked log-mels, streamed CTCNet, incremental greedy decoding, the recogniser, and
``seqmodels-predict stream=true``; each streamed result against the offline computation of the whole signal."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from seqmodels.data import write_wav
from seqmodels.data.speech import dtmf_signal
from seqmodels.nn import ConvSubsampling, CTCNet, FeatureConfig, FrameStacking, LogMelSpectrogram, RecurrentEncoder
from seqmodels.nn.audio import cumulative_normalize
from seqmodels.nn.ctc import GreedyCTCStreamDecoder, StreamingRecognizer, ctc_greedy_decode
from seqmodels.predict import predict_from_checkpoint, stream_audio
from seqmodels.train import train


def stream_in_chunks(stream, inputs: torch.Tensor, state, sizes, dim: int = 1):
    """Feeds ``inputs`` through ``stream`` in chunks cycling through ``sizes``, then ``final=True`` with nothing."""
    outputs, start, index = [], 0, 0
    while start < inputs.shape[dim]:
        size = sizes[index % len(sizes)]
        out, state = stream(inputs.narrow(dim, start, min(size, inputs.shape[dim] - start)), state)
        outputs.append(out)
        start, index = start + size, index + 1
    out, state = stream(inputs.narrow(dim, 0, 0), state, final=True)
    outputs.append(out)
    return torch.cat(outputs, dim=1), state


def speechlike(samples: int, seed: int = 0) -> torch.Tensor:
    """Two noisy tone bursts between quiet stretches: the level changes, as speech does."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 8000
    envelope = (np.abs(np.sin(2 * np.pi * 1.5 * t)) > 0.5).astype(np.float64)
    signal = envelope * 0.4 * np.sin(2 * np.pi * (440 + 300 * t) * t) + 0.01 * rng.standard_normal(samples)
    return torch.tensor(signal, dtype=torch.float32)


# ------------------------------------------------------------------------------------------------ front-end
@pytest.mark.parametrize("normalize", ["cumulative", False])
@pytest.mark.parametrize("deltas", [0, 1, 2])
def test_streamed_log_mels_equal_the_offline_features_for_any_chunking(normalize, deltas):
    frontend = LogMelSpectrogram.from_config(
        FeatureConfig(sample_rate=8000, n_mels=24, deltas=deltas, normalize=normalize, preemphasis=0.97)
    )
    signal = torch.stack([speechlike(6003, seed) for seed in (0, 1)])  # hop 80, n_fft 256: 6003 is no multiple
    offline, frames = frontend(signal)
    assert int(frames[0]) == offline.shape[1] == 72
    for sizes in ([1, 7], [37], [80], [333, 50, 1], [6003]):  # below, at and above the hop; the whole signal
        streamed, state = stream_in_chunks(frontend.stream, signal, frontend.initial_state(2), sizes)
        assert streamed.shape == offline.shape, sizes
        torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=0)
        assert int(state["emitted"]) == 72 and state["samples"].shape[1] < frontend.n_fft


def test_streamed_features_come_as_soon_as_their_frame_and_lookahead_are_complete():
    frontend = LogMelSpectrogram(8000, n_fft=256, hop_length=80, n_mels=8, deltas=1, normalize="none")
    state = frontend.initial_state(1)
    out, state = frontend.stream(torch.zeros(1, 255), state)
    assert out.shape[1] == 0  # no complete frame yet
    out, state = frontend.stream(torch.zeros(1, 1 + 3 * 80), state)  # frames 0..3 complete; deltas look 2 ahead
    assert out.shape[1] == 2 and int(state["frames"]) == 4
    out, state = frontend.stream(torch.zeros(1, 0), state, final=True)
    assert out.shape[1] == 2 and int(state["emitted"]) == 4


def test_a_signal_shorter_than_one_frame_streams_its_zero_padded_frame():
    frontend = LogMelSpectrogram(8000, n_fft=256, hop_length=80, n_mels=8, normalize="cumulative")
    signal = speechlike(100).unsqueeze(0)
    streamed, _ = stream_in_chunks(frontend.stream, signal, frontend.initial_state(1), [30])
    offline, _ = frontend(signal)
    assert streamed.shape == offline.shape == (1, 1, 8)
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=0)


def test_cumulative_normalisation_is_causal_and_uses_the_frames_so_far():
    features = torch.randn(1, 30, 5, dtype=torch.float64) * 3 + 7
    normalised, stats = cumulative_normalize(features)
    prefix, _ = cumulative_normalize(features[:, :12])
    torch.testing.assert_close(normalised[:, :12], prefix)  # later frames never change earlier ones
    t = 20
    seen = features[0, : t + 1]
    expected = (features[0, t] - seen.mean(0)) / (seen.std(0, unbiased=False) + 1e-5)
    torch.testing.assert_close(normalised[0, t], expected)
    assert int(stats["count"]) == 30


def test_normalize_setting_reads_booleans_and_names_and_refuses_others():
    assert FeatureConfig(normalize="utterance").normalize is True
    assert FeatureConfig(normalize="none").normalize is False
    assert FeatureConfig(normalize="cumulative").to_dict()["normalize"] == "cumulative"
    with pytest.raises(ValueError, match="normalize must be one of"):
        FeatureConfig(normalize="global")
    per_utterance = LogMelSpectrogram(8000, n_fft=256, hop_length=80, n_mels=8)
    with pytest.raises(ValueError, match="normalize=cumulative"):
        per_utterance.initial_state(1)


# ------------------------------------------------------------------------------------------------ network
def make_net(subsampling: str, cell: str = "gru", bidirectional: bool = False, seed: int = 0) -> CTCNet:
    torch.manual_seed(seed)
    sub = {
        "stack": FrameStacking(12, factor=3, output_size=16),
        "conv": ConvSubsampling(12, output_size=16, num_layers=2, kernel_size=3, stride=2),
        "conv5": ConvSubsampling(12, output_size=16, num_layers=1, kernel_size=5, stride=3),
        "none": None,
    }[subsampling]
    encoder = RecurrentEncoder(
        cell=cell,
        input_size=12 if sub is None else 16,
        hidden_size=20,
        num_layers=2,
        batch_first=True,
        bidirectional=bidirectional,
    )
    return CTCNet(encoder, num_classes=7, subsampling=sub).eval()


@pytest.mark.parametrize("subsampling,cell", [("stack", "gru"), ("conv", "lstm"), ("conv5", "gru"), ("none", "lstm")])
def test_streamed_log_probs_equal_the_offline_forward_for_any_chunking(subsampling, cell):
    net = make_net(subsampling, cell)
    inputs = torch.randn(2, 41, 12)
    with torch.no_grad():
        offline, lengths = net(inputs, torch.tensor([41, 41]))
        for sizes in ([1], [2, 5], [3], [7, 1, 13], [41]):  # one frame at a time up to the whole sequence
            streamed, _ = stream_in_chunks(net.stream, inputs, net.initial_state(2), sizes)
            assert streamed.shape == offline.shape, sizes
            torch.testing.assert_close(streamed, offline, atol=1e-6, rtol=0)
        # step: one frame in, a log-probability step out whenever one completes
        state, steps = net.initial_state(2), []
        for t in range(41):
            out, state = net.step(inputs[:, t], state)
            assert out.shape[1] in (0, 1)
            steps.append(out)
        last, _ = net.stream(inputs[:, :0], state, final=True)
        torch.testing.assert_close(torch.cat([*steps, last], 1), offline, atol=1e-6, rtol=0)
    assert int(lengths[0]) == offline.shape[1]


def test_streaming_state_survives_torch_save_and_resumes():
    net = make_net("stack", "lstm")
    inputs = torch.randn(1, 30, 12)
    with torch.no_grad():
        offline, _ = net(inputs, torch.tensor([30]))
        first, state = net.stream(inputs[:, :14], net.initial_state(1))  # 14: two frames wait in the stack
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        restored = torch.load(buffer, weights_only=True)
        second, _ = net.stream(inputs[:, 14:], restored, final=True)
    torch.testing.assert_close(torch.cat([first, second], 1), offline, atol=1e-6, rtol=0)


def test_a_bidirectional_encoder_refuses_to_stream_naming_the_fix():
    net = make_net("stack", bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional=false") as error:
        net.initial_state(1)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="bidirectional"):
        net.stream(torch.randn(1, 5, 12), {"encoder": None, "subsampling": None})


# ------------------------------------------------------------------------------------------------ decoding
@pytest.mark.parametrize("seed", range(3))
def test_incremental_greedy_decoding_ends_with_the_offline_transcript(seed):
    generator = torch.Generator().manual_seed(seed)
    # Few labels and runs of repeats, so chunk edges often fall inside a repeated label.
    best = torch.randint(0, 3, (2, 60), generator=generator).repeat_interleave(2, dim=1)
    log_probs = torch.nn.functional.one_hot(best, 4).float().log_softmax(-1)
    expected = ctc_greedy_decode(log_probs)
    decoder = GreedyCTCStreamDecoder(blank=0)
    for size in (1, 3, 7, 120):
        state, ids = decoder.initial_state(2), [[], []]
        for start in range(0, 120, size):
            added, state = decoder.stream(log_probs[:, start : start + size], state)
            ids = [old + new for old, new in zip(ids, added, strict=True)]
        assert ids == expected, size


# ------------------------------------------------------------------------------------------------ recogniser + CLI
def test_recogniser_streams_samples_to_the_offline_greedy_transcript():
    frontend = LogMelSpectrogram(8000, n_fft=256, hop_length=80, n_mels=12, normalize="cumulative")
    net = make_net("stack")
    labels = ["<blank>", *"abcdef"]
    recognizer = StreamingRecognizer(frontend, net, labels)
    signal = speechlike(7000, seed=3)
    with torch.no_grad():
        features, _ = frontend(signal.unsqueeze(0))
        log_probs, lengths = net(features, torch.tensor([features.shape[1]]))
    expected = "".join(labels[i] for i in ctc_greedy_decode(log_probs, lengths)[0])
    assert expected  # an untrained network still emits labels: the comparison below means something
    for chunk in (800, 123):
        state, partials = recognizer.initial_state(), []
        pieces = list(torch.split(signal, chunk))
        for index, piece in enumerate(pieces):
            text, state = recognizer.stream(piece, state, final=index == len(pieces) - 1)
            partials.append(text)
        assert partials[-1] == expected
        assert all(expected.startswith(p) for p in partials)  # greedy partials only grow
        torch.testing.assert_close(state["score"], log_probs[0].max(-1).values.sum().double().unsqueeze(0))
    with pytest.raises(ValueError, match="normalize=cumulative"):
        StreamingRecognizer(LogMelSpectrogram(8000, n_fft=256, hop_length=80, n_mels=12), net, labels)


def test_predict_stream_true_prints_partials_and_the_offline_transcript(compose_train_at, tmp_path, capsys):
    tiny = ["data.num_train=24", "data.num_val=8", "data.num_test=8", "trainer.max_epochs=1", "data.batch_size=8"]
    streaming = train(
        compose_train_at(
            tmp_path / "uni",
            "experiment=dtmf_ctc",
            *tiny,
            "model.net.encoder.bidirectional=false",
            "model.net.encoder.hidden_size=16",
            "data.features.normalize=cumulative",
            "model.optimizer.lr=1e-9",
        )
    )
    signal = dtmf_signal("90#5", np.random.default_rng(1), sample_rate=8000, tone_ms=(90, 90), gap_ms=(70, 70))
    wav = write_wav(tmp_path / "keys.wav", signal, 8000)
    options = dict(input=None, input_file=str(wav), beam_size=5, n_best=1, device="cpu", stream=True, chunk_ms=100)
    cfg = OmegaConf.create({**options, "ckpt_path": streaming.best_model_path})
    partials: list[tuple[float, str]] = []
    results = stream_audio(cfg, on_partial=lambda path, seconds, text: partials.append((seconds, text)))
    offline = predict_from_checkpoint(OmegaConf.create({**cfg, "stream": False, "beam_size": 1}))
    (path, [(text, score)]) = results[0]
    assert path == str(wav) and text == offline[1][0][1][0][0] and score <= 0
    # lr=1e-9 keeps the network near its initialisation, which emits labels: several partials, each a prefix
    assert len(partials) >= 2 and partials[-1][1] == text and all(text.startswith(p) for _, p in partials)
    assert [s for s, _ in partials] == sorted(s for s, _ in partials) and partials[0][0] == pytest.approx(0.1)
    kind, via_dispatch = predict_from_checkpoint(cfg)  # what the CLI runs; partials go to stderr
    assert via_dispatch[0][1][0][0] == text
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"s] {text}")

    bidirectional = train(compose_train_at(tmp_path / "bi", "experiment=dtmf_ctc", *tiny))
    with pytest.raises(ValueError, match="bidirectional=false") as error:
        predict_from_checkpoint(OmegaConf.create({**options, "ckpt_path": bidirectional.best_model_path}))
    assert "\n" not in str(error.value) and "stream=true cannot use" in str(error.value)
    text_model = train(compose_train_at(tmp_path / "text", "experiment=reverse", *tiny[:4]))
    with pytest.raises(ValueError, match="stream=true streams audio into a speech") as error:
        predict_from_checkpoint(OmegaConf.create({**options, "ckpt_path": text_model.best_model_path}))
    assert "\n" not in str(error.value) and "drop stream=true" in str(error.value)
    empty = tmp_path / "empty.wav"
    write_wav(empty, np.zeros(10, dtype=np.float32), 8000)
    with pytest.raises(ValueError, match="shorter than one feature frame"):
        stream_audio(OmegaConf.create({**cfg, "input_file": str(empty)}))
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(ValueError, match="cannot read .* as a WAV file"):
        stream_audio(
            OmegaConf.create(
                {**options, "ckpt_path": streaming.best_model_path, "input_file": str(tmp_path / "text.wav")}
            )
        )
