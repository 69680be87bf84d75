"""Masked pooling: (N, L, F) encoder outputs + (N,) lengths -> one (N, F) vector per sequence.

Padded steps never contribute, so a sequence pools to the same vector alone or next to longer batch-mates.

Streaming (for a causal encoder, see :mod:`seqmodels.nn.streaming`): ``initial_state(batch_size, num_features)``
and ``stream(outputs, state) -> (pooled, state)`` with outputs (N, T, F) and pooled (N, T, F), where pooled[:, t]
equals ``forward`` over every step seen so far (the prefix up to and including t), each chunk in one pass.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqmodels.nn.masking import lengths_to_mask


def _check_stream_outputs(outputs: Tensor) -> None:
    if outputs.dim() != 3 or outputs.shape[1] == 0:
        raise ValueError(f"stream expects encoder outputs (N, T, F) with T >= 1, got shape {tuple(outputs.shape)}")


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

    def initial_state(
        self,
        batch_size: int,
        num_features: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """The latest output (N, F), zeros before the first step."""
        if self.num_directions != 1:
            raise ValueError("last-step pooling streams a causal encoder only: use num_directions=1")
        return torch.zeros(batch_size, num_features, device=device, dtype=dtype)

    def stream(self, outputs: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """(N, T, F) -> the prefix's last step is the current one: pooled = outputs; state = the last output."""
        _check_stream_outputs(outputs)
        if self.num_directions != 1:
            raise ValueError("last-step pooling streams a causal encoder only: use num_directions=1")
        return outputs, outputs[:, -1]


class MeanPooling(nn.Module):
    """Mean over valid steps."""

    def forward(self, outputs: Tensor, lengths: Tensor) -> Tensor:
        mask = lengths_to_mask(lengths.to(outputs.device), outputs.shape[1]).unsqueeze(-1)
        total = outputs.masked_fill(~mask, 0.0).sum(dim=1)
        return total / lengths.to(outputs.device, outputs.dtype).unsqueeze(-1)

    def initial_state(
        self,
        batch_size: int,
        num_features: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> dict[str, Tensor]:
        """``{"sum": (N, F) running sum, "count": (N,) steps seen}``, zeros."""
        return {
            "sum": torch.zeros(batch_size, num_features, device=device, dtype=dtype),
            "count": torch.zeros(batch_size, device=device, dtype=torch.int64),
        }

    def stream(self, outputs: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """(N, T, F) -> running means (N, T, F): (sum + cumulative sum) / (count + steps so far)."""
        _check_stream_outputs(outputs)
        totals = state["sum"].unsqueeze(1) + outputs.cumsum(dim=1)
        steps = torch.arange(1, outputs.shape[1] + 1, device=outputs.device)
        counts = state["count"].unsqueeze(1) + steps  # (N, T)
        means = totals / counts.to(outputs.dtype).unsqueeze(-1)
        return means, {"sum": totals[:, -1], "count": counts[:, -1]}


class MaxPooling(nn.Module):
    """Max over valid steps (padding never wins, even when every value is negative)."""

    def forward(self, outputs: Tensor, lengths: Tensor) -> Tensor:
        mask = lengths_to_mask(lengths.to(outputs.device), outputs.shape[1]).unsqueeze(-1)
        return outputs.masked_fill(~mask, float("-inf")).amax(dim=1)

    def initial_state(
        self,
        batch_size: int,
        num_features: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """The running max (N, F), -inf before the first step."""
        return torch.full((batch_size, num_features), float("-inf"), device=device, dtype=dtype)

    def stream(self, outputs: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """(N, T, F) -> running maxima (N, T, F): the cumulative max, never below the state's."""
        _check_stream_outputs(outputs)
        maxima = torch.maximum(outputs.cummax(dim=1).values, state.unsqueeze(1))
        return maxima, maxima[:, -1]


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

    # Steps handled together by stream: each block builds an (N, B, B) weight matrix, so memory stays bounded on
    # long chunks while the work is a few batched matrix products per block.
    stream_block_size = 64

    def initial_state(
        self,
        batch_size: int,
        num_features: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> dict[str, Tensor]:
        """Online softmax: ``{"max_score": (N,) -inf, "denominator": (N,) 0, "weighted_sum": (N, F) 0}``.

        With m the largest score seen, ``denominator`` = sum_j exp(score_j - m) and ``weighted_sum`` =
        sum_j exp(score_j - m) x_j, so the pooled vector is weighted_sum / denominator.
        """
        return {
            "max_score": torch.full((batch_size,), float("-inf"), device=device, dtype=dtype),
            "denominator": torch.zeros(batch_size, device=device, dtype=dtype),
            "weighted_sum": torch.zeros(batch_size, num_features, device=device, dtype=dtype),
        }

    def stream(self, outputs: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """(N, T, F) -> the attention-pooled prefix at every step (N, T, F), by online softmax."""
        _check_stream_outputs(outputs)
        scores = self.score(torch.tanh(self.project(outputs))).squeeze(-1)  # (N, T)
        pooled = []
        m, denominator, weighted = state["max_score"], state["denominator"], state["weighted_sum"]
        for start in range(0, outputs.shape[1], self.stream_block_size):
            s = scores[:, start : start + self.stream_block_size]  # (N, B)
            x = outputs[:, start : start + self.stream_block_size]  # (N, B, F)
            m_t = torch.maximum(s.cummax(dim=1).values, m.unsqueeze(1))  # (N, B): max score of each prefix
            causal = torch.ones(s.shape[1], s.shape[1], dtype=torch.bool, device=s.device).tril()
            # w[n, t, j] = exp(s_j - m_t) for j <= t: each prefix's unnormalised weights, rescaled to its own max.
            w = torch.exp(s.unsqueeze(1) - m_t.unsqueeze(2)).masked_fill(~causal, 0.0)
            carry = torch.exp(m.unsqueeze(1) - m_t)  # (N, B): rescales what earlier blocks accumulated
            denominators = denominator.unsqueeze(1) * carry + w.sum(dim=2)
            sums = weighted.unsqueeze(1) * carry.unsqueeze(2) + torch.bmm(w, x)
            pooled.append(sums / denominators.unsqueeze(2))
            m, denominator, weighted = m_t[:, -1], denominators[:, -1], sums[:, -1]
        state = {"max_score": m, "denominator": denominator, "weighted_sum": weighted}
        return torch.cat(pooled, dim=1), state


class ConcatPooling(nn.Module):
    """Several poolings of the same outputs side by side: (N, L, F) -> (N, k F), e.g. mean and max ("mean+max",
    the concat pooling of ULMFiT): the mean says what a sequence holds on average, the max its strongest
    moments."""

    def __init__(self, poolings: list[nn.Module]) -> None:
        super().__init__()
        if len(poolings) < 2:
            raise ValueError(f"ConcatPooling joins at least two poolings, got {len(poolings)}")
        self.parts = nn.ModuleList(poolings)

    def forward(self, outputs: Tensor, lengths: Tensor) -> Tensor:
        return torch.cat([part(outputs, lengths) for part in self.parts], dim=-1)

    def initial_state(
        self,
        batch_size: int,
        num_features: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> tuple:
        """Each part's state, in order."""
        return tuple(part.initial_state(batch_size, num_features, device, dtype) for part in self.parts)

    def stream(self, outputs: Tensor, state: tuple) -> tuple[Tensor, tuple]:
        """(N, T, F) -> (N, T, k F): each part's running pooling, side by side."""
        streamed = [part.stream(outputs, part_state) for part, part_state in zip(self.parts, state, strict=True)]
        return torch.cat([pooled for pooled, _ in streamed], dim=-1), tuple(new for _, new in streamed)


POOLINGS = ("last", "mean", "max", "attention")


def pooling_parts(name: str) -> list[str]:
    """The poolings a name joins with ``+`` ("mean+max" -> ["mean", "max"]); ValueError names an unknown one."""
    parts = name.split("+")
    for part in parts:
        if part not in POOLINGS:
            raise ValueError(
                f"unknown pooling {part!r}; choose one of {', '.join(POOLINGS)}, or several joined by '+' "
                "(e.g. mean+max)"
            )
    if len(set(parts)) != len(parts):
        raise ValueError(f"pooling {name!r} names a pooling twice; name each once (e.g. mean+max)")
    return parts


def pooled_size(name: str, input_size: int) -> int:
    """Width of the vector pooling ``name`` makes of ``input_size`` features."""
    return input_size * len(pooling_parts(name))


def build_pooling(name: str, input_size: int, num_directions: int = 1) -> nn.Module:
    """``"last"``, ``"mean"``, ``"max"`` or ``"attention"`` pooling for ``input_size`` features, or several joined
    by ``+`` (e.g. ``"mean+max"``), concatenated in that order."""
    parts = pooling_parts(name)
    if len(parts) > 1:
        return ConcatPooling([build_pooling(part, input_size, num_directions) for part in parts])
    if name == "last":
        return LastStepPooling(num_directions)
    if name == "mean":
        return MeanPooling()
    if name == "max":
        return MaxPooling()
    return AttentionPooling(input_size)
