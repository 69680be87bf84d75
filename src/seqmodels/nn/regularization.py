"""Regularisers for recurrent networks, all inactive in eval mode; the first three are AWD-LSTM's (Merity et al. 2018).

* :class:`LockedDropout` drops the same features at every time step (variational dropout on activations).
* :func:`embedding_dropout` drops whole rows of an embedding matrix: every occurrence of a word type at once.
* :class:`WeightDrop` applies DropConnect to a recurrent module's hidden-to-hidden weights.
* :func:`time_stretch` resamples each sequence along time by its own factor (``ManyToOneNet(time_stretch=...)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, shared across time.

    Args:
        p: probability of dropping a feature, in [0, 1).
        batch_first: inputs are (N, L, C) instead of (L, N, C).
    """

    def __init__(self, p: float = 0.0, batch_first: bool = True) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"locked dropout p must be in [0, 1), got {p}")
        self.p = float(p)
        self.batch_first = batch_first

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        time_dim = 1 if self.batch_first else 0
        mask_shape = list(x.shape)
        mask_shape[time_dim] = 1
        mask = x.new_empty(mask_shape).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


def embedding_dropout(embedding: nn.Embedding, tokens: Tensor, p: float, training: bool) -> Tensor:
    """``embedding(tokens)`` with each vocabulary row dropped with probability ``p`` (rescaled by 1 / (1 - p)).

    The padding row stays zero either way.
    """
    if not training or p == 0.0:
        return embedding(tokens)
    weight = embedding.weight
    keep = weight.new_empty(weight.shape[0], 1).bernoulli_(1.0 - p) / (1.0 - p)
    return F.embedding(tokens, weight * keep, embedding.padding_idx)


class WeightDrop(nn.Module):
    """DropConnect on the hidden-to-hidden weights of a wrapped recurrent module.

    The wrapped module keeps its parameters; in training, each forward call runs it through
    :func:`torch.func.functional_call` with dropped copies of ``weights``. The module itself (and so its fused
    kernel) is unchanged and no parameter is deleted or re-registered, which is what made older weight-drop
    recipes break across torch releases.

    Args:
        module: a :class:`~seqmodels.nn.RecurrentEncoder` or a ``torch.nn`` RNN/LSTM/GRU.
        weights: parameter names to drop, by default every ``weight_hh_l*`` (at any depth, e.g.
            ``rnn.weight_hh_l0``).
        p: probability of dropping each weight, in [0, 1).
    """

    def __init__(self, module: nn.Module, p: float, weights: Sequence[str] | None = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"weight drop p must be in [0, 1), got {p}")
        names = [n for n, _ in module.named_parameters()]
        weights = (
            list(weights) if weights is not None else [n for n in names if n.rpartition(".")[2].startswith("weight_hh")]
        )
        if not weights:
            raise ValueError(
                f"WeightDrop: {type(module).__name__} has no hidden-to-hidden weights (weight_hh_*) to drop, as a "
                "minGRU/minLSTM has none; set weight_drop=0 or use a classic cell"
            )
        missing = [w for w in weights if w not in names]
        if missing:
            raise ValueError(f"WeightDrop: {type(module).__name__} has no parameter {missing}; it has {names}")
        self.module = module
        self.p = float(p)
        self.weights = weights

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not self.training or self.p == 0.0:
            return self.module(*args, **kwargs)
        params = dict(self.module.named_parameters())
        dropped = {name: F.dropout(params[name], self.p, training=True) for name in self.weights}
        return functional_call(self.module, dropped, args, kwargs)

    def extra_repr(self) -> str:
        return f"p={self.p}, weights={self.weights}"


__all__ = ["LockedDropout", "WeightDrop", "embedding_dropout"]


def time_stretch(inputs: Tensor, lengths: Tensor, factors: Tensor) -> tuple[Tensor, Tensor]:
    """Resamples each padded sequence along time by its own factor, with linear interpolation.

    ``inputs`` (N, L, C) batch-first features, ``lengths`` (N,), ``factors`` (N,) > 0: sequence i's
    ``lengths[i]`` valid steps become ``max(1, round(lengths[i] * factors[i]))`` steps, sampled at evenly spaced
    points of the original (step centres map to step centres, so a factor of 1 returns the sequence unchanged).
    Returns ``(stretched (N, L', C), new_lengths (N,))`` with L' the longest new length; steps beyond each new
    length are 0; ``new_lengths`` is on ``lengths``' device. Differentiable in ``inputs``. A time-warp augmentation
    for speech-like features, where each speaker's tempo differs.
    """
    if inputs.dim() != 3:
        raise ValueError(f"time_stretch expects (N, L, C) inputs, got shape {tuple(inputs.shape)}")
    home = lengths.device
    lengths = lengths.to(inputs.device)
    new_lengths = torch.clamp(torch.round(lengths.to(factors.dtype) * factors.to(lengths.device)), min=1).long()
    longest = int(new_lengths.max())
    steps = torch.arange(longest, device=inputs.device, dtype=inputs.dtype)
    # Centre of new step j in original step units: (j + 0.5) * old / new - 0.5, clamped into the valid steps.
    scale = (lengths.to(inputs.dtype) / new_lengths.to(inputs.dtype)).unsqueeze(1)
    last = (lengths - 1).clamp(min=0).to(inputs.dtype).unsqueeze(1)
    position = ((steps.unsqueeze(0) + 0.5) * scale - 0.5).clamp(min=0).minimum(last)  # (N, L')
    below = position.floor().long()
    above = torch.minimum(below + 1, last.long())
    weight = (position - below.to(inputs.dtype)).unsqueeze(-1)
    channels = inputs.shape[-1]
    low = inputs.gather(1, below.unsqueeze(-1).expand(-1, -1, channels))
    high = inputs.gather(1, above.unsqueeze(-1).expand(-1, -1, channels))
    stretched = low + weight * (high - low)
    valid = steps.unsqueeze(0) < new_lengths.unsqueeze(1)
    return stretched * valid.unsqueeze(-1).to(inputs.dtype), new_lengths.to(home)
