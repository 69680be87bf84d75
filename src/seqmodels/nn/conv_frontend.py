"""A 1-D convolutional front-end for real-valued sequences: local patterns across neighbouring steps, computed
before the recurrent encoder (the convolutional half of LSTM-FCN-style classifiers, Karim et al. 2019, here
feeding the recurrence instead of running beside it).

One convolution over time with "same" zero padding, so that the output keeps the input's length and step t sees
steps t - k//2 ... t + k//2. Batches are padded with zeros after each sequence's end, which is exactly the padding
the convolution adds to an unpadded sequence: a sequence's features do not depend on the batch it is in (hence one
layer only: a second one would read the first one's outputs beyond the end, which are not zero).

The window looks ahead k//2 steps, so the front-end is not causal: use it with a bidirectional encoder, not for
step-by-step streaming.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class ConvFrontend(nn.Module):
    """(N, L, input_size) -> (N, L, output_size): a convolution over time, its activation and dropout, optionally
    concatenated after the inputs themselves.

    Args:
        input_size: features per step.
        output_size: features per step out (a config can hand it on as the encoder's ``input_size``).
        kernel_size: steps the convolution spans, odd (the window is centred on each step).
        activation: ``"relu"``, ``"gelu"`` or ``"tanh"``.
        dropout: dropout on the convolution's outputs while training.
        keep_inputs: the first ``input_size`` output features are the inputs themselves, the convolution gives
            the other ``output_size - input_size`` (else the convolution gives all of them).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int = 64,
        kernel_size: int = 5,
        activation: str = "relu",
        dropout: float = 0.0,
        keep_inputs: bool = True,
    ) -> None:
        super().__init__()
        channels = output_size - input_size if keep_inputs else output_size
        if input_size < 1 or channels < 1:
            raise ValueError(
                f"output_size={output_size} leaves no convolution channels with input_size={input_size}"
                f"{' and keep_inputs=True' if keep_inputs else ''}; raise output_size"
            )
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1 (a window centred on each step), got {kernel_size}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {activation!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input_size, self.channels, self.keep_inputs = input_size, channels, keep_inputs
        self.conv = nn.Conv1d(input_size, channels, kernel_size, padding=kernel_size // 2)
        self.activation = _ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout)
        self.output_size = output_size

    def forward(self, inputs: Tensor) -> Tensor:
        if inputs.dim() != 3 or inputs.shape[-1] != self.input_size:
            raise ValueError(
                f"ConvFrontend expects (N, L, {self.input_size}) features, got shape {tuple(inputs.shape)}; "
                "check model.net.frontend.input_size"
            )
        features = self.dropout(self.activation(self.conv(inputs.transpose(1, 2)))).transpose(1, 2)
        return torch.cat([inputs, features], dim=-1) if self.keep_inputs else features
