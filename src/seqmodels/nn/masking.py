"""Length bookkeeping for padded batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def as_lengths(lengths: Tensor | Sequence[int], device: torch.device | None = None) -> Tensor:
    """Lengths as a 1-D int64 tensor (on ``device`` if given)."""
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(list(lengths), dtype=torch.long)
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D (one length per sequence), got shape {tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be an integer tensor, got {lengths.dtype}")
    lengths = lengths.long()
    return lengths.to(device) if device is not None else lengths


def check_lengths(lengths: Tensor, max_len: int, batch_size: int) -> None:
    """Raises a one-line ValueError unless every length is in [1, max_len] and there is one per sequence."""
    if lengths.shape[0] != batch_size:
        raise ValueError(f"got {lengths.shape[0]} lengths for a batch of {batch_size} sequences; pass one per sequence")
    if batch_size == 0:
        return
    low, high = int(lengths.min()), int(lengths.max())
    if low < 1:
        raise ValueError(f"every length must be >= 1, got {low}; drop empty sequences before batching")
    if high > max_len:
        raise ValueError(f"a length of {high} exceeds the padded length {max_len}; check the collate function")


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """(N,) lengths -> (N, L) bool mask, True at valid steps."""
    max_len = int(lengths.max()) if max_len is None else max_len
    steps = torch.arange(max_len, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)
