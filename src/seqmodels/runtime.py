"""Run exported seqmodels without PyTorch: numpy and onnxruntime only (``pip install onnxruntime numpy``).

    from seqmodels.runtime import load
    lm = load("char_lm.onnx")                    # written by seqmodels-export from a language-model checkpoint
    lm.generate_text("async def ", max_new_tokens=200, temperature=0)          # greedy: as seqmodels-generate
    g2p = load("g2p.onnx")                       # encoder graph; g2p.decoder.onnx lies next to it
    g2p.translate(["hello"], beam_size=5, n_best=3)                             # as seqmodels-predict
    asr = load("dtmf.onnx")
    asr.transcribe_wav("keys.wav", beam_size=5)  # WAV -> numpy log-mels -> prefix beam search: as seqmodels-predict
    asr.transcribe([features])                   # (L, C) log-mel frames -> greedy CTC transcripts
    load("ner.onnx").tag_texts(["EU rejects German call"])                      # one tag per word
    load("reviews.onnx").label_texts(["great value"], n_best=2)                 # labels with probabilities
    load("vowels.onnx").label_series([series], n_best=2)                        # raw (steps, channels) arrays

From the shell, printing what seqmodels-predict / seqmodels-generate print for the checkpoint:

    python -m seqmodels.runtime ner.onnx --input "EU rejects German call"
    python -m seqmodels.runtime dtmf.onnx --wav keys.wav --beam-size 5 --n-best 3
    python -m seqmodels.runtime vowels.onnx --input-file series.csv --n-best 3     # or a .npy, or a folder
    python -m seqmodels.runtime char_lm.onnx --prompt "async def " --max-new-tokens 200 --temperature 0

Each file carries its model's description in the metadata key ``seqmodels.runtime`` (JSON): task kind,
vocabularies, special ids, tokenizer, sizes and state layout, and the names of its sibling graph files. Importing
this module never imports torch.

Decoding matches PyTorch's: greedy decoding and beam search give the same tokens as ``seqmodels-generate`` /
``seqmodels-predict`` (the graphs compute the same logits within float rounding). A speech model's file also holds
its front-end's settings: WAV files are read with the standard library, resampled and turned into log-mel features
in numpy as :class:`seqmodels.nn.LogMelSpectrogram` computes them (within 1e-4). Sampling draws from numpy's
generator (``numpy.random.default_rng(seed)``), not torch's: a seed gives reproducible text here, but not the same
text as ``seqmodels-generate`` with that seed.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RUNTIME_KEY = "seqmodels.runtime"
FORMAT_VERSION = 1

__all__ = [
    "CTCRuntime",
    "ExportedModelError",
    "LanguageModelRuntime",
    "LogMelFeatures",
    "Seq2SeqRuntime",
    "SequenceRuntime",
    "TextCodec",
    "beam_search",
    "ctc_prefix_beam_search",
    "load",
    "main",
    "read_wav",
    "resample",
    "sample_next",
]


class ExportedModelError(ValueError):
    """An exported model that cannot be loaded: a missing, corrupt or foreign file; the message names the fix."""


# ------------------------------------------------------------------------------------------------ loading
def _session(path: Path, threads: int | None, spinning: bool = True) -> Any:
    try:
        import onnxruntime
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "seqmodels.runtime needs onnxruntime; install it with: pip install onnxruntime"
        ) from None
    if not path.is_file():
        raise ExportedModelError(
            f"{path} does not exist; export the checkpoint with: seqmodels-export ckpt_path=<checkpoint> "
            f"output_file={path}"
        )
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spinning:  # idle threads sleep between calls instead of busy-waiting for the next one
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # the graphs' traced shape annotations are only hints
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ExportedModelError(
            f"{path} is not a readable ONNX model ({first[:160]}); export it again with seqmodels-export"
        ) from None


def read_metadata(session: Any, path: Path) -> dict[str, Any]:
    """The ``seqmodels.runtime`` description stored in an exported file."""
    value = session.get_modelmeta().custom_metadata_map.get(RUNTIME_KEY)
    if value is None:
        raise ExportedModelError(
            f"{path} holds no seqmodels runtime description; export it with this version of seqmodels-export"
        )
    meta = json.loads(value)
    if meta.get("format", 0) > FORMAT_VERSION:
        raise ExportedModelError(f"{path} was exported by a newer seqmodels; upgrade seqmodels to run it")
    return meta


def load(path: str | os.PathLike, threads: int | None = None, spinning: bool = True) -> Any:
    """An exported model from its ``.onnx`` file (siblings such as ``<stem>.decoder.onnx`` are found next to it).

    ``threads``: onnxruntime's intra-op threads (None: its default). ``spinning=False`` lets them sleep between
    calls instead of busy-waiting (fairer to other work in the process, a little slower per call). Returns a
    :class:`LanguageModelRuntime`, :class:`Seq2SeqRuntime`, :class:`CTCRuntime` or :class:`SequenceRuntime`.
    """
    path = Path(path)
    session = _session(path, threads, spinning)
    meta = read_metadata(session, path)
    kinds = {
        "language_model": LanguageModelRuntime,
        "seq2seq": Seq2SeqRuntime,
        "ctc": CTCRuntime,
        "classifier": SequenceRuntime,
        "regressor": SequenceRuntime,
        "tagger": SequenceRuntime,
    }
    if meta.get("kind") not in kinds:
        raise ExportedModelError(f"{path} holds a {meta.get('kind')!r} model, which seqmodels.runtime does not run")
    # The first graph is this file; the others lie next to it as <stem>.<role>.onnx (seqmodels-export names them).
    roles = list(meta["graphs"])
    sessions = {roles[0]: session}
    for role in roles[1:]:
        sessions[role] = _session(path.with_name(f"{path.stem}.{role}{path.suffix or '.onnx'}"), threads, spinning)
    return kinds[meta["kind"]](meta, sessions)


# ------------------------------------------------------------------------------------------------ text
_WORD = re.compile(r"\w+|[^\w\s]")


@dataclass
class TextCodec:
    """A vocabulary and its tokenizer (``char``, ``word`` or ``whitespace``), as seqmodels' data modules keep them.

    ``<pad>`` is id 0 and ``<unk>`` id 1; unknown tokens encode as ``<unk>``.
    """

    tokens: list[str]
    tokenizer: dict[str, Any] | None

    def __post_init__(self) -> None:
        self.stoi = {token: i for i, token in enumerate(self.tokens)}

    @property
    def kind(self) -> str | None:
        return None if self.tokenizer is None else self.tokenizer["type"]

    def tokenize(self, text: str) -> list[str]:
        if self.tokenizer is None:
            raise ValueError("this model has no text tokenizer; pass token ids instead of text")
        if self.tokenizer.get("lowercase", True):
            text = text.lower()
        if self.kind == "char":
            return list(text)
        if self.kind == "word":
            return _WORD.findall(text)
        return text.split()

    def detokenize(self, tokens: Sequence[str]) -> str:
        return ("" if self.kind == "char" else " ").join(tokens)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.stoi.get(token, 1) for token in tokens]

    def unknown(self, tokens: Sequence[str]) -> list[str]:
        return list(dict.fromkeys(t for t in tokens if t not in self.stoi))

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Ids -> tokens, ``<pad>`` dropped; an id outside the vocabulary is a one-line ValueError."""
        out = []
        for i in ids:
            if not 0 <= int(i) < len(self.tokens):
                raise ValueError(f"token id {i} is outside this vocabulary (ids 0..{len(self.tokens) - 1})")
            if int(i) != 0:
                out.append(self.tokens[int(i)])
        return out


# ------------------------------------------------------------------------------------------------ decoding
def log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float32)
    top = logits.max(axis=-1, keepdims=True)
    shifted = logits - np.where(np.isfinite(top), top, 0)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def filter_logits(logits: np.ndarray, top_k: int | None = None, top_p: float | None = None) -> np.ndarray:
    """-inf outside the ``top_k`` largest and outside the nucleus of mass ``top_p`` (the most likely token stays)."""
    logits = logits.copy()
    if top_k is not None and top_k < logits.shape[-1]:
        kth = np.sort(logits, axis=-1)[:, -top_k][:, None]
        logits[logits < kth] = -np.inf
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-logits, axis=-1, kind="stable")
        sorted_logits = np.take_along_axis(logits, order, axis=-1)
        probs = np.exp(log_softmax(sorted_logits))
        drop_sorted = np.cumsum(probs, axis=-1) - probs >= top_p
        drop = np.zeros_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)
        logits[drop] = -np.inf
    return logits


def sample_next(
    logits: np.ndarray,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """One token per row of ``logits`` (N, V): the argmax when ``temperature == 0`` (as PyTorch's, the first
    maximum), else a draw from the filtered softmax with numpy's ``rng``."""
    if temperature == 0:
        return logits.argmax(axis=-1).astype(np.int64)
    rng = rng if rng is not None else np.random.default_rng()
    probs = np.exp(log_softmax(filter_logits(logits.astype(np.float32) / temperature, top_k, top_p))).astype(np.float64)
    cumulative = np.cumsum(probs, axis=-1)
    draws = rng.random(probs.shape[0]) * cumulative[:, -1]
    tokens = (cumulative <= draws[:, None]).sum(axis=-1)
    return np.minimum(tokens, probs.shape[-1] - 1).astype(np.int64)


def _check_sampling(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p}")


def decode_steps(
    step: Any,
    logits: np.ndarray,
    state: Any,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    pad_id: int = 0,
    rng: np.random.Generator | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yields ``(tokens (N,), logits (N, V), active (N,))`` per new position: seqmodels.nn.decoding's loop."""
    _check_sampling(max_new_tokens, temperature, top_k, top_p)
    finished = np.zeros(logits.shape[0], dtype=bool)
    for index in range(max_new_tokens):
        token = sample_next(logits, temperature, top_k, top_p, rng)
        token = np.where(finished, pad_id, token)
        active = ~finished
        if eos_id is not None:
            finished = finished | (token == eos_id)
        yield token, logits, active
        if eos_id is not None and finished.all():
            return
        if index + 1 < max_new_tokens:
            logits, state = step(token, state)


def decode(
    step: Any, logits: np.ndarray, state: Any, max_new_tokens: int, return_log_probs: bool = False, **options: Any
) -> tuple[np.ndarray, ...]:
    """``tokens`` (N, T), ``lengths`` (N,) [and the (N,) sum of token log-probabilities]: the collected loop."""
    n = logits.shape[0]
    out, lengths, log_probs = [], np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.float32)
    for token, step_logits, active in decode_steps(step, logits, state, max_new_tokens, **options):
        if return_log_probs:
            picked = np.take_along_axis(log_softmax(step_logits), token[:, None], axis=1)[:, 0]
            log_probs += np.where(active, picked, 0.0).astype(np.float32)
        out.append(token)
        lengths += active
    tokens = np.stack(out, axis=1) if out else np.zeros((n, 0), dtype=np.int64)
    return (tokens, lengths, log_probs) if return_log_probs else (tokens, lengths)


def beam_search(
    step: Any,
    state: Any,
    select: Any,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    beam_size: int = 5,
    max_len: int = 100,
    length_penalty: float = 1.0,
    n_best: int = 1,
) -> list[list[tuple[list[int], float]]]:
    """Batched beam search, step for step the algorithm of :func:`seqmodels.nn.decoding.beam_search` in numpy.

    ``step(tokens (B*K,), state) -> (logits (B*K, V), state)``; ``select(state, rows) -> state``. Returns per input
    ``n_best`` pairs ``(tokens, score)`` best first (tokens without ``<bos>``, with the final ``<eos>``).
    """
    if beam_size < 1 or not 1 <= n_best <= beam_size:
        raise ValueError(f"need beam_size >= 1 and 1 <= n_best <= beam_size, got {beam_size}, {n_best}")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    K = beam_size
    logits, state = step(np.full(batch_size * K, bos_id, dtype=np.int64), state)
    vocab = logits.shape[-1]
    scores = np.full((batch_size, K), -np.inf, dtype=np.float32)
    scores[:, 0] = 0.0
    history = np.zeros((batch_size * K, 0), dtype=np.int64)
    finished: list[list[tuple[float, list[int], float]]] = [[] for _ in range(batch_size)]
    done = np.zeros(batch_size, dtype=bool)
    offsets = (np.arange(batch_size) * K)[:, None]
    width = min(2 * K, K * vocab)

    def normalised(score: float, length: int) -> float:
        return score / (length**length_penalty) if length_penalty else score

    for length in range(1, max_len + 1):
        log_probs = log_softmax(logits).reshape(batch_size, K, vocab)
        candidates = (scores[:, :, None] + log_probs).reshape(batch_size, K * vocab)
        # torch.topk order: largest first; ties by the lower index (a stable sort of the negated scores)
        top_index = np.argsort(-candidates, axis=-1, kind="stable")[:, :width]
        top_scores = np.take_along_axis(candidates, top_index, axis=-1)
        parent, token = top_index // vocab, top_index % vocab
        is_eos = token == eos_id
        if length == max_len:
            is_eos = np.ones_like(is_eos)
        rank = np.broadcast_to(np.arange(width), top_scores.shape)
        record = is_eos & (rank < K) & np.isfinite(top_scores) & ~done[:, None]
        for b, j in zip(*np.nonzero(record), strict=True):
            row = int(offsets[b, 0] + parent[b, j])
            sequence = history[row].tolist() + [int(token[b, j])]
            raw = float(top_scores[b, j])
            finished[b].append((normalised(raw, len(sequence)), sequence, raw))
        if length == max_len:
            break
        order = np.argsort(is_eos.astype(np.int64) * (2 * K) + rank, axis=-1, kind="stable")[:, :K]
        next_scores = np.take_along_axis(top_scores, order, axis=1)
        best_live = next_scores.max(axis=1)
        for b in range(batch_size):
            if done[b] or len(finished[b]) < n_best:
                continue
            nth = sorted((item[0] for item in finished[b]), reverse=True)[n_best - 1]
            if best_live[b] == -np.inf or nth >= normalised(float(best_live[b]), length + 1):
                done[b] = True
        if done.all():
            break
        next_scores = np.where(done[:, None], -np.inf, next_scores).astype(np.float32)
        next_parent = (np.take_along_axis(parent, order, axis=1) + offsets).reshape(-1)
        next_token = np.take_along_axis(token, order, axis=1).reshape(-1)
        history = np.concatenate([history[next_parent], next_token[:, None]], axis=1)
        scores = next_scores
        state = select(state, next_parent)
        logits, state = step(next_token, state)

    results = []
    for b in range(batch_size):
        ranked = sorted(finished[b], key=lambda item: item[0], reverse=True)[:n_best]
        results.append([(sequence, score) for score, sequence, _ in ranked])
    return results


# ------------------------------------------------------------------------------------------------ language models
class LanguageModelRuntime:
    """An exported :class:`~seqmodels.nn.RecurrentLanguageModel`: its step graph, vocabulary and tokenizer.

    State: a dict of (K, N, S) float32 arrays, zeros at the start: ``{"h": ...}``, ``{"h": ..., "c": ...}`` for
    LSTM, more for some of seqmodels' own cells (names and widths S in the metadata's ``state``).
    """

    def __init__(self, meta: dict[str, Any], sessions: dict[str, Any]) -> None:
        self.meta, self.session = meta, sessions["step"]
        self.codec = TextCodec(meta["tokens"], meta["tokenizer"])
        self.state_names: list[str] = meta["state"]["names"]
        self.num_layers, self.hidden_size = meta["num_layers"], meta["hidden_size"]
        # Graphs exported before the state widths were recorded hold h [and c], hidden_size wide.
        self.state_sizes: list[int] = meta["state"].get("sizes") or [self.hidden_size] * len(self.state_names)
        self.pad_id: int = meta["special_ids"]["pad"]
        self.stop_id: int | None = meta["stop_id"]
        self.prompt_prefix: list[int] = meta["prompt_prefix"]

    def initial_state(self, batch_size: int) -> dict[str, np.ndarray]:
        return {
            name: np.zeros((self.num_layers, batch_size, size), dtype=np.float32)
            for name, size in zip(self.state_names, self.state_sizes, strict=True)
        }

    def step(self, tokens: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``tokens`` (N,) int64 -> next-token logits (N, V) (``<pad>`` at -inf) and the new state."""
        feeds = {"tokens": np.asarray(tokens, dtype=np.int64), **state}
        logits, *new = self.session.run(None, feeds)
        return logits, dict(zip(self.state_names, new, strict=True))

    def read(self, prompt: np.ndarray, state: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, dict]:
        """Reads ``prompt`` (N, P) token ids, P >= 1: the logits (N, V) after its last token, and the state."""
        prompt = np.asarray(prompt, dtype=np.int64)
        if prompt.ndim != 2 or prompt.shape[1] == 0:
            raise ValueError(f"prompt must be (N, P) token ids with P >= 1, got shape {prompt.shape}")
        state = state if state is not None else self.initial_state(prompt.shape[0])
        for index in range(prompt.shape[1]):
            logits, state = self.step(prompt[:, index], state)
        return logits, state

    def generate(
        self,
        prompt: np.ndarray,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        eos_id: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``RecurrentLanguageModel.generate``: new ``tokens`` (N, T) and ``lengths`` (N,) after each prompt row."""
        logits, state = self.read(prompt)
        return decode(
            self.step, logits, state, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
            eos_id=eos_id, pad_id=self.pad_id, rng=rng,
        )  # fmt: skip

    def encode_prompt(self, text: str) -> list[int]:
        """Prompt text -> ids, as seqmodels-generate reads it (the corpus's line start or ``<bos>`` first)."""
        return self.prompt_prefix + self.codec.encode(self.codec.tokenize(text))

    def text(self, ids: Sequence[int]) -> str:
        """Ids -> text as seqmodels-generate prints it: ``<bos>`` dropped, ``<eos>`` a line break (or the end)."""
        tokens = [t for t in self.codec.decode(ids) if t != "<bos>"]
        if self.stop_id is not None and "<eos>" in tokens:
            tokens = tokens[: tokens.index("<eos>")]
        lines: list[list[str]] = [[]]
        for token in tokens:
            if token == "<eos>":
                lines.append([])
            else:
                lines[-1].append(token)
        return "\n".join(self.codec.detokenize(line) for line in lines)

    def generate_text(
        self,
        prompt: str,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        num_samples: int = 1,
        seed: int = 0,
    ) -> list[str]:
        """``seqmodels-generate``'s samples, prompt included; sample ``i`` draws with ``default_rng(seed + i)``."""
        ids = self.encode_prompt(prompt)
        if not ids:
            raise ValueError('an empty prompt has nothing to continue for this model; pass prompt="..."')
        skip = len(self.prompt_prefix)
        samples = []
        for index in range(num_samples):
            tokens, lengths = self.generate(
                np.array([ids]), max_new_tokens, temperature, top_k or None, top_p, self.stop_id,
                np.random.default_rng(seed + index),
            )  # fmt: skip
            samples.append(self.text([*ids[skip:], *tokens[0, : int(lengths[0])].tolist()]))
        return samples


# ------------------------------------------------------------------------------------------------ seq2seq
class Seq2SeqRuntime:
    """An exported :class:`~seqmodels.nn.Seq2Seq`: the encoder graph and the decoder-step graph.

    Decoder state: a dict ``{"feed", "memory", "mask", "keys", "h"[, "c"]}`` (the memory travels with the state so
    beam search selects it with the rest).
    """

    def __init__(self, meta: dict[str, Any], sessions: dict[str, Any]) -> None:
        self.meta = meta
        self.encoder, self.decoder = sessions["encoder"], sessions["decoder"]
        self.source = TextCodec(meta["source_tokens"], meta["source_tokenizer"])
        self.target = TextCodec(meta["target_tokens"], meta["target_tokenizer"])
        specials = meta["special_ids"]
        self.pad_id, self.bos_id, self.eos_id = specials["pad"], specials["bos"], specials["eos"]
        self.state_names: list[str] = [name for name in meta["state"]["names"] if name != "feed"]
        self.decoder_inputs = [i.name for i in self.decoder.get_inputs()]

    def encode(self, source: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        """``source`` (N, S) ids padded with ``<pad>``, ``lengths`` (N,) -> the initial decoder state."""
        outputs = self.encoder.run(
            None, {"source": np.asarray(source, dtype=np.int64), "source_lengths": np.asarray(lengths, np.int64)}
        )
        names = ["memory", "mask", "keys", *self.state_names, "feed"]
        return dict(zip(names, outputs, strict=True))

    def step(self, tokens: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``tokens`` (N,) -> logits (N, V) (``<pad>``, ``<bos>`` at -inf) and the new state."""
        feeds = {name: state[name] for name in self.decoder_inputs if name != "tokens"}
        logits, feed, *rnn = self.decoder.run(None, {"tokens": np.asarray(tokens, dtype=np.int64), **feeds})
        return logits, {**state, "feed": feed, **dict(zip(self.state_names, rnn, strict=True))}

    @staticmethod
    def select(state: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
        """Rows ``rows`` of every part of a state (batch is axis 1 of h/c, axis 0 of the rest)."""
        return {name: (value[:, rows] if name in ("h", "c") else value[rows]) for name, value in state.items()}

    def source_ids(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Texts -> padded source ids (N, S) and lengths; an input without tokens is a one-line ValueError."""
        rows = []
        for text in texts:
            tokens = self.source.tokenize(text)
            if not tokens:
                raise ValueError(f"input {text!r} has no tokens to translate")
            rows.append(self.source.encode(tokens))
        lengths = np.array([len(row) for row in rows], dtype=np.int64)
        ids = np.zeros((len(rows), int(lengths.max())), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
        return ids, lengths

    def max_decode_length(self, lengths: np.ndarray) -> int:
        return int(self.meta["max_length_ratio"] * int(lengths.max()) + self.meta["max_length_offset"])

    def greedy(self, source: np.ndarray, lengths: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """``Seq2Seq.greedy``: tokens (N, T) ending in ``<eos>`` (then ``<pad>``) and their lengths."""
        state = self.encode(source, lengths)
        logits, state = self.step(np.full(len(lengths), self.bos_id, dtype=np.int64), state)
        return decode(self.step, logits, state, max_len, temperature=0, eos_id=self.eos_id, pad_id=self.pad_id)

    def beam_search(
        self,
        source: np.ndarray,
        lengths: np.ndarray,
        beam_size: int = 5,
        max_len: int = 100,
        length_penalty: float = 1.0,
        n_best: int = 1,
    ) -> list[list[tuple[list[int], float]]]:
        """``Seq2Seq.beam_search``: per input ``n_best`` ``(tokens, score)``; the greedy output competes too."""
        n = len(lengths)
        state = self.encode(source, lengths)
        first_logits, first_state = self.step(np.full(n, self.bos_id, dtype=np.int64), state)
        greedy, greedy_lengths, greedy_scores = decode(
            self.step, first_logits, first_state, max_len, return_log_probs=True, temperature=0, eos_id=self.eos_id,
            pad_id=self.pad_id,
        )  # fmt: skip
        results = beam_search(
            self.step, self.select(state, np.repeat(np.arange(n), beam_size)), self.select, n, self.bos_id,
            self.eos_id, beam_size=beam_size, max_len=max_len, length_penalty=length_penalty, n_best=n_best,
        )  # fmt: skip
        for i, hypotheses in enumerate(results):
            tokens = greedy[i, : int(greedy_lengths[i])].tolist()
            raw = float(greedy_scores[i])
            score = raw / (len(tokens) ** length_penalty) if length_penalty else raw
            if all(tokens != t for t, _ in hypotheses) and (len(hypotheses) < n_best or score > hypotheses[-1][1]):
                hypotheses.append((tokens, score))
                hypotheses.sort(key=lambda item: item[1], reverse=True)
                del hypotheses[n_best:]
        return results

    def target_text(self, ids: Sequence[int]) -> str:
        """Target ids -> text, without ``<bos>``/``<pad>``, up to the first ``<eos>``."""
        tokens = []
        for token in self.target.decode(ids):
            if token == "<eos>":
                break
            if token != "<bos>":
                tokens.append(token)
        return self.target.detokenize(tokens)

    def translate(
        self, texts: Sequence[str], beam_size: int = 5, n_best: int = 1, length_penalty: float | None = None
    ) -> list[list[tuple[str, float]]]:
        """``seqmodels-predict`` for one batch of texts: per input, ``n_best`` ``(text, score)`` best first."""
        penalty = self.meta["length_penalty"] if length_penalty is None else length_penalty
        # Each text decodes with the output length its own length allows (as seqmodels-predict): texts sharing it
        # are batched, so an output never depends on the other texts.
        groups: dict[int, list[int]] = {}
        for index, text in enumerate(texts):
            _, length = self.source_ids([text])
            groups.setdefault(self.max_decode_length(length), []).append(index)
        results: dict[int, list[tuple[str, float]]] = {}
        for max_len, members in groups.items():
            source, lengths = self.source_ids([texts[i] for i in members])
            hypotheses = self.beam_search(source, lengths, beam_size, max_len, penalty, n_best)
            for index, best in zip(members, hypotheses, strict=True):
                results[index] = [(self.target_text(ids), score) for ids, score in best]
        return [results[index] for index in range(len(texts))]


# ------------------------------------------------------------------------------------------------ audio
# The speech front-end of seqmodels.nn.audio (LogMelSpectrogram) and seqmodels.data.audio (read_wav), in numpy:
# the same framing, window, FFT, mel filterbank, log, deltas, normalisation and windowed-sinc resampling.
_WAV_FORMATS = "integer PCM WAV (8, 16, 24 or 32-bit samples, any number of channels)"
_UNKNOWN_SIZE = 0xFFFFFFFF  # a data chunk size that means "unknown" (written by streaming tools)


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """A PCM WAV file -> ``(waveform (T,) float32 in [-1, 1], sample_rate)``, channels averaged to mono.

    Reads and refuses what ``seqmodels-predict`` does: a missing file (FileNotFoundError), a file that is not a
    WAV, another encoding (float, compressed), no samples, a truncated file (ValueError, one line each).
    """
    import wave

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}; pass the path of a .wav file")
    try:
        with wave.open(str(path), "rb") as handle:
            channels, width = handle.getnchannels(), handle.getsampwidth()
            rate, frames = handle.getframerate(), handle.getnframes()
            data = handle.readframes(frames)
    except (wave.Error, EOFError) as exc:
        reason = str(exc) or "truncated"
        raise ValueError(f"cannot read {path} as a WAV file ({reason}); seqmodels reads {_WAV_FORMATS}") from None
    if width not in (1, 2, 3, 4):
        raise ValueError(f"{path} has {8 * width}-bit samples; seqmodels reads {_WAV_FORMATS}")
    if rate <= 0:
        raise ValueError(f"{path} declares a sample rate of {rate} Hz; export it again with a real rate")
    count = len(data) // (width * channels)
    if count == 0:
        raise ValueError(f"{path} holds no audio samples")
    streamed = frames * width * channels >= _UNKNOWN_SIZE - width * channels  # "as long as possible"
    if count < frames and not streamed:
        raise ValueError(
            f"{path} is truncated: its header announces {frames} frames ({frames / rate:.3f} s at {rate} Hz) but the "
            f"file holds {count} ({count / rate:.3f} s); copy or export it again"
        )
    raw = np.frombuffer(data[: count * width * channels], dtype=np.uint8)
    if width == 1:  # unsigned 8-bit
        samples = (raw.astype(np.float32) - 128.0) / 128.0
    elif width == 3:  # little-endian 24-bit: widened to 32 bits, keeping the sign
        triples = raw.reshape(-1, 3).astype(np.int32)
        values = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        samples = (np.where(values >= 1 << 23, values - (1 << 24), values) / float(1 << 23)).astype(np.float32)
    else:
        dtype = np.dtype("<i2") if width == 2 else np.dtype("<i4")
        samples = raw.view(dtype).astype(np.float32) / float(1 << (8 * width - 1))
    return np.ascontiguousarray(samples.reshape(count, channels).mean(axis=1)), rate


def resample(
    waveform: np.ndarray, orig_freq: int, new_freq: int, lowpass_filter_width: int = 6, rolloff: float = 0.99
) -> np.ndarray:
    """Band-limited resampling with a Hann-windowed sinc, (T,) -> (ceil(T * new_freq / orig_freq),) float64:
    :func:`seqmodels.nn.audio.resample` (one polyphase filter per output phase, cut-off ``rolloff`` times the
    lower Nyquist frequency)."""
    orig_freq, new_freq = int(orig_freq), int(new_freq)
    if orig_freq <= 0 or new_freq <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_freq} and {new_freq}")
    waveform = np.asarray(waveform, dtype=np.float64)
    if orig_freq == new_freq:
        return waveform
    gcd = math.gcd(orig_freq, new_freq)
    orig, new = orig_freq // gcd, new_freq // gcd
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    taps = np.arange(-width, width + orig, dtype=np.float64)[None, :] / orig
    times = (-np.arange(new, dtype=np.float64)[:, None] / new + taps) * base
    times = np.clip(times, -lowpass_filter_width, lowpass_filter_width)
    window = np.cos(times * math.pi / lowpass_filter_width / 2) ** 2
    times = times * math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        sinc = np.where(times == 0, 1.0, np.sin(times) / np.where(times == 0, 1.0, times))
    kernels = sinc * window * base / orig  # (new, K)
    padded = np.pad(waveform, (width, width + orig))
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernels.shape[1])[::orig]  # (frames, K)
    out = (windows @ kernels.T).reshape(-1)  # frame-major: the phases of each input step interleave
    return out[: math.ceil(new * waveform.shape[-1] / orig)]


def hz_to_mel(frequency: Any) -> Any:
    """HTK mel scale: ``2595 * log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(frequency, dtype=np.float64) / 700.0)


def mel_to_hz(mel: Any) -> Any:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> np.ndarray:
    """Triangular HTK-mel filters (n_freqs, n_mels), float64: :func:`seqmodels.nn.audio.mel_filterbank`."""
    bins = np.linspace(0, sample_rate / 2, n_freqs, dtype=np.float64)
    edges = mel_to_hz(np.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2, dtype=np.float64))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins[:, None] - lower) / (centre - lower)
    falling = (upper - bins[:, None]) / (upper - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None)


#: The files a feature series is read from: a ``.npy`` array, or text with one step per row.
SERIES_SUFFIXES = (".npy", ".csv", ".txt")


def series_files(folder: Path) -> list[Path]:
    """The series files of ``folder`` (sorted by name)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SERIES_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no series files (.npy, .csv or .txt, one step per row)")
    return files


def read_series_file(path: str | os.PathLike, channels: int | None = None) -> np.ndarray:
    """A raw series (L, C) float64 from ``.npy`` ((L, C) or (L,)) or text with one step per row, values separated
    by commas or spaces (a header row is skipped). One-line ``ValueError`` naming the file and the fix for an
    empty, ragged or non-finite series, or (``channels`` given) another channel count."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        values = np.load(path, allow_pickle=False)
    else:
        rows = [line.replace(",", " ").split() for line in path.read_text().splitlines() if line.strip()]
        if rows and not _is_number_row(rows[0]):
            rows = rows[1:]  # a header
        widths = {len(row) for row in rows}
        if len(widths) > 1:
            raise ValueError(f"{path}: rows hold {sorted(widths)} values; every step needs one value per channel")
        try:
            values = np.array([[float(v) for v in row] for row in rows], dtype=np.float64)
        except ValueError as error:
            raise ValueError(f"{path}: {error}; every value must be a number") from None
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"{path}: a series is (steps, channels) with at least one step, got shape {values.shape}")
    if not np.isfinite(values).all():
        step = int(np.argwhere(~np.isfinite(values))[0][0])
        raise ValueError(f"{path}: step {step} holds NaN or infinity; fill or drop the missing values")
    if channels is not None and values.shape[1] != channels:
        raise ValueError(f"{path}: {values.shape[1]} channels per step, but this model reads {channels}")
    return values


def _is_number_row(row: list[str]) -> bool:
    try:
        [float(value) for value in row]
    except ValueError:
        return False
    return True


def step_deltas(series: np.ndarray, order: int) -> np.ndarray:
    """(L, C) -> (L, C * (1 + order)): the channels, their step-to-step differences (zero at the first step), and
    so on up to ``order``: ``seqmodels.data.ucr.with_deltas`` in numpy."""
    parts = [series]
    for _ in range(order):
        difference = np.zeros_like(parts[-1])
        difference[1:] = parts[-1][1:] - parts[-1][:-1]
        parts.append(difference)
    return np.concatenate(parts, axis=1)


def compute_deltas(features: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression deltas along time of one utterance (L, C), its first and last frames repeated past its ends."""
    length = features.shape[0]
    steps = np.arange(length)
    out = np.zeros_like(features)
    for k in range(1, width + 1):
        ahead = np.minimum(steps + k, length - 1)
        behind = np.minimum(np.maximum(steps - k, 0), length - 1)
        out = out + k * (features[ahead] - features[behind])
    return out / (2 * sum(k * k for k in range(1, width + 1)))


def cumulative_normalize(features: np.ndarray) -> np.ndarray:
    """Causal normalisation (L, C): frame ``t`` minus the mean of frames ``0..t``, over their standard deviation
    (+ 1e-5), from float64 sums of the frames less the first (:func:`seqmodels.nn.audio.cumulative_normalize`)."""
    if not len(features):
        return features
    d = features.astype(np.float64) - features[0].astype(np.float64)
    counts = np.arange(1, len(d) + 1, dtype=np.float64)[:, None]
    mean = np.cumsum(d, axis=0) / counts
    var = np.clip(np.cumsum(d * d, axis=0) / counts - mean * mean, 0.0, None)
    return (d - mean) / (np.sqrt(var) + 1e-5)


#: ``normalize`` values of a FeatureConfig and the mode each reads as (booleans: as checkpoints store them).
NORMALIZE_MODES = {
    True: "utterance",
    False: "none",
    "true": "utterance",
    "utterance": "utterance",
    "false": "none",
    "none": "none",
    "null": "none",
    "cumulative": "cumulative",
}


class LogMelFeatures:
    """The log-mel front-end a speech model was trained on, from its ``FeatureConfig`` fields (as the CTC export
    stores them): waveforms at :attr:`sample_rate` -> features (L, C), as :class:`seqmodels.nn.LogMelSpectrogram`.

    Frame ``i`` covers samples ``[i * hop, i * hop + n_fft)`` (no centring; a signal shorter than one frame is
    zero-padded to one), weighted by a periodic Hann window of ``win_length`` samples centred in ``n_fft``; its
    power spectrum (``numpy.fft.rfft``) goes through the HTK mel filterbank and ``log(max(mel, log_floor))``, then
    deltas and normalisation (``utterance``, ``cumulative`` or ``none``). Computed in float64.
    """

    FIELDS = ("sample_rate", "win_ms", "hop_ms", "n_mels", "f_min", "f_max", "deltas", "normalize", "preemphasis")

    def __init__(self, config: dict[str, Any], log_floor: float = 1e-10) -> None:
        unknown = sorted(set(config) - set(self.FIELDS))
        if unknown:
            raise ExportedModelError(
                f"this model's features use setting(s) {unknown} that this seqmodels.runtime does not compute; "
                "upgrade seqmodels to run it"
            )
        mode = config.get("normalize", True)
        key = mode.strip().lower() if isinstance(mode, str) else mode
        if key not in NORMALIZE_MODES:
            raise ExportedModelError(
                f"this model's features use normalize={mode!r}, which seqmodels.runtime does not compute (it knows "
                f"utterance, cumulative and none); upgrade seqmodels to run it"
            )
        self.normalize: str = NORMALIZE_MODES[key]
        self.sample_rate = int(config.get("sample_rate", 16000))
        win_ms, hop_ms = float(config.get("win_ms", 25.0)), float(config.get("hop_ms", 10.0))
        self.win_length = max(1, round(self.sample_rate * win_ms / 1000))
        self.hop_length = max(1, round(self.sample_rate * hop_ms / 1000))
        self.n_fft = 1 << (self.win_length - 1).bit_length()
        self.n_mels, self.deltas = int(config.get("n_mels", 40)), int(config.get("deltas", 0))
        self.f_min = float(config.get("f_min", 0.0))
        f_max = config.get("f_max")
        self.f_max = float(self.sample_rate / 2 if f_max is None else f_max)
        self.preemphasis, self.log_floor = float(config.get("preemphasis", 0.0)), float(log_floor)
        if self.deltas not in (0, 1, 2) or not 0.0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ExportedModelError(f"this model's feature settings are inconsistent ({config}); export it again")
        n = np.arange(self.win_length, dtype=np.float64)
        hann = 0.5 - 0.5 * np.cos(2 * math.pi * n / self.win_length) if self.win_length > 1 else np.ones(1)
        left = (self.n_fft - self.win_length) // 2  # torch.stft centres a shorter window in the frame
        self.window = np.zeros(self.n_fft)
        self.window[left : left + self.win_length] = hann
        self.filterbank = mel_filterbank(self.n_fft // 2 + 1, self.n_mels, self.sample_rate, self.f_min, self.f_max)

    @property
    def output_size(self) -> int:
        return self.n_mels * (1 + self.deltas)

    def num_frames(self, num_samples: int) -> int:
        return 1 + (max(num_samples, self.n_fft) - self.n_fft) // self.hop_length

    def log_mel(self, waveform: np.ndarray) -> np.ndarray:
        """Log-mel energies (L, n_mels) float64 of one waveform (T,) at :attr:`sample_rate`."""
        signal = np.asarray(waveform, dtype=np.float64)
        if signal.ndim != 1 or not len(signal):
            raise ValueError(f"expected one non-empty waveform (T,), got shape {signal.shape}")
        if self.preemphasis:
            signal = np.concatenate([signal[:1], signal[1:] - self.preemphasis * signal[:-1]])
        if len(signal) < self.n_fft:
            signal = np.pad(signal, (0, self.n_fft - len(signal)))
        frames = np.lib.stride_tricks.sliding_window_view(signal, self.n_fft)[:: self.hop_length]
        spectrum = np.fft.rfft(frames * self.window, n=self.n_fft, axis=-1)
        power = spectrum.real**2 + spectrum.imag**2
        return np.log(np.maximum(power @ self.filterbank, self.log_floor))

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        """One waveform (T,) at :attr:`sample_rate` -> features (L, C) float32."""
        features = self.log_mel(waveform)
        if self.deltas:
            delta = compute_deltas(features)
            features = np.concatenate([features, delta, *([compute_deltas(delta)] if self.deltas == 2 else [])], -1)
        if self.normalize == "cumulative":
            features = cumulative_normalize(features)
        elif self.normalize == "utterance":
            mean = features.mean(axis=0, keepdims=True)
            std = np.sqrt(((features - mean) ** 2).mean(axis=0, keepdims=True))
            features = (features - mean) / (std + 1e-5)
        return features.astype(np.float32)


# ------------------------------------------------------------------------------------------------ CTC
def ctc_greedy_decode(log_probs: np.ndarray, lengths: np.ndarray, blank: int = 0) -> list[list[int]]:
    """Best path: the most likely label per step, repeats merged, blanks removed."""
    best = log_probs.argmax(axis=-1)
    previous = np.concatenate([np.full_like(best[:, :1], -1), best[:, :-1]], axis=1)
    keep = (best != blank) & (best != previous)
    return [row[:n][k[:n]].tolist() for row, k, n in zip(best, keep, np.asarray(lengths).tolist(), strict=True)]


def _logsumexp(*values: float) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values))


def ctc_prefix_beam_search(
    log_probs: np.ndarray, lengths: Sequence[int] | np.ndarray | None = None, beam_size: int = 5, blank: int = 0,
    n_best: int = 1,
) -> list[list[tuple[list[int], float]]]:  # fmt: skip
    """CTC prefix beam search, step for step :func:`seqmodels.nn.ctc.ctc_prefix_beam_search` in Python.

    ``log_probs`` (N, L, K) or (L, K), ``lengths`` (N,) valid steps (default: all). Per step only the
    ``beam_size`` most likely labels extend the prefixes and the ``beam_size`` most likely prefixes survive
    (``beam_size=1``: greedy decoding). Returns per sequence up to ``n_best`` ``(label ids, log-probability)``
    pairs, best first.
    """
    if beam_size < 1 or not 1 <= n_best <= beam_size:
        raise ValueError(f"need beam_size >= 1 and 1 <= n_best <= beam_size, got {beam_size}, {n_best}")
    log_probs = np.asarray(log_probs, dtype=np.float32)
    if log_probs.ndim == 2:
        log_probs = log_probs[None]
    if log_probs.ndim != 3:
        raise ValueError(f"log_probs must be (N, L, K) or (L, K), got shape {log_probs.shape}")
    n, length, classes = log_probs.shape
    lengths = [length] * n if lengths is None else [int(x) for x in np.asarray(lengths).reshape(-1)]
    if len(lengths) != n or any(not 0 <= x <= length for x in lengths):
        raise ValueError(f"need one length in [0, {length}] per sequence, got {lengths}")
    k = min(beam_size, classes)
    order = np.argsort(-log_probs, axis=-1, kind="stable")[..., :k]  # torch.topk: largest first
    top_values, top_labels = np.take_along_axis(log_probs, order, axis=-1).tolist(), order.tolist()
    results: list[list[tuple[list[int], float]]] = []
    for values, labels, steps in zip(top_values, top_labels, lengths, strict=True):
        # prefix -> [log P(alignments ending in blank), log P(alignments ending in the prefix's last label)]
        beams: dict[tuple[int, ...], list[float]] = {(): [0.0, -math.inf]}
        for step in range(steps):
            candidates: dict[tuple[int, ...], list[float]] = {}
            for prefix, (p_blank, p_label) in beams.items():
                last = prefix[-1] if prefix else None
                for label, p in zip(labels[step], values[step], strict=True):
                    if label == blank:
                        entry = candidates.setdefault(prefix, [-math.inf, -math.inf])
                        entry[0] = _logsumexp(entry[0], p_blank + p, p_label + p)
                        continue
                    extended = candidates.setdefault(prefix + (label,), [-math.inf, -math.inf])
                    if label == last:  # only a blank in between makes a second label; otherwise the repeat merges
                        extended[1] = _logsumexp(extended[1], p_blank + p)
                        same = candidates.setdefault(prefix, [-math.inf, -math.inf])
                        same[1] = _logsumexp(same[1], p_label + p)
                    else:
                        extended[1] = _logsumexp(extended[1], p_blank + p, p_label + p)
            ranked = sorted(candidates.items(), key=lambda item: _logsumexp(*item[1]), reverse=True)
            beams = dict(ranked[:beam_size])
        final = sorted(
            ((list(prefix), _logsumexp(*scores)) for prefix, scores in beams.items()),
            key=lambda item: item[1],
            reverse=True,
        )
        results.append(final[:n_best])
    return results


class CTCRuntime:
    """An exported :class:`~seqmodels.nn.CTCNet`: WAV files or waveforms (through the numpy log-mel front-end the
    model was trained with, stored in the file) or features -> transcripts, greedy or by prefix beam search."""

    def __init__(self, meta: dict[str, Any], sessions: dict[str, Any]) -> None:
        self.meta, self.session = meta, sessions["ctc"]
        self.labels: list[str] = meta["labels"]
        self.blank: int = meta["special_ids"]["blank"]
        self.input_size, self.multiple = meta["input_size"], meta["frame_multiple"]
        self.features: LogMelFeatures | None = None
        if meta.get("features") is not None:
            self.features = LogMelFeatures(meta["features"], meta.get("log_floor", 1e-10))
            if self.features.output_size != self.input_size:
                raise ExportedModelError(
                    f"this model's features give {self.features.output_size} values per frame but its network reads "
                    f"{self.input_size}; export the checkpoint again"
                )

    @property
    def sample_rate(self) -> int:
        """The rate the model's front-end reads (other rates are resampled)."""
        return self._front_end().sample_rate

    def _front_end(self) -> LogMelFeatures:
        if self.features is None:
            raise ExportedModelError(
                "this file holds no feature settings (exported by an older seqmodels-export); export the checkpoint "
                "again to transcribe audio, or pass log-mel features to transcribe()"
            )
        return self.features

    def log_probs(self, features: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per-utterance features (L_i, C) -> ``log_probs`` (N, L', K) and ``output_lengths`` (N,)."""
        if not features:
            raise ValueError("no utterances to transcribe")
        for x in features:
            if np.ndim(x) != 2 or np.shape(x)[1] != self.input_size or np.shape(x)[0] == 0:
                raise ValueError(f"each utterance must be (L, {self.input_size}) features, got shape {np.shape(x)}")
        lengths = np.array([len(x) for x in features], dtype=np.int64)
        padded = int(math.ceil(int(lengths.max()) / self.multiple) * self.multiple)  # zero frames, as stacking adds
        batch = np.zeros((len(features), padded, self.input_size), dtype=np.float32)
        for i, x in enumerate(features):
            batch[i, : len(x)] = x
        log_probs, out_lengths = self.session.run(None, {"inputs": batch, "lengths": lengths})
        return log_probs, out_lengths

    def text(self, ids: Sequence[int]) -> str:
        return "".join(self.labels[i] for i in ids if i != self.blank)

    def transcribe(self, features: Sequence[np.ndarray]) -> list[str]:
        """Greedy CTC transcripts of features (``seqmodels-predict beam_size=1``)."""
        log_probs, lengths = self.log_probs(features)
        return [self.text(ids) for ids in ctc_greedy_decode(log_probs, lengths, self.blank)]

    def decode(
        self, features: Sequence[np.ndarray], beam_size: int = 5, n_best: int = 1
    ) -> list[list[tuple[str, float]]]:
        """Per utterance, ``n_best`` ``(transcript, log-probability)`` from :func:`ctc_prefix_beam_search`."""
        if beam_size < 1 or not 1 <= n_best <= beam_size:
            raise ValueError(f"need beam_size >= 1 and 1 <= n_best <= beam_size, got {beam_size}, {n_best}")
        log_probs, lengths = self.log_probs(features)
        hypotheses = ctc_prefix_beam_search(log_probs, lengths, beam_size, self.blank, n_best)
        return [[(self.text(ids), score) for ids, score in best] for best in hypotheses]

    def features_from_waveform(
        self, waveform: np.ndarray, sample_rate: int, source: str = "the waveform"
    ) -> np.ndarray:
        """A mono waveform (T,) at ``sample_rate`` -> features (L, C), resampled to :attr:`sample_rate` first;
        audio shorter than one feature frame is a one-line ValueError."""
        front = self._front_end()
        waveform = np.asarray(waveform, dtype=np.float32)
        if waveform.ndim != 1:
            raise ValueError(f"{source} must be one mono waveform (T,), got shape {waveform.shape}")
        resampled = resample(waveform, sample_rate, front.sample_rate)
        if resampled.shape[-1] < front.n_fft:
            raise ValueError(
                f"{source} lasts {1000.0 * waveform.shape[-1] / sample_rate:.1f} ms ({waveform.shape[-1]} samples at "
                f"{sample_rate} Hz), shorter than one feature frame ({1000.0 * front.n_fft / front.sample_rate:.1f} "
                "ms); give a longer recording"
            )
        return front(resampled)

    def features_from_wav(self, path: str | os.PathLike) -> np.ndarray:
        """A PCM WAV file (any rate, channels averaged) -> features (L, C); :func:`read_wav` says what it refuses."""
        self._front_end()  # an old export is refused before the file is read
        waveform, rate = read_wav(path)
        return self.features_from_waveform(waveform, rate, source=str(Path(path).expanduser()))

    def decode_wav(self, path: str | os.PathLike, beam_size: int = 5, n_best: int = 1) -> list[tuple[str, float]]:
        """``seqmodels-predict``'s answer for one WAV file: ``n_best`` ``(transcript, log-probability)``."""
        return self.decode([self.features_from_wav(path)], beam_size, n_best)[0]

    def transcribe_wav(self, path: str | os.PathLike, beam_size: int = 5) -> str:
        """The transcript ``seqmodels-predict input_file=<path> beam_size=<beam_size>`` prints."""
        return self.decode_wav(path, beam_size)[0][0]


# ------------------------------------------------------------------------------------------------ classifiers
class SequenceRuntime:
    """An exported classifier, regressor or tagger: ``inputs`` (N, L) ids or (N, L, C) features with lengths.

    Text models (exported with their vocabulary and tokenizer) also read text as ``seqmodels-predict`` does:
    :meth:`label_texts` for a classifier, :meth:`tag_texts` for a tagger (words the vocabulary lacks read as
    ``<unk>``).
    """

    def __init__(self, meta: dict[str, Any], sessions: dict[str, Any]) -> None:
        self.meta, self.session = meta, sessions["net"]
        self.kind: str = meta["kind"]
        data = meta.get("data") or {}
        self.class_names: list[str] | None = data.get("class_names")
        self.tag_names: list[str] | None = data.get("tag_names")
        self.max_length: int | None = data.get("max_length")
        vocab, tokenizer = data.get("vocab"), data.get("tokenizer")
        self.codec = TextCodec(vocab["tokens"], tokenizer) if vocab and tokenizer else None
        # A feature-series model's preprocessing (UEA datamodules): delta features, then standardisation.
        self.deltas = int(data.get("deltas") or 0)
        self.mean = np.asarray(data["mean"], dtype=np.float32) if data.get("mean") is not None else None
        self.std = np.asarray(data["std"], dtype=np.float32) if data.get("std") is not None else None

    def run(self, inputs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The graph's output: probabilities (N, K) or (N, L, T), or values (N, K)."""
        inputs = np.asarray(inputs)
        inputs = inputs.astype(np.int64 if inputs.ndim == 2 else np.float32)
        (out,) = self.session.run(None, {"inputs": inputs, "lengths": np.asarray(lengths, dtype=np.int64)})
        return out

    @property
    def series_channels(self) -> int | None:
        """Channels per step of a raw series (before the delta features), from the exported scaler."""
        return int(self.mean.shape[0]) // (1 + self.deltas) if self.mean is not None else None

    def features(self, series: np.ndarray) -> np.ndarray:
        """A raw (L, C) series as the model reads it: the delta features and the training statistics it was
        trained with (both in the export's metadata), as the datamodule prepared its training data."""
        series = np.asarray(series, dtype=np.float32)
        if series.ndim != 2 or series.shape[0] == 0:
            raise ValueError(f"a series is (steps, channels) with at least one step, got shape {series.shape}")
        features = step_deltas(series, self.deltas)
        if self.mean is not None and self.std is not None:
            if features.shape[1] != self.mean.shape[0]:
                raise ValueError(
                    f"a series has {series.shape[1]} channels; this model reads "
                    f"{self.mean.shape[0] // (1 + self.deltas)} per step"
                )
            features = (features - self.mean) / self.std
        return features

    def label_series(self, series: Sequence[np.ndarray], n_best: int = 1) -> list[list[tuple[str, float]]]:
        """A feature-series classifier's labels: per raw (L, C) series, its ``n_best`` labels with probabilities."""
        if self.kind != "classifier" or self.class_names is None:
            raise ValueError(f"label_series needs a classifier exported with its class names, not a {self.kind}")
        if not 1 <= n_best <= len(self.class_names):
            raise ValueError(f"n_best must be in [1, {len(self.class_names)}] (the classes), got {n_best}")
        if not series:
            raise ValueError("no series to classify")
        rows = [self.features(one) for one in series]
        lengths = np.array([len(row) for row in rows], dtype=np.int64)
        inputs = np.zeros((len(rows), int(lengths.max()), rows[0].shape[1]), dtype=np.float32)
        for i, row in enumerate(rows):
            inputs[i, : len(row)] = row
        probs = self.run(inputs, lengths)
        order = np.argsort(-probs, axis=-1, kind="stable")[:, :n_best]
        return [[(self.class_names[j], float(p[j])) for j in row] for p, row in zip(probs, order, strict=True)]

    def tokens(self, text: str) -> list[str]:
        """The tokens the model reads of ``text`` (truncated to the classifier's ``max_length``)."""
        if self.codec is None:
            raise ValueError(
                f"this {self.kind} reads feature sequences, or was exported without its vocabulary and tokenizer "
                "(export it again with this seqmodels-export); call run(inputs, lengths)"
            )
        tokens = self.codec.tokenize(text)
        return tokens[: self.max_length] if self.max_length is not None else tokens

    def unknown_tokens(self, text: str) -> list[str]:
        """The tokens of ``text`` the vocabulary lacks (read as ``<unk>``)."""
        return self.codec.unknown(self.tokens(text)) if self.codec is not None else []

    def _ids(self, texts: Sequence[str], action: str) -> tuple[np.ndarray, np.ndarray]:
        rows = []
        for text in texts:
            tokens = self.tokens(text)
            if not tokens:
                raise ValueError(f"input {text!r} has no tokens to {action}")
            rows.append(self.codec.encode(tokens))  # type: ignore[union-attr]
        if not rows:
            raise ValueError(f"no inputs to {action}")
        lengths = np.array([len(row) for row in rows], dtype=np.int64)
        ids = np.zeros((len(rows), int(lengths.max())), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
        return ids, lengths

    def label_texts(self, texts: Sequence[str], n_best: int = 1) -> list[list[tuple[str, float]]]:
        """A text classifier's ``seqmodels-predict``: per text, its ``n_best`` labels with probabilities."""
        if self.kind != "classifier" or self.class_names is None:
            raise ValueError(f"label_texts needs a text classifier exported with its class names, not a {self.kind}")
        if not 1 <= n_best <= len(self.class_names):
            raise ValueError(f"n_best must be in [1, {len(self.class_names)}] (the classes), got {n_best}")
        probs = self.run(*self._ids(texts, "classify"))
        order = np.argsort(-probs, axis=-1, kind="stable")[:, :n_best]
        return [[(self.class_names[j], float(p[j])) for j in row] for p, row in zip(probs, order, strict=True)]

    def tag_texts(self, texts: Sequence[str]) -> list[list[str]]:
        """A tagger's ``seqmodels-predict``: per sentence (words separated by whitespace), one tag per word."""
        if self.kind != "tagger" or self.tag_names is None:
            raise ValueError(f"tag_texts needs a tagger exported with its tag names, not a {self.kind}")
        ids, lengths = self._ids(texts, "tag")
        best = self.run(ids, lengths).argmax(axis=-1)
        return [[self.tag_names[i] for i in row[:n].tolist()] for row, n in zip(best, lengths.tolist(), strict=True)]


# ------------------------------------------------------------------------------------------------ command line
_USAGE = """python -m seqmodels.runtime MODEL.onnx (--input TEXT | --input-file FILE | --wav WAV [WAV ...])
                                   [--beam-size K] [--n-best N] [--length-penalty P]
       python -m seqmodels.runtime MODEL.onnx --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K]
                                   [--top-p P] [--num-samples S] [--seed S]"""


class CommandLineError(ValueError):
    """A wrong command line: reported in one line."""


def _parser() -> Any:
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:  # one line and status 1, as every seqmodels program
            raise CommandLineError(f"{message} (usage: python -m seqmodels.runtime MODEL.onnx --input TEXT ...; -h)")

    parser = Parser(
        prog="python -m seqmodels.runtime",
        usage=_USAGE,
        description="Run a model written by seqmodels-export with numpy and onnxruntime only (no PyTorch); prints "
        "what seqmodels-predict (or, for a language model, seqmodels-generate) prints for its checkpoint.",
    )
    parser.add_argument("model", help="the .onnx file (sibling graphs such as <stem>.decoder.onnx next to it)")
    parser.add_argument("--input", help="one text (classifier, tagger, encoder-decoder)")
    parser.add_argument(
        "--input-file",
        help="one input per line; for a speech model a .wav or a list of WAV paths; for a classifier of feature "
        "series a .npy/.csv series (one step per row) or a folder of them",
    )
    parser.add_argument("--wav", nargs="+", help="speech models: PCM WAV file(s), any sample rate")
    parser.add_argument("--beam-size", type=int, default=5, help="encoder-decoders, speech: beam width (1: greedy)")
    parser.add_argument("--n-best", type=int, default=1, help="outputs per input, with their scores when > 1")
    parser.add_argument("--length-penalty", type=float, default=1.0, help="encoder-decoders: beam length penalty")
    parser.add_argument("--prompt", help="language models: the text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="numpy's generator: not the samples of seqmodels-generate")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    return parser


def _text_lines(path: Path) -> list[str]:
    """The inputs of a UTF-8 file, one per line (stripped; blank lines at the end dropped, others refused)."""
    path = path.expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}; pass --input-file /path/to/inputs.txt (one per line)")
    data = path.read_bytes()
    skip = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte offset {skip + exc.start}); save the file as UTF-8") from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise ValueError(f"{path} holds no inputs (one per line)")
    blank = next((number for number, line in enumerate(lines, start=1) if not line), None)
    if blank is not None:
        raise ValueError(f"{path}: line {blank} is blank; each line is one input, so remove it or put an input on it")
    return lines


def _wav_paths(args: Any) -> list[str]:
    """``--wav`` paths, or ``--input-file``: a WAV, or a text file listing WAV paths (relative to it)."""
    if args.wav:
        return list(args.wav)
    path = Path(args.input_file).expanduser()
    if path.suffix.lower() == ".wav" or not path.is_file():
        return [str(path)]
    with path.open("rb") as handle:
        if handle.read(4) == b"RIFF":
            return [str(path)]
    return [str((path.parent / line).resolve() if not Path(line).is_absolute() else Path(line)) for line in
            _text_lines(path)]  # fmt: skip


def _lines(results: list[tuple[str, list[tuple[str, float]]]], n_best: int) -> list[str]:
    """seqmodels-predict's output: ``input<TAB>output``, or per output ``input<TAB>output<TAB>score``."""
    if n_best == 1:
        return [f"{text}\t{outputs[0][0]}" for text, outputs in results]
    return [f"{text}\t{output}\t{score:.4f}" for text, outputs in results for output, score in outputs]


def _check_beam(args: Any) -> None:
    if args.beam_size < 1 or not 1 <= args.n_best <= args.beam_size:
        raise ValueError(f"need beam_size >= 1 and 1 <= n_best <= beam_size, got {args.beam_size}, {args.n_best}")


def _generate_command(model: LanguageModelRuntime, args: Any, path: Path) -> str:
    if args.prompt is None:
        raise CommandLineError(f"{path} is a language model: pass --prompt TEXT (and --max-new-tokens N)")
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be an integer >= 1, got {args.max_new_tokens}")
    if args.num_samples < 1:
        raise ValueError(f"--num-samples must be an integer >= 1, got {args.num_samples}")
    samples = model.generate_text(
        args.prompt, args.max_new_tokens, args.temperature, args.top_k or None, args.top_p, args.num_samples,
        args.seed,
    )  # fmt: skip
    return "\n\n".join(samples) + "\n"  # seqmodels-generate: a blank line between samples


def _speech_command(model: CTCRuntime, args: Any, path: Path) -> str:
    if args.input is not None or (not args.wav and args.input_file is None):
        raise CommandLineError(f"{path} is a speech (CTC) model, which reads audio: pass --wav file.wav")
    _check_beam(args)
    results = [(p, model.decode_wav(p, args.beam_size, args.n_best)) for p in _wav_paths(args)]
    if len(results) == 1 and args.n_best == 1:
        return results[0][1][0][0] + "\n"  # one recording: its transcript alone
    return "\n".join(_lines(results, args.n_best)) + "\n"


def _text_command(model: Any, args: Any, path: Path) -> str:
    kind = model.meta["kind"]
    if args.wav:
        raise CommandLineError(f"{path} is a {kind}, which reads text: pass --input or --input-file, not --wav")
    if args.input is None and args.input_file is None:
        raise CommandLineError(f"{path} is a {kind}: pass --input TEXT or --input-file FILE")
    if kind == "regressor":
        raise CommandLineError(f"{path} is a regressor, which seqmodels-predict does not read; use run()")
    if isinstance(model, Seq2SeqRuntime):
        _check_beam(args)
    elif kind == "tagger" and args.n_best != 1:
        raise ValueError(f"a tagger gives one tag per word; set --n-best 1 (got {args.n_best})")
    else:
        model.tokens("")  # a model without a text interface is refused before any input is read
    inputs = [args.input] if args.input is not None else _text_lines(Path(args.input_file))
    outputs: list[list[tuple[str, float]]] = []
    if isinstance(model, Seq2SeqRuntime):
        for start in range(0, len(inputs), 64):  # seqmodels-predict's batches (batch_size=64)
            outputs += model.translate(inputs[start : start + 64], args.beam_size, args.n_best, args.length_penalty)
    else:
        unknown = list(dict.fromkeys(token for text in inputs for token in model.unknown_tokens(text)))
        if unknown:
            print(f"input tokens not in the vocabulary, read as <unk>: {' '.join(map(repr, unknown))}", file=sys.stderr)
        if kind == "tagger":
            outputs = [[(" ".join(tags), 1.0)] for tags in model.tag_texts(inputs)]
        else:
            outputs = model.label_texts(inputs, args.n_best)
    return "\n".join(_lines(list(zip(inputs, outputs, strict=True)), args.n_best)) + "\n"


def _series_command(model: SequenceRuntime, args: Any, path: Path) -> str:
    """A classifier of feature series: ``--input-file`` a series file or a folder of them, as seqmodels-predict."""
    if args.input is not None or args.wav or args.input_file is None:
        raise CommandLineError(
            f"{path} classifies feature series: pass --input-file with a .npy or .csv series (one step per row), or "
            "a folder of them"
        )
    source = Path(args.input_file).expanduser()
    if not source.exists():
        raise ValueError(f"--input-file {source}: no such file or folder")
    files = series_files(source) if source.is_dir() else [source]
    series = [read_series_file(file, model.series_channels) for file in files]
    outputs: list[list[tuple[str, float]]] = []
    for start in range(0, len(series), 64):  # seqmodels-predict's batches (batch_size=64)
        outputs += model.label_series(series[start : start + 64], args.n_best)
    return "\n".join(_lines(list(zip(map(str, files), outputs, strict=True)), args.n_best)) + "\n"


def _run_command(args: Any) -> str:
    given = [args.input is not None, args.input_file is not None, bool(args.wav), args.prompt is not None]
    if sum(given) > 1:
        raise CommandLineError("pass one of --input, --input-file, --wav or --prompt")
    path = Path(args.model).expanduser()
    model = load(path, threads=args.threads)
    if isinstance(model, LanguageModelRuntime):
        return _generate_command(model, args, path)
    if args.prompt is not None:
        raise CommandLineError(
            f"{path} is a {model.meta['kind']}, not a language model: pass --input or --input-file, not --prompt"
        )
    if isinstance(model, CTCRuntime):
        return _speech_command(model, args, path)
    if isinstance(model, SequenceRuntime) and model.kind == "classifier" and model.codec is None:
        return _series_command(model, args, path)
    return _text_command(model, args, path)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m seqmodels.runtime``: a user's mistake is one line on stderr and exit status 1."""
    try:
        args = _parser().parse_args(argv)
        output = _run_command(args)
    except (ValueError, FileNotFoundError, OSError, ModuleNotFoundError) as exc:
        if os.environ.get("SEQMODELS_DEBUG"):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"python -m seqmodels.runtime: error: {message}", file=sys.stderr, flush=True)
        return 1
    try:
        sys.stdout.write(output)
        sys.stdout.flush()
    except BrokenPipeError:  # a reader that closed the pipe (| head)
        return 141
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
