"""WAV files with the standard library's ``wave`` module: integer PCM in, float waveforms in [-1, 1] out."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from seqmodels.data.datamodule import MissingDataFileError

_FORMATS = "integer PCM WAV (8, 16, 24 or 32-bit samples, any number of channels)"
_UNKNOWN_SIZE = 0xFFFFFFFF  # a data chunk size that means "unknown" (written by streaming tools)


def read_wav(path: str | Path) -> tuple[Tensor, int]:
    """Reads a PCM WAV file: ``(waveform (T,) float32 in [-1, 1], sample_rate)``; channels are averaged to mono.

    Raises a one-line error for a missing file, a file that is not a WAV, a WAV in another encoding (float,
    compressed), a WAV without samples and a truncated WAV (its header announces more audio than the file holds).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingDataFileError(f"audio file not found: {path}; pass the path of a .wav file")
    try:
        with wave.open(str(path), "rb") as handle:
            channels, width = handle.getnchannels(), handle.getsampwidth()
            rate, frames = handle.getframerate(), handle.getnframes()
            data = handle.readframes(frames)
    except (wave.Error, EOFError) as exc:
        reason = str(exc) or "truncated"
        raise ValueError(f"cannot read {path} as a WAV file ({reason}); seqmodels reads {_FORMATS}") from None
    if width not in (1, 2, 3, 4):
        raise ValueError(f"{path} has {8 * width}-bit samples; seqmodels reads {_FORMATS}")
    if rate <= 0:
        raise ValueError(f"{path} declares a sample rate of {rate} Hz; export it again with a real rate")
    count = len(data) // (width * channels)
    if count == 0:
        raise ValueError(f"{path} holds no audio samples")
    # A streamed WAV whose writer could not go back to fill in the size says "as long as possible" (0xFFFFFFFF
    # bytes): the data that is there is the recording. Any other shortfall is a cut-off file.
    streamed = frames * width * channels >= _UNKNOWN_SIZE - width * channels
    if count < frames and not streamed:
        raise ValueError(
            f"{path} is truncated: its header announces {frames} frames ({frames / rate:.3f} s at {rate} Hz) but the "
            f"file holds {count} ({count / rate:.3f} s); copy or export it again"
        )
    raw = np.frombuffer(data[: count * width * channels], dtype=np.uint8)
    if width == 1:  # unsigned 8-bit
        samples = (raw.astype(np.float32) - 128.0) / 128.0
    elif width == 3:  # little-endian 24-bit: widen to 32 bits, keeping the sign
        triples = raw.reshape(-1, 3).astype(np.int32)
        values = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        samples = (np.where(values >= 1 << 23, values - (1 << 24), values) / float(1 << 23)).astype(np.float32)
    else:
        dtype = np.dtype("<i2") if width == 2 else np.dtype("<i4")
        samples = raw.view(dtype).astype(np.float32) / float(1 << (8 * width - 1))
    waveform = samples.reshape(count, channels).mean(axis=1)
    return torch.from_numpy(np.ascontiguousarray(waveform)), rate


def write_wav(path: str | Path, waveform: Tensor | np.ndarray, sample_rate: int) -> Path:
    """Writes a mono float waveform in [-1, 1] (clipped) as 16-bit PCM."""
    values = waveform.detach().cpu().numpy() if isinstance(waveform, Tensor) else np.asarray(waveform)
    if values.ndim != 1:
        raise ValueError(f"write_wav writes one mono waveform (T,), got shape {values.shape}")
    pcm = np.clip(np.round(values.astype(np.float64) * 32767.0), -32768, 32767).astype("<i2")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(int(sample_rate))
        handle.writeframes(pcm.tobytes())
    return path


__all__ = ["read_wav", "write_wav"]
