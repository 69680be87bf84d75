"""sLSTM: xLSTM's scalar-memory LSTM, with exponential gating, a normaliser state and block-diagonal recurrence.

Beck, Poeppel, Spanring, Auer, Prudnikova, Kopp, Klambauer, Brandstetter and Hochreiter (2024), "xLSTM: Extended
Long Short-Term Memory" (arXiv:2405.04517), section 2.2. Per layer and direction, with the hidden units split into
``heads`` heads whose recurrent matrices R are block-diagonal (each head's units read only their own head's h)::

    z_t  = tanh(W_z x_t + R_z h_{t-1} + b_z)                 cell input
    i~_t = W_i x_t + R_i h_{t-1} + b_i                       input-gate pre-activation (exponential gate)
    f~_t = W_f x_t + R_f h_{t-1} + b_f                       forget-gate pre-activation
    o_t  = sigmoid(W_o x_t + R_o h_{t-1} + b_o)              output gate
    log f_t = logsigmoid(f~_t)   (forget_gate="sigmoid")   or   f~_t   (forget_gate="exp")
    m_t  = max(log f_t + m_{t-1}, i~_t)                      stabiliser
    i'_t = exp(i~_t - m_t),   f'_t = exp(log f_t + m_{t-1} - m_t)
    c_t  = f'_t c_{t-1} + i'_t z_t                           cell state
    n_t  = f'_t n_{t-1} + i'_t                               normaliser state
    h_t  = o_t * c_t / n_t

The stabiliser rescales c and n by the same factor exp(-m_t), so h_t is the unstabilised ``o_t C_t / N_t`` of the
paper's exponential gates, while every exponent is <= 0: huge pre-activations give finite outputs and gradients.

Empty memory (the first step): a state whose normaliser is n = 0 holds nothing, so the step from it takes
``m_{-1} = -inf``, i.e. ``m_0 = i~_0``, ``i'_0 = 1``, ``f'_0 = 0`` and ``c_0 = z_0``, ``n_0 = 1`` (per unit; the
official code makes the same choice with ``m_0 = i~_0`` when its whole state batch has n = 0). After any step
n_t >= 1 (one of i'_t, f'_t is exactly 1 and the other term is >= 0), so the division by n stays finite (and
|h_t| <= 1 from an empty memory: c_t / n_t is a weighted mean of the z's), and n = 0 marks an empty memory exactly:
the all-zero state of :meth:`~StackedRecurrence.initial_state` is a fresh start and a continued state (``hx``) is
taken as it is, so a sequence run in pieces equals the whole.

Computation: ``W x_t + b`` of every step is one matrix product before the loop; the loop over time
(:func:`slstm_forward_loop`, TorchScript) does one batched matrix product per step over the heads (``baddbmm`` of h
(heads, N, H/heads) with R (heads, H/heads, 4 H/heads), the pre-activations as its ``input``) plus the pointwise gates.
The recurrence is inherently sequential (every gate reads h_{t-1}). Backward is written out
(:func:`slstm_backward_loop`, a TorchScript loop backward in time with one batched product per step); the gradient of R
is then one batched product over all steps, and only the states and gate pre-activations of each step are kept (8 H
numbers per step and sequence), so memory stays linear in L. It is first-order only (``once_differentiable``). Measured
on CPU against autograd through the same loop, it trains at about the same speed (a few percent faster at L = 2048) with
about half the saved memory.

Parameters, per layer k and direction (suffix ``_l{k}[_reverse]``, torch's naming):

- ``weight_ih`` (4H, H_in): W, gate blocks in the order i, f, z, o (as the official code's ``i, f, z, o``);
- ``bias_ih`` (4H,): b, same order (with ``bias=True``);
- ``weight_hh`` (heads, H/heads, 4 H/heads): head j's recurrent matrices, applied as
  ``h_{t-1}[head j] @ weight_hh[j]``, columns in the order i, f, z, o (the official ``(heads, dh, gates, dh)`` layout).
  :class:`~seqmodels.nn.regularization.WeightDrop` reaches it by name and drops its entries, i.e. DropConnect on the
  non-zero blocks of R.

Initialisation, ``init="torch"`` (the default): that of the official PyTorch implementation (NX-AI/xlstm, sLSTMLayer and
sLSTMCell): W ~ N(0, 2 / (5 H_in)) ("small init", the layer's gate projections), R ~ U(-1/sqrt(H), 1/sqrt(H)) (its
``recurrent_weight_init="standard"``; chosen over its default R = 0, with which h_{t-1} reaches no gate at the start, so
an ``hx``'s h would carry nothing and no gradient), b_i = b_z = b_o = 0 and the default "powerlaw_blockdependent" forget
bias: in every head, unit u of H/heads gets ``b_f = 5 - 12 (u / (H/heads - 1)) ** (0.3 + 1.3 r)`` with r = k /
(num_layers - 1) the layer's depth in [0, 1] (0 for one layer), so retention times range from long (b_f = 5) to short
(b_f = -7) and deeper layers lean long. (With H/heads = 1 the unit gets b_f = 5.) ``init="orthogonal"``: the same
biases, Xavier-uniform W per gate block and an orthogonal R per head and gate block, for a recurrence that is active
from the start.

Padding: padded steps are all trailing inside :meth:`SLSTM.run_direction`, so the loop runs up to the longest
sequence (through the shorter ones' padded steps), the output is set to 0 at padded steps and each sequence's final
state is gathered at its last valid step; the reverse direction runs each sequence reversed within its length.

Export: while exporting (:func:`~seqmodels.nn.stacked.is_traceable`) the loop runs as
:func:`traceable_slstm_loop`, the same steps through torch's scan operator (an ONNX ``Scan`` over a dynamic length),
over the whole padded length.

Shapes: N = batch, L = sequence length, D = 2 if bidirectional else 1, H_in = input_size, H = hidden_size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from seqmodels.nn.scan_cells import step_scan
from seqmodels.nn.stacked import StackedRecurrence, is_traceable

SLSTM_CELLS = ("slstm",)
SLSTM_INITS = ("torch", "orthogonal")
FORGET_GATES = ("sigmoid", "exp")


def slstm_step(
    pre_t: Tensor, h: Tensor, c: Tensor, n: Tensor, m: Tensor, recurrent: Tensor, exp_forget: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One sLSTM step from ``pre_t`` = W x_t + b (heads, N, 4 dh) and the state h, c, n, m (heads, N, dh).

    Returns the new h, c, n, m and the gate pre-activations (heads, N, 4 dh). log sigmoid is written
    ``-softplus(-x)``: stable at any x, and what ONNX export can take (its ``logsigmoid`` is Log(Sigmoid(x)),
    -inf below x = -88 in float32). Scripted inside :func:`slstm_forward_loop`, plain torch in the traceable form.
    """
    gates = torch.baddbmm(pre_t, h, recurrent)
    i_pre, f_pre, z_pre, o_pre = gates.chunk(4, dim=2)
    log_f_m = (f_pre if exp_forget else -F.softplus(-f_pre)) + m
    m = torch.maximum(log_f_m, i_pre)
    i_gate = torch.exp(i_pre - m)
    f_gate = torch.exp(log_f_m - m)
    c = f_gate * c + i_gate * torch.tanh(z_pre)
    n = f_gate * n + i_gate
    h = torch.sigmoid(o_pre) * (c / n)
    return h, c, n, m, gates


@torch.jit.script
def slstm_forward_loop(
    pre: Tensor, recurrent: Tensor, h: Tensor, c: Tensor, n: Tensor, m: Tensor, exp_forget: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The sLSTM loop over dim 0 of ``pre`` (T, heads, N, 4 dh), every step's ``W x_t + b`` (gates i, f, z, o per head).

    ``recurrent`` (heads, dh, 4 dh); h, c, n, m (heads, N, dh) the state at t = -1, with m = -inf at an empty memory.
    Returns the states h, c, n, m of every step, each (T, heads, N, dh), and every step's gate pre-activations
    (T, heads, N, 4 dh) for :func:`slstm_backward_loop`.
    """
    hs: list[Tensor] = []
    cs: list[Tensor] = []
    ns: list[Tensor] = []
    ms: list[Tensor] = []
    gates_all: list[Tensor] = []
    # unbind, not pre[t]: one view per step without indexing overhead.
    for pre_t in pre.unbind(0):
        h, c, n, m, gates = slstm_step(pre_t, h, c, n, m, recurrent, exp_forget)
        hs.append(h)
        cs.append(c)
        ns.append(n)
        ms.append(m)
        gates_all.append(gates)
    return torch.stack(hs), torch.stack(cs), torch.stack(ns), torch.stack(ms), torch.stack(gates_all)


@torch.jit.script
def slstm_backward_loop(
    grad_h: Tensor,
    grad_c: Tensor,
    grad_n: Tensor,
    grad_m: Tensor,
    gates_all: Tensor,
    recurrent: Tensor,
    c0: Tensor,
    n0: Tensor,
    m0: Tensor,
    cs: Tensor,
    ns: Tensor,
    ms: Tensor,
    exp_forget: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Backward of :func:`slstm_forward_loop` in time: ``grad_*`` (T, heads, N, dh) reach each step's states from
    outside the loop. Returns the gradients of the gate pre-activations (T, heads, N, 4 dh) and of h, c, n, m at
    t = -1. The derivative of m_t = max(log f_t + m_{t-1}, i~_t) goes to the larger argument (i~_t at a tie)."""
    recurrent_t = recurrent.transpose(1, 2)
    dh = torch.zeros_like(c0)
    dc = torch.zeros_like(c0)
    dn = torch.zeros_like(c0)
    dm = torch.zeros_like(c0)
    grads: list[Tensor] = []
    for t in range(gates_all.shape[0] - 1, -1, -1):
        if t > 0:
            c_prev, n_prev, m_prev = cs[t - 1], ns[t - 1], ms[t - 1]
        else:
            c_prev, n_prev, m_prev = c0, n0, m0
        i_pre, f_pre, z_pre, o_pre = gates_all[t].chunk(4, dim=2)
        m, c, n = ms[t], cs[t], ns[t]
        log_f_m = (f_pre if exp_forget else F.logsigmoid(f_pre)) + m_prev
        i_gate = torch.exp(i_pre - m)
        f_gate = torch.exp(log_f_m - m)
        z = torch.tanh(z_pre)
        o = torch.sigmoid(o_pre)
        ratio = c / n
        dh = dh + grad_h[t]
        d_o = dh * ratio * o * (1 - o)
        d_ratio = dh * o / n
        dc = dc + grad_c[t] + d_ratio
        dn = dn + grad_n[t] - d_ratio * ratio
        d_f_exp = (dc * c_prev + dn * n_prev) * f_gate  # d/d(log f_t + m_{t-1} - m_t)
        d_i_exp = (dc * z + dn) * i_gate  # d/d(i~_t - m_t)
        d_z = dc * i_gate * (1 - z * z)
        dm = dm + grad_m[t] - d_i_exp - d_f_exp
        take_f = log_f_m > i_pre
        zero = torch.zeros_like(dm)
        d_log_f_m = d_f_exp + torch.where(take_f, dm, zero)
        d_i = d_i_exp + torch.where(take_f, zero, dm)
        d_f = d_log_f_m if exp_forget else d_log_f_m * torch.sigmoid(-f_pre)
        d_gates = torch.cat([d_i, d_f, d_z, d_o], dim=2)
        grads.append(d_gates)
        dh = torch.bmm(d_gates, recurrent_t)
        dc = dc * f_gate
        dn = dn * f_gate
        dm = d_log_f_m
    grads.reverse()
    return torch.stack(grads), dh, dc, dn, dm


def traceable_slstm_loop(
    pre: Tensor, recurrent: Tensor, h: Tensor, c: Tensor, n: Tensor, m: Tensor, exp_forget: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`slstm_forward_loop`'s states h, c, n, m of every step through torch's scan operator
    (:func:`~seqmodels.nn.scan_cells.step_scan`), which traces with a dynamic T (the TorchScript loop does not)."""

    def step(state: tuple[Tensor, Tensor, Tensor, Tensor], pre_t: Tensor):
        h, c, n, m, _ = slstm_step(pre_t, *state, recurrent, exp_forget)
        return (h, c, n, m), (h.clone(), c.clone(), n.clone(), m.clone())  # outputs may not alias the state

    _, (hs, cs, ns, ms) = step_scan(step, (h, c, n, m), pre)
    return hs, cs, ns, ms


class _SLSTMLoop(torch.autograd.Function):
    """:func:`slstm_forward_loop` with :func:`slstm_backward_loop` as its backward; the recurrent weights' gradient
    is one batched product over all steps after the loop."""

    @staticmethod
    def forward(ctx, pre, recurrent, h, c, n, m, exp_forget: bool):
        hs, cs, ns, ms, gates_all = slstm_forward_loop(pre, recurrent, h, c, n, m, exp_forget)
        ctx.exp_forget = exp_forget
        ctx.save_for_backward(recurrent, h, c, n, m, hs, cs, ns, ms, gates_all)
        return hs, cs, ns, ms

    @staticmethod
    @once_differentiable  # the saved steps are not part of a graph: refuse double backward rather than get it wrong
    def backward(ctx, grad_h, grad_c, grad_n, grad_m):
        recurrent, h0, c0, n0, m0, hs, cs, ns, ms, gates_all = ctx.saved_tensors
        grads = [g if g is not None else torch.zeros_like(hs) for g in (grad_h, grad_c, grad_n, grad_m)]
        d_gates, dh0, dc0, dn0, dm0 = slstm_backward_loop(
            *grads, gates_all, recurrent, c0, n0, m0, cs, ns, ms, ctx.exp_forget
        )
        d_recurrent = None
        if ctx.needs_input_grad[1]:
            # sum_t h_{t-1}^T dgates_t per head: (heads, dh, T N) @ (heads, T N, 4 dh)
            T, heads, N, dh = hs.shape
            h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]]).permute(1, 3, 0, 2).reshape(heads, dh, T * N)
            d_recurrent = torch.bmm(h_prev, d_gates.permute(1, 0, 2, 3).reshape(heads, T * N, 4 * dh))
        return d_gates, d_recurrent, dh0, dc0, dn0, dm0, None


class SLSTM(StackedRecurrence):
    """A multi-layer sLSTM (Beck et al. 2024, xLSTM): exponential input gate, normaliser, stabiliser, heads.

    The ``cell="slstm"`` engine of :class:`~seqmodels.nn.RecurrentEncoder` (usable on its own); equations,
    initialisation and parameter layout in the module docstring. The state is ``(h, c, n, m)``, each
    (D * num_layers, N, H); the all-zero state is an empty memory.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: as for ``torch.nn.LSTM``.
        residual, norm, ffn_expansion: the block options of :class:`~seqmodels.nn.stacked.StackedRecurrence` (the
            paper's sLSTM blocks: pre-LayerNorm, residual, a 4/3 up-projection MLP).
        init: ``"torch"`` (the official code's: small-init W, uniform R, power-law forget bias) or ``"orthogonal"``.
        heads: heads of the block-diagonal recurrent matrices (the paper's blocks use 4); must divide hidden_size.
        forget_gate: ``"sigmoid"`` (log f = logsigmoid(f~), the paper's experiments and the official default) or
            ``"exp"`` (log f = f~).
    """

    cells = SLSTM_CELLS
    inits = SLSTM_INITS
    state_names = ("h", "c", "n", "m")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        heads: int = 4,
        forget_gate: str = "sigmoid",
        cell: str = "slstm",
        **options,
    ) -> None:
        if not isinstance(heads, int) or isinstance(heads, bool) or heads < 1:
            raise ValueError(f"heads must be an integer >= 1, got {heads!r}; e.g. cell_options={{'heads': 4}}")
        if hidden_size % heads:
            raise ValueError(
                f"hidden_size={hidden_size} is not divisible by heads={heads} (sLSTM's block-diagonal recurrence); "
                f"set cell_options={{'heads': h}} with h dividing {hidden_size}, or change hidden_size"
            )
        if forget_gate not in FORGET_GATES:
            raise ValueError(
                f"forget_gate must be one of {', '.join(FORGET_GATES)} (default sigmoid), got {forget_gate!r}"
            )
        self.heads = heads
        self.forget_gate = forget_gate
        super().__init__(cell, input_size, hidden_size, num_layers, **options)
        self.build()

    def state_sizes(self) -> tuple[int, ...]:
        H = self.hidden_size
        return (H, H, H, H)

    def build_direction(self, suffix: str, input_size: int) -> None:
        H, dh = self.hidden_size, self.hidden_size // self.heads
        self.register_parameter(f"weight_ih{suffix}", nn.Parameter(torch.empty(4 * H, input_size)))
        if self.bias:
            self.register_parameter(f"bias_ih{suffix}", nn.Parameter(torch.empty(4 * H)))
        self.register_parameter(f"weight_hh{suffix}", nn.Parameter(torch.empty(self.heads, dh, 4 * dh)))

    def forget_bias(self, layer: int) -> Tensor:
        """One head's power-law forget-gate bias (H/heads,) in layer ``layer`` (official "powerlaw_blockdependent")."""
        dh = self.hidden_size // self.heads
        depth = layer / (self.num_layers - 1) if self.num_layers > 1 else 0.0
        return 5.0 - 12.0 * torch.linspace(0.0, 1.0, dh, dtype=torch.float64) ** (0.3 + 1.3 * depth)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        H = self.hidden_size
        for name, param in self.named_parameters():
            data = param.data
            if name.startswith("weight_ih"):
                if self.init == "torch":  # official small_init_init_: N(0, sqrt(2 / (5 dim)))
                    nn.init.normal_(data, 0.0, math.sqrt(2.0 / (5.0 * data.shape[1])))
                else:
                    for block in data.chunk(4, dim=0):
                        nn.init.xavier_uniform_(block)
            elif name.startswith("weight_hh"):
                if self.init == "torch":  # official recurrent_weight_init="standard" (see the module docstring)
                    bound = 1.0 / math.sqrt(self.hidden_size)
                    nn.init.uniform_(data, -bound, bound)
                else:
                    for head in data:
                        for block in head.chunk(4, dim=1):
                            nn.init.orthogonal_(block)
            elif name.startswith("bias_ih"):
                layer = int(name.split("_l")[1].split("_")[0])
                nn.init.zeros_(data)
                data[H : 2 * H].copy_(self.forget_bias(layer).repeat(self.heads).to(data.dtype))

    def run_direction(
        self, suffix: str, x: Tensor, state: tuple[Tensor, ...] | None, mask: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        N, L, H = x.shape[0], x.shape[1], self.hidden_size
        heads, dh = self.heads, H // self.heads
        weight = getattr(self, f"weight_ih{suffix}")
        bias = getattr(self, f"bias_ih{suffix}") if self.bias else None
        recurrent = getattr(self, f"weight_hh{suffix}")
        # Rows gate-major (i, f, z, o) x (heads, dh) -> head-major (heads, gates, dh), the layout the loop slices.
        weight = weight.view(4, heads, dh, -1).transpose(0, 1).reshape(4 * H, -1)
        if bias is not None:
            bias = bias.view(4, heads, dh).transpose(0, 1).reshape(4 * H)
        steps = L
        traceable = is_traceable(self)
        if mask is not None:
            lengths = mask.sum(1).view(N)
            if not traceable:  # a traced graph cannot size a tensor by the lengths' values
                steps = int(lengths.max())  # nothing after the longest sequence needs computing
                x = x[:, :steps]
        # Every step's W x_t + b at once, time- and head-major: (T, heads, N, 4 dh).
        pre = F.linear(x, weight, bias).view(N, steps, heads, 4 * dh).permute(1, 2, 0, 3).contiguous()
        if state is None:
            zeros = x.new_zeros(heads, N, dh)
            h, c, n, m = zeros, zeros, zeros, zeros
        else:
            h, c, n, m = (s.reshape(N, heads, dh).transpose(0, 1).contiguous() for s in state)
        # An empty memory (n = 0): m_{-1} = -inf, so m_0 = i~_0 and f'_0 = 0 (see the module docstring).
        m = torch.where(n == 0, torch.full_like(m, -math.inf), m)
        if traceable:
            hs, cs, ns, ms = traceable_slstm_loop(pre, recurrent, h, c, n, m, self.forget_gate == "exp")
        else:
            hs, cs, ns, ms = _SLSTMLoop.apply(pre, recurrent, h, c, n, m, self.forget_gate == "exp")
        out = hs.permute(2, 0, 1, 3).reshape(N, steps, H)
        if mask is None:
            final = tuple(s[-1] for s in (hs, cs, ns, ms))
        else:
            # Each sequence's state at its last valid step.
            index = (lengths - 1).view(1, 1, N, 1).expand(1, heads, N, dh)
            final = tuple(s.gather(0, index)[0] for s in (hs, cs, ns, ms))
            out = torch.where(mask[:, :steps], out, out.new_zeros(()))
            if not traceable and steps < L:
                out = F.pad(out, (0, 0, 0, L - steps))
        return out, tuple(s.transpose(0, 1).reshape(N, H) for s in final)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", heads={self.heads}, forget_gate={self.forget_gate!r}"


__all__ = [
    "FORGET_GATES",
    "SLSTM",
    "SLSTM_CELLS",
    "SLSTM_INITS",
    "slstm_backward_loop",
    "slstm_forward_loop",
    "traceable_slstm_loop",
]
