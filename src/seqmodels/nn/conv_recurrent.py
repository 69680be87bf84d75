"""Convolutional recurrent layers for frame sequences: :class:`ConvLSTM` and :class:`ConvGRU`.

The state of a convolutional recurrent cell is a stack of feature maps instead of a vector, and every matrix product
of the LSTM/GRU equations becomes a 2-D convolution (``*``) with "same" padding, so the state keeps each frame's
height and width and the recurrence sees local motion.

ConvLSTM (Shi et al. 2015, "Convolutional LSTM Network: A Machine Learning Approach for Precipitation
Nowcasting", NeurIPS), without the paper's peephole terms (as Keras' ``ConvLSTM2D``)::

    i_t = sigmoid(W_xi * x_t + W_hi * h_{t-1} + b_i)
    f_t = sigmoid(W_xf * x_t + W_hf * h_{t-1} + b_f)
    g_t = tanh(W_xg * x_t + W_hg * h_{t-1} + b_g)
    o_t = sigmoid(W_xo * x_t + W_ho * h_{t-1} + b_o)
    c_t = f_t . c_{t-1} + i_t . g_t
    h_t = o_t . tanh(c_t)

ConvGRU (Ballas et al. 2016, "Delving Deeper into Convolutional Networks for Learning Video Representations",
ICLR; the GRU of Cho et al. 2014 with convolutions)::

    z_t = sigmoid(W_xz * x_t + W_hz * h_{t-1} + b_z)
    r_t = sigmoid(W_xr * x_t + W_hr * h_{t-1} + b_r)
    n_t = tanh(W_xn * x_t + W_hn * (r_t . h_{t-1}) + b_n)
    h_t = (1 - z_t) . n_t + z_t . h_{t-1}

(``.`` is the elementwise product.) The input-to-state convolutions of all steps run as one batched convolution
before the loop; only the state-to-state convolutions run step by step.

Shapes: N = batch, L = sequence length, C = input channels (``input_size``), H_c = hidden channels
(``hidden_size``), H x W = frame height and width (kept by every layer), D = 2 if bidirectional else 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmodels.nn.masking import as_lengths, check_lengths
from seqmodels.nn.streaming import check_causal

ConvState = Tensor | tuple[Tensor, Tensor]

_GATES = {"lstm": 4, "gru": 3}


def reverse_within_lengths(x: Tensor, lengths: Tensor) -> Tensor:
    """(N, L, ...) -> each sequence's first ``length`` steps in reverse order; padded steps stay where they are."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    last = lengths.to(x.device).unsqueeze(1) - 1
    index = torch.where(steps <= last, last - steps, steps)  # (N, L)
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


class _ConvRecurrent(nn.Module):
    """Shared machinery of :class:`ConvLSTM` and :class:`ConvGRU` (see their docstrings)."""

    cell: str = ""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        kernel_size: int | Sequence[int] = 3,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        frame_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: {arg} must be an integer >= 1, got {value!r}")
        kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(int(k) for k in kernel_size)
        if len(kernel) != 2 or min(kernel) < 1:
            raise ValueError(f"{name}: kernel_size must be an int or a pair of ints >= 1, got {kernel_size!r}")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout!r}")
        if frame_size is not None:
            frame_size = tuple(int(s) for s in frame_size)
            if len(frame_size) != 2 or min(frame_size) < 1:
                raise ValueError(f"{name}: frame_size must be (height, width), got {frame_size!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.kernel_size = kernel
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.frame_size = frame_size
        gates = _GATES[self.cell]
        D = self.num_directions
        # conv_x[k]: input-to-state (with the bias); conv_h[k]: state-to-state. k = layer * D + direction.
        self.conv_x = nn.ModuleList()
        self.conv_h = nn.ModuleList()
        self.conv_hn = nn.ModuleList()  # GRU only: W_hn * (r . h)
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else D * hidden_size
            for _ in range(D):
                self.conv_x.append(nn.Conv2d(layer_input, gates * hidden_size, kernel, padding="same", bias=bias))
                state_gates = 4 if self.cell == "lstm" else 2
                self.conv_h.append(
                    nn.Conv2d(hidden_size, state_gates * hidden_size, kernel, padding="same", bias=False)
                )
                if self.cell == "gru":
                    self.conv_hn.append(nn.Conv2d(hidden_size, hidden_size, kernel, padding="same", bias=False))
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """D * H_c: channels per step of ``output``."""
        return self.num_directions * self.hidden_size

    def reset_parameters(self) -> None:
        for conv in (*self.conv_x, *self.conv_h, *self.conv_hn):
            conv.reset_parameters()
        if self.cell == "lstm" and self.bias:
            # Forget gate (second block of i, f, g, o) starts open so memories persist early in training.
            for conv in self.conv_x:
                conv.bias.data[self.hidden_size : 2 * self.hidden_size].fill_(1.0)

    # ------------------------------------------------------------------ cells
    def cell_step(self, k: int, gx: Tensor, state: ConvState) -> ConvState:
        """One step of cell ``k`` (= layer * D + direction) from precomputed input gates ``gx`` (N, G * H_c, H, W)."""
        if self.cell == "lstm":
            h, c = state
            i, f, g, o = (gx + self.conv_h[k](h)).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        h = state
        x_z, x_r, x_n = gx.chunk(3, dim=1)
        h_z, h_r = self.conv_h[k](h).chunk(2, dim=1)
        z = torch.sigmoid(x_z + h_z)
        r = torch.sigmoid(x_r + h_r)
        n = torch.tanh(x_n + self.conv_hn[k](r * h))
        return (1 - z) * n + z * h

    def _run_direction(self, k: int, x: Tensor, state: ConvState, mask: Tensor | None) -> tuple[Tensor, ConvState]:
        """Cell ``k`` over x (N, L, C_in, H, W) from ``state``; where ``mask`` (N, L) is False the state is kept."""
        N, L = x.shape[0], x.shape[1]
        gx = self.conv_x[k](x.reshape(N * L, *x.shape[2:])).view(N, L, -1, *x.shape[3:])
        outputs = []
        for t in range(L):
            new = self.cell_step(k, gx[:, t], state)
            if mask is not None:
                keep = mask[:, t].view(N, 1, 1, 1)
                if isinstance(new, tuple):
                    new = tuple(torch.where(keep, n, s) for n, s in zip(new, state, strict=True))
                else:
                    new = torch.where(keep, new, state)
            state = new
            outputs.append(state[0] if isinstance(state, tuple) else state)
        return torch.stack(outputs, dim=1), state

    # ---------------------------------------------------------------- forward
    def _zeros(self, count: int, batch: int, frame: Sequence[int], like: Tensor) -> ConvState:
        h = like.new_zeros(count, batch, self.hidden_size, *frame)
        return (h, torch.zeros_like(h)) if self.cell == "lstm" else h

    def _check_state(self, hx: ConvState, count: int, batch: int, frame: Sequence[int]) -> None:
        expected = (count, batch, self.hidden_size, *frame)
        parts = hx if isinstance(hx, tuple) else (hx,)
        if (self.cell == "lstm") != isinstance(hx, tuple) or (isinstance(hx, tuple) and len(hx) != 2):
            kind = "a tuple (h, c)" if self.cell == "lstm" else "one tensor h"
            raise ValueError(f"{type(self).__name__}: the state must be {kind}")
        for part in parts:
            if tuple(part.shape) != expected:
                raise ValueError(
                    f"{type(self).__name__}: a state of shape {tuple(part.shape)} does not fit this input; "
                    f"expected {expected} (D * num_layers, N, hidden_size, H, W)"
                )

    def forward(
        self, input: Tensor, lengths: Tensor | Sequence[int] | None = None, hx: ConvState | None = None
    ) -> tuple[Tensor, ConvState]:
        """See the class docstring."""
        name = type(self).__name__
        if input.dim() != 5:
            layout = "(N, L, C, H, W)" if self.batch_first else "(L, N, C, H, W)"
            raise ValueError(f"{name} expects a 5-D input {layout}, got shape {tuple(input.shape)}")
        x = input if self.batch_first else input.transpose(0, 1)
        if x.shape[2] != self.input_size:
            raise ValueError(
                f"{name}: input has {x.shape[2]} channels but input_size={self.input_size}; "
                "set input_size to the frames' channels"
            )
        N, L, frame = x.shape[0], x.shape[1], tuple(x.shape[3:])
        mask = None
        if lengths is not None:
            lengths = as_lengths(lengths)
            check_lengths(lengths.cpu(), L, N)
            lengths = lengths.to(x.device)
            if bool((lengths < L).any()):
                mask = torch.arange(L, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
        D = self.num_directions
        count = D * self.num_layers
        if hx is None:
            hx = self._zeros(count, N, frame, x)
        else:
            self._check_state(hx, count, N, frame)
        h_n: list[Tensor] = []
        c_n: list[Tensor] = []
        for layer in range(self.num_layers):
            if layer and self.dropout and self.training:
                x = F.dropout(x, self.dropout, training=True)
            outputs = []
            for direction in range(D):
                k = layer * D + direction
                state = (hx[0][k], hx[1][k]) if isinstance(hx, tuple) else hx[k]
                reverse = direction == 1
                inputs = x
                if reverse:
                    inputs = reverse_within_lengths(x, lengths) if mask is not None else x.flip(1)
                out, state = self._run_direction(k, inputs, state, mask)
                if reverse:
                    out = reverse_within_lengths(out, lengths) if mask is not None else out.flip(1)
                outputs.append(out)
                if isinstance(state, tuple):
                    h_n.append(state[0])
                    c_n.append(state[1])
                else:
                    h_n.append(state)
            x = torch.cat(outputs, dim=2) if D == 2 else outputs[0]
            if mask is not None:
                x = x * mask.view(N, L, 1, 1, 1).to(x.dtype)
        output = x if self.batch_first else x.transpose(0, 1)
        state_h = torch.stack(h_n)
        return output, ((state_h, torch.stack(c_n)) if self.cell == "lstm" else state_h)

    # ---------------------------------------------------------------- step mode
    def initial_state(
        self,
        batch_size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        frame_size: Sequence[int] | None = None,
    ) -> ConvState:
        """Zeros: ``h_0`` (num_layers, N, H_c, H, W); for ConvLSTM a tuple ``(h_0, c_0)`` of that shape.

        The frame size is ``frame_size`` if given, else the constructor's ``frame_size``. ``device`` and ``dtype``
        default to the parameters'.
        """
        check_causal(self, type(self).__name__)
        frame = tuple(frame_size) if frame_size is not None else self.frame_size
        if frame is None:
            raise ValueError(
                f"{type(self).__name__}.initial_state needs the frame size: pass frame_size=(H, W) here or to the "
                "constructor, or call step/stream with state=None"
            )
        reference = next(self.parameters())
        h = torch.zeros(
            self.num_layers,
            batch_size,
            self.hidden_size,
            *frame,
            device=device or reference.device,
            dtype=dtype or reference.dtype,
        )
        return (h, torch.zeros_like(h)) if self.cell == "lstm" else h

    def stream(self, chunk: Tensor, state: ConvState | None = None) -> tuple[Tensor, ConvState]:
        """T steps at once, continuing from ``state`` (None: zeros of the chunk's frame size).

        Args:
            chunk: (N, T, C, H, W) if batch_first else (T, N, C, H, W), T >= 1; every row runs all T steps.
            state: as returned by :meth:`initial_state`, :meth:`step` or :meth:`stream`.

        Returns ``(output, state)``: output (N, T, H_c, H, W) (time first if not batch_first), equal to
        :meth:`forward`'s output at these steps of the whole sequence, and the state after the last step.
        """
        check_causal(self, type(self).__name__)
        return self.forward(chunk, hx=state)

    def step(self, x_t: Tensor, state: ConvState | None = None) -> tuple[Tensor, ConvState]:
        """One frame: ``x_t`` (N, C, H, W) -> ``(y_t, state)`` with y_t (N, H_c, H, W)."""
        if x_t.dim() != 4:
            raise ValueError(
                f"step expects one frame (N, C, H, W), got shape {tuple(x_t.shape)}; use stream() for a chunk"
            )
        time_dim = 1 if self.batch_first else 0
        output, state = self.stream(x_t.unsqueeze(time_dim), state)
        return output.squeeze(time_dim), state

    def extra_repr(self) -> str:
        parts = [
            f"input_size={self.input_size}",
            f"hidden_size={self.hidden_size}",
            f"kernel_size={self.kernel_size}",
        ]
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        if not self.batch_first:
            parts.append("batch_first=False")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        if self.bidirectional:
            parts.append("bidirectional=True")
        if not self.bias:
            parts.append("bias=False")
        return ", ".join(parts)


_DOC = """

    Arguments mirror :class:`torch.nn.LSTM`, with channels for features; unlike torch, ``batch_first`` defaults
    to True (frames are usually stored clip by clip).

    Args:
        input_size: C, channels of each input frame.
        hidden_size: H_c, channels of the hidden (and cell) state.
        kernel_size: size of every convolution (int or (kh, kw)); "same" padding keeps H x W.
        num_layers: stacked layers; layer l > 0 reads layer l - 1's output (D * H_c channels).
        bias: bias of the input-to-state convolutions (the state-to-state ones have none; the sum is the same).
        batch_first: inputs/outputs are (N, L, C, H, W) (True, the default) instead of (L, N, C, H, W).
        dropout: dropout on the outputs of each layer except the last, in [0, 1).
        bidirectional: add a second direction that reads each sequence reversed within its length (D = 2).
        frame_size: optional (H, W) for :meth:`initial_state` without an argument.

    Inputs: ``input, lengths=None, hx=None``
        input: (N, L, C, H, W) if batch_first else (L, N, C, H, W), zero- or garbage-padded past each length.
        lengths: (N,) true lengths, each in [1, L], any device; None: every sequence has length L.
        hx: initial state (D * num_layers, N, H_c, H, W){hx_extra}; index layer * D + direction, as torch's.

    Outputs: ``output, h_n``
        output: (N, L, D * H_c, H, W) (time first if not batch_first); exactly 0 at padded steps, which never
            change any output or state.
        h_n: (D * num_layers, N, H_c, H, W), each direction's state at each sequence's last valid step (reverse
            direction: at step 0){hn_extra}.

    Step mode (unidirectional; see :mod:`seqmodels.nn.streaming`): :meth:`initial_state`, :meth:`step` (one frame
    (N, C, H, W) -> (N, H_c, H, W)) and :meth:`stream` (a chunk of T frames) continue from a state
    (num_layers, N, H_c, H, W){state_extra} and together equal :meth:`forward` over the whole sequence.
    """


class ConvLSTM(_ConvRecurrent):
    __doc__ = (
        "A multi-layer convolutional LSTM (Shi et al. 2015; equations in :mod:`seqmodels.nn.conv_recurrent`)."
        + _DOC.format(
            hx_extra="; a tuple (h_0, c_0) of that shape",
            hn_extra="; a tuple (h_n, c_n)",
            state_extra=" (a tuple (h, c))",
        )
    )
    cell = "lstm"


class ConvGRU(_ConvRecurrent):
    __doc__ = (
        "A multi-layer convolutional GRU (Ballas et al. 2016; equations in :mod:`seqmodels.nn.conv_recurrent`)."
        + _DOC.format(hx_extra="", hn_extra="", state_extra="")
    )
    cell = "gru"


__all__ = ["ConvGRU", "ConvLSTM", "ConvState", "reverse_within_lengths"]
