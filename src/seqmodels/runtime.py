"""Run exported seqmodels without PyTorch: numpy and onnxruntime only (``pip install onnxruntime numpy``).

    from seqmodels.runtime import load
    lm = load("char_lm.onnx")                    # written by seqmodels-export from a language-model checkpoint
    lm.generate_text("async def ", max_new_tokens=200, temperature=0)          # greedy: as seqmodels-generate
    g2p = load("g2p.onnx")                       # encoder graph; g2p.decoder.onnx lies next to it
    g2p.translate(["hello"], beam_size=5, n_best=3)                             # as seqmodels-predict
    asr = load("dtmf.onnx")
    asr.transcribe([features])                   # (L, C) log-mel frames -> greedy CTC transcripts

Each file carries its model's description in the metadata key ``seqmodels.runtime`` (JSON): task kind,
vocabularies, special ids, tokenizer, sizes and state layout, and the names of its sibling graph files. Importing
this module never imports torch.

Decoding matches PyTorch's: greedy decoding and beam search give the same tokens as ``seqmodels-generate`` /
``seqmodels-predict`` (the graphs compute the same logits within float rounding). Sampling draws from numpy's
generator (``numpy.random.default_rng(seed)``), not torch's: a seed gives reproducible text here, but not the same
text as ``seqmodels-generate`` with that seed.
"""

from __future__ import annotations

import json
import math
import os
import re
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
    "Seq2SeqRuntime",
    "SequenceRuntime",
    "TextCodec",
    "beam_search",
    "load",
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

    State: a dict ``{"h": (K, N, H)[, "c": (K, N, H)]}`` float32 arrays, zeros at the start.
    """

    def __init__(self, meta: dict[str, Any], sessions: dict[str, Any]) -> None:
        self.meta, self.session = meta, sessions["step"]
        self.codec = TextCodec(meta["tokens"], meta["tokenizer"])
        self.state_names: list[str] = meta["state"]["names"]
        self.num_layers, self.hidden_size = meta["num_layers"], meta["hidden_size"]
        self.pad_id: int = meta["special_ids"]["pad"]
        self.stop_id: int | None = meta["stop_id"]
        self.prompt_prefix: list[int] = meta["prompt_prefix"]

    def initial_state(self, batch_size: int) -> dict[str, np.ndarray]:
        shape = (self.num_layers, batch_size, self.hidden_size)
        return {name: np.zeros(shape, dtype=np.float32) for name in self.state_names}

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
        source, lengths = self.source_ids(texts)
        penalty = self.meta["length_penalty"] if length_penalty is None else length_penalty
        hypotheses = self.beam_search(source, lengths, beam_size, self.max_decode_length(lengths), penalty, n_best)
        return [[(self.target_text(ids), score) for ids, score in best] for best in hypotheses]


# ------------------------------------------------------------------------------------------------ CTC
def ctc_greedy_decode(log_probs: np.ndarray, lengths: np.ndarray, blank: int = 0) -> list[list[int]]:
    """Best path: the most likely label per step, repeats merged, blanks removed."""
    best = log_probs.argmax(axis=-1)
    previous = np.concatenate([np.full_like(best[:, :1], -1), best[:, :-1]], axis=1)
    keep = (best != blank) & (best != previous)
    return [row[:n][k[:n]].tolist() for row, k, n in zip(best, keep, np.asarray(lengths).tolist(), strict=True)]


class CTCRuntime:
    """An exported :class:`~seqmodels.nn.CTCNet`: features (the data module's log-mel frames) -> transcripts."""

    def __init__(self, meta: dict[str, Any], sessions: dict[str, Any]) -> None:
        self.meta, self.session = meta, sessions["ctc"]
        self.labels: list[str] = meta["labels"]
        self.blank: int = meta["special_ids"]["blank"]
        self.input_size, self.multiple = meta["input_size"], meta["frame_multiple"]

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
        """Greedy CTC transcripts (``seqmodels-predict beam_size=1``)."""
        log_probs, lengths = self.log_probs(features)
        return [self.text(ids) for ids in ctc_greedy_decode(log_probs, lengths, self.blank)]


# ------------------------------------------------------------------------------------------------ classifiers
class SequenceRuntime:
    """An exported classifier, regressor or tagger: ``inputs`` (N, L) ids or (N, L, C) features with lengths."""

    def __init__(self, meta: dict[str, Any], sessions: dict[str, Any]) -> None:
        self.meta, self.session = meta, sessions["net"]
        self.kind: str = meta["kind"]
        data = meta.get("data") or {}
        self.class_names: list[str] | None = data.get("class_names")
        vocab, tokenizer = data.get("vocab"), data.get("tokenizer")
        self.codec = TextCodec(vocab["tokens"], tokenizer) if vocab and tokenizer else None

    def run(self, inputs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The graph's output: probabilities (N, K) or (N, L, T), or values (N, K)."""
        inputs = np.asarray(inputs)
        inputs = inputs.astype(np.int64 if inputs.ndim == 2 else np.float32)
        (out,) = self.session.run(None, {"inputs": inputs, "lengths": np.asarray(lengths, dtype=np.int64)})
        return out

    def label_texts(self, texts: Sequence[str], n_best: int = 1) -> list[list[tuple[str, float]]]:
        """A text classifier's ``seqmodels-predict``: per text, its ``n_best`` labels with probabilities."""
        if self.codec is None or self.class_names is None or self.kind != "classifier":
            raise ValueError("label_texts needs a text classifier exported with its vocabulary and class names")
        rows = [self.codec.encode(self.codec.tokenize(text)) for text in texts]
        if any(not row for row in rows):
            raise ValueError("an input has no tokens to classify")
        lengths = np.array([len(row) for row in rows], dtype=np.int64)
        ids = np.zeros((len(rows), int(lengths.max())), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
        probs = self.run(ids, lengths)
        order = np.argsort(-probs, axis=-1, kind="stable")[:, :n_best]
        return [[(self.class_names[j], float(p[j])) for j in row] for p, row in zip(probs, order, strict=True)]
