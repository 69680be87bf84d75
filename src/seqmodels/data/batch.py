"""The one batch type every seqmodels datamodule yields."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor


@dataclass
class SequenceBatch:
    """Padded sequences plus their true lengths.

    Shapes (N = batch, L = longest sequence in the batch, C = input channels):
        inputs:          (N, L) int64 token ids, or (N, L, C) float features
        lengths:         (N,) int64, on the same device as ``inputs``
        targets:         (N,) class ids, (N,) / (N, T) regression values, or (N, L') per-step targets
        target_lengths:  (N,) int64 when targets are themselves variable-length sequences
        condition:       optional per-sequence side input (e.g. a feature vector to condition on)
        continues:       row i continues row i of the previous batch (consecutive windows of token streams):
                         a model may carry its recurrent state over from that batch (truncated BPTT)
    """

    inputs: Tensor
    lengths: Tensor
    targets: Tensor | None = None
    target_lengths: Tensor | None = None
    condition: Tensor | None = None
    continues: bool = False

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SequenceBatch:
        """The batch on ``device``; the batch itself when every tensor is there already (as ``Tensor.to``)."""
        tensors = {f.name: v for f in fields(self) if isinstance(v := getattr(self, f.name), Tensor)}
        target = torch.device(device)
        if all(v.device == target for v in tensors.values()):  # Lightning moves every batch, even on a CPU
            return self
        return replace(self, **{name: v.to(device, non_blocking=non_blocking) for name, v in tensors.items()})

    def pin_memory(self) -> SequenceBatch:
        # DataLoader(pin_memory=True) calls this on custom batch types.
        pinned = {f.name: v.pin_memory() for f in fields(self) if isinstance(v := getattr(self, f.name), Tensor)}
        return replace(self, **pinned)

    def __len__(self) -> int:
        return self.inputs.shape[0]
