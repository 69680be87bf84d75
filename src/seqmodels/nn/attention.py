"""Attention over encoder outputs: additive (Bahdanau), dot and general (Luong), with padded steps masked.

Shapes: N = batch, S = source length, H_q = query size, H_k = key (encoder output) size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

ATTENTIONS = ("none", "additive", "dot", "general")


class Attention(nn.Module):
    """Scores every source step against a decoder query and returns the weighted sum of the source.

    Args:
        kind: ``"additive"`` (``v . tanh(W_q q + W_k k)``, Bahdanau et al. 2015), ``"dot"`` (``q . k``, needs
            H_q == H_k) or ``"general"`` (``q . W k``, Luong et al. 2015).
        query_size: H_q.
        key_size: H_k.
        hidden_size: size of the additive score layer (default H_q).

    Inputs: ``query`` (N, H_q), ``keys`` (N, S, H_k), ``mask`` (N, S) bool, True at real (not padded) steps.
    Outputs: ``context`` (N, H_k), ``weights`` (N, S): non-negative, summing to 1 over real steps, exactly 0
    at padded ones.
    """

    def __init__(self, kind: str, query_size: int, key_size: int, hidden_size: int | None = None) -> None:
        super().__init__()
        if kind not in ATTENTIONS or kind == "none":
            raise ValueError(f"unknown attention {kind!r}; choose one of additive, dot, general")
        if kind == "dot" and query_size != key_size:
            raise ValueError(
                f"dot attention needs query_size == key_size, got {query_size} and {key_size}; use 'general'"
            )
        self.kind = kind
        self.query_size, self.key_size = query_size, key_size
        if kind == "additive":
            hidden_size = hidden_size or query_size
            self.query_layer = nn.Linear(query_size, hidden_size, bias=False)
            self.key_layer = nn.Linear(key_size, hidden_size)
            self.score_layer = nn.Linear(hidden_size, 1, bias=False)
        elif kind == "general":
            self.key_layer = nn.Linear(key_size, query_size, bias=False)

    def precompute_keys(self, keys: Tensor) -> Tensor:
        """The part of the score that depends only on the source: computed once per sequence, not per step."""
        if self.kind == "additive" or self.kind == "general":
            return self.key_layer(keys)
        return keys

    def forward(
        self, query: Tensor, keys: Tensor, mask: Tensor | None = None, projected_keys: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        projected = self.precompute_keys(keys) if projected_keys is None else projected_keys
        if self.kind == "additive":
            scores = self.score_layer(torch.tanh(self.query_layer(query).unsqueeze(1) + projected)).squeeze(-1)
        else:  # dot, general: (N, S, H_q) @ (N, H_q, 1)
            scores = torch.bmm(projected, query.unsqueeze(-1)).squeeze(-1)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores.float(), dim=-1).to(keys.dtype)
        context = torch.bmm(weights.unsqueeze(1), keys).squeeze(1)
        return context, weights

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, query_size={self.query_size}, key_size={self.key_size}"


__all__ = ["ATTENTIONS", "Attention"]
