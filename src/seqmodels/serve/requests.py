"""What a request may ask for, and its fields checked and decoded: every mistake is a :class:`RequestError`."""

from __future__ import annotations

import base64
import binascii
import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class RequestError(ValueError):
    """A request the server cannot take: answered with ``status`` and a one-line ``{"error": ...}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (``configs/serve.yaml``)."""

    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_input_length: int = 10_000  # characters of a text or prompt; steps of a series or feature sequence
    max_items: int = 64  # texts (or sequences, WAVs) in one /predict request
    max_request_bytes: int = 1_000_000
    max_new_tokens: int = 1_000

    def check(self) -> Limits:
        for name in ("max_batch_size", "max_input_length", "max_items", "max_request_bytes", "max_new_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.max_wait_ms, (int, float)) or not 0 <= self.max_wait_ms <= 10_000:
            raise ValueError(f"max_wait_ms must be a number in [0, 10000], got {self.max_wait_ms!r}")
        return self


def check_host(host: str, allow_remote: bool) -> str:
    """``host`` if it is a loopback address or ``allow_remote`` is set; otherwise a one-line refusal."""
    if str(host) not in LOOPBACK_HOSTS and not allow_remote:
        raise ValueError(
            f"host={host} would expose the model (no authentication) beyond this machine; serve on host=127.0.0.1, "
            "or pass allow_remote=true if you mean it"
        )
    return str(host)


# ------------------------------------------------------------------------------------------------ request fields
def _field(
    payload: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ..., what: str = ""
) -> Any:
    """``payload[name]`` checked against ``kind`` (booleans never count as numbers); a missing one is ``default``."""
    if name not in payload or payload[name] is None:
        if default is ...:
            raise RequestError(f"missing field {name!r}; send {what or name}")
        return default
    value = payload[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise RequestError(f"field {name!r} must be {what or _kind_name(kinds)}, got {json.dumps(value)}")
    if float in kinds and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kinds):
        raise RequestError(f"field {name!r} must be {what or _kind_name(kinds)}, got {_short(value)}")
    return value


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", bool: "true or false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _int_in(payload: dict[str, Any], name: str, default: int, low: int, high: int, hint: str = "") -> int:
    value = _field(payload, name, int, default)
    if not low <= value <= high:
        raise RequestError(f"field {name!r} must be an integer in [{low}, {high}]{hint}, got {value}")
    return value


def _texts(payload: dict[str, Any], limits: Limits) -> list[str]:
    """``texts`` (a list of strings) or ``text`` (one string): none empty, none longer than the limit."""
    if "texts" in payload and "text" in payload:
        raise RequestError('send either "text" (one string) or "texts" (a list of strings), not both')
    if "text" in payload:
        texts = [_field(payload, "text", str)]
    else:
        texts = _field(payload, "texts", list, what='"texts": a list of strings (or "text": one string)')
    if not texts:
        raise RequestError('"texts" is empty; send at least one text')
    if len(texts) > limits.max_items:
        raise RequestError(f'"texts" holds {len(texts)} texts, more than max_items={limits.max_items}; split them')
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(f"texts[{index}] must be a string, got {_short(text)}")
        if not text.strip():
            raise RequestError(f"texts[{index}] is empty; every text needs at least one token")
        if len(text) > limits.max_input_length:
            raise RequestError(
                f"texts[{index}] has {len(text)} characters, more than max_input_length={limits.max_input_length}; "
                "shorten it"
            )
    return texts


def _sequences(payload: dict[str, Any], limits: Limits, width: int | None) -> list[list[list[float]]]:
    """``sequences``: a list of (steps x channels) lists, each checked as :func:`_matrix` checks one."""
    sequences = _field(payload, "sequences", list, what='"sequences": a list of (steps x channels) lists')
    if not sequences:
        raise RequestError('"sequences" is empty; send at least one sequence')
    if len(sequences) > limits.max_items:
        raise RequestError(f'"sequences" holds {len(sequences)}, more than max_items={limits.max_items}')
    return [_matrix(sequence, f"sequences[{index}]", limits, width) for index, sequence in enumerate(sequences)]


def _matrix(value: Any, name: str, limits: Limits, width: int | None = None) -> list[list[float]]:
    """A series or feature sequence: a list of numbers (one channel) or of equal-length lists of numbers."""
    if not isinstance(value, list) or not value:
        raise RequestError(f"{name} must be a non-empty list of numbers or of lists of numbers")
    if len(value) > limits.max_input_length:
        raise RequestError(
            f"{name} has {len(value)} steps, more than max_input_length={limits.max_input_length}; send fewer"
        )
    rows = [row if isinstance(row, list) else [row] for row in value]
    size = len(rows[0])
    for step, row in enumerate(rows):
        if len(row) != size or not row:
            raise RequestError(f"{name}[{step}] has {len(row)} values, {name}[0] has {size}; every step needs as many")
        for item in row:
            if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
                raise RequestError(f"{name}[{step}] holds {_short(item)}; every value must be a finite number")
    if width is not None and size != width:
        raise RequestError(f"{name} has {size} channels per step; this model reads {width}")
    return rows


def _wav_features(payload: dict[str, Any], limits: Limits, features_from_wav: Callable[[Path], Any]) -> Any:
    """``wav_base64`` -> the model's features (L, C), read by ``features_from_wav`` from a private temporary file."""
    encoded = _field(payload, "wav_base64", str, what='"wav_base64": the base64 of a PCM WAV file')
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError('"wav_base64" is not valid base64; send base64.b64encode(wav_bytes)') from None
    if not data.startswith(b"RIFF") or data[8:12] != b"WAVE":
        raise RequestError('"wav_base64" does not hold a WAV file (no RIFF/WAVE header); send a PCM WAV file')
    with tempfile.TemporaryDirectory(prefix="seqmodels_serve_") as folder:
        path = Path(folder) / "upload.wav"
        path.write_bytes(data)
        try:
            features = features_from_wav(path)
        except (ValueError, FileNotFoundError) as exc:
            raise RequestError(str(exc).replace(str(path), "the uploaded WAV")) from None
    if features.shape[0] > limits.max_input_length:
        raise RequestError(
            f"the WAV gives {features.shape[0]} feature frames, more than max_input_length="
            f"{limits.max_input_length}; send a shorter recording"
        )
    return features


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__
