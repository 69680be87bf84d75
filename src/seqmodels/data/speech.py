"""Speech recognition data: utterances -> log-mel features (L, C) and CTC label ids.

Items are ``(features (L, C) float, label ids (S,))``; batches pad both (``targets``/``target_lengths``). The
labels are characters: index 0 is the CTC blank (``<blank>``), then the datamodule's alphabet, so the label set
follows from the config alone and nothing needs to be stored. Features come from
:class:`~seqmodels.nn.LogMelSpectrogram`, computed once per utterance when the data is built.

* :class:`DTMFDataModule`: keypad (DTMF) tone sequences generated in-process -> ``"3 1 4 #"``.
* :class:`SpokenDigitsDataModule`: digit strings spoken by espeak-ng -> ``"three one four"``, synthesised once
  into a cache folder; the test split's voices are never heard in training.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from seqmodels.data.audio import read_wav, write_wav
from seqmodels.data.conditional import DIGIT_WORDS
from seqmodels.data.datamodule import MissingDataFileError, SequenceDataModule, SequenceDataset
from seqmodels.nn.audio import FeatureConfig, LogMelSpectrogram, resample

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
BLANK = "<blank>"


def _range(value: Sequence[float], name: str) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if low > high:
        raise ValueError(f"{name} must be a [low, high] range with low <= high, got {list(value)}")
    return low, high


def colored_noise(length: int, rng: np.random.Generator, color: str = "white") -> np.ndarray:
    """Unit-RMS noise: ``"white"``, ``"pink"`` (power falling as 1/f) or ``"brown"`` (1/f^2)."""
    if color not in ("white", "pink", "brown"):
        raise ValueError(f"noise color must be white, pink or brown, got {color!r}")
    noise = rng.standard_normal(length)
    if color != "white" and length > 1:
        size = 1 << (length - 1).bit_length()  # a power of two: fast FFTs whatever the length
        spectrum = np.fft.rfft(noise, n=size)
        freqs = np.arange(len(spectrum), dtype=np.float64)
        freqs[0] = 1.0
        spectrum /= freqs ** (0.5 if color == "pink" else 1.0)
        noise = np.fft.irfft(spectrum, n=size)[:length]
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)


def add_noise(
    signal: np.ndarray, snr_db: float, rng: np.random.Generator, color: str = "white", signal_power: float | None = None
) -> np.ndarray:
    """``signal`` plus noise ``snr_db`` dB below ``signal_power`` (default: the signal's mean power)."""
    power = float(np.mean(signal.astype(np.float64) ** 2)) if signal_power is None else signal_power
    noise = colored_noise(len(signal), rng, color) * np.sqrt(max(power, 1e-12) / 10 ** (snr_db / 10))
    return (signal + noise).astype(np.float32)


def _derived_alphabet(alphabet: str, base: dict[str, Any]) -> str:
    """``alphabet``, after taking a stored ``alphabet`` out of ``base``: hyperparameters saved before the front-end
    settings became :class:`~seqmodels.nn.FeatureConfig` hold it, though it always follows from the other arguments."""
    stored = base.pop("alphabet", alphabet)
    if stored != alphabet:
        raise ValueError(f"alphabet {stored!r} does not match the one these settings give, {alphabet!r}")
    return alphabet


class SpeechDataModule(SequenceDataModule):
    """Base of speech datamodules: subclasses implement :meth:`utterances` -> ``[(waveform, transcript), ...]``.

    Args:
        alphabet: the characters transcripts use; labels are ``["<blank>", *alphabet]`` (blank = 0).
        features: the log-mel front-end, a :class:`~seqmodels.nn.FeatureConfig` or a mapping of some of its
            fields (the ``data.features`` config node), over the class's :attr:`default_features`. Its
            ``sample_rate`` is the waveforms' (audio at another rate is resampled when read from a file).
        **base: :class:`SequenceDataModule` arguments. Front-end fields given here flat (``sample_rate=8000``, as
            configs and checkpoints wrote them before ``features``) are accepted and override ``features``.

    ``dims``: ``input_size`` (features per frame), ``num_classes`` (labels, blank included), ``blank`` (0),
    ``labels``, ``feature_groups`` (1 + deltas: blocks of ``n_mels`` channels), ``n_mels``.
    """

    target_padding_value = 0  # CTC reads targets only up to target_lengths
    target_mode = "pad"
    dims_need_data = False
    blank = 0
    #: the front-end when ``features`` leaves a field out
    default_features = FeatureConfig()

    def __init__(self, alphabet: str, features: FeatureConfig | Mapping[str, Any] | None = None, **base: Any) -> None:
        flat = {name: base.pop(name) for name in FeatureConfig.field_names() if name in base}
        super().__init__(**base)
        if not alphabet or len(set(alphabet)) != len(alphabet):
            raise ValueError(f"alphabet must be non-empty characters without repeats, got {alphabet!r}")
        self.features = self.default_features.replace(features, **flat)
        # Checkpoints keep the hyperparameters as plain data: the whole front-end as one ``features`` dict, no flat
        # copies of its fields, and no ``alphabet`` (it follows from the subclass's arguments).
        for name in (*FeatureConfig.field_names(), "alphabet"):
            self.hparams.pop(name, None)
        self.hparams["features"] = self.features.to_dict()
        self.labels = [BLANK, *alphabet]
        self.label_ids = {char: index for index, char in enumerate(self.labels) if index != self.blank}
        self.featurizer = LogMelSpectrogram.from_config(self.features)
        self.texts: dict[str, list[str]] = {}

    @property
    def sample_rate(self) -> int:
        return self.featurizer.sample_rate

    def utterances(self, split: str) -> list[tuple[np.ndarray, str]]:
        """``(waveform (T,) float32 at sample_rate, transcript)`` pairs of one split."""
        raise NotImplementedError

    def build(self) -> None:
        for split in SPLITS:
            utterances = self.utterances(split)
            self.texts[split] = [text for _, text in utterances]
            features = self.featurize_many([torch.as_tensor(w, dtype=torch.float32) for w, _ in utterances])
            setattr(self, f"{split}_set", SequenceDataset(features, [self.encode(t) for t in self.texts[split]]))

    @torch.no_grad()
    def featurize_many(self, waveforms: list[Tensor], chunk: int = 64) -> list[Tensor]:
        """Features (L, C) of each waveform, computed in padded chunks of similar length (same result as one by one)."""
        order = sorted(range(len(waveforms)), key=lambda i: len(waveforms[i]))
        features: list[Tensor | None] = [None] * len(waveforms)
        for start in range(0, len(order), chunk):
            picked = order[start : start + chunk]
            lengths = torch.tensor([len(waveforms[i]) for i in picked])
            batch = torch.nn.utils.rnn.pad_sequence([waveforms[i] for i in picked], batch_first=True)
            out, frames = self.featurizer(batch, lengths)
            for row, i in enumerate(picked):
                features[i] = out[row, : int(frames[row])].clone()
        return features  # type: ignore[return-value]

    # ------------------------------------------------------------------ labels
    def encode(self, text: str) -> Tensor:
        """Transcript -> label ids (S,); a character outside the alphabet is an error."""
        unknown = sorted({char for char in text if char not in self.label_ids})
        if unknown:
            raise ValueError(f"transcript {text!r} has characters outside the alphabet: {unknown}")
        return torch.tensor([self.label_ids[char] for char in text], dtype=torch.long)

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """Label ids -> text (blanks skipped)."""
        ids = ids.tolist() if isinstance(ids, Tensor) else ids
        return "".join(self.labels[i] for i in ids if i != self.blank)

    # ------------------------------------------------------------------ audio in
    def features_from_waveform(self, waveform: Tensor, sample_rate: int, source: str = "the waveform") -> Tensor:
        """A mono waveform (T,) at ``sample_rate`` -> features (L, C), resampled to :attr:`sample_rate` first.

        Audio shorter than one feature frame (``n_fft`` samples at :attr:`sample_rate`) is a one-line
        ``ValueError`` naming ``source`` and its duration: it would only be zero-padding, an empty transcript.
        """
        return self.featurizer.featurize(self.waveform_for_model(waveform, sample_rate, source))

    def waveform_for_model(self, waveform: Tensor, sample_rate: int, source: str = "the waveform") -> Tensor:
        """A mono waveform (T,) at ``sample_rate`` -> float32 at :attr:`sample_rate`, at least one feature frame
        long (else the one-line ``ValueError`` of :meth:`features_from_waveform`)."""
        resampled = resample(waveform.float(), sample_rate, self.sample_rate)
        if resampled.shape[-1] < self.featurizer.n_fft:
            frame_ms = 1000.0 * self.featurizer.n_fft / self.sample_rate
            raise ValueError(
                f"{source} lasts {1000.0 * waveform.shape[-1] / sample_rate:.1f} ms ({waveform.shape[-1]} samples at "
                f"{sample_rate} Hz), shorter than one feature frame ({frame_ms:.1f} ms); give a longer recording"
            )
        return resampled

    def features_from_wav(self, path: str | Path) -> Tensor:
        """A WAV file (any PCM rate, channels averaged) -> features (L, C); :func:`read_wav` says which it refuses."""
        waveform, rate = read_wav(path)
        return self.features_from_waveform(waveform, rate, source=str(Path(path).expanduser()))

    def _dims(self) -> dict[str, Any]:
        return {
            "input_size": self.featurizer.output_size,
            "num_classes": len(self.labels),
            "blank": self.blank,
            "labels": list(self.labels),
            "feature_groups": 1 + self.featurizer.deltas,
            "n_mels": self.featurizer.n_mels,
        }


# ------------------------------------------------------------------------------------------------ DTMF
#: (low, high) tone frequencies in Hz of each key of the telephone keypad.
DTMF_TONES = {
    "1": (697, 1209),
    "2": (697, 1336),
    "3": (697, 1477),
    "A": (697, 1633),
    "4": (770, 1209),
    "5": (770, 1336),
    "6": (770, 1477),
    "B": (770, 1633),
    "7": (852, 1209),
    "8": (852, 1336),
    "9": (852, 1477),
    "C": (852, 1633),
    "*": (941, 1209),
    "0": (941, 1336),
    "#": (941, 1477),
    "D": (941, 1633),
}


def dtmf_signal(
    keys: str,
    rng: np.random.Generator,
    sample_rate: int = 8000,
    tone_ms: Sequence[float] = (40, 120),
    gap_ms: Sequence[float] = (30, 120),
    snr_db: Sequence[float] = (5, 30),
    frequency_jitter: float = 0.015,
) -> np.ndarray:
    """A keypad signal: silence, then each key's two tones (with gaps between keys), silence, plus noise.

    Each tone lasts ``tone_ms`` and each gap ``gap_ms`` (uniform ranges); tone frequencies are off by up to
    ``frequency_jitter`` (the standard's tolerance is 1.5%), the high tone is up to 3 dB louder or softer than
    the low one ("twist"), and Gaussian white noise is added at an SNR drawn from ``snr_db``.
    """

    def span(ms_range: Sequence[float]) -> int:
        return max(1, int(rng.uniform(*ms_range) * sample_rate / 1000))

    pieces = [np.zeros(span(gap_ms))]
    for key in keys:
        n = span(tone_ms)
        t = np.arange(n) / sample_rate
        amplitude = rng.uniform(0.1, 0.5)
        twist = 10 ** (rng.uniform(-3, 3) / 20)
        tone = np.zeros(n)
        for frequency, gain in zip(DTMF_TONES[key], (1.0, twist), strict=True):
            frequency *= 1 + rng.uniform(-frequency_jitter, frequency_jitter)
            tone += gain * np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi))
        ramp = min(n // 2, int(0.005 * sample_rate))  # 5 ms fades: no clicks
        if ramp:
            fade = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
            tone[:ramp] *= fade
            tone[-ramp:] *= fade[::-1]
        pieces += [amplitude * tone, np.zeros(span(gap_ms))]
    signal = np.concatenate(pieces)
    tone_power = float(np.mean(signal[np.abs(signal) > 0] ** 2))  # the SNR is set against the tones, not the gaps
    return add_noise(signal, rng.uniform(*snr_db), rng, signal_power=tone_power)


class DTMFDataModule(SpeechDataModule):
    """Keypad (DTMF) tone sequences -> the keys pressed, generated in-process (nothing to install or download).

    Each utterance presses ``min_keys``..``max_keys`` random keys; tone and gap durations, levels, frequency
    errors and the noise level vary (see :func:`dtmf_signal`). The transcript is the keys separated by
    ``separator`` (``"3 1 4"``), so WER counts keys and CER counts keys and separators. Each split draws from its
    own random stream seeded by ``(seed, split)``.

    Args:
        num_train, num_val, num_test: utterances per split.
        keys: the keys used (of ``0-9 * # A-D``).
        min_keys, max_keys: keys per utterance.
        tone_ms, gap_ms, snr_db, frequency_jitter: see :func:`dtmf_signal`.
        separator: between keys in the transcript ("" for none).
        features: the front-end (:class:`SpeechDataModule`); the defaults cover the telephone band at 8 kHz.
    """

    default_features = FeatureConfig(sample_rate=8000, f_min=300.0, f_max=3400.0)

    def __init__(
        self,
        num_train: int = 2000,
        num_val: int = 200,
        num_test: int = 200,
        keys: str = "0123456789*#",
        min_keys: int = 1,
        max_keys: int = 6,
        tone_ms: Sequence[float] = (40, 120),
        gap_ms: Sequence[float] = (30, 120),
        snr_db: Sequence[float] = (5, 30),
        frequency_jitter: float = 0.015,
        separator: str = " ",
        features: FeatureConfig | Mapping[str, Any] | None = None,
        **base: Any,
    ) -> None:
        bad = sorted(set(keys) - set(DTMF_TONES))
        if bad or not keys:
            raise ValueError(f"keys must be DTMF keys (0-9 * # A-D), got {keys!r}")
        if len(separator) > 1 or separator in DTMF_TONES:
            raise ValueError(f"separator must be one non-key character or empty, got {separator!r}")
        alphabet = _derived_alphabet("".join(dict.fromkeys(keys)) + separator, base)
        super().__init__(alphabet, features=features, **base)
        if min(num_train, num_val, num_test) < 0 or num_train == 0:
            raise ValueError(f"need num_train > 0 and num_val, num_test >= 0, got {num_train}, {num_val}, {num_test}")
        if not 1 <= min_keys <= max_keys:
            raise ValueError(f"need 1 <= min_keys <= max_keys, got {min_keys}, {max_keys}")
        if min(_range(tone_ms, "tone_ms")) <= 0 or min(_range(gap_ms, "gap_ms")) <= 0:
            raise ValueError("tone_ms and gap_ms must be positive ranges in milliseconds")
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.keys, self.min_keys, self.max_keys = "".join(dict.fromkeys(keys)), min_keys, max_keys
        self.tone_ms, self.gap_ms, self.snr_db = tone_ms, gap_ms, _range(snr_db, "snr_db")
        self.frequency_jitter, self.separator = frequency_jitter, separator

    def utterances(self, split: str) -> list[tuple[np.ndarray, str]]:
        rng = np.random.default_rng([int(self.seed), SPLITS.index(split)])
        items = []
        for _ in range(self.sizes[split]):
            pressed = "".join(rng.choice(list(self.keys), int(rng.integers(self.min_keys, self.max_keys + 1))))
            signal = dtmf_signal(
                pressed, rng, self.sample_rate, self.tone_ms, self.gap_ms, self.snr_db, self.frequency_jitter
            )
            items.append((signal, self.separator.join(pressed)))
        return items


# ------------------------------------------------------------------------------------------------ espeak-ng
ESPEAK = "espeak-ng"
ESPEAK_RATE = 22050
CACHE_VERSION = 1
# Voices are an espeak-ng accent plus a voice variant ("en-us+f3"). No test voice (and no test variant) is
# used in training; validation uses two more unseen combinations to pick the checkpoint.
TRAIN_VOICES = (
    "en-us+m1",
    "en-us+f1",
    "en-us+klatt",
    "en+m2",
    "en+f2",
    "en+klatt2",
    "en-gb-scotland+m3",
    "en-gb-scotland+f4",
    "en-gb-x-rp+m4",
    "en-gb-x-rp+klatt4",
    "en-029+m5",
    "en-029+f5",
    "en-us-nyc+m7",
    "en-us-nyc+klatt5",
    "en-gb-x-gbclan+m8",
    "en-gb-x-gbclan+f1",
)
VAL_VOICES = ("en-gb-x-gbcwmd+m2", "en-us-nyc+f4")
TEST_VOICES = ("en-us+f3", "en+m6", "en-gb-x-rp+klatt3", "en-gb-x-gbcwmd+m1")


class EspeakNotFoundError(MissingDataFileError):
    """espeak-ng is needed to synthesise speech and is not installed."""


def espeak_available() -> bool:
    return shutil.which(ESPEAK) is not None


def require_espeak() -> str:
    path = shutil.which(ESPEAK)
    if path is None:
        raise EspeakNotFoundError(
            "spoken digits need espeak-ng, which is not installed: apt-get install espeak-ng "
            "(Debian/Ubuntu; brew install espeak-ng on macOS), or point data.cache_dir at a generated cache"
        )
    return path


def speak(text: str, voice: str, speed: int, pitch: int, word_gap: int, path: Path) -> None:
    """Synthesises ``text`` with espeak-ng into the WAV file ``path`` (22,050 Hz, 16-bit mono)."""
    command = [
        require_espeak(),
        "-v",
        voice,
        "-s",
        str(speed),
        "-p",
        str(pitch),
        "-g",
        str(word_gap),
        "-w",
        str(path),
        text,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0 or not path.is_file():
        message = " ".join((result.stderr or result.stdout or "no output").split())[:200]
        raise RuntimeError(f"espeak-ng failed for voice {voice!r}: {message}")


class SpokenDigitsDataModule(SpeechDataModule):
    """Spoken digit strings synthesised by espeak-ng (the Debian package ``espeak-ng``) -> their transcripts.

    Each utterance is a random string of ``min_digits``..``max_digits`` digits spoken by one voice of its split,
    at a random speed (words per minute), pitch and gap between words. The audio is synthesised once into
    ``cache_dir`` (16-bit WAVs at ``sample_rate`` plus a ``manifest.json`` per split, keyed by the generation
    settings) and read from there afterwards, without espeak-ng. When the data is built, each utterance gets
    random leading and trailing silence, a random gain, and white, pink or brown noise at an SNR from ``snr_db``
    (seeded, the same every time).

    The test split's voices are held out: none of them, and none of their voice variants, is used in training.

    Args:
        cache_dir: where the audio is kept (default ``$SEQMODELS_CACHE_DIR`` or ``~/.cache/seqmodels``); null
            generates into a temporary folder that is deleted afterwards.
        num_train, num_val, num_test: utterances per split.
        min_digits, max_digits: digits per string.
        train_voices, val_voices, test_voices: espeak-ng voices (``accent+variant``) of each split.
        speed: words per minute range; pitch: espeak-ng pitch range (0-99); word_gap: pause between words in
            units of 10 ms.
        snr_db: noise level range; silence_ms: leading/trailing silence range.
        transcript: ``"words"`` (``"three one four"``: CER counts letters, WER counts digits) or ``"digits"``
            (``"3 1 4"``).
        jobs: espeak-ng processes run at once while generating.
        features: the front-end (:class:`SpeechDataModule`); 16 kHz, pre-emphasis 0.97 by default.
    """

    default_features = FeatureConfig(sample_rate=16000, preemphasis=0.97)

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        num_train: int = 6000,
        num_val: int = 300,
        num_test: int = 800,
        min_digits: int = 1,
        max_digits: int = 7,
        train_voices: Sequence[str] = TRAIN_VOICES,
        val_voices: Sequence[str] = VAL_VOICES,
        test_voices: Sequence[str] = TEST_VOICES,
        speed: Sequence[int] = (130, 210),
        pitch: Sequence[int] = (25, 75),
        word_gap: Sequence[int] = (0, 4),
        snr_db: Sequence[float] = (10, 30),
        silence_ms: Sequence[float] = (20, 300),
        transcript: str = "words",
        jobs: int = 2,
        features: FeatureConfig | Mapping[str, Any] | None = None,
        **base: Any,
    ) -> None:
        if transcript not in ("words", "digits"):
            raise ValueError(f"transcript must be 'words' or 'digits', got {transcript!r}")
        alphabet = "".join(sorted(set("".join(DIGIT_WORDS)))) + " " if transcript == "words" else "0123456789 "
        super().__init__(_derived_alphabet(alphabet, base), features=features, **base)
        if min(num_train, num_val, num_test) < 0 or num_train == 0:
            raise ValueError(f"need num_train > 0 and num_val, num_test >= 0, got {num_train}, {num_val}, {num_test}")
        if not 1 <= min_digits <= max_digits:
            raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.voices = {"train": list(train_voices), "val": list(val_voices), "test": list(test_voices)}
        for split, voices in self.voices.items():
            if not voices and self.sizes[split]:
                raise ValueError(f"{split}_voices is empty; name at least one espeak-ng voice")
        shared = sorted(set(self.voices["train"]) & set(self.voices["test"]))
        if shared:
            raise ValueError(f"test voices must be held out from training, but {shared} are in both")
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.min_digits, self.max_digits = min_digits, max_digits
        self.speed, self.pitch = _range(speed, "speed"), _range(pitch, "pitch")
        self.word_gap = _range(word_gap, "word_gap")
        self.snr_db, self.silence_ms = _range(snr_db, "snr_db"), _range(silence_ms, "silence_ms")
        self.transcript, self.jobs = transcript, max(1, int(jobs))

    # ------------------------------------------------------------------ generation (espeak-ng, cached)
    def generation_settings(self, split: str) -> dict[str, Any]:
        """Everything that decides a split's audio (its cache key)."""
        return {
            "version": CACHE_VERSION,
            "seed": int(self.seed),
            "split": split,
            "count": self.sizes[split],
            "digits": [self.min_digits, self.max_digits],
            "voices": self.voices[split],
            "speed": self.speed,
            "pitch": self.pitch,
            "word_gap": self.word_gap,
            "sample_rate": self.sample_rate,
        }

    def split_dir(self, root: Path, split: str) -> Path:
        settings = json.dumps(self.generation_settings(split), sort_keys=True)
        return root / "spoken_digits" / f"{split}_{hashlib.sha1(settings.encode()).hexdigest()[:12]}"

    def plan(self, split: str) -> list[dict[str, Any]]:
        """What each utterance of a split says and how: ``{"file", "digits", "voice", "speed", "pitch", "word_gap"}``.

        Utterance ``i`` depends only on ``(seed, split, i)`` and the settings, never on the other splits.
        """
        plan = []
        for index in range(self.sizes[split]):
            rng = np.random.default_rng([int(self.seed), SPLITS.index(split), index])
            count = int(rng.integers(self.min_digits, self.max_digits + 1))
            digits = "".join(str(d) for d in rng.integers(0, 10, count))
            plan.append(
                {
                    "file": f"{index:05d}.wav",
                    "digits": digits,
                    "voice": str(rng.choice(self.voices[split])),
                    "speed": int(rng.integers(self.speed[0], self.speed[1] + 1)),
                    "pitch": int(rng.integers(self.pitch[0], self.pitch[1] + 1)),
                    "word_gap": int(rng.integers(self.word_gap[0], self.word_gap[1] + 1)),
                }
            )
        return plan

    def _synthesise(self, item: dict[str, Any], folder: Path) -> None:
        raw = folder / f"{item['file']}.espeak.wav"
        text = " ".join(DIGIT_WORDS[int(d)] for d in item["digits"])
        speak(text, item["voice"], item["speed"], item["pitch"], item["word_gap"], raw)
        waveform, rate = read_wav(raw)
        write_wav(folder / item["file"], resample(waveform, rate, self.sample_rate), self.sample_rate)
        raw.unlink()

    def generate(self, split: str, root: Path) -> Path:
        """Synthesises a split into its cache folder (unless it is there already); returns the folder."""
        folder = self.split_dir(root, split)
        manifest = folder / "manifest.json"
        if manifest.is_file():
            return folder
        require_espeak()
        plan = self.plan(split)
        folder.mkdir(parents=True, exist_ok=True)
        log.info("Synthesising %d spoken digit strings (%s) with espeak-ng into %s", len(plan), split, folder)
        with concurrent.futures.ThreadPoolExecutor(self.jobs) as pool:
            for _ in pool.map(lambda item: self._synthesise(item, folder), plan):
                pass
        tmp = manifest.with_suffix(".tmp")
        tmp.write_text(json.dumps({"settings": self.generation_settings(split), "utterances": plan}))
        tmp.replace(manifest)  # written last: a folder without a manifest is incomplete and is redone
        return folder

    def _transcript(self, digits: str) -> str:
        return " ".join(DIGIT_WORDS[int(d)] if self.transcript == "words" else d for d in digits)

    def _load(self, split: str, root: Path) -> list[tuple[np.ndarray, str]]:
        folder = self.generate(split, root)
        utterances = json.loads((folder / "manifest.json").read_text())["utterances"]
        items = []
        for index, item in enumerate(utterances):
            waveform, _ = read_wav(folder / item["file"])
            rng = np.random.default_rng([int(self.seed), SPLITS.index(split), index, 1])
            pad = [np.zeros(int(rng.uniform(*self.silence_ms) * self.sample_rate / 1000), np.float32) for _ in "ab"]
            speech = waveform.numpy() * rng.uniform(0.3, 1.0)
            voiced = speech[np.abs(speech) > 1e-3]  # the SNR is set against the speech, not its pauses
            power = float(np.mean(voiced**2)) if len(voiced) else None
            signal = add_noise(
                np.concatenate([pad[0], speech, pad[1]]),
                rng.uniform(*self.snr_db),
                rng,
                str(rng.choice(["white", "pink", "brown"])),
                power,
            )
            items.append((signal, self._transcript(item["digits"])))
        return items

    def utterances(self, split: str) -> list[tuple[np.ndarray, str]]:
        if self.sizes[split] == 0:
            return []
        if self.cache_dir is not None:
            return self._load(split, self.cache_dir)
        with tempfile.TemporaryDirectory(prefix="seqmodels_spoken_digits_") as tmp:
            return self._load(split, Path(tmp))

    def prepare_data(self) -> None:
        """Synthesises the cache once (Lightning calls this on one process before ``setup``)."""
        if self.cache_dir is not None:
            for split in SPLITS:
                if self.sizes[split]:
                    self.generate(split, self.cache_dir)


__all__ = [
    "BLANK",
    "DTMFDataModule",
    "DTMF_TONES",
    "EspeakNotFoundError",
    "SpeechDataModule",
    "SpokenDigitsDataModule",
    "add_noise",
    "colored_noise",
    "dtmf_signal",
    "espeak_available",
    "require_espeak",
    "speak",
]
