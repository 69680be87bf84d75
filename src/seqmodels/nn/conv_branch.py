"""A convolutional branch beside a recurrent encoder, as in LSTM-FCN.

Karim et al. (2018), "LSTM Fully Convolutional Networks for Time Series Classification", and MLSTM-FCN (Karim et
al. 2019, for multivariate series) read each series twice: a recurrent encoder, and a fully convolutional network
of B blocks

    x_b = ReLU(BatchNorm(Conv1d_b(x_{b-1})))          (kernel k_b, stride 1, "same" padding)

followed by global average pooling over time. The two pooled vectors are concatenated before the classifier. The
paper's blocks have 128, 256 and 128 filters with kernels 8, 5 and 3, initialised as He et al. (2015) propose
(``kaiming_uniform``, torch's default for ``Conv1d``).

Variable lengths: padded steps are zeroed before every convolution, so each valid step sees exactly the zeros a
lone sequence would see at its end; BatchNorm's training statistics count only valid steps, and the average
pools each sequence over its own length. A padded batch therefore gives every sequence the output it gets alone
(in eval mode; in training mode, BatchNorm's batch statistics depend on the other sequences, as they always do).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` over (N, C, L) whose training statistics count only the steps where ``mask`` is 1.

    Running statistics are updated as ``nn.BatchNorm1d`` does (``momentum``, unbiased variance), so eval mode is
    plain BatchNorm with them. Without padding it equals ``nn.BatchNorm1d`` in both modes.
    """

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # type: ignore[override]
        if mask is None or not self.training:
            return super().forward(x)
        count = mask.sum() * 1.0
        mean = (x * mask).sum((0, 2)) / count
        centred = (x - mean[:, None]) * mask
        var = (centred**2).sum((0, 2)) / count
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1  # type: ignore[operator]
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * count / (count - 1).clamp_min(1)
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        out = (x - mean[:, None]) * torch.rsqrt(var[:, None] + self.eps)
        if self.affine:
            out = out * self.weight[:, None] + self.bias[:, None]
        return out


class ConvBranch(nn.Module):
    """LSTM-FCN's convolutional branch: Conv1d -> masked BatchNorm -> ReLU blocks, then a masked mean over time.

    Args:
        input_size: C, the features per step (the recurrent encoder's ``input_size``).
        channels: filters of each block (the paper: 128, 256, 128).
        kernel_sizes: kernel of each block, one per entry of ``channels`` (the paper: 8, 5, 3).
        dropout: dropout on the pooled vector.

    Inputs: ``inputs`` (N, L, C), ``lengths`` (N,). Output: (N, channels[-1]) = (N, :attr:`output_size`).
    """

    def __init__(
        self,
        input_size: int,
        channels: Sequence[int] = (128, 256, 128),
        kernel_sizes: Sequence[int] = (8, 5, 3),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        channels, kernel_sizes = list(channels), list(kernel_sizes)
        if input_size < 1:
            raise ValueError(f"input_size must be >= 1, got {input_size}")
        if not channels or len(channels) != len(kernel_sizes):
            raise ValueError(
                f"channels and kernel_sizes need one entry per block, got {len(channels)} channels and "
                f"{len(kernel_sizes)} kernel sizes"
            )
        if min(channels) < 1 or min(kernel_sizes) < 1:
            raise ValueError(f"channels and kernel_sizes must be >= 1, got {channels} and {kernel_sizes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input_size = input_size
        self.output_size = channels[-1]
        sizes = [input_size, *channels]
        self.convs = nn.ModuleList(nn.Conv1d(sizes[i], sizes[i + 1], k) for i, k in enumerate(kernel_sizes))
        # "same" padding, the extra step of an even kernel on the right (as torch's padding="same")
        self.paddings = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel_sizes]
        self.norms = nn.ModuleList(MaskedBatchNorm1d(c) for c in channels)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        if inputs.dim() != 3 or inputs.shape[-1] != self.input_size:
            raise ValueError(f"ConvBranch expects inputs (N, L, {self.input_size}), got {tuple(inputs.shape)}")
        steps = torch.arange(inputs.shape[1], device=inputs.device)
        mask = (steps[None, :] < lengths.to(inputs.device)[:, None]).to(inputs.dtype).unsqueeze(1)  # (N, 1, L)
        x = inputs.transpose(1, 2)
        for conv, norm, padding in zip(self.convs, self.norms, self.paddings, strict=True):
            x = F.relu(norm(conv(F.pad(x * mask, padding)), mask))
        pooled = (x * mask).sum(-1) / mask.sum(-1).clamp_min(1)
        return self.dropout(pooled)


__all__ = ["ConvBranch", "MaskedBatchNorm1d"]
