"""Masked pooling: (N, L, F) encoder outputs + (N,) lengths -> one (N, F) vector per sequence.

Padded steps never contribute, so a sequence pools to the same vector alone or next to longer batch-mates.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqmodels.nn.masking import lengths_to_mask


class LastStepPooling(nn.Module):
    """The final output of each direction: forward at step ``length - 1``, backward (if D = 2) at step 0.

    For the last layer this equals ``h_n`` of the encoder.
    """

    def __init__(self, num_directions: int = 1) -> None:
        super().__init__()
        if num_directions not in (1, 2):
            raise ValueError(f"num_directions must be 1 or 2, got {num_directions}")
        self.num_directions = num_directions

    def forward(self, outputs: Tensor, lengths: Tensor) -> Tensor:
        last = (lengths.to(outputs.device) - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])
        forward_last = outputs.gather(1, last).squeeze(1)
        if self.num_directions == 1:
            return forward_last
        half = outputs.shape[-1] // 2
        return torch.cat([forward_last[:, :half], outputs[:, 0, half:]], dim=-1)


class MeanPooling(nn.Module):
    """Mean over valid steps."""

    def forward(self, outputs: Tensor, lengths: Tensor) -> Tensor:
        mask = lengths_to_mask(lengths.to(outputs.device), outputs.shape[1]).unsqueeze(-1)
        total = outputs.masked_fill(~mask, 0.0).sum(dim=1)
        return total / lengths.to(outputs.device, outputs.dtype).unsqueeze(-1)


class MaxPooling(nn.Module):
    """Max over valid steps (padding never wins, even when every value is negative)."""

    def forward(self, outputs: Tensor, lengths: Tensor) -> Tensor:
        mask = lengths_to_mask(lengths.to(outputs.device), outputs.shape[1]).unsqueeze(-1)
        return outputs.masked_fill(~mask, float("-inf")).amax(dim=1)


class AttentionPooling(nn.Module):
    """Additive attention pooling: score_t = v^T tanh(W x_t + b), softmax over valid steps, weighted sum."""

    def __init__(self, input_size: int, attention_size: int | None = None) -> None:
        super().__init__()
        attention_size = attention_size or input_size
        self.project = nn.Linear(input_size, attention_size)
        self.score = nn.Linear(attention_size, 1, bias=False)

    def forward(self, outputs: Tensor, lengths: Tensor, return_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        scores = self.score(torch.tanh(self.project(outputs))).squeeze(-1)  # (N, L)
        mask = lengths_to_mask(lengths.to(outputs.device), outputs.shape[1])
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=1)
        pooled = torch.bmm(weights.unsqueeze(1), outputs).squeeze(1)
        return (pooled, weights) if return_weights else pooled


POOLINGS = ("last", "mean", "max", "attention")


def build_pooling(name: str, input_size: int, num_directions: int = 1) -> nn.Module:
    """``"last"``, ``"mean"``, ``"max"`` or ``"attention"`` pooling for ``input_size`` features."""
    if name == "last":
        return LastStepPooling(num_directions)
    if name == "mean":
        return MeanPooling()
    if name == "max":
        return MaxPooling()
    if name == "attention":
        return AttentionPooling(input_size)
    raise ValueError(f"unknown pooling {name!r}; choose one of {', '.join(POOLINGS)}")
