"""Autoregressive decoding shared by every generative model: greedy and sampling (temperature, top-k, top-p).

A model exposes one step, ``step(tokens (N,), state) -> (logits (N, V), state)``, and the decoder carries the
recurrent state from step to step: each new token costs one step, never a re-run of the prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
) -> tuple[Tensor, Tensor]:
    """Generates up to ``max_new_tokens`` per row, starting from the next-token ``logits`` (N, V) and ``state``.

    Rows that emit ``eos_id`` stop there (the ``<eos>`` is kept; later positions hold ``pad_id``); decoding
    ends when every row has stopped.

    Returns ``tokens`` (N, T) with T <= max_new_tokens and ``lengths`` (N,), the tokens of each row.
    """
    check_sampling(temperature, top_k, top_p)
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    n = logits.shape[0]
    device = logits.device
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    lengths = torch.zeros(n, dtype=torch.long, device=device)
    out: list[Tensor] = []
    for index in range(max_new_tokens):
        token = sample_next(logits, temperature, top_k, top_p, generator)
        token = token.masked_fill(finished, pad_id)
        out.append(token)
        lengths += (~finished).long()
        if eos_id is not None:
            finished |= token == eos_id
            if bool(finished.all()):
                break
        if index + 1 < max_new_tokens:
            logits, state = step(token, state)
    tokens = torch.stack(out, dim=1) if out else torch.empty(n, 0, dtype=torch.long, device=device)
    return tokens, lengths


__all__ = ["StepFn", "check_sampling", "decode", "filter_logits", "sample_next"]
