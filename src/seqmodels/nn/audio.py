"""Audio front-end in plain torch: resampling, framing + ``torch.stft``, log-mel filterbank, deltas, per-utterance
or cumulative (causal) normalisation, chunk-by-chunk streaming, and SpecAugment-style masking for training.

Shapes: N batch, T samples, L frames, C features per frame. Waveforms are float in [-1, 1].
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from seqmodels.nn.masking import as_lengths, lengths_to_mask


# ------------------------------------------------------------------------------------------------ mel scale
def hz_to_mel(frequency: Tensor | float) -> Tensor:
    """HTK mel scale: ``2595 * log10(1 + f / 700)``."""
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(frequency, dtype=torch.float64) / 700.0)


def mel_to_hz(mel: Tensor | float) -> Tensor:
    return 700.0 * (10.0 ** (torch.as_tensor(mel, dtype=torch.float64) / 2595.0) - 1.0)


def mel_filterbank(
    n_freqs: int,
    n_mels: int,
    sample_rate: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Triangular filters on the HTK mel scale, (n_freqs, n_mels): ``power (.., n_freqs) @ fb`` -> mel energies.

    Filter ``m`` rises linearly (in Hz) from centre ``m - 1`` to centre ``m`` and falls to centre ``m + 1``; the
    ``n_mels + 2`` edges are equally spaced in mel between ``f_min`` and ``f_max`` (default: Nyquist). The FFT bins
    are ``n_freqs`` frequencies equally spaced from 0 to Nyquist (``n_fft // 2 + 1`` of them).
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0.0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2 = {sample_rate / 2}, got {f_min}, {f_max}")
    if n_mels < 1 or n_freqs < 2:
        raise ValueError(f"need n_mels >= 1 and n_freqs >= 2, got {n_mels}, {n_freqs}")
    bins = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2, dtype=torch.float64))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins[:, None] - lower) / (centre - lower)
    falling = (upper - bins[:, None]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).to(dtype)


def mel_centres(n_mels: int, f_min: float, f_max: float) -> Tensor:
    """Centre frequency (Hz) of each filter of :func:`mel_filterbank`."""
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2, dtype=torch.float64))
    return edges[1:-1].float()


# ------------------------------------------------------------------------------------------------ resampling
def resample(
    waveform: Tensor, orig_freq: int, new_freq: int, lowpass_filter_width: int = 6, rolloff: float = 0.99
) -> Tensor:
    """Band-limited resampling with a Hann-windowed sinc, (..., T) -> (..., ceil(T * new_freq / orig_freq)).

    The rates are reduced by their gcd and the signal is filtered once per output phase (a polyphase
    ``conv1d``); the cut-off is ``rolloff`` times the lower Nyquist frequency, so downsampling does not alias.
    """
    orig_freq, new_freq = int(orig_freq), int(new_freq)
    if orig_freq <= 0 or new_freq <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_freq} and {new_freq}")
    if orig_freq == new_freq:
        return waveform
    gcd = math.gcd(orig_freq, new_freq)
    orig, new = orig_freq // gcd, new_freq // gcd
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    taps = torch.arange(-width, width + orig, dtype=torch.float64)[None, :] / orig
    times = (-torch.arange(new, dtype=torch.float64)[:, None] / new + taps) * base
    times = times.clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(times * math.pi / lowpass_filter_width / 2) ** 2
    times = times * math.pi
    sinc = torch.where(times == 0, torch.ones_like(times), torch.sin(times) / times)
    kernels = (sinc * window * base / orig).to(waveform.dtype).unsqueeze(1)  # (new, 1, K)

    shape = waveform.shape
    flat = waveform.reshape(-1, 1, shape[-1])
    padded = nn.functional.pad(flat, (width, width + orig))
    out = nn.functional.conv1d(padded, kernels, stride=orig)  # (B, new, frames)
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)
    target = math.ceil(new * shape[-1] / orig)
    return out[:, :target].reshape(*shape[:-1], target)


# ------------------------------------------------------------------------------------------------ features
NORMALIZE_MODES = ("utterance", "cumulative", "none")


def normalize_mode(value: bool | str | None) -> bool | str:
    """``normalize`` as stored: True (per-utterance), False (none) or ``"cumulative"``; the names ``"utterance"``
    and ``"none"`` read as True and False, so configs and checkpoints written with booleans keep their meaning."""
    if value is None or isinstance(value, bool):
        return bool(value)
    name = str(value).strip().lower()
    if name in ("true", "utterance"):
        return True
    if name in ("false", "none", "null"):
        return False
    if name == "cumulative":
        return "cumulative"
    raise ValueError(f"features: normalize must be one of {list(NORMALIZE_MODES)} (or true / false), got {value!r}")


def cumulative_normalize(features: Tensor, stats: dict[str, Tensor] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Causal mean and variance normalisation: frame ``t`` minus the mean of frames ``0..t``, over their standard
    deviation (+ 1e-5), per channel. Statistics are float64 sums of the frames minus the first frame (a shift that
    keeps the variance exact); ``stats`` carries them from an earlier chunk, so chunks give the whole's result.

    Inputs: ``features`` (N, l, C), ``stats`` from the previous call or None. Outputs: (N, l, C), the new stats.
    """
    n, length, channels = features.shape
    x = features.double()
    if stats is None:
        stats = {
            "shift": x[:, 0] if length else x.new_zeros(n, channels),
            "sum": x.new_zeros(n, channels),
            "sumsq": x.new_zeros(n, channels),
            "count": torch.zeros((), dtype=torch.long),
        }
    if not length:
        return features, stats
    count = int(stats["count"])
    shift = stats["shift"] if count else x[:, 0]
    d = x - shift[:, None]
    # The running sums lead each cumulative sum, so chunks add in the same order as the whole signal.
    sums = torch.cumsum(torch.cat([stats["sum"][:, None], d], 1), 1)[:, 1:]
    sumsq = torch.cumsum(torch.cat([stats["sumsq"][:, None], d * d], 1), 1)[:, 1:]
    counts = torch.arange(count + 1, count + length + 1, dtype=torch.float64, device=x.device)[None, :, None]
    mean = sums / counts
    var = (sumsq / counts - mean * mean).clamp(min=0.0)
    out = ((d - mean) / (var.sqrt() + 1e-5)).to(features.dtype)
    new = {"shift": shift, "sum": sums[:, -1], "sumsq": sumsq[:, -1], "count": torch.tensor(count + length)}
    return out, new


def compute_deltas(features: Tensor, lengths: Tensor | None = None, width: int = 2) -> Tensor:
    """Regression deltas along time: ``d_t = sum_n n (c_{t+n} - c_{t-n}) / (2 sum_n n^2)``, n = 1..width.

    Each sequence's first and last valid frames are repeated past its ends, so padding never enters a delta.
    Input and output: (N, L, C); ``lengths`` (N,) (default: all L).
    """
    if width < 1:
        raise ValueError(f"delta width must be >= 1, got {width}")
    n, length, _ = features.shape
    lengths = torch.full((n,), length, dtype=torch.long) if lengths is None else as_lengths(lengths)
    lengths = lengths.to(features.device)
    steps = torch.arange(length, device=features.device)
    last = (lengths - 1).clamp(min=0)[:, None]
    out = torch.zeros_like(features)
    for k in range(1, width + 1):
        ahead = torch.minimum((steps + k)[None, :].expand(n, -1), last)
        behind = (steps - k).clamp(min=0)[None, :].expand(n, -1)
        behind = torch.minimum(behind, last)
        gather = lambda idx: features.gather(1, idx[..., None].expand(-1, -1, features.shape[-1]))  # noqa: E731
        out = out + k * (gather(ahead) - gather(behind))
    return out / (2 * sum(k * k for k in range(1, width + 1)))


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """The log-mel front-end's settings, in the units configs use (Hz, milliseconds): one place for their names,
    defaults and meaning, shared by :class:`LogMelSpectrogram` and the speech datamodules (``data.features``).

    Args:
        sample_rate: Hz of the waveforms.
        win_ms, hop_ms: analysis window and frame step in milliseconds (:attr:`win_length` and :attr:`hop_length`
            samples, rounded); the FFT size :attr:`n_fft` is the next power of two >= the window.
        n_mels: mel filters.
        f_min, f_max: the filterbank's range in Hz (``f_max`` None: Nyquist).
        deltas: 0 (log-mels only), 1 (+ deltas) or 2 (+ deltas and delta-deltas).
        normalize: mean and variance normalisation of each channel: ``true`` (or ``utterance``) over the whole
            utterance; ``cumulative`` over the frames so far (causal: what streaming recognition needs, and the
            same chunk by chunk as offline); ``false`` (or ``none``) for none.
        preemphasis: ``x[t] - preemphasis * x[t - 1]`` before framing (0 disables it).

    ``LogMelSpectrogram.from_config(config)`` builds the module, which checks the values.
    """

    sample_rate: int = 16000
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_mels: int = 40
    f_min: float = 0.0
    f_max: float | None = None
    deltas: int = 0
    normalize: bool | str = True
    preemphasis: float = 0.0

    def __post_init__(self) -> None:
        # Plain Python types, whatever the source (YAML ints for floats, numpy scalars): equal configs compare equal.
        for name in ("sample_rate", "n_mels", "deltas"):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("win_ms", "hop_ms", "f_min", "preemphasis"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "f_max", None if self.f_max is None else float(self.f_max))
        object.__setattr__(self, "normalize", normalize_mode(self.normalize))
        if self.sample_rate <= 0 or self.win_ms <= 0 or self.hop_ms <= 0:
            raise ValueError(
                f"features: need sample_rate, win_ms and hop_ms > 0, got {self.sample_rate}, {self.win_ms}, "
                f"{self.hop_ms}"
            )

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))

    def replace(self, changes: FeatureConfig | Mapping[str, Any] | None = None, **fields: Any) -> FeatureConfig:
        """A copy with the fields of ``changes`` (a config, or a mapping of some fields such as a Hydra node), then
        ``fields``, replaced; a name that is not a field is a ``ValueError`` listing the fields."""
        if isinstance(changes, FeatureConfig):
            changes = changes.to_dict()
        updates = {**{str(key): changes[key] for key in (changes or {})}, **fields}
        unknown = sorted(set(updates) - set(self.field_names()))
        if unknown:
            raise ValueError(f"features: unknown setting(s) {unknown}; the settings are {list(self.field_names())}")
        return dataclasses.replace(self, **updates)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (ints, floats, bools, None): fit for configs and ``torch.load(weights_only=True)``."""
        return dataclasses.asdict(self)

    @property
    def win_length(self) -> int:
        """Window in samples."""
        return max(1, round(self.sample_rate * self.win_ms / 1000))

    @property
    def hop_length(self) -> int:
        """Frame step in samples."""
        return max(1, round(self.sample_rate * self.hop_ms / 1000))

    @property
    def n_fft(self) -> int:
        """FFT size: the next power of two >= the window."""
        return 1 << (self.win_length - 1).bit_length()

    @property
    def output_size(self) -> int:
        """Features per frame."""
        return self.n_mels * (1 + self.deltas)


class LogMelSpectrogram(nn.Module):
    """Waveforms -> log-mel filterbank features, optionally with deltas and per-utterance normalisation.

    Framing: frame ``i`` covers samples ``[i * hop_length, i * hop_length + n_fft)`` (no centring), so a signal
    of ``T`` samples gives ``1 + (max(T, n_fft) - n_fft) // hop_length`` frames (signals shorter than one frame
    are zero-padded to one) and every frame of a padded batch equals that of the signal alone. Each frame is
    weighted by a periodic Hann window of ``win_length`` samples (centred in ``n_fft``), transformed with
    ``torch.stft``; its power spectrum goes through :func:`mel_filterbank` and ``log(max(mel, floor))``.

    Args:
        sample_rate: Hz.
        n_fft: FFT size (frame span in samples).
        win_length: window length in samples, <= n_fft (default n_fft).
        hop_length: frame step in samples.
        n_mels: mel filters.
        f_min, f_max: the filterbank's range in Hz (default f_max: Nyquist).
        deltas: 0 (log-mels only), 1 (+ deltas) or 2 (+ deltas and delta-deltas); channels are
            ``[mels | deltas | delta-deltas]``, each block ``n_mels`` wide.
        normalize: True (or ``"utterance"``): subtract each utterance's mean and divide by its standard deviation,
            per channel, over its valid frames; ``"cumulative"``: the same over the frames up to each one
            (:func:`cumulative_normalize`, causal, so it streams); False (or ``"none"``): no normalisation.
        preemphasis: ``x[t] - preemphasis * x[t - 1]`` before framing (0 disables it).
        log_floor: smallest mel energy before the log.

    Inputs: ``waveforms`` (N, T) float, ``lengths`` (N,) samples (default: all T).
    Outputs: ``features`` (N, L, C) with ``C = n_mels * (1 + deltas)``, 0 past each length; ``lengths`` (N,) frames.

    Streaming (:meth:`initial_state`, :meth:`stream`): samples arrive in chunks of any size; the state keeps the
    samples no complete frame has used yet (and, with deltas, the last log-mel frames), and each call returns the
    frames completed so far, equal to the whole signal's features (within float rounding). Deltas need
    ``2 * deltas`` frames of lookahead, so those frames come one call later, or at ``final=True``. Per-utterance
    normalisation needs the whole utterance and does not stream: use ``normalize="cumulative"``.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        win_length: int | None = None,
        hop_length: int = 160,
        n_mels: int = 40,
        f_min: float = 0.0,
        f_max: float | None = None,
        deltas: int = 0,
        normalize: bool | str = True,
        preemphasis: float = 0.0,
        log_floor: float = 1e-10,
    ) -> None:
        super().__init__()
        win_length = n_fft if win_length is None else win_length
        if not 1 <= win_length <= n_fft:
            raise ValueError(f"need 1 <= win_length <= n_fft={n_fft}, got {win_length}")
        if hop_length < 1:
            raise ValueError(f"hop_length must be >= 1, got {hop_length}")
        if deltas not in (0, 1, 2):
            raise ValueError(f"deltas must be 0, 1 or 2, got {deltas}")
        if not 0.0 <= preemphasis < 1.0:
            raise ValueError(f"preemphasis must be in [0, 1), got {preemphasis}")
        self.sample_rate = int(sample_rate)
        self.n_fft, self.win_length, self.hop_length = int(n_fft), int(win_length), int(hop_length)
        self.n_mels, self.deltas, self.normalize = int(n_mels), int(deltas), normalize_mode(normalize)
        self.f_min = float(f_min)
        self.f_max = float(sample_rate / 2 if f_max is None else f_max)
        self.preemphasis, self.log_floor = float(preemphasis), float(log_floor)
        self.register_buffer(
            "window", torch.hann_window(self.win_length, periodic=True, dtype=torch.float64), persistent=False
        )
        self.register_buffer(
            "filterbank",
            mel_filterbank(self.n_fft // 2 + 1, self.n_mels, self.sample_rate, self.f_min, self.f_max, torch.float64),
            persistent=False,
        )

    @classmethod
    def from_config(cls, config: FeatureConfig, **kwargs: Any) -> LogMelSpectrogram:
        """The front-end :class:`FeatureConfig` describes (``kwargs``: other arguments, e.g. ``log_floor``)."""
        return cls(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            win_length=config.win_length,
            hop_length=config.hop_length,
            n_mels=config.n_mels,
            f_min=config.f_min,
            f_max=config.f_max,
            deltas=config.deltas,
            normalize=config.normalize,
            preemphasis=config.preemphasis,
            **kwargs,
        )

    @classmethod
    def from_milliseconds(
        cls, sample_rate: int, win_ms: float = 25.0, hop_ms: float = 10.0, **kwargs: Any
    ) -> LogMelSpectrogram:
        """Window and hop in milliseconds; ``n_fft`` is the next power of two >= the window (:class:`FeatureConfig`
        fields by keyword, other arguments passed on)."""
        names = FeatureConfig.field_names()
        fields = {name: kwargs.pop(name) for name in list(kwargs) if name in names}
        return cls.from_config(FeatureConfig(sample_rate=sample_rate, win_ms=win_ms, hop_ms=hop_ms, **fields), **kwargs)

    @property
    def output_size(self) -> int:
        """C: features per frame."""
        return self.n_mels * (1 + self.deltas)

    def num_frames(self, num_samples: Tensor | int) -> Tensor:
        """Frames of signals of ``num_samples`` samples (exact; at least 1)."""
        samples = torch.as_tensor(num_samples, dtype=torch.long)
        return 1 + (samples.clamp(min=self.n_fft) - self.n_fft) // self.hop_length

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if waveforms.dim() != 2:
            raise ValueError(f"LogMelSpectrogram expects waveforms (N, T), got shape {tuple(waveforms.shape)}")
        if not waveforms.dtype.is_floating_point:
            raise ValueError(f"waveforms must be float in [-1, 1], got {waveforms.dtype}")
        n, total = waveforms.shape
        if lengths is None:
            lengths = torch.full((n,), total, dtype=torch.long)
        lengths = as_lengths(lengths).to(waveforms.device)
        if n and (int(lengths.min()) < 1 or int(lengths.max()) > total):
            raise ValueError(f"sample lengths must be in [1, {total}], got {lengths.tolist()}")
        signal = waveforms * lengths_to_mask(lengths, total).to(waveforms.dtype)  # zeros past each length
        if self.preemphasis:
            signal = torch.cat([signal[:, :1], signal[:, 1:] - self.preemphasis * signal[:, :-1]], dim=1)
        if total < self.n_fft:
            signal = nn.functional.pad(signal, (0, self.n_fft - total))
        features = self._log_mel(signal)
        frames = self.num_frames(lengths)
        if self.deltas:
            delta = compute_deltas(features, frames)
            blocks = [features, delta] + ([compute_deltas(delta, frames)] if self.deltas == 2 else [])
            features = torch.cat(blocks, dim=-1)
        mask = lengths_to_mask(frames, features.shape[1]).unsqueeze(-1)
        if self.normalize == "cumulative":
            features, _ = cumulative_normalize(features)
        elif self.normalize:
            count = frames.to(features.dtype)[:, None, None]
            mean = (features * mask).sum(1, keepdim=True) / count
            var = (((features - mean) * mask) ** 2).sum(1, keepdim=True) / count
            features = (features - mean) / (var.sqrt() + 1e-5)
        return features * mask, frames

    def _log_mel(self, signal: Tensor) -> Tensor:
        """Log-mel energies (N, L, n_mels) of every complete frame of (pre-emphasised) ``signal`` (N, T >= n_fft)."""
        window, filterbank = self.window.to(signal.dtype), self.filterbank.to(signal.dtype)  # float64 stays float64
        spectrum = torch.stft(
            signal, self.n_fft, self.hop_length, self.win_length, window, center=False, return_complex=True
        )  # (N, F, L)
        power = spectrum.real.square() + spectrum.imag.square()
        return torch.log(torch.clamp(power.transpose(1, 2) @ filterbank, min=self.log_floor))

    # ------------------------------------------------------------------ streaming
    @property
    def lookahead_frames(self) -> int:
        """Frames a streamed frame waits for: the deltas' reach (2 per order of deltas)."""
        return 2 * self.deltas

    def initial_state(
        self, batch_size: int = 1, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> dict[str, Any]:
        """The state before any sample of ``batch_size`` streams (advanced together): plain tensors and dicts."""
        if self.normalize is True:
            raise ValueError(
                "per-utterance normalisation needs the whole utterance, so it cannot stream; use "
                "normalize=cumulative (data.features.normalize=cumulative) for streaming"
            )
        dtype = dtype or torch.get_default_dtype()
        state: dict[str, Any] = {
            "samples": torch.zeros(batch_size, 0, device=device, dtype=dtype),  # not yet in a complete frame
            "previous": torch.zeros(batch_size, device=device, dtype=dtype),  # last raw sample (pre-emphasis)
            "frames": torch.zeros((), dtype=torch.long),  # log-mel frames computed so far
            "emitted": torch.zeros((), dtype=torch.long),  # feature frames returned so far
            "history": torch.zeros(batch_size, 0, self.n_mels, device=device, dtype=dtype),  # for deltas
        }
        if self.normalize == "cumulative":
            state["stats"] = {
                "shift": torch.zeros(batch_size, self.output_size, device=device, dtype=torch.float64),
                "sum": torch.zeros(batch_size, self.output_size, device=device, dtype=torch.float64),
                "sumsq": torch.zeros(batch_size, self.output_size, device=device, dtype=torch.float64),
                "count": torch.zeros((), dtype=torch.long),
            }
        return state

    def stream(
        self, samples: Tensor, state: dict[str, Any] | None = None, final: bool = False
    ) -> tuple[Tensor, dict[str, Any]]:
        """The feature frames (N, l, C) that ``samples`` (N, t) or (t,) completes, and the new state.

        ``final=True`` ends the signal: the remaining frames come out (deltas with their ends repeated, a signal
        shorter than one frame zero-padded to one), as the offline forward gives them. Concatenated over all
        calls, the outputs equal ``self(whole_signal)`` for any chunking.
        """
        single = samples.dim() == 1
        if single:
            samples = samples.unsqueeze(0)
        if samples.dim() != 2 or not samples.dtype.is_floating_point:
            raise ValueError(f"stream expects float samples (N, t) or (t,), got {samples.dtype} {tuple(samples.shape)}")
        if state is None:
            state = self.initial_state(samples.shape[0], samples.device, samples.dtype)
        if self.preemphasis and samples.shape[1]:
            previous = torch.cat([state["previous"][:, None].to(samples.dtype), samples[:, :-1]], dim=1)
            emphasised = samples - self.preemphasis * previous
        else:
            emphasised = samples
        buffer = torch.cat([state["samples"].to(samples.dtype), emphasised], dim=1)
        frames_before = int(state["frames"])
        if final and frames_before == 0 and 0 < buffer.shape[1] < self.n_fft:
            buffer = nn.functional.pad(buffer, (0, self.n_fft - buffer.shape[1]))
        count = 1 + (buffer.shape[1] - self.n_fft) // self.hop_length if buffer.shape[1] >= self.n_fft else 0
        if count:
            log_mel = self._log_mel(buffer[:, : (count - 1) * self.hop_length + self.n_fft])
        else:
            log_mel = buffer.new_zeros(buffer.shape[0], 0, self.n_mels)
        new_state = dict(state)
        new_state["samples"] = buffer[:, count * self.hop_length :]
        if samples.shape[1]:
            new_state["previous"] = samples[:, -1]
        new_state["frames"] = torch.tensor(frames_before + count)
        features = self._stream_deltas(log_mel, new_state, final)
        if self.normalize == "cumulative":
            features, new_state["stats"] = cumulative_normalize(features, state["stats"])
        return (features[0] if single else features), new_state

    def _stream_deltas(self, log_mel: Tensor, state: dict[str, Any], final: bool) -> Tensor:
        """The frames whose deltas are settled: all but the last :attr:`lookahead_frames` (all when ``final``)."""
        if not self.deltas:
            state["emitted"] = state["frames"]
            return log_mel
        lookahead = self.lookahead_frames
        history = torch.cat([state["history"].to(log_mel.dtype), log_mel], dim=1)
        total, emitted = int(state["frames"]), int(state["emitted"])
        base = total - history.shape[1]  # index of history's first frame: 0, or <= emitted - lookahead
        until = total if final else max(total - lookahead, emitted)
        if until > emitted and history.shape[1]:
            # compute_deltas repeats the buffer's edges: exact at the true start and end (final), and never read
            # elsewhere for the frames emitted (they have lookahead frames on each side inside the buffer).
            delta = compute_deltas(history)
            blocks = [history, delta] + ([compute_deltas(delta)] if self.deltas == 2 else [])
            features = torch.cat(blocks, dim=-1)[:, emitted - base : until - base]
        else:
            features = history.new_zeros(history.shape[0], 0, self.output_size)
            until = emitted
        state["emitted"] = torch.tensor(until)
        state["history"] = history[:, max(0, until - lookahead - base) :]
        return features

    @torch.no_grad()
    def featurize(self, waveform: Tensor) -> Tensor:
        """One waveform (T,) -> its features (L, C)."""
        if waveform.dim() != 1:
            raise ValueError(f"featurize expects one waveform (T,), got shape {tuple(waveform.shape)}")
        features, _ = self(waveform.unsqueeze(0))
        return features[0]

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, win_length={self.win_length}, "
            f"hop_length={self.hop_length}, n_mels={self.n_mels}, f_min={self.f_min}, f_max={self.f_max}, "
            f"deltas={self.deltas}, normalize={self.normalize}"
        )


class SpecAugment(nn.Module):
    """SpecAugment-style masking of features while training (Park et al., 2019); the identity in eval mode.

    Sets ``freq_masks`` bands of up to ``freq_width`` channels and ``time_masks`` spans of up to
    ``min(time_width, time_fraction * length)`` frames (inside each sequence's valid length) to ``value``
    (0: the mean of normalised features). With ``groups`` > 1 the channels are that many equal blocks (log-mels,
    deltas, ...) and a frequency mask covers the same bins in every block.

    Inputs: ``features`` (N, L, C), ``lengths`` (N,). Output: (N, L, C).
    """

    def __init__(
        self,
        freq_masks: int = 2,
        freq_width: int = 8,
        time_masks: int = 2,
        time_width: int = 20,
        time_fraction: float = 0.2,
        groups: int = 1,
        value: float = 0.0,
    ) -> None:
        super().__init__()
        for name, count in (
            ("freq_masks", freq_masks),
            ("freq_width", freq_width),
            ("time_masks", time_masks),
            ("time_width", time_width),
        ):
            if count < 0:
                raise ValueError(f"{name} must be >= 0, got {count}")
        if not 0.0 <= time_fraction <= 1.0:
            raise ValueError(f"time_fraction must be in [0, 1], got {time_fraction}")
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width, self.time_fraction = time_masks, time_width, time_fraction
        self.groups, self.value = groups, value

    def forward(self, features: Tensor, lengths: Tensor) -> Tensor:
        if not self.training or (self.freq_masks == 0 and self.time_masks == 0):
            return features
        n, length, channels = features.shape
        if channels % self.groups:
            raise ValueError(f"SpecAugment: {channels} channels do not split into groups={self.groups} equal blocks")
        block = channels // self.groups
        device = features.device
        lengths = as_lengths(lengths).to(device)
        masked = torch.zeros(n, length, channels, dtype=torch.bool, device=device)
        bins = torch.arange(block, device=device)
        for _ in range(self.freq_masks):
            width = torch.randint(0, min(self.freq_width, block) + 1, (n, 1), device=device)
            start = (torch.rand(n, 1, device=device) * (block - width + 1)).long()
            band = (bins >= start) & (bins < start + width)  # (N, block)
            masked |= band.repeat(1, self.groups)[:, None, :]
        steps = torch.arange(length, device=device)
        limit = torch.minimum(torch.full_like(lengths, self.time_width), (lengths * self.time_fraction).long())
        for _ in range(self.time_masks):
            width = (torch.rand(n, device=device) * (limit + 1)).long().clamp(max=limit)[:, None]
            start = (torch.rand(n, 1, device=device) * (lengths[:, None] - width + 1)).long()
            masked |= ((steps >= start) & (steps < start + width))[:, :, None]
        return features.masked_fill(masked, self.value)

    def extra_repr(self) -> str:
        return (
            f"freq_masks={self.freq_masks}, freq_width={self.freq_width}, time_masks={self.time_masks}, "
            f"time_width={self.time_width}, time_fraction={self.time_fraction}, groups={self.groups}"
        )


__all__ = [
    "FeatureConfig",
    "LogMelSpectrogram",
    "SpecAugment",
    "compute_deltas",
    "hz_to_mel",
    "mel_centres",
    "mel_filterbank",
    "mel_to_hz",
    "resample",
]
