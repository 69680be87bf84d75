"""RecurrentEncoder: torch's RNN/LSTM/GRU behind one interface that takes sequence lengths.

Shapes: N = batch, L = sequence length, D = 2 if bidirectional else 1, H_in = input_size,
H_out = proj_size if proj_size > 0 else hidden_size, H_cell = hidden_size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqmodels.nn.masking import as_lengths, check_lengths

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
INITS = ("orthogonal", "torch")
# Gate blocks stacked in torch's weight matrices (W_hh is (gates * H, H)).
_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}

State = Tensor | tuple[Tensor, Tensor]


class RecurrentEncoder(nn.Module):
    """A multi-layer RNN (tanh or ReLU), LSTM or GRU that handles variable-length, padded batches.

    Arguments mirror :class:`torch.nn.LSTM`; the wrapped torch module is ``self.rnn``, so its fused/cuDNN kernels
    are used and its weights are named like torch's (``rnn.weight_hh_l0_reverse``). When ``lengths`` is given, the
    batch is packed once, internally: padded steps never change any output or final state, in either direction.

    Args:
        cell: ``"rnn_tanh"``, ``"rnn_relu"``, ``"lstm"`` or ``"gru"``.
        input_size: H_in, features per time step.
        hidden_size: H_cell, features of the hidden (and LSTM cell) state.
        num_layers: stacked recurrent layers.
        bias: use bias weights.
        batch_first: inputs/outputs are (N, L, *) instead of (L, N, *).
        dropout: dropout on the outputs of each layer except the last, in [0, 1).
        bidirectional: run a second, time-reversed pass and concatenate (D = 2).
        proj_size: LSTM only: project the hidden state to this size (0: no projection).
        init: ``"orthogonal"`` (orthogonal recurrent weights, Xavier input weights, zero biases, LSTM forget-gate
            bias 1: keeps gradients alive over long sequences) or ``"torch"`` (torch's uniform default).

    Inputs: ``input, lengths=None, hx=None``
        input: (N, L, H_in) if batch_first else (L, N, H_in), zero- or garbage-padded past each length.
        lengths: (N,) true lengths, each in [1, L], any device; None means every sequence has length L.
        hx: initial state, (D * num_layers, N, H_out); for LSTM a tuple (h_0, c_0) with c_0 (D * num_layers, N, H_cell).

    Outputs: ``output, h_n``
        output: (N, L, D * H_out) if batch_first else (L, N, D * H_out); exactly 0 at padded steps.
        h_n: (D * num_layers, N, H_out), the state at each sequence's last valid step (for the reverse direction:
            at step 0); for LSTM a tuple (h_n, c_n).
    """

    def __init__(
        self,
        cell: str = "lstm",
        input_size: int = 1,
        hidden_size: int = 64,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        init: str = "orthogonal",
    ) -> None:
        super().__init__()
        cell = str(cell).lower()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if proj_size and cell != "lstm":
            raise ValueError(f"proj_size is only supported by cell='lstm', got cell={cell!r}; set proj_size=0 or use lstm")
        if not isinstance(proj_size, int) or proj_size < 0 or (proj_size and proj_size >= hidden_size):
            raise ValueError(f"proj_size must be 0 or in [1, hidden_size={hidden_size}), got {proj_size!r}")
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")

        self.cell = cell
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        self.init = init

        common = dict(
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            dropout=float(dropout),
            bidirectional=bidirectional,
        )
        if cell == "lstm":
            self.rnn: nn.RNNBase = nn.LSTM(**common, proj_size=proj_size)
        elif cell == "gru":
            self.rnn = nn.GRU(**common)
        else:
            self.rnn = nn.RNN(**common, nonlinearity=cell.removeprefix("rnn_"))
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def state_size(self) -> int:
        """H_out: size of the hidden state each direction emits."""
        return self.proj_size or self.hidden_size

    @property
    def output_size(self) -> int:
        """D * H_out: features per step of ``output``."""
        return self.num_directions * self.state_size

    @property
    def is_lstm(self) -> bool:
        return self.cell == "lstm"

    def reset_parameters(self) -> None:
        if self.init == "torch":
            self.rnn.reset_parameters()
            return
        gates = _GATES[self.cell]
        for name, param in self.rnn.named_parameters():
            if name.startswith("weight_hh"):
                # Orthogonal per gate block: recurrent Jacobians start norm-preserving.
                for block in param.data.chunk(gates, dim=0):
                    nn.init.orthogonal_(block)
            elif name.startswith("weight_ih"):
                for block in param.data.chunk(gates, dim=0):
                    nn.init.xavier_uniform_(block)
            elif name.startswith("weight_hr"):  # LSTM projection
                nn.init.xavier_uniform_(param.data)
            elif name.startswith("bias"):
                nn.init.zeros_(param.data)
                if self.is_lstm and name.startswith("bias_ih"):
                    # Forget gate (second block: i, f, g, o) starts open so memories persist early in training.
                    param.data[self.hidden_size : 2 * self.hidden_size].fill_(1.0)

    def forward(
        self, input: Tensor, lengths: Tensor | Sequence[int] | None = None, hx: State | None = None
    ) -> tuple[Tensor, State]:
        if input.dim() != 3:
            layout = "(N, L, H_in)" if self.batch_first else "(L, N, H_in)"
            raise ValueError(f"RecurrentEncoder expects a 3-D input {layout}, got shape {tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"input has {input.shape[-1]} features per step but input_size={self.input_size}; "
                "set input_size to the data's channels"
            )
        if lengths is None:
            return self.rnn(input, hx)

        batch_dim, time_dim = (0, 1) if self.batch_first else (1, 0)
        total_length = input.shape[time_dim]
        # pack_padded_sequence wants CPU int64 lengths; the copy is tiny.
        lengths_cpu = as_lengths(lengths).cpu()
        check_lengths(lengths_cpu, total_length, input.shape[batch_dim])
        packed = pack_padded_sequence(input, lengths_cpu, batch_first=self.batch_first, enforce_sorted=False)
        packed_output, h_n = self.rnn(packed, hx)
        output, _ = pad_packed_sequence(packed_output, batch_first=self.batch_first, total_length=total_length)
        return output, h_n

    def extra_repr(self) -> str:
        parts = [f"cell={self.cell!r}", f"input_size={self.input_size}", f"hidden_size={self.hidden_size}"]
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        if self.batch_first:
            parts.append("batch_first=True")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        if self.bidirectional:
            parts.append("bidirectional=True")
        if self.proj_size:
            parts.append(f"proj_size={self.proj_size}")
        if not self.bias:
            parts.append("bias=False")
        parts.append(f"init={self.init!r}")
        return ", ".join(parts)


__all__ = ["CELLS", "INITS", "RecurrentEncoder"]
