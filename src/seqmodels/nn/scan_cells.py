"""Gated linear recurrences that train with a parallel scan: minGRU and minLSTM.

Feng, Tung, Ahmed, Bengio and Hajimirsadeghi (2024), "Were RNNs All We Needed?" (arXiv:2410.01201) strip the
hidden-state dependence out of the GRU's and LSTM's gates. Every gate then depends on x_t only, so the recurrence
is linear in h, ``h_t = a_t * h_{t-1} + b_t``, and a whole sequence is computed with a scan over time instead of
a loop of matrix products. This module implements the paper's log-space variants (the ones its reference code
trains), with ``g`` keeping the candidate state positive::

    g(x) = x + 0.5 if x >= 0 else sigmoid(x)

    minGRU:   z_t  = sigmoid(Linear_z(x_t))                  update gate
              h~_t = g(Linear_h(x_t))                        candidate state
              h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

    minLSTM:  f_t  = sigmoid(Linear_f(x_t)),  i_t = sigmoid(Linear_i(x_t))
              f'_t = f_t / (f_t + i_t),       i'_t = i_t / (f_t + i_t)      (normalised: time-independent scale)
              h~_t = g(Linear_h(x_t))
              h_t  = f'_t * h_{t-1} + i'_t * h~_t

Since f'_t + i'_t = 1, minLSTM is minGRU with ``z_t = i'_t = sigmoid(log i_t - log f_t)``, and the log-gates are
formed in log space as the paper does (``log sigmoid(k) = -softplus(-k)``), so saturated gates neither overflow
nor divide 0 by 0: ``u_t = softplus(-k_f) - softplus(-k_i)``, ``z_t = sigmoid(u_t)``.

The scan (:func:`linear_scan`) is chunked: the sequence is cut into chunks of about sqrt(L) steps; every chunk is
scanned from a zero state at once (a loop over the steps of one chunk, all chunks and channels in parallel), the
chunk-start states follow from a short loop over chunk boundaries, and a cumulative product of the coefficients
carries them into each chunk. It multiplies and adds coefficients in [0, 1] only, never divides by a product of
gates or exponentiates a sum of logs, so it is exact in form and stays finite where gates saturate (a coefficient
that underflows to 0 is the correct limit); Heinsen's (2023) ``cumsum``/``logcumsumexp`` form is equally stable but
needs positive states (an ``hx`` may be negative) and, differentiated by autograd, ran about 7x slower here
(``scripts/benchmark_modern_cells.py``). A layer (:func:`min_rnn_layer`) runs block by block over time, about
1024 (batch x step) rows at a time, so the projection, the gates and the scan of a block stay in cache; its
backward, written out in :class:`_MinRNNLayer`, is a second scan backward in time plus the gate derivatives. Training
thus costs the input projection's matrix products (a quarter of an LSTM's at H_in = H) plus O(L) elementwise work,
and memory linear in L.

Padding: at a padded step the update gate is 0, so ``a_t = 1, b_t = 0``: the state passes through unchanged, the
state at the last step is each sequence's state at its last valid step, and the reverse direction scans each
sequence reversed within its length.

Initialisation: ``init="torch"`` (the default for these cells) is the paper's: its reference code builds the gate
projections from ``nn.Linear``, i.e. U(-1/sqrt(H_in), 1/sqrt(H_in)) weights and biases. ``init="orthogonal"``
treats them as :class:`~seqmodels.nn.RecurrentEncoder` treats input weights: Xavier-uniform per gate, zero biases.

Export (:func:`is_traceable`): the fused layer and the in-place scan do not trace, so while exporting the layer
runs as plain torch ops around :func:`traceable_linear_scan`, the same recurrence one step at a time through torch's
scan operator (an ONNX ``Scan`` over a dynamic length; :func:`step_scan` says why not a ``cumsum`` closed form).

Shapes: N = batch, L = sequence length, D = 2 if bidirectional else 1, H_in = input_size, H = hidden_size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmodels.nn.stacked import StackedRecurrence, is_traceable

SCAN_CELLS = ("mingru", "minlstm")
SCAN_INITS = ("torch", "orthogonal")
# Gate blocks stacked in weight_ih (rows): minGRU [z, h~], minLSTM [f, i, h~].
_BLOCKS = {"mingru": 2, "minlstm": 3}


def g(x: Tensor) -> Tensor:
    """The paper's candidate activation: ``x + 0.5`` for x >= 0, ``sigmoid(x)`` below (continuous, always > 0)."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def _g_grad(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return torch.where(x >= 0, torch.ones_like(x), s * (1 - s))


def update_gate(cell: str, pre: Tensor, hidden_size: int) -> tuple[Tensor, Tensor]:
    """Splits the input projection ``pre`` (..., blocks * H) into the update-gate logit u and the candidate logit.

    minGRU: u = k_z. minLSTM: u = log i - log f = softplus(-k_f) - softplus(-k_i), so that sigmoid(u) = i'_t and
    sigmoid(-u) = f'_t. In both cells h_t = (1 - sigmoid(u_t)) * h_{t-1} + sigmoid(u_t) * g(k_h).
    """
    H = hidden_size
    if cell == "mingru":
        return pre[..., :H], pre[..., H:]
    k_f, k_i, k_h = pre[..., :H], pre[..., H : 2 * H], pre[..., 2 * H :]
    return F.softplus(-k_f) - F.softplus(-k_i), k_h


# --- the scan ------------------------------------------------------------------------------------------------------


def _layout(steps: int) -> tuple[int, int]:
    """(C, K): K chunks of C steps covering ``steps``; C about sqrt(steps), a divisor of it when one is close."""
    C = max(1, min(64, math.isqrt(steps)))
    for c in range(C, max(1, C // 2) - 1, -1):
        if steps % c == 0:
            return c, steps // c
    return C, -(-steps // C)


@torch.no_grad()
def _scan_(a: Tensor, h: Tensor, h0: Tensor | None = None, reverse: bool = False) -> Tensor:
    """In place: h_t <- a_t * h_{t-1} + h_t along dim 1 of contiguous (N, L, H) tensors, from h_{-1} = h0 (N, H).

    ``reverse``: h_t <- a_t * h_{t+1} + h_t from h_L = h0. Chunked: every chunk of C steps is scanned from a zero
    state (all chunks at once), the chunk-start states follow from a loop over the K chunks, and a running product
    of the coefficients adds each chunk's start state to its steps. Only products and sums of the coefficients are
    formed, so gates in [0, 1] keep every intermediate bounded.
    """
    N, L, H = h.shape
    if L == 1:
        if h0 is not None:
            h.addcmul_(a, h0.unsqueeze(1))
        return h
    C, K = _layout(L)
    work = h
    if K * C != L:  # whole chunks: identity steps (a = 1, b = 0) after the end change nothing before them
        a = F.pad(a, (0, 0, 0, K * C - L), value=1.0)
        work = F.pad(h, (0, 0, 0, K * C - L))
    a4, h4 = a.view(N, K, C, H), work.view(N, K, C, H)
    order = range(C - 1, -1, -1) if reverse else range(C)
    # 1. Every chunk from a zero state; ``total`` = the product of its coefficients.
    total = a4[:, :, order[0]].clone()
    for prev, c in zip(order[:-1], order[1:], strict=True):
        h4[:, :, c].addcmul_(a4[:, :, c], h4[:, :, prev])
        total.mul_(a4[:, :, c])
    # 2. The state entering each chunk.
    start = h.new_zeros(N, K, H)
    chunks = range(K - 1, -1, -1) if reverse else range(K)
    if h0 is not None:
        start[:, chunks[0]] = h0
    for prev, k in zip(chunks[:-1], chunks[1:], strict=True):
        torch.addcmul(h4[:, prev, order[-1]], total[:, prev], start[:, prev], out=start[:, k])
    # 3. Each chunk's start state carried to its steps.
    if K > 1 or h0 is not None:
        for c in order:
            start.mul_(a4[:, :, c])
            h4[:, :, c].add_(start)
    if work is not h:
        h.copy_(work[:, :L])
    return h


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor | None) -> Tensor:
        a = a.contiguous()
        h = _scan_(a, b.contiguous().clone(), h0)
        ctx.has_h0 = h0 is not None
        ctx.save_for_backward(a, h, h0 if h0 is not None else h)
        return h

    @staticmethod
    def backward(ctx, grad_h: Tensor):
        a, h, h0 = ctx.saved_tensors
        # dL/dh_t through every later step: G_t = grad_t + a_{t+1} G_{t+1}, a scan backward in time.
        grad = _scan_(F.pad(a[:, 1:], (0, 0, 0, 1)), grad_h.contiguous().clone(), reverse=True)
        first = h0.unsqueeze(1) if ctx.has_h0 else h.new_zeros(h.shape[0], 1, h.shape[2])
        grad_a = grad * torch.cat([first, h[:, :-1]], dim=1) if ctx.needs_input_grad[0] else None
        grad_h0 = a[:, 0] * grad[:, 0] if ctx.has_h0 else None
        return grad_a, grad, grad_h0


def traceable_logsigmoid(x: Tensor) -> Tensor:
    """log sigmoid(x) as ``-softplus(-x)``, for the traceable forms: torch's ONNX exporter writes ``logsigmoid`` as
    Log(Sigmoid(x)), which is -inf below x = -88 in float32, and ``softplus`` stably (x itself past a threshold)."""
    return -F.softplus(-x)


def step_scan(step, state: Tensor | tuple[Tensor, ...], inputs: tuple[Tensor, ...]) -> tuple:
    """``torch``'s scan operator over dim 0 of time-major ``inputs``: ``step(state, inputs_t) -> (state, outputs_t)``.

    Eagerly a loop over the steps; traced, one higher-order operator that ONNX export writes as a ``Scan`` over a
    dynamic length (the fused autograd Functions and in-place chunked scans of the engines do not trace, and a
    closed form through ``cumsum`` would lose float32 precision where saturated gates make the cumulative log-decay
    large). Returns ``(final state, stacked outputs)``.
    """
    from torch._higher_order_ops.scan import scan  # torch's scan operator has no public name yet

    # The operator wants initial states laid out like the states a step returns (contiguous) and none aliasing
    # another (an engine's zero state may be one tensor several times): fresh contiguous copies.
    if isinstance(state, tuple):
        state = tuple(part.clone(memory_format=torch.contiguous_format) for part in state)
    else:
        state = state.clone(memory_format=torch.contiguous_format)
    return scan(step, state, inputs)


def traceable_linear_scan(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """:func:`linear_scan` one step at a time through :func:`step_scan`: (N, L, H) -> (N, L, H), traceable with a
    dynamic L."""

    def step(h: Tensor, inputs: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        a_t, b_t = inputs
        h = torch.addcmul(b_t, a_t, h)
        return h, h.clone()  # an output may not alias the carried state

    h0 = a.new_zeros(a.shape[0], a.shape[2]) if h0 is None else h0
    _, h = step_scan(step, h0, (a.transpose(0, 1), b.transpose(0, 1)))
    return h.transpose(0, 1)


def linear_scan(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """h_t = a_t * h_{t-1} + b_t for t = 0..L-1 along dim 1, differentiable in a, b and h0.

    Args:
        a: (N, L, H) coefficients (in [0, 1] for gates: then every intermediate stays bounded at any length).
        b: (N, L, H) inputs.
        h0: (N, H) state before step 0; None: zeros.

    Returns h (N, L, H). The backward pass is a second scan, backward in time.
    """
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"linear_scan expects a and b of one (N, L, H) shape, got {tuple(a.shape)}, {tuple(b.shape)}")
    return _LinearScan.apply(a, b, h0)


def _gates(cell: str, pre: Tensor, hidden_size: int, mask: Tensor | None) -> tuple[Tensor, ...]:
    """(z, gk, k) of one block: update gate z_t (0 at padded steps) and candidate g(k_t), from pre (N, T, R)."""
    u, k = update_gate(cell, pre, hidden_size)
    z = torch.sigmoid(u)
    if mask is not None:
        z = z * mask
    return z, torch.maximum(k + 0.5, torch.sigmoid(k)), k  # g(k) = max(k + 0.5, sigmoid(k)), see g()


def _block_steps(batch: int, steps: int, on_cuda: bool = False) -> int:
    """Time steps per block: on the CPU about 1024 rows of the input projection, so a block's tensors stay in cache;
    on a GPU the whole sequence, since there every block's loop costs kernel launches, not cache misses."""
    if on_cuda:
        return max(1, steps)
    return max(1, min(steps, max(8, 1024 // max(1, batch))))


class _MinRNNLayer(torch.autograd.Function):
    """One direction of one minGRU/minLSTM layer: projection, gates and scan fused, block by block over time.

    Forward: per block of about 1024 (batch x step) rows, the input projection, the gates and a chunked scan from
    the previous block's last state, all in cache. Saved: the gates z_t and g(k_t) (minLSTM: and the projection)
    and the outputs. Backward: the blocks in reverse, each scanning dL/dh backward in time from the block to its
    right, and accumulating the weight gradients.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, mask, h0, cell: str, block_steps: int | None):
        N, L, features = x.shape
        H = weight.shape[0] // _BLOCKS[cell]
        T = min(L, block_steps) if block_steps else _block_steps(N, L, x.is_cuda)
        out = x.new_empty(N, L, H)
        pres = []
        state = h0
        for t0 in range(0, L, T):
            t1 = min(L, t0 + T)
            rows = x[:, t0:t1].reshape(-1, features)
            pre = torch.mm(rows, weight.t()) if bias is None else torch.addmm(bias, rows, weight.t())
            pre = pre.view(N, t1 - t0, -1)
            z, gk, _ = _gates(cell, pre, H, None if mask is None else mask[:, t0:t1])
            b = z * gk
            _scan_(1 - z, b, state)
            state = b[:, -1]
            out[:, t0:t1] = b if mask is None else b * mask[:, t0:t1]
            pres.append((z, gk, pre if cell == "minlstm" else None))
        ctx.cell, ctx.has_h0, ctx.has_bias, ctx.block = cell, h0 is not None, bias is not None, T
        ctx.pres = pres
        ctx.save_for_backward(x, weight, mask, h0, out)
        # the padded steps carried the state through, so this is each sequence's state at its last valid step
        return out, state.clone()

    @staticmethod
    def backward(ctx, grad_out, grad_last):
        x, weight, mask, h0, out = ctx.saved_tensors
        cell, T, pres = ctx.cell, ctx.block, ctx.pres
        N, L, features = x.shape
        H = weight.shape[0] // _BLOCKS[cell]
        need_x, need_w, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        grad_x = x.new_empty(N, L, features) if need_x else None
        grad_w = torch.zeros_like(weight) if need_w else None
        grad_b = weight.new_zeros(weight.shape[0]) if need_b else None
        # a_{t1} * G_{t1}: what the block to the right sends into G_{t1 - 1}
        incoming = grad_last.clone() if grad_last is not None else x.new_zeros(N, H)
        starts = list(range(0, L, T))
        for index in range(len(starts) - 1, -1, -1):
            t0 = starts[index]
            t1 = min(L, t0 + T)
            z, gk, pre = pres[index]
            a = 1 - z
            grad = grad_out[:, t0:t1] * mask[:, t0:t1] if mask is not None else grad_out[:, t0:t1].clone()
            grad[:, -1] += incoming
            _scan_(F.pad(a[:, 1:], (0, 0, 0, 1)), grad, reverse=True)  # G_t = grad_t + a_{t+1} G_{t+1}
            incoming = a[:, 0] * grad[:, 0]
            # h_{t-1}, the state entering each step; ``out`` is 0 at padded steps, but only valid steps need it
            # (z = 0 at padded ones) and a step after a padded one is padded too.
            first = out[:, t0 - 1 : t0] if t0 > 0 else (h0.unsqueeze(1) if h0 is not None else x.new_zeros(N, 1, H))
            previous = torch.cat([first, out[:, t0 : t1 - 1]], dim=1)
            grad_pre = x.new_empty(N, t1 - t0, weight.shape[0])
            grad_u = previous.neg_().add_(gk).mul_(grad).mul_(a.mul_(z))  # dL/du = G (g(k) - h_{t-1}) z (1 - z)
            # g'(k) = 1 for k >= 0 (where g(k) >= 0.5), sigmoid'(k) = g(k) (1 - g(k)) below
            g_prime = torch.maximum(torch.addcmul(gk, gk, gk, value=-1), (gk >= 0.5).to(gk.dtype))  # (no slow where)
            torch.mul(grad.mul_(z), g_prime, out=grad_pre[..., -H:])
            if cell == "mingru":
                grad_pre[..., :H] = grad_u
            else:  # u = softplus(-k_f) - softplus(-k_i)
                torch.mul(grad_u, torch.sigmoid(-pre[..., :H]), out=grad_pre[..., :H]).neg_()
                torch.mul(grad_u, torch.sigmoid(-pre[..., H : 2 * H]), out=grad_pre[..., H : 2 * H])
            grad_pre = grad_pre.view(-1, weight.shape[0])
            if need_x:
                grad_x[:, t0:t1] = torch.mm(grad_pre, weight).view(N, t1 - t0, features)
            if need_w:
                grad_w.addmm_(grad_pre.t(), x[:, t0:t1].reshape(-1, features))
            if need_b:
                grad_b += grad_pre.sum(0)
        grad_h0 = incoming if ctx.has_h0 and ctx.needs_input_grad[4] else None
        return grad_x, grad_w, grad_b, None, grad_h0, None, None


def min_rnn_layer(
    cell: str,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    h0: Tensor | None = None,
    mask: Tensor | None = None,
    block_steps: int | None = None,
) -> tuple[Tensor, Tensor]:
    """One direction of a minGRU/minLSTM layer over a batch-first sequence.

    Args:
        cell: ``"mingru"`` or ``"minlstm"``.
        x: (N, L, H_in) inputs.
        weight, bias: the gate projection, (blocks * H, H_in) and (blocks * H,); blocks [z, h~] or [f, i, h~].
        h0: (N, H) initial state; None: zeros.
        mask: (N, L, 1) 1 at valid steps, 0 at padded steps (which must follow the valid ones); None: all valid.
        block_steps: time steps per fused block (the results do not depend on it); None: about 1024 rows.

    Returns ``(output, h_last)``: output (N, L, H), 0 at padded steps; h_last (N, H), each sequence's state at its
    last valid step. Differentiable in x, weight, bias and h0.
    """
    # The fused layer mixes its saved inputs into in-place weight-gradient sums, which autocast cannot retype: under
    # autocast it runs in the weights' precision (as the scan's state should anyway).
    dtype = weight.dtype
    mask, h0 = (None if t is None else t.to(dtype) for t in (mask, h0))
    with torch.autocast(x.device.type, enabled=False):
        return _MinRNNLayer.apply(x.to(dtype), weight, bias, mask, h0, cell, block_steps)


# --- the stack ------------------------------------------------------------------------------------------------------


class ScanRNN(StackedRecurrence):
    """A multi-layer minGRU or minLSTM (see the module docstring), trained with a parallel scan.

    The ``cell="mingru" | "minlstm"`` engine of :class:`~seqmodels.nn.RecurrentEncoder` (usable on its own). Weights
    are named like torch's RNNs: ``weight_ih_l{k}[_reverse]`` (blocks * H, H_in of layer k) and ``bias_ih_l{k}...``,
    with the gate blocks [z, h~] (minGRU) or [f, i, h~] (minLSTM). There is no ``weight_hh``: no gate reads h.

    Args:
        cell: ``"mingru"`` or ``"minlstm"``.
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: as for ``torch.nn.GRU``.
        residual, norm, ffn_expansion: the block options of :class:`~seqmodels.nn.stacked.StackedRecurrence` (the
            paper's stacks are residual; layers >= 1 have input and output size D * H). ``h_n`` stays the state.
        init: ``"torch"`` (the paper's ``nn.Linear`` init) or ``"orthogonal"`` (Xavier per gate, zero biases).

    Inputs ``input, hx=None, lengths=None``; outputs ``output, h_n`` as for ``torch.nn.GRU``: output (N, L, D * H)
    if batch_first else (L, N, D * H), exactly 0 at padded steps; h_n (D * num_layers, N, H), each direction's state
    at its last valid step.
    """

    cells = SCAN_CELLS
    inits = SCAN_INITS

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1, **options) -> None:
        super().__init__(cell, input_size, hidden_size, num_layers, **options)
        self.build()

    def build_direction(self, suffix: str, input_size: int) -> None:
        rows = _BLOCKS[self.cell] * self.hidden_size
        self.register_parameter(f"weight_ih{suffix}", nn.Parameter(torch.empty(rows, input_size)))
        if self.bias:
            self.register_parameter(f"bias_ih{suffix}", nn.Parameter(torch.empty(rows)))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.init_input_projection(_BLOCKS[self.cell])

    def run_direction(
        self, suffix: str, x: Tensor, state: tuple[Tensor, ...] | None, mask: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        weight = getattr(self, f"weight_ih{suffix}")
        bias = getattr(self, f"bias_ih{suffix}") if self.bias else None
        if is_traceable(self):
            return self._traceable_direction(x, weight, bias, state, mask)
        h, h_last = min_rnn_layer(
            self.cell, x, weight, bias, None if state is None else state[0], None if mask is None else mask.to(x.dtype)
        )
        return h, (h_last,)

    def _traceable_direction(
        self, x: Tensor, weight: Tensor, bias: Tensor | None, state: tuple[Tensor, ...] | None, mask: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """:meth:`run_direction` with plain torch ops and :func:`traceable_linear_scan` (export; see
        :func:`is_traceable`): z = 0 at padded steps carries the state through them."""
        mask = None if mask is None else mask.to(x.dtype)
        z, gk, _ = _gates(self.cell, F.linear(x, weight, bias), self.hidden_size, mask)
        h = traceable_linear_scan(1 - z, z * gk, None if state is None else state[0])
        return (h if mask is None else h * mask), (h[:, -1],)


__all__ = [
    "SCAN_CELLS",
    "SCAN_INITS",
    "ScanRNN",
    "g",
    "is_traceable",
    "linear_scan",
    "min_rnn_layer",
    "step_scan",
    "traceable_linear_scan",
    "traceable_logsigmoid",
    "update_gate",
]
