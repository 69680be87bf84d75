"""A checkpoint behind HTTP (the library behind ``seqmodels-serve ckpt_path=...``): a FastAPI app, run by uvicorn.

    seqmodels-serve ckpt_path=run/checkpoints/epoch_009.ckpt                 # http://127.0.0.1:8000
    curl -s localhost:8000/metadata
    curl -s localhost:8000/predict -d '{"texts": ["great value, works well"], "n_best": 2}'
    curl -sN localhost:8000/generate -d '{"prompt": "the ", "max_new_tokens": 50, "seed": 1}'

Endpoints follow what the checkpoint's task declares (``capabilities``, see :mod:`seqmodels.tasks.capabilities`):
``/predict`` for ``capabilities.predict`` (text, feature sequences or WAV in; labels, tags, text out),
``/forecast`` for ``Prediction.SERIES_TO_FORECAST``, ``/generate`` for ``capabilities.generate``. ``/health``,
``/metadata`` and ``/stats`` are always there. An endpoint the checkpoint does not offer answers 404 with one line
saying which it does offer.

Requests (JSON bodies; every field but the input is optional):

    POST /predict   text classifier {"texts": [...] | "text": "...", "n_best": 1}          -> labels, probabilities
                    tagger          {"texts": [...]}                                        -> one tag per word
                    encoder-decoder {"texts": [...], "beam_size": 5, "n_best": 1, "length_penalty": 1.0} -> texts
                    numeric classifier {"sequences": [[[x, ...] per step] per input], "n_best": 1}
                    speech (CTC)    {"wav_base64": "<base64 of a PCM WAV>", "beam_size": 5, "n_best": 1}
    POST /forecast  {"series": [y, ...] | [[y1, y2], ...], "time": [...], "covariates": {"name": [...]}}
    POST /generate  {"prompt": "...", "max_new_tokens": 200, "temperature": 1.0, "top_k": null, "top_p": null,
                     "seed": 0, "stream": true}   -> text/event-stream, or one JSON answer with "stream": false

Batching. ``/predict`` and ``/forecast`` requests queue in a :class:`DynamicBatcher`: a batch runs when
``max_batch_size`` items wait or ``max_wait_ms`` has passed since the first. ``/generate`` streams are stepped by a
:class:`GenerationScheduler` (continuous batching): each request keeps its own recurrent state, and every step
concatenates the states of all active streams along the batch dimension, runs one batched ``step``, and splits them
again; a new request joins at the next step, a finished one leaves. Each stream samples its rows with its own
``torch.Generator`` (seeded by the request), so a seeded request draws the same text however it was batched. Every
model call runs on one worker thread, off the event loop: the server keeps accepting while the model works.

Errors are JSON ``{"error": "<one line: the problem and the fix>"}``: 4xx for a request the server cannot take
(malformed JSON, a missing or wrong field, empty text, an input beyond the configured limits, a WAV that is not a
WAV, an endpoint the checkpoint does not offer), 500 where the model itself fails. No request is dropped silently.

Backends. A ``.ckpt`` is served by :class:`CheckpointBackend` (PyTorch); an ``.onnx`` file written by
``seqmodels-export`` by :class:`OnnxBackend` (:mod:`seqmodels.runtime`: numpy + onnxruntime) for language models,
encoder-decoders and text classifiers. Both give the server the same small interface (:class:`Backend`).

Trust model: the checkpoint is loaded only through :mod:`seqmodels.checkpoint` (``weights_only=True``, configs
rebuilt through the allow-list). The server binds 127.0.0.1 unless ``allow_remote=true``; it has no authentication.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import json
import math
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as exc:  # pragma: no cover - the serve extra is missing
    raise ImportError(
        f"seqmodels-serve needs FastAPI and uvicorn ({exc}); install them with pip install 'seqmodels[serve]'"
    ) from None

from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint, task_capabilities
from seqmodels.data.collate import pad_collate
from seqmodels.generate import TextPieces
from seqmodels.nn.decoding import sample_next
from seqmodels.tasks.capabilities import Capabilities, Prediction

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


# ------------------------------------------------------------------------------------------------ backends
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


@dataclass
class Item:
    """One unit of batched work (a text, a sequence, a recording, a series) and the options it was asked with."""

    inputs: Any
    group: tuple[Any, ...] = ()  # items of one model call share this (e.g. beam size)
    extra: dict[str, Any] = field(default_factory=dict)


class Backend:
    """What the server needs from a model, whatever holds it (a checkpoint here; an exported graph later).

    ``prepare_*`` checks and encodes one request on the event loop (raising :class:`RequestError`); ``run_*``
    takes a list of prepared items from several requests and returns one result per item, on the worker thread.
    Generation: ``start`` reads a prompt (logits, state), ``step`` advances a batch, ``cat_states``/``split_state``
    join and part states along the batch dimension.
    """

    name = "model"
    capabilities = Capabilities()

    def endpoints(self) -> list[str]:
        out = []
        if self.capabilities.predict is not None and self.capabilities.predict is not Prediction.SERIES_TO_FORECAST:
            out.append("/predict")
        if self.capabilities.predict is Prediction.SERIES_TO_FORECAST:
            out.append("/forecast")
        if self.capabilities.generate:
            out.append("/generate")
        return out

    def metadata(self) -> dict[str, Any]:
        raise NotImplementedError

    def prepare_predict(self, payload: dict[str, Any], limits: Limits) -> list[Item]:
        raise NotImplementedError

    def run_predict(self, items: list[Item]) -> list[Any]:
        raise NotImplementedError

    def prepare_forecast(self, payload: dict[str, Any], limits: Limits) -> list[Item]:
        raise NotImplementedError

    def run_forecast(self, items: list[Item]) -> list[Any]:
        raise NotImplementedError


def load_backend(path: str | os.PathLike, device: str = "cpu") -> Backend:
    """The backend for ``path``: a seqmodels checkpoint, or an ``.onnx`` file written by ``seqmodels-export``."""
    if str(path).endswith(".onnx"):
        if device != "cpu":
            raise ValueError(f"an exported .onnx model runs on the CPU (onnxruntime); drop device={device}")
        return OnnxBackend(path)
    return CheckpointBackend(path, device)


class CheckpointBackend(Backend):
    """A seqmodels checkpoint, loaded through :mod:`seqmodels.checkpoint` (weights only, allow-listed config)."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu") -> None:
        checkpoint = load_checkpoint(path, weights_only=True)
        self.task, self.capabilities = task_capabilities(checkpoint)
        self.name = self.task.__name__
        self.path = str(path)
        if not (self.capabilities.predict or self.capabilities.generate):
            raise ValueError(
                f"{path} holds a {self.name} checkpoint, which seqmodels-serve does not take (it neither predicts "
                f"nor generates); use {self.capabilities.offers()}"
            )
        self.model, self.datamodule = build_from_checkpoint(checkpoint, setup_data=False)
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.reads = self.capabilities.predict
        self.text_input = hasattr(self.datamodule, "inputs_from_text") or hasattr(self.datamodule, "source_from_text")
        if self.capabilities.generate:
            self.net = self.model.net
            self.skip = len(self.datamodule.prompt_prefix())

    # ---------------------------------------------------------------- metadata
    def _dims(self) -> dict[str, Any]:
        dm = self.datamodule
        if getattr(dm, "dims_need_data", True) or not hasattr(dm, "_dims"):
            return {}
        try:
            return dict(dm.dims())
        except Exception:  # a datamodule that cannot say its sizes without data: leave them out
            return {}

    def input_kind(self) -> dict[str, Any]:
        reads = self.reads
        if self.capabilities.generate and reads is None:
            return {"kind": "prompt", "description": "text to continue"}
        if reads is Prediction.AUDIO_TO_TEXT:
            return {"kind": "wav", "description": "base64 of a PCM WAV file (any rate; resampled)"}
        if reads is Prediction.SERIES_TO_FORECAST:
            dm = self.datamodule
            return {
                "kind": "series",
                "lookback": dm.lookback,
                "horizon": dm.horizon,
                "targets": list(dm.target_names),
                "past_covariates": list(dm.past_covariates or []),
                "future_covariates": list(dm.future_covariates or []),
            }
        if self.text_input:
            return {"kind": "text"}
        return {"kind": "sequences", "channels": self._input_width()}

    def _input_width(self) -> int | None:
        """Channels per step of a numeric model's inputs: from its sizes, or from its saved scaler."""
        width = self._dims().get("input_size")
        mean = getattr(self.datamodule, "mean", None)
        return width if width is not None else (int(mean.numel()) if isinstance(mean, Tensor) else None)

    def metadata(self) -> dict[str, Any]:
        dims = self._dims()
        meta: dict[str, Any] = {
            "task": self.name,
            "checkpoint": self.path,
            "prediction": self.reads.name if self.reads else None,
            "generate": self.capabilities.generate,
            "input": self.input_kind(),
        }
        vocab = dims.get("vocab_size", dims.get("source_vocab_size"))
        if vocab is None and getattr(self.datamodule, "vocab", None) is not None:
            vocab = len(self.datamodule.vocab)
        meta["vocab_size"] = vocab
        labels = getattr(self.datamodule, "class_names", None) or dims.get("tag_names") or dims.get("labels")
        meta["labels"] = list(labels) if labels else None
        return meta

    # ---------------------------------------------------------------- /predict
    def prepare_predict(self, payload: dict[str, Any], limits: Limits) -> list[Item]:
        reads, dm = self.reads, self.datamodule
        if reads is Prediction.AUDIO_TO_TEXT:  # defaults as seqmodels-predict's: beam_size 5, n_best 1
            beam_size = _int_in(payload, "beam_size", 5, 1, 64)
            n_best = _int_in(payload, "n_best", 1, 1, beam_size, " (at most beam_size)")
            return [Item(self._wav_features(payload, limits), (beam_size, n_best))]
        if reads is Prediction.TEXT_TO_TEXT:
            beam_size = _int_in(payload, "beam_size", 5, 1, 64)
            n_best = _int_in(payload, "n_best", 1, 1, beam_size, " (at most beam_size)")
            length_penalty = _field(payload, "length_penalty", float, 1.0)  # seqmodels-predict's default
            if not math.isfinite(length_penalty):
                raise RequestError(f"field 'length_penalty' must be a finite number, got {length_penalty}")
            items = []
            for text in _texts(payload, limits):
                source = dm.source_from_text(text)
                # Decoded as if alone: each text gets the max_len its own length gives (not its batch's longest).
                max_len = self.model.max_decode_length(torch.tensor([source.shape[0]]))
                items.append(Item(source, (beam_size, n_best, max_len, length_penalty)))
            return items
        if reads is Prediction.TEXT_TO_TAGS:
            if _field(payload, "n_best", int, 1) != 1:
                raise RequestError("a tagger gives one tag per word; leave out n_best (or send 1)")
            return [Item(dm.inputs_from_text(text), extra={"text": text}) for text in _texts(payload, limits)]
        if reads is Prediction.TEXT_TO_LABEL:
            num_classes = len(dm.class_names)
            n_best = _int_in(payload, "n_best", 1, 1, num_classes, " (the number of classes)")
            if self.text_input:
                return [Item(dm.inputs_from_text(text), extra={"n_best": n_best}) for text in _texts(payload, limits)]
            return [Item(x, extra={"n_best": n_best}) for x in self._sequences(payload, limits)]
        raise RequestError(f"{self.name} does not offer /predict; it offers {', '.join(self.endpoints())}", 404)

    def _sequences(self, payload: dict[str, Any], limits: Limits) -> list[Tensor]:
        """``sequences``: (L, C) feature vectors per input, on the training data's scale (standardised here)."""
        sequences = _field(payload, "sequences", list, what='"sequences": a list of (steps x channels) lists')
        if not sequences:
            raise RequestError('"sequences" is empty; send at least one sequence')
        if len(sequences) > limits.max_items:
            raise RequestError(f'"sequences" holds {len(sequences)}, more than max_items={limits.max_items}')
        width = self._input_width()
        out = []
        for index, sequence in enumerate(sequences):
            x = torch.tensor(_matrix(sequence, f"sequences[{index}]", limits, width), dtype=torch.float32)
            mean, std = getattr(self.datamodule, "mean", None), getattr(self.datamodule, "std", None)
            if getattr(self.datamodule, "standardize", False) and mean is not None and std is not None:
                x = (x - mean) / std
            out.append(x)
        return out

    def _wav_features(self, payload: dict[str, Any], limits: Limits) -> Tensor:
        return _wav_features(payload, limits, self.datamodule.features_from_wav)

    @torch.no_grad()
    def run_predict(self, items: list[Item]) -> list[Any]:
        reads, dm, model = self.reads, self.datamodule, self.model
        results: list[Any] = [None] * len(items)
        groups: dict[tuple[Any, ...], list[int]] = collections.defaultdict(list)
        for index, item in enumerate(items):
            groups[item.group].append(index)
        for group, indices in groups.items():
            chunk = [items[i] for i in indices]
            padding = 0 if reads in (Prediction.TEXT_TO_TEXT, Prediction.AUDIO_TO_TEXT) else dm.input_padding_value
            batch = pad_collate([item.inputs for item in chunk], padding_value=padding).to(self.device)
            if reads is Prediction.TEXT_TO_TEXT:
                beam_size, n_best, max_len, length_penalty = group
                hypotheses = model.net.beam_search(
                    batch.inputs, batch.lengths, beam_size=beam_size, max_len=max_len,
                    length_penalty=length_penalty, n_best=n_best,
                )  # fmt: skip
                outs = [[{"text": dm.target_text(ids), "score": float(s)} for ids, s in best] for best in hypotheses]
            elif reads is Prediction.AUDIO_TO_TEXT:
                from seqmodels.nn.ctc import ctc_prefix_beam_search

                beam_size, n_best = group
                log_probs, lengths = model.net(batch.inputs, batch.lengths)
                decoded = ctc_prefix_beam_search(log_probs, lengths, beam_size, model.blank, n_best)
                outs = [[{"text": model.text(ids), "score": float(s)} for ids, s in best] for best in decoded]
            elif reads is Prediction.TEXT_TO_TAGS:
                tags = model.predict_step(batch, 0)
                pairs = zip(chunk, tags, strict=True)
                outs = [{"words": item.extra["text"].split(), "tags": list(row)} for item, row in pairs]
            else:
                probs = model.predict_step(batch, 0)["probs"].float().cpu()
                outs = []
                for item, row in zip(chunk, probs, strict=True):
                    top = row.topk(item.extra["n_best"])
                    labels = [dm.class_names[i] for i in top.indices.tolist()]
                    scored = zip(labels, top.values.tolist(), strict=True)
                    outs.append([{"label": label, "probability": p} for label, p in scored])
            for i, out in zip(indices, outs, strict=True):
                results[i] = out
        return results

    # ---------------------------------------------------------------- /forecast
    def prepare_forecast(self, payload: dict[str, Any], limits: Limits) -> list[Item]:
        import numpy as np
        import pandas as pd

        dm = self.datamodule
        targets = list(dm.target_names)
        rows = _matrix(payload.get("series"), "series", limits, len(targets))
        columns: dict[str, Any] = {name: [row[c] for row in rows] for c, name in enumerate(targets)}
        covariates = _field(payload, "covariates", dict, {}, '"covariates": {name: [values per step]}')
        wanted = [*(dm.past_covariates or []), *(dm.future_covariates or [])]
        ahead = dm.horizon if dm.future_covariates else 0
        for name in wanted:
            if name not in covariates:
                raise RequestError(f'missing covariate {name!r}; send "covariates": {{"{name}": [...]}}')
            values = covariates[name]
            steps = len(rows) + (ahead if name in (dm.future_covariates or []) else 0)
            if not isinstance(values, list) or len(values) != steps:
                raise RequestError(f"covariate {name!r} needs {steps} values (one per step), got {_short(values)}")
        length = len(rows) + ahead
        for name in dm.future_covariates or []:
            columns[name] = covariates[name]
        for name in dm.past_covariates or []:
            columns[name] = [*covariates[name], *([None] * ahead)]
        for name in targets:
            columns[name] = [*columns[name], *([None] * ahead)]
        time = payload.get("time")
        if time is not None:
            if not isinstance(time, list) or len(time) != length:
                raise RequestError(f'"time" must be a list of {length} times (one per step of the series)')
            try:
                index = pd.Index(pd.to_datetime(time)) if all(isinstance(t, str) for t in time) else pd.Index(time)
            except (ValueError, TypeError) as exc:
                raise RequestError(f'"time" holds a value that is not a time: {_one_line(exc)[:120]}') from None
        else:
            index = pd.RangeIndex(length)
        frame = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in columns.items()}, index=index)
        try:
            _, batch, times = dm.last_windows(data=frame)
        except ValueError as exc:
            if time is not None:
                raise
            raise RequestError(f'{_one_line(exc)}; this model may need dates: send "time", one per step') from None
        when = [str(t) if not isinstance(t, (int, float, np.number)) else t.item() for t in times[0]]
        return [Item((batch.inputs, batch.future), extra={"time": when, "targets": targets})]

    @torch.no_grad()
    def run_forecast(self, items: list[Item]) -> list[Any]:
        inputs = torch.cat([item.inputs[0] for item in items]).to(self.device)
        futures = [item.inputs[1] for item in items]
        future = torch.cat(futures).to(self.device) if futures[0] is not None else None
        out = {key: value.float().cpu() for key, value in self.model.forecast(inputs, future).items()}
        levels = self.model.net.output.levels.tolist() if hasattr(self.model.net.output, "levels") else None
        results = []
        for row, item in enumerate(items):
            answer: dict[str, Any] = {"time": item.extra["time"], "targets": item.extra["targets"]}
            for key in ("point", "lower", "upper"):
                if key in out:
                    answer[key] = out[key][row].tolist()  # (H, C)
            if "quantiles" in out and levels is not None:
                answer["quantile_levels"] = levels
                answer["quantiles"] = out["quantiles"][row].tolist()  # (H, C, Q)
            results.append(answer)
        return results

    # ---------------------------------------------------------------- /generate
    def encode_prompt(self, prompt: str) -> list[int]:
        ids = self.datamodule.encode_prompt(prompt)
        if not ids:
            raise RequestError('an empty prompt has nothing to continue for this model; send "prompt": "..."')
        return ids

    @torch.no_grad()
    def start(self, ids: list[int]) -> tuple[Tensor, Any]:
        """Reads a prompt once, as ``seqmodels-generate`` does: next-token logits (1, V) and the state."""
        self.net.eval()
        return self.net.read_prompt(torch.tensor([ids], device=self.device), None)

    @torch.no_grad()
    def step(self, tokens: list[int], state: Any) -> tuple[Tensor, Any]:
        """One batched step: the last token of each stream (N,) and their joined state -> logits (N, V), state."""
        return self.net.step(torch.tensor(tokens, device=self.device), state)

    def new_generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(seed % 2**64)  # as seqmodels-generate seeds

    @staticmethod
    def sample(stream: Stream) -> int:
        """The stream's next token from its own row of logits, drawn with its own generator."""
        return int(sample_next(stream.logits, stream.temperature, stream.top_k, stream.top_p, stream.generator)[0])

    @staticmethod
    def cat_states(states: Sequence[Any]) -> Any:
        if isinstance(states[0], tuple):
            return tuple(torch.cat(parts, dim=1) for parts in zip(*states, strict=True))
        return torch.cat(list(states), dim=1)

    @staticmethod
    def split_state(state: Any, count: int) -> list[Any]:
        if isinstance(state, tuple):
            return [tuple(s[:, i : i + 1] for s in state) for i in range(count)]
        return [state[:, i : i + 1] for i in range(count)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.datamodule.decode(list(ids))

    @property
    def stop_id(self) -> int | None:
        return self.datamodule.stop_id


class OnnxBackend(Backend):
    """An exported model run by :mod:`seqmodels.runtime` (numpy + onnxruntime, no torch in the model calls).

    Serves a language model (``/generate``; sampling draws from ``numpy.random.default_rng(seed)``, so a seed gives
    reproducible text, but not the text the checkpoint gives with that seed), and an encoder-decoder, a text
    classifier, a tagger and a speech model (``/predict``). Regressors and classifiers of feature sequences are
    refused in one line: serve their checkpoint.
    """

    # What each exported kind (the file's ``seqmodels.runtime`` metadata) offers over HTTP.
    OFFERS: ClassVar[dict[str, Capabilities]] = {
        "language_model": Capabilities(generate=True),
        "seq2seq": Capabilities(predict=Prediction.TEXT_TO_TEXT),
        "classifier": Capabilities(predict=Prediction.TEXT_TO_LABEL),
        "tagger": Capabilities(predict=Prediction.TEXT_TO_TAGS),
        "ctc": Capabilities(predict=Prediction.AUDIO_TO_TEXT),
    }

    def __init__(self, path: str | os.PathLike) -> None:
        from seqmodels import runtime

        self.runtime = runtime
        self.rt = runtime.load(path)
        self.path = str(path)
        rt = self.rt
        kind = rt.meta.get("kind")
        offers = self.OFFERS.get(kind)
        reads_text = offers is None or offers.predict not in (Prediction.TEXT_TO_LABEL, Prediction.TEXT_TO_TAGS)
        if offers is None or not (reads_text or getattr(rt, "codec", None)):
            raise ValueError(
                f"{path} holds an exported {kind} model, which seqmodels-serve does not run from .onnx (it serves "
                "exported language models, encoder-decoders, text classifiers, taggers and speech models); serve "
                "its checkpoint instead"
            )
        self.capabilities = offers
        if offers.generate:
            self.skip = len(rt.prompt_prefix)
            self.stop_id = rt.stop_id
        self.name = f"{type(rt).__name__} (onnx)"
        self.reads = self.capabilities.predict

    def metadata(self) -> dict[str, Any]:
        rt = self.rt
        codec = getattr(rt, "codec", None) or getattr(rt, "source", None)
        return {
            "task": self.name,
            "checkpoint": self.path,
            "prediction": self.reads.name if self.reads else None,
            "generate": self.capabilities.generate,
            "input": (
                {"kind": "prompt", "description": "text to continue"}
                if self.capabilities.generate
                else {"kind": "wav", "description": "base64 of a PCM WAV file (any rate; resampled)"}
                if self.reads is Prediction.AUDIO_TO_TEXT
                else {"kind": "text"}
            ),
            "vocab_size": len(codec.tokens) if codec is not None else None,
            "labels": list(getattr(rt, "class_names", None) or getattr(rt, "tag_names", None) or []) or None,
        }

    def _encode(self, codec: Any, text: str, index: int) -> list[int]:
        ids = codec.encode(codec.tokenize(text))
        if not ids:
            raise RequestError(f"texts[{index}] has no tokens this model knows how to read")
        return ids

    def prepare_predict(self, payload: dict[str, Any], limits: Limits) -> list[Item]:
        rt = self.rt
        if self.reads is Prediction.TEXT_TO_TEXT:
            beam_size = _int_in(payload, "beam_size", 5, 1, 64)
            n_best = _int_in(payload, "n_best", 1, 1, beam_size, " (at most beam_size)")
            length_penalty = _field(payload, "length_penalty", float, 1.0)
            items = []
            for index, text in enumerate(_texts(payload, limits)):
                ids = self._encode(rt.source, text, index)
                max_len = rt.max_decode_length(np.array([len(ids)]))
                items.append(Item(ids, (beam_size, n_best, max_len, length_penalty)))
            return items
        if self.reads is Prediction.AUDIO_TO_TEXT:  # defaults as seqmodels-predict's: beam_size 5, n_best 1
            beam_size = _int_in(payload, "beam_size", 5, 1, 64)
            n_best = _int_in(payload, "n_best", 1, 1, beam_size, " (at most beam_size)")
            return [Item(_wav_features(payload, limits, rt.features_from_wav), (beam_size, n_best))]
        if self.reads is Prediction.TEXT_TO_TAGS:
            if _field(payload, "n_best", int, 1) != 1:
                raise RequestError("a tagger gives one tag per word; leave out n_best (or send 1)")
            return [Item(text, ("tags",)) for text in _texts(payload, limits)]
        n_best = _int_in(payload, "n_best", 1, 1, len(rt.class_names), " (the number of classes)")
        return [
            Item(self._encode(rt.codec, text, i), extra={"n_best": n_best})
            for i, text in enumerate(_texts(payload, limits))
        ]

    def run_predict(self, items: list[Item]) -> list[Any]:
        rt = self.rt
        results: list[Any] = [None] * len(items)
        groups: dict[tuple[Any, ...], list[int]] = collections.defaultdict(list)
        for index, item in enumerate(items):
            groups[item.group].append(index)
        for group, indices in groups.items():
            rows = [items[i].inputs for i in indices]
            if self.reads is Prediction.AUDIO_TO_TEXT:
                decoded = rt.decode(rows, *group)
                for i, best in zip(indices, decoded, strict=True):
                    results[i] = [{"text": text, "score": float(score)} for text, score in best]
                continue
            if self.reads is Prediction.TEXT_TO_TAGS:
                for i, text, tags in zip(indices, rows, rt.tag_texts(rows), strict=True):
                    results[i] = {"words": text.split(), "tags": list(tags)}
                continue
            lengths = np.array([len(row) for row in rows], dtype=np.int64)
            ids = np.zeros((len(rows), int(lengths.max())), dtype=np.int64)
            for i, row in enumerate(rows):
                ids[i, : len(row)] = row
            if self.reads is Prediction.TEXT_TO_TEXT:
                beam_size, n_best, max_len, length_penalty = group
                hypotheses = rt.beam_search(ids, lengths, beam_size, max_len, length_penalty, n_best)
                outs: list[Any] = [
                    [{"text": rt.target_text(t), "score": float(s)} for t, s in best] for best in hypotheses
                ]
            else:
                probs = rt.run(ids, lengths)
                outs = []
                for i, row in zip(indices, probs, strict=True):
                    order = np.argsort(-row, kind="stable")[: items[i].extra["n_best"]]
                    outs.append([{"label": rt.class_names[j], "probability": float(row[j])} for j in order])
            for i, out in zip(indices, outs, strict=True):
                results[i] = out
        return results

    # ---------------------------------------------------------------- /generate
    def encode_prompt(self, prompt: str) -> list[int]:
        ids = self.rt.encode_prompt(prompt)
        if not ids:
            raise RequestError('an empty prompt has nothing to continue for this model; send "prompt": "..."')
        return ids

    def start(self, ids: list[int]) -> tuple[Any, Any]:
        return self.rt.read(np.array([ids], dtype=np.int64))

    def step(self, tokens: list[int], state: Any) -> tuple[Any, Any]:
        return self.rt.step(np.array(tokens, dtype=np.int64), state)

    @staticmethod
    def cat_states(states: Sequence[Any]) -> Any:
        return {name: np.concatenate([s[name] for s in states], axis=1) for name in states[0]}

    @staticmethod
    def split_state(state: Any, count: int) -> list[Any]:
        return [{name: value[:, i : i + 1] for name, value in state.items()} for i in range(count)]

    def new_generator(self, seed: int) -> Any:
        return np.random.default_rng(seed % 2**64)

    def sample(self, stream: Stream) -> int:
        return int(
            self.runtime.sample_next(stream.logits, stream.temperature, stream.top_k, stream.top_p, stream.generator)[0]
        )

    def decode(self, ids: Sequence[int]) -> str:
        return self.rt.text(list(ids))


# ------------------------------------------------------------------------------------------------ batching
class Stats:
    """Sizes of the batches each endpoint ran (``GET /stats``): proof that batching batches."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
        self.requests: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()

    def batch(self, endpoint: str, size: int) -> None:
        with self.lock:
            self.batches[endpoint][size] += 1

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            out: dict[str, Any] = {"requests": dict(self.requests), "errors": dict(self.errors), "batches": {}}
            for endpoint, sizes in self.batches.items():
                total = sum(sizes.values())
                out["batches"][endpoint] = {
                    "count": total,
                    "max_size": max(sizes),
                    "mean_size": sum(s * n for s, n in sizes.items()) / total,
                    "sizes": {str(s): n for s, n in sorted(sizes.items())},
                }
            return out


class ModelError(RuntimeError):
    """The model failed on a batch: every request in it gets a 500 with this line."""


class DynamicBatcher:
    """Queues items; runs ``run`` on up to ``max_batch_size`` of them when that many wait or ``max_wait_ms`` has
    passed since the oldest arrived. ``run`` goes to ``executor`` (one thread): the event loop stays free."""

    def __init__(
        self,
        name: str,
        run: Callable[[list[Item]], list[Any]],
        executor: ThreadPoolExecutor,
        limits: Limits,
        stats: Stats,
    ) -> None:
        self.name, self.run, self.executor, self.limits, self.stats = name, run, executor, limits, stats
        self.queue: collections.deque[tuple[Item, asyncio.Future[Any], float]] = collections.deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def submit(self, items: list[Item]) -> list[Any]:
        loop = asyncio.get_running_loop()
        futures = []
        for item in items:
            future: asyncio.Future[Any] = loop.create_future()
            self.queue.append((item, future, time.monotonic()))
            futures.append(future)
        self.wake.set()
        return list(await asyncio.gather(*futures))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.wake.clear()
                await self.wake.wait()
            deadline = self.queue[0][2] + self.limits.max_wait_ms / 1000.0
            while len(self.queue) < self.limits.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), remaining)
                except TimeoutError:
                    break
            taken = [self.queue.popleft() for _ in range(min(len(self.queue), self.limits.max_batch_size))]
            taken = [entry for entry in taken if not entry[1].done()]  # a client that gave up is not computed
            if not taken:
                continue
            self.stats.batch(self.name, len(taken))
            try:
                results = await loop.run_in_executor(self.executor, self.run, [item for item, _, _ in taken])
            except Exception as exc:  # the model failed: every request of the batch hears it
                error = ModelError(f"the model failed on this batch: {type(exc).__name__}: {_one_line(exc)}")
                for _, future, _ in taken:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future, _), result in zip(taken, results, strict=True):
                if not future.done():
                    future.set_result(result)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


@dataclass
class Stream:
    """One /generate request: its ids, own state, own generator and sampling settings."""

    ids: list[int]
    max_new_tokens: int
    temperature: float
    top_k: int | None
    top_p: float | None
    generator: Any  # the backend's own: a torch.Generator, or numpy's for an exported graph
    events: asyncio.Queue[dict[str, Any]]
    pieces: TextPieces
    prompt_length: int
    logits: Tensor | None = None
    state: Any = None
    generated: int = 0
    finished: bool = False
    cancelled: bool = False
    pending: list[dict[str, Any]] = field(default_factory=list)  # events of the round that just ran


class GenerationScheduler:
    """Continuous batching of /generate streams: one batched recurrent step per round for every active stream.

    A new stream's prompt is read (alone) before the round it joins; each round samples one token per stream
    (each with its own generator, from its own row of logits), sends it as an event, retires the streams that are
    done, then concatenates the states of the rest along the batch dimension and steps them together.
    """

    def __init__(self, backend: Any, executor: ThreadPoolExecutor, limits: Limits, stats: Stats) -> None:
        self.backend, self.executor, self.limits, self.stats = backend, executor, limits, stats
        self.waiting: collections.deque[Stream] = collections.deque()
        self.active: list[Stream] = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    def submit(self, stream: Stream) -> None:
        self.waiting.append(stream)
        self.wake.set()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.active and not self.waiting:
                self.wake.clear()
                await self.wake.wait()
            joining = []
            while self.waiting and len(self.active) + len(joining) < self.limits.max_batch_size:
                stream = self.waiting.popleft()
                if not stream.cancelled:
                    joining.append(stream)
            try:
                touched = await loop.run_in_executor(self.executor, self._round, joining)
            except Exception as exc:  # the batched step failed: every stream in it hears it, then ends
                message = f"the model failed during generation: {type(exc).__name__}: {_one_line(exc)}"
                for stream in {id(s): s for s in [*self.active, *joining]}.values():
                    stream.finished = True
                    stream.events.put_nowait({"error": message, "status": 500})
                self.active = []
                continue
            for stream in touched:
                for event in stream.pending:
                    stream.events.put_nowait(event)
                stream.pending = []
            self.active = [s for s in self.active if not s.finished and not s.cancelled]
            await asyncio.sleep(0)  # let handlers read their events and new requests arrive

    def _round(self, joining: list[Stream]) -> list[Stream]:
        """On the worker thread: read new prompts, draw one token per stream, step the ones that go on.

        Returns the streams with events to send. A prompt the model fails on ends its own stream only.
        """
        backend = self.backend
        failed = []
        for stream in joining:
            try:
                stream.logits, stream.state = backend.start(stream.ids)
            except Exception as exc:
                message = f"the model failed on this prompt: {type(exc).__name__}: {_one_line(exc)}"
                stream.finished = True
                stream.pending = [{"error": message, "status": 500}]
                failed.append(stream)
                continue
            self.active.append(stream)
        going_on = []
        for stream in self.active:
            stream.pending = []
            if stream.cancelled:
                continue
            token = backend.sample(stream)
            stream.ids.append(token)
            stream.generated += 1
            eos = backend.stop_id is not None and token == backend.stop_id
            stream.pending.append({"token": stream.pieces.add(token), "id": token, "index": stream.generated - 1})
            if eos or stream.generated >= stream.max_new_tokens:
                stream.finished = True
                ids = stream.ids[backend.skip :]
                stream.pending.append(
                    {
                        "done": True,
                        "text": backend.decode(ids),
                        "completion": backend.decode(ids)[len(backend.decode(ids[: stream.prompt_length])) :],
                        "tokens": stream.generated,
                        "finish_reason": "eos" if eos else "length",
                    }
                )
            else:
                going_on.append(stream)
        touched = [*failed, *self.active]
        if not going_on:
            return touched
        self.stats.batch("generate", len(going_on))
        tokens = [stream.ids[-1] for stream in going_on]
        logits, state = backend.step(tokens, backend.cat_states([stream.state for stream in going_on]))
        for row, (stream, part) in enumerate(zip(going_on, backend.split_state(state, len(going_on)), strict=True)):
            stream.logits, stream.state = logits[row : row + 1], part
        return touched


# ------------------------------------------------------------------------------------------------ the app
class _Server:
    """The state behind one app: the backend, its batchers (started with the app), the stats, the handlers."""

    def __init__(self, backend: Backend, limits: Limits) -> None:
        self.backend, self.limits, self.stats = backend, limits, Stats()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqmodels-model")
        self.offered = backend.endpoints()
        self.workers: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        backend, args = self.backend, (self.executor, self.limits, self.stats)
        if "/predict" in self.offered:
            self.workers["predict"] = DynamicBatcher("predict", backend.run_predict, *args)
        if "/forecast" in self.offered:
            self.workers["forecast"] = DynamicBatcher("forecast", backend.run_forecast, *args)
        if "/generate" in self.offered:
            self.workers["generate"] = GenerationScheduler(backend, *args)  # type: ignore[arg-type]
        for worker in self.workers.values():
            worker.start()
        try:
            yield
        finally:
            for worker in self.workers.values():
                if worker.task is not None:
                    worker.task.cancel()
            self.executor.shutdown(wait=False, cancel_futures=True)

    def routes(self) -> list[str]:
        return ["/health", "/metadata", "/stats", *self.offered]

    async def http_error(self, request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error(404, f"no endpoint {request.url.path}; this server offers {', '.join(self.routes())}")
        if exc.status_code == 405:
            return _error(405, f"{request.method} is not allowed on {request.url.path}; see GET /metadata")
        return _error(exc.status_code, _one_line(exc.detail if isinstance(exc.detail, str) else exc))

    async def unexpected(self, request: Any, exc: Exception) -> Any:
        return _error(500, f"internal error: {type(exc).__name__}: {_one_line(exc)}")

    def _not_offered(self, path: str) -> Any:
        others = ", ".join(self.offered) or "none"
        return _error(
            404, f"this {self.backend.name} checkpoint does not offer {path}; it offers {others} (see /metadata)"
        )

    async def health(self) -> dict[str, Any]:
        return {"status": "ok", "task": self.backend.name}

    async def metadata(self) -> dict[str, Any]:
        limits = self.limits
        meta = self.backend.metadata()
        meta["endpoints"] = self.routes()
        meta["limits"] = {
            "max_batch_size": limits.max_batch_size,
            "max_wait_ms": limits.max_wait_ms,
            "max_input_length": limits.max_input_length,
            "max_items": limits.max_items,
            "max_request_bytes": limits.max_request_bytes,
            "max_new_tokens": limits.max_new_tokens,
        }
        return meta

    async def get_stats(self) -> dict[str, Any]:
        return self.stats.to_dict()

    async def predict(self, request: Any) -> Any:
        if "/predict" not in self.offered:
            return self._not_offered("/predict")

        async def body() -> Any:
            items = self.backend.prepare_predict(await _read_json(request, self.limits), self.limits)
            return {"results": await self.workers["predict"].submit(items)}

        return await _guarded(self.stats, "predict", body)

    async def forecast(self, request: Any) -> Any:
        if "/forecast" not in self.offered:
            return self._not_offered("/forecast")

        async def body() -> Any:
            items = self.backend.prepare_forecast(await _read_json(request, self.limits), self.limits)
            return (await self.workers["forecast"].submit(items))[0]

        return await _guarded(self.stats, "forecast", body)

    async def generate(self, request: Any) -> Any:
        if "/generate" not in self.offered:
            return self._not_offered("/generate")

        async def body() -> Any:
            payload = await _read_json(request, self.limits)
            stream = _new_stream(self.backend, payload, self.limits)  # type: ignore[arg-type]
            self.workers["generate"].submit(stream)
            if not _field(payload, "stream", bool, True):
                return await _collect(stream)
            return StreamingResponse(_sse(stream), media_type="text/event-stream")

        return await _guarded(self.stats, "generate", body)


def create_app(backend: Backend, limits: Limits | None = None) -> Any:
    """The FastAPI app serving ``backend``; its batchers start with the app (lifespan) and stop with it.

    ``app.state.stats`` holds the :class:`Stats` that ``GET /stats`` reports.
    """
    server = _Server(backend, (limits or Limits()).check())
    app = FastAPI(title=f"seqmodels-serve: {backend.name}", lifespan=server.lifespan)
    app.state.stats = server.stats
    app.add_exception_handler(StarletteHTTPException, server.http_error)
    app.add_exception_handler(Exception, server.unexpected)

    async def predict(request: Request) -> Any:
        return await server.predict(request)

    async def forecast(request: Request) -> Any:
        return await server.forecast(request)

    async def generate(request: Request) -> Any:
        return await server.generate(request)

    app.get("/health")(server.health)
    app.get("/metadata")(server.metadata)
    app.get("/stats")(server.get_stats)
    app.post("/predict")(predict)
    app.post("/forecast")(forecast)
    app.post("/generate")(generate)
    return app


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_json(request: Any, limits: Limits) -> dict[str, Any]:
    """The request body as a JSON object, at most ``max_request_bytes`` long (413 beyond, 400 if not JSON)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_request_bytes:
        raise RequestError(
            f"the request body has {declared} bytes, more than max_request_bytes={limits.max_request_bytes}; "
            "send less per request",
            413,
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limits.max_request_bytes:
            raise RequestError(
                f"the request body is over max_request_bytes={limits.max_request_bytes}; send less per request", 413
            )
    if not body.strip():
        raise RequestError("the request body is empty; send a JSON object (Content-Type: application/json)")
    try:
        payload = json.loads(bytes(body))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"the request body is not valid JSON ({exc}); send a JSON object") from None
    if not isinstance(payload, dict):
        raise RequestError(f"the request body must be a JSON object, got {type(payload).__name__}")
    return payload


async def _guarded(stats: Stats, endpoint: str, body: Callable[[], Any]) -> Any:
    """Runs a handler's ``body``; a refused request becomes its 4xx, a model failure a 500, both one JSON line."""
    stats.requests[endpoint] += 1
    try:
        return await body()
    except RequestError as exc:
        stats.errors[endpoint] += 1
        return _error(exc.status, _one_line(exc))
    except ModelError as exc:
        stats.errors[endpoint] += 1
        return _error(500, str(exc))
    except (ValueError, TypeError, KeyError, FileNotFoundError) as exc:  # the data layer refused the input
        stats.errors[endpoint] += 1
        return _error(400, _one_line(exc))


async def _collect(stream: Stream) -> Any:
    """A /generate answer with ``stream: false``: the final event, with the ids of the new tokens."""
    tokens = []
    try:
        while True:
            event = await stream.events.get()
            if "error" in event:
                return _error(event["status"], event["error"])
            if event.get("done"):
                return {**event, "token_ids": tokens}
            tokens.append(event["id"])
    finally:
        stream.cancelled = True  # a client that left stops its stream at the next step


def _new_stream(backend: Any, payload: dict[str, Any], limits: Limits) -> Stream:
    prompt = _field(payload, "prompt", str, what='"prompt": the text to continue')
    if not prompt.strip():
        raise RequestError('"prompt" is empty; send some text to continue')
    if len(prompt) > limits.max_input_length:
        raise RequestError(
            f'"prompt" has {len(prompt)} characters, more than max_input_length={limits.max_input_length}; shorten it'
        )
    max_new_tokens = _int_in(payload, "max_new_tokens", min(200, limits.max_new_tokens), 1, limits.max_new_tokens)
    temperature = _field(payload, "temperature", float, 1.0)
    if not math.isfinite(temperature) or temperature < 0:
        raise RequestError(f'"temperature" must be a finite number >= 0 (0 is greedy), got {temperature}')
    top_k = _field(payload, "top_k", int, None)
    if top_k is not None and top_k < 0:
        raise RequestError(f'"top_k" must be an integer >= 0 or null (0 or null: no cut), got {top_k}')
    top_p = _field(payload, "top_p", float, None)
    if top_p is not None and not 0 < top_p <= 1:
        raise RequestError(f'"top_p" must be a number in (0, 1] or null, got {top_p}')
    seed = _field(payload, "seed", int, 0)
    ids = backend.encode_prompt(prompt)
    pieces = TextPieces(backend.decode, ids[backend.skip :])
    return Stream(
        ids=list(ids),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k or None,
        top_p=top_p,
        generator=backend.new_generator(seed),
        events=asyncio.Queue(),
        pieces=pieces,
        prompt_length=len(ids) - backend.skip,
    )


async def _sse(stream: Stream) -> AsyncIterator[bytes]:
    """One ``data:`` JSON event per token, then a final event with the full text (or an error event)."""
    try:
        while True:
            event = await stream.events.get()
            yield f"data: {json.dumps(event)}\n\n".encode()
            if event.get("done") or "error" in event:
                return
    finally:
        stream.cancelled = True  # the client left (or the stream ended): the scheduler drops it


def serve(
    ckpt_path: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    allow_remote: bool = False,
    device: str = "cpu",
    limits: Limits | None = None,
    log_level: str = "warning",
    ready: Callable[[str], None] | None = None,
) -> None:
    """Loads ``ckpt_path`` and serves it until interrupted (uvicorn, one process)."""
    import uvicorn

    host = check_host(host, allow_remote)
    limits = (limits or Limits()).check()
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer in [0, 65535], got {port!r}")
    backend = load_backend(ckpt_path, device)
    app = create_app(backend, limits)
    if ready is not None:
        ready(f"serving {ckpt_path} ({backend.name}: {', '.join(backend.endpoints())}) on http://{host}:{port}")
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
