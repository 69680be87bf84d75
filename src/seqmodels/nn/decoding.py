"""Autoregressive decoding shared by every generative model: greedy, sampling (temperature, top-k, top-p)
and batched beam search.

A model exposes one step, ``step(tokens (N,), state) -> (logits (N, V), state)``, and the decoder carries the
recurrent state from step to step: each new token costs one step, never a re-run of the prefix. ``decode_steps``
is the sampling loop, yielding each new position as it is drawn (for streaming); ``decode`` collects it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch
from torch import Tensor

StepFn = Callable[[Tensor, Any], tuple[Tensor, Any]]


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or null, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] or null, got {top_p}")


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Sets to -inf every logit outside the ``top_k`` largest and outside the nucleus of mass ``top_p``.

    The most likely token always survives. ``logits``: (N, V).
    """
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the mass before it already reaches top_p (so the first token is always kept).
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One token per row of ``logits`` (N, V): argmax when ``temperature == 0``, else a filtered sample."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = filter_logits(logits.float() / temperature, top_k, top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class DecodeStep(NamedTuple):
    """One new position of every row, as :func:`decode_steps` yields it.

    tokens: (N,) the new token of each row; ``pad_id`` where the row had already stopped.
    logits: (N, V) the next-token scores the tokens were drawn from (before temperature and filtering).
    active: (N,) True where the row was still generating (its token counts).
    """

    tokens: Tensor
    logits: Tensor
    active: Tensor


def decode_steps(
    step: StepFn,
    logits: Tensor,
    state: Any,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    pad_id: int = 0,
    generator: torch.Generator | None = None,
) -> Iterator[DecodeStep]:
    """Yields up to ``max_new_tokens`` :class:`DecodeStep`, one per new position, as they are drawn.

    The one decoding loop (:func:`decode` collects it): the model steps only when the next position is asked
    for, so a caller can print each token as it comes and stop early; each position costs one ``step``. Rows
    that emit ``eos_id`` stop there; the iterator ends when every row has stopped. The arguments are checked
    here, not at the first ``next``.
    """
    check_sampling(temperature, top_k, top_p)
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    return _decode_steps(step, logits, state, max_new_tokens, temperature, top_k, top_p, eos_id, pad_id, generator)


@torch.no_grad()  # also wraps each resumption of the generator, so no step ever records a graph
def _decode_steps(
    step: StepFn,
    logits: Tensor,
    state: Any,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    eos_id: int | None,
    pad_id: int,
    generator: torch.Generator | None,
) -> Iterator[DecodeStep]:
    finished = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
    for index in range(max_new_tokens):
        token = sample_next(logits, temperature, top_k, top_p, generator)
        token = token.masked_fill(finished, pad_id)
        active = ~finished
        if eos_id is not None:
            finished = finished | (token == eos_id)
        yield DecodeStep(token, logits, active)
        if eos_id is not None and bool(finished.all()):
            return
        if index + 1 < max_new_tokens:
            logits, state = step(token, state)


@torch.no_grad()
def decode(
    step: StepFn,
    logits: Tensor,
    state: Any,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    pad_id: int = 0,
    generator: torch.Generator | None = None,
    return_log_probs: bool = False,
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
    """Generates up to ``max_new_tokens`` per row, starting from the next-token ``logits`` (N, V) and ``state``.

    Rows that emit ``eos_id`` stop there (the ``<eos>`` is kept; later positions hold ``pad_id``); decoding
    ends when every row has stopped.

    Returns ``tokens`` (N, T) with T <= max_new_tokens and ``lengths`` (N,), the tokens of each row, and with
    ``return_log_probs`` the (N,) sum of each row's token log-probabilities under the model.
    """
    steps = decode_steps(step, logits, state, max_new_tokens, temperature, top_k, top_p, eos_id, pad_id, generator)
    n = logits.shape[0]
    device = logits.device
    lengths = torch.zeros(n, dtype=torch.long, device=device)
    log_probs = torch.zeros(n, device=device)
    out: list[Tensor] = []
    for token, step_logits, active in steps:
        if return_log_probs:
            step_log_probs = torch.log_softmax(step_logits.float(), -1).gather(1, token.unsqueeze(1)).squeeze(1)
            log_probs += step_log_probs.masked_fill(~active, 0.0)
        out.append(token)
        lengths += active.long()
    tokens = torch.stack(out, dim=1) if out else torch.empty(n, 0, dtype=torch.long, device=device)
    return (tokens, lengths, log_probs) if return_log_probs else (tokens, lengths)


SelectFn = Callable[[Any, Tensor], Any]


@torch.no_grad()
def beam_search(
    step: StepFn,
    state: Any,
    select: SelectFn,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    beam_size: int = 5,
    max_len: int = 100,
    length_penalty: float = 1.0,
    n_best: int = 1,
    device: torch.device | str = "cpu",
) -> list[list[tuple[list[int], float]]]:
    """Batched beam search over ``batch_size`` inputs with ``beam_size`` hypotheses each.

    Args:
        step: ``step(tokens (B*K,), state) -> (logits (B*K, V), state)``; rows ``b*K .. b*K+K-1`` belong to
            input ``b``.
        state: the initial state, already repeated to B*K rows (e.g. ``repeat_interleave(K)``).
        select: ``select(state, index (B*K,)) -> state`` picks rows of a state (the parent of each hypothesis).
        bos_id, eos_id: start token fed first; token that finishes a hypothesis.
        max_len: most tokens per hypothesis (``<eos>`` included); unfinished hypotheses end there.
        length_penalty: finished hypotheses are ranked by ``log p / length ** length_penalty`` (0: raw log p,
            which favours short outputs; 1: per-token average).
        n_best: hypotheses to return per input (<= beam_size).
        device: where the state lives.

    Returns, per input, ``n_best`` pairs ``(tokens, score)`` best first; tokens exclude ``<bos>`` and include
    a final ``<eos>`` when the hypothesis finished.
    """
    if beam_size < 1 or not 1 <= n_best <= beam_size:
        raise ValueError(f"need beam_size >= 1 and 1 <= n_best <= beam_size, got {beam_size}, {n_best}")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    K = beam_size
    tokens = torch.full((batch_size * K,), bos_id, dtype=torch.long, device=device)
    logits, state = step(tokens, state)
    vocab = logits.shape[-1]
    # Only the first beam of each input is live at the start: the others would duplicate it.
    scores = torch.full((batch_size, K), float("-inf"), device=device)
    scores[:, 0] = 0.0
    history = torch.empty(batch_size * K, 0, dtype=torch.long, device=device)
    finished: list[list[tuple[float, list[int], float]]] = [[] for _ in range(batch_size)]
    done = torch.zeros(batch_size, dtype=torch.bool, device=device)
    offsets = (torch.arange(batch_size, device=device) * K).unsqueeze(1)

    def normalised(score: float, length: int) -> float:
        return score / (length**length_penalty) if length_penalty else score

    for length in range(1, max_len + 1):
        log_probs = torch.log_softmax(logits.float(), dim=-1).view(batch_size, K, vocab)
        candidates = (scores.unsqueeze(-1) + log_probs).view(batch_size, K * vocab)
        top_scores, top_index = candidates.topk(min(2 * K, K * vocab), dim=-1)  # (B, 2K)
        parent, token = top_index // vocab, top_index % vocab
        is_eos = token == eos_id
        if length == max_len:  # the last step: every surviving hypothesis ends here
            is_eos = torch.ones_like(is_eos)
        # Finished hypotheses: <eos> candidates ranked within the top K of their input.
        rank = torch.arange(top_scores.shape[1], device=device).expand_as(top_scores)
        record = is_eos & (rank < K) & torch.isfinite(top_scores) & ~done.unsqueeze(1)
        for b, j in record.nonzero().tolist():
            row = int(offsets[b, 0] + parent[b, j])
            sequence = history[row].tolist() + ([eos_id] if int(token[b, j]) == eos_id else [int(token[b, j])])
            raw = float(top_scores[b, j])
            finished[b].append((normalised(raw, len(sequence)), sequence, raw))
        if length == max_len:
            break
        # Live hypotheses: the best K candidates that are not <eos>.
        order = torch.argsort(is_eos.long() * (2 * K) + rank, dim=-1)[:, :K]
        next_scores = top_scores.gather(1, order)
        # An input is done when no live hypothesis can still beat its n-best finished ones. Log-probabilities
        # only fall as a hypothesis grows, so with length_penalty 0 this is exact; with a penalty, the bound
        # assumes the hypothesis ends at its next length (the usual heuristic).
        best_live = next_scores.max(dim=1).values.tolist()
        for b in range(batch_size):
            if done[b] or len(finished[b]) < n_best:
                continue
            nth = sorted((item[0] for item in finished[b]), reverse=True)[n_best - 1]
            if best_live[b] == float("-inf") or nth >= normalised(best_live[b], length + 1):
                done[b] = True
        if bool(done.all()):
            break
        next_scores = next_scores.masked_fill(done.unsqueeze(1), float("-inf"))
        next_parent = (parent.gather(1, order) + offsets).view(-1)
        next_token = token.gather(1, order).view(-1)
        history = torch.cat([history[next_parent], next_token.unsqueeze(1)], dim=1)
        scores = next_scores
        state = select(state, next_parent)
        logits, state = step(next_token, state)

    results = []
    for b in range(batch_size):
        ranked = sorted(finished[b], key=lambda item: item[0], reverse=True)[:n_best]
        results.append([(sequence, score) for score, sequence, _ in ranked])
    return results


__all__ = [
    "DecodeStep",
    "SelectFn",
    "StepFn",
    "beam_search",
    "check_sampling",
    "decode",
    "decode_steps",
    "filter_logits",
    "sample_next",
]
