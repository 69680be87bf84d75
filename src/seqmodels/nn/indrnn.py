"""IndRNN: an independently recurrent network, each hidden unit recurring only on itself.

Li, Li, Cook, Zhu and Gao (2018), "Independently Recurrent Neural Network (IndRNN): Building A Longer and Deeper
RNN" (CVPR 2018, arXiv:1803.04831) replace the recurrent matrix of a ReLU RNN by a vector ``u`` (an elementwise
product), so the units of a layer are independent of each other over time and interact only through the stacking of
layers::

    h_t = relu(W x_t + b + u * h_{t-1})          (paper, eq. 2; * is the elementwise product)

with W (H, H_in), b (H,) and u (H,). The input projection ``W x_t + b`` of every step is one matrix product over
the whole sequence; what is left is an elementwise loop over time (:func:`indrnn_recurrence`, TorchScript), O(L * H)
work per sequence instead of the O(L * H^2) of a classic cell.

Initialisation: u ~ U(0, 1) and b = 0 (the paper's choice for ReLU IndRNNs; with ``recurrent_max_abs`` set,
u ~ U(0, min(1, recurrent_max_abs))); W as ``nn.Linear`` (``init="torch"``, the default) or Xavier-uniform
(``init="orthogonal"``, as :class:`~seqmodels.nn.RecurrentEncoder` treats input weights). ``recurrent_max_abs``
clips |u| at every forward, the paper's constraint against exploding (|u| <= 2^(1/T) keeps h from growing by more than
a factor 2 over T steps of ReLU recurrence); None: no clipping.

Padding: at a padded step the state passes through unchanged and the output is 0, so the state after the last step
is each sequence's state at its last valid step, and the reverse direction runs each sequence reversed within its
length.

Export: while exporting (:func:`~seqmodels.nn.stacked.is_traceable`) the loop runs as
:func:`traceable_indrnn_recurrence`, the same steps through torch's scan operator (an ONNX ``Scan`` over a dynamic
length), since the TorchScript loop does not trace.

Shapes: N = batch, L = sequence length, D = 2 if bidirectional else 1, H_in = input_size, H = hidden_size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmodels.nn.scan_cells import is_traceable, step_scan
from seqmodels.nn.stacked import StackedRecurrence

INDRNN_CELLS = ("indrnn",)
INDRNN_INITS = ("torch", "orthogonal")


@torch.jit.script
def indrnn_recurrence(pre: Tensor, u: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """h_t = relu(pre_t + u * h_{t-1}) along dim 0 of a time-major pre (L, N, H), from h_{-1} = h (N, H).

    Returns ``(output (L, N, H), h_last (N, H))``.
    """
    outputs: list[Tensor] = []
    # Steps as a list of views: indexing pre[t] inside the loop makes autograd's backward quadratic in L (each
    # step's gradient would be scattered into a full-size zero tensor).
    for pre_t in pre.unbind(0):
        h = torch.relu(pre_t + u * h)
        outputs.append(h)
    return torch.stack(outputs), h


def traceable_indrnn_recurrence(pre: Tensor, u: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`indrnn_recurrence` through torch's scan operator (:func:`~seqmodels.nn.scan_cells.step_scan`), which
    traces with a dynamic L (the TorchScript loop does not)."""

    def step(h: Tensor, pre_t: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.relu(torch.addcmul(pre_t, u, h))
        return h, h.clone()  # an output may not alias the carried state

    h_last, outputs = step_scan(step, h, pre)
    return outputs, h_last


class IndRNN(StackedRecurrence):
    """A multi-layer IndRNN (Li et al. 2018): ``h_t = relu(W x_t + b + u * h_{t-1})`` per layer and direction.

    The ``cell="indrnn"`` engine of :class:`~seqmodels.nn.RecurrentEncoder` (usable on its own). Weights are named
    like torch's RNNs: ``weight_ih_l{k}[_reverse]`` (H, H_in of layer k), ``bias_ih_l{k}...`` (H,) and
    ``weight_hh_l{k}...``, the recurrent vector u (H,).

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: as for ``torch.nn.RNN``.
        residual, norm, ffn_expansion: the block options of :class:`~seqmodels.nn.stacked.StackedRecurrence` (the
            paper's deep IndRNNs are residual).
        init: ``"torch"`` (W as ``nn.Linear``) or ``"orthogonal"`` (Xavier-uniform W); both: b = 0, u ~ U(0, 1).
        recurrent_max_abs: clip |u| to this bound at every forward (the paper's 2^(1/T) constraint); None: no clip.

    Inputs ``input, hx=None, lengths=None``; outputs ``output, h_n`` as for ``torch.nn.RNN``: output (N, L, D * H)
    if batch_first else (L, N, D * H), exactly 0 at padded steps; h_n (D * num_layers, N, H), each direction's state
    at its last valid step (for the reverse direction: at step 0).
    """

    cells = INDRNN_CELLS
    inits = INDRNN_INITS

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        recurrent_max_abs: float | None = None,
        cell: str = "indrnn",
        **options,
    ) -> None:
        if recurrent_max_abs is not None and not recurrent_max_abs > 0:
            raise ValueError(f"recurrent_max_abs must be > 0 or None, got {recurrent_max_abs!r}")
        super().__init__(cell, input_size, hidden_size, num_layers, **options)
        self.recurrent_max_abs = recurrent_max_abs
        self.build()

    def build_direction(self, suffix: str, input_size: int) -> None:
        H = self.hidden_size
        self.register_parameter(f"weight_ih{suffix}", nn.Parameter(torch.empty(H, input_size)))
        if self.bias:
            self.register_parameter(f"bias_ih{suffix}", nn.Parameter(torch.empty(H)))
        self.register_parameter(f"weight_hh{suffix}", nn.Parameter(torch.empty(H)))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        u_max = 1.0 if self.recurrent_max_abs is None else min(1.0, float(self.recurrent_max_abs))
        for name, param in self.named_parameters():
            if name.startswith("weight_hh"):
                nn.init.uniform_(param.data, 0.0, u_max)
            elif name.startswith("bias_ih"):
                nn.init.zeros_(param.data)
            elif not name.startswith("weight_ih"):
                continue
            elif self.init == "torch":  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                bound = 1.0 / math.sqrt(param.shape[1])
                nn.init.uniform_(param.data, -bound, bound)
            else:
                nn.init.xavier_uniform_(param.data)

    def run_direction(
        self, suffix: str, x: Tensor, state: tuple[Tensor, ...] | None, mask: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        weight = getattr(self, f"weight_ih{suffix}")
        bias = getattr(self, f"bias_ih{suffix}") if self.bias else None
        u = getattr(self, f"weight_hh{suffix}")
        if self.recurrent_max_abs is not None:
            u = u.clamp(-self.recurrent_max_abs, self.recurrent_max_abs)
        pre = F.linear(x.transpose(0, 1), weight, bias)  # (L, N, H): every step's W x_t + b at once
        h_0 = x.new_zeros(x.shape[0], self.hidden_size) if state is None else state[0]
        recurrence = traceable_indrnn_recurrence if is_traceable(self) else indrnn_recurrence
        out, h_last = recurrence(pre, u, h_0)
        out = out.transpose(0, 1)
        if mask is not None:
            # Padding only follows a sequence's valid steps, so no valid output sees it: the loop runs over the whole
            # padded length (no per-step select), the padded outputs are zeroed and the state is read at the last
            # valid step.
            out = out * mask
            last = (mask.sum(1, keepdim=True) - 1).expand(-1, 1, out.shape[-1])
            h_last = out.gather(1, last).squeeze(1)
        return out, (h_last,)

    def extra_repr(self) -> str:
        extra = super().extra_repr()
        return extra + (f", recurrent_max_abs={self.recurrent_max_abs}" if self.recurrent_max_abs is not None else "")


__all__ = ["INDRNN_CELLS", "INDRNN_INITS", "IndRNN", "indrnn_recurrence", "traceable_indrnn_recurrence"]
