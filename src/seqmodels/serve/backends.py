"""What the server runs: a checkpoint (PyTorch) or an exported ``.onnx`` file (:mod:`seqmodels.runtime`), behind
one small interface (:class:`Backend`)."""

from __future__ import annotations

import collections
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint, task_capabilities
from seqmodels.data.collate import pad_collate
from seqmodels.nn.decoding import sample_next
from seqmodels.serve.requests import (
    Limits,
    RequestError,
    _field,
    _int_in,
    _matrix,
    _one_line,
    _sequences,
    _short,
    _texts,
    _wav_features,
)

if TYPE_CHECKING:
    from seqmodels.serve.batching import Stream
from seqmodels.tasks.capabilities import Capabilities, Prediction


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
        """Channels per step of a numeric model's inputs: what its datamodule reads from a raw series, from its
        sizes, or from its saved scaler."""
        raw = getattr(self.datamodule, "series_channels", None)
        if isinstance(raw, int):
            return raw
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
        out = []
        for sequence in _sequences(payload, limits, self._input_width()):
            x = torch.tensor(sequence, dtype=torch.float32)
            to_inputs = getattr(self.datamodule, "inputs_from_series", None)
            if callable(to_inputs):  # delta features and standardisation, as in training
                x = to_inputs(x)
            else:
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
    classifier, a classifier of feature sequences (raw ``sequences``, prepared as in training), a tagger and a
    speech model (``/predict``). Regressors are refused in one line: serve their checkpoint.
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
        # A classifier exported without a tokenizer but with its class names reads feature sequences.
        self.series_input = kind == "classifier" and rt.codec is None and rt.class_names is not None
        if offers is None or not (reads_text or getattr(rt, "codec", None) or self.series_input):
            raise ValueError(
                f"{path} holds an exported {kind} model, which seqmodels-serve does not run from .onnx (it serves "
                "exported language models, encoder-decoders, classifiers, taggers and speech models); serve "
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
                else {"kind": "sequences", "channels": self._series_channels()}
                if self.series_input
                else {"kind": "text"}
            ),
            "vocab_size": len(codec.tokens) if codec is not None else None,
            "labels": list(getattr(rt, "class_names", None) or getattr(rt, "tag_names", None) or []) or None,
        }

    def _series_channels(self) -> int | None:
        """Channels per step of a raw sequence: the exported scaler's, before the delta features."""
        mean = self.rt.mean
        return int(mean.shape[0]) // (1 + self.rt.deltas) if mean is not None else None

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
        if self.series_input:  # delta features and standardisation, as in training
            return [
                Item(rt.features(np.asarray(sequence, dtype=np.float32)), extra={"n_best": n_best})
                for sequence in _sequences(payload, limits, self._series_channels())
            ]
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
            if self.series_input:  # (N, L, C) features
                ids = np.zeros((len(rows), int(lengths.max()), rows[0].shape[1]), dtype=np.float32)
            else:
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
