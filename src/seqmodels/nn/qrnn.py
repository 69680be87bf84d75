"""QRNN: the quasi-recurrent neural network, a causal convolution over time followed by a gated linear pooling.

Bradbury, Merity, Xiong and Socher (2016), "Quasi-Recurrent Neural Networks" (ICLR 2017, arXiv:1611.01576) compute
every gate of a layer from a window of the k most recent inputs only (a masked convolution of width k over time), so
all of them come from one matrix product over the whole sequence; what is left sequential is an elementwise,
linear recurrence (the "pooling")::

    Z = tanh(W_z * X + b_z),   F = sigmoid(W_f * X + b_f),   O = sigmoid(W_o * X + b_o)   (I likewise, sigmoid)

    (W * X)_t = W [x_t; x_{t-1}; ...; x_{t-k+1}]      x_s = 0 before the sequence (or the streamed window)

    f-pooling:    c_t = f_t * c_{t-1} + (1 - f_t) * z_t,   h_t = c_t
    fo-pooling:   c_t = f_t * c_{t-1} + (1 - f_t) * z_t,   h_t = o_t * c_t          (the default)
    ifo-pooling:  c_t = f_t * c_{t-1} + i_t * z_t,         h_t = o_t * c_t

``window`` is k (the paper's language model uses 2; 1 is a per-step projection); ``pooling`` picks the variant.
The projection is ``weight_ih`` (G * H, k * H_in) with the gate blocks [Z, F, O, I] in its rows (as many as the
pooling uses: G = 2, 3 or 4) and the shifted inputs [x_t, x_{t-1}, ...] in its columns, the layout of the official
code's ``nn.Linear(window * input_size, ...)`` over ``cat([X, X_{-1}])``.

The pooling is a linear recurrence c_t = a_t c_{t-1} + b_t (fo/f: a_t = f_t, b_t = (1 - f_t) z_t), computed with
the chunked scan of :mod:`seqmodels.nn.scan_cells` (no Python loop over single steps of the whole sequence).
:class:`_QRNNLayer` fuses the layer over blocks of about 1024 (batch x step) rows, so each block's projection,
gate activations, scan and output gate stay in cache; its backward is a second scan backward in time, block by
block. Training thus costs the projection's matrix products plus O(L) elementwise work, and memory is linear in L.
Gates saturate safely: tanh and sigmoid are bounded, and a_t in [0, 1] keeps every intermediate of the scan bounded
(fo- and f-pooling keep |c_t| <= 1; ifo-pooling's c_t, like an LSTM's cell, is not bounded by 1).

Zoneout (``zoneout`` = p, the paper's regulariser, "F = 1 - dropout(1 - sigmoid(W_f * X))"): in training each
unit's forget gate is set to 1 with probability p at each step, so the unit keeps its previous state (ifo-pooling:
its input gate is set to 0 with it); in evaluation (1 - f_t) is scaled by its expectation 1 - p, as the official
code (salesforce/pytorch-qrnn) does.

Padding: at a padded step the state passes through unchanged (a_t = 1, b_t = 0) and the output is 0, so the state
after the last step is each sequence's state at its last valid step.

State, per layer and direction: ``("h", "c", "window")``. h (H) is the output at the last valid step (the
recurrence does not read it, so an ``hx``'s h is ignored; it is first so code reading ``h_n`` gets the outputs), c
(H) the pooling state, and window the last k - 1 valid inputs of the layer as it sees them (after ``norm`` and
dropout), oldest first, each zero-padded to W = max(input_size, D * H) features and flattened: (k - 1) * W, the
same size for every layer. A sequence shorter than k - 1 steps keeps the newest entries of the incoming window.
With ``window=1`` the window tensor has size 0. Continuing from a state (``hx``) is exact: the window supplies the
convolution's left context that a fresh sequence fills with zeros.

Initialisation: ``init="torch"`` (the default) is the official code's ``nn.Linear``: weights and biases
U(-1/sqrt(k * H_in), 1/sqrt(k * H_in)) (the paper states none); ``init="orthogonal"``: Xavier-uniform per gate
block, zero biases.

Export: while exporting (:func:`~seqmodels.nn.stacked.is_traceable`) a layer runs as plain torch ops around
:func:`~seqmodels.nn.scan_cells.traceable_linear_scan` (torch's scan operator: an ONNX ``Scan`` over a dynamic
length), since the fused layer does not trace.

Shapes: N = batch, L = sequence length, D = 2 if bidirectional else 1, H_in = input_size, H = hidden_size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmodels.nn.scan_cells import _block_steps, _scan_, is_traceable, traceable_linear_scan
from seqmodels.nn.stacked import StackedRecurrence

QRNN_CELLS = ("qrnn",)
QRNN_INITS = ("torch", "orthogonal")
POOLINGS = ("fo", "f", "ifo")
# Gate blocks stacked in weight_ih's rows for each pooling: [Z, F], [Z, F, O], [Z, F, O, I].
_BLOCKS = {"f": 2, "fo": 3, "ifo": 4}


def _pool_gates(gates: Tensor, keep: Tensor | None, H: int, pooling: str) -> tuple[Tensor, Tensor]:
    """(a, b) of the pooling c_t = a_t c_{t-1} + b_t from the activated gates [Z, F, O, I] of a block."""
    z, f = gates[..., :H], gates[..., H : 2 * H]
    update = 1 - f if keep is None else (1 - f) * keep  # 1 - a_t
    if pooling == "ifo":
        i = gates[..., 3 * H :]
        b = i * z if keep is None else i * keep * z
    else:
        b = update * z
    return update.neg_().add_(1), b


class _QRNNLayer(torch.autograd.Function):
    """One direction of one QRNN layer: window convolution, gates, pooling and output gate, fused over time blocks.

    Time-major inside, so that a block's shifted inputs, gates and states are contiguous matrices: ``extended``
    (k - 1 + L, N, H_in) holds [past, x] with x_t at index t + k - 1, and the convolution of a block is k matrix
    products, one per shift, with no copy of the inputs. Forward: per block of about 1024 (batch x step) rows, the
    projection, the gate activations, a chunked scan from the previous block's last state and the output gate, all
    in cache. Saved: the activated gates of every block and the states c_{-1..L-1}. Backward: the blocks in
    reverse, each scanning dL/dc backward in time (G_t = dc_t + a_{t+1} G_{t+1}) from the block to its right, then
    the gate derivatives and the weight and input gradients. ``out``, ``keep`` and ``mask`` stay batch-major
    (N, L, *); each block reads and writes them through transposed views.
    """

    @staticmethod
    def forward(ctx, extended, weight, bias, keep, mask, c0, window: int, pooling: str, block_steps: int | None):
        steps, N, features = extended.shape
        L = steps - (window - 1)
        blocks = _BLOCKS[pooling]
        H = weight.shape[0] // blocks
        T = min(L, block_steps) if block_steps else _block_steps(N, L, extended.is_cuda)
        shifts = [weight[:, j * features : (j + 1) * features].t() for j in range(window)]  # W_j^T, for x_{t-j}
        out = extended.new_empty(N, L, H)
        states = extended.new_empty(L + 1, N, H)  # c_{t-1} at index t
        if c0 is None:
            states[0].zero_()
        else:
            states[0].copy_(c0)
        saved = []
        for t0 in range(0, L, T):
            t1 = min(L, t0 + T)
            rows = extended[t0 + window - 1 : t1 + window - 1].view(-1, features)
            pre = torch.mm(rows, shifts[0]) if bias is None else torch.addmm(bias, rows, shifts[0])
            for j in range(1, window):
                pre.addmm_(extended[t0 + window - 1 - j : t1 + window - 1 - j].view(-1, features), shifts[j])
            gates = pre.view(t1 - t0, N, blocks * H)
            gates[..., :H].tanh_()
            gates[..., H:].sigmoid_()
            a, b = _pool_gates(gates, None if keep is None else keep[:, t0:t1].transpose(0, 1), H, pooling)
            c = states[t0 + 1 : t1 + 1]
            c.copy_(b)
            _scan_(a.view(1, t1 - t0, N * H), c.view(1, t1 - t0, N * H), states[t0].view(1, N * H))
            h = out[:, t0:t1].transpose(0, 1)
            if pooling == "f":
                h.copy_(c)
            else:
                torch.mul(gates[..., 2 * H : 3 * H], c, out=h)
            if mask is not None:
                h.mul_(mask[:, t0:t1].transpose(0, 1))
            saved.append(gates)
        ctx.window, ctx.pooling, ctx.block, ctx.saved = window, pooling, T, saved
        ctx.has_c0 = c0 is not None
        ctx.save_for_backward(extended, weight, keep, mask, states)
        # padded steps carried the state through, so this is each sequence's state at its last valid step
        return out, states[L].clone()

    @staticmethod
    def backward(ctx, grad_out, grad_c_last):
        extended, weight, keep, mask, states = ctx.saved_tensors
        window, pooling, T, saved = ctx.window, ctx.pooling, ctx.block, ctx.saved
        steps, N, features = extended.shape
        L = steps - (window - 1)
        H = weight.shape[0] // _BLOCKS[pooling]
        need_x, need_w, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        shifts = [weight[:, j * features : (j + 1) * features] for j in range(window)]
        grad_ext = torch.zeros_like(extended) if need_x else None
        grad_shifts = [weight.new_zeros(weight.shape[0], features) for _ in range(window)] if need_w else []
        grad_b = weight.new_zeros(weight.shape[0]) if need_b else None
        # a_{t1} * G_{t1}: what the block to the right sends into G_{t1 - 1}
        incoming = grad_c_last.clone() if grad_c_last is not None else extended.new_zeros(N, H)
        one = extended.new_ones(())
        starts = list(range(0, L, T))
        for index in range(len(starts) - 1, -1, -1):
            t0 = starts[index]
            t1 = min(L, t0 + T)
            gates = saved[index]
            block_keep = None if keep is None else keep[:, t0:t1].transpose(0, 1)
            z, f = gates[..., :H], gates[..., H : 2 * H]
            a, _ = _pool_gates(gates, block_keep, H, pooling)
            c, previous = states[t0 + 1 : t1 + 1], states[t0:t1]  # c_t, c_{t-1}
            grad_h = grad_out[:, t0:t1].transpose(0, 1)
            if mask is not None:
                grad_h = grad_h * mask[:, t0:t1].transpose(0, 1)
            grad_pre = extended.new_empty(t1 - t0, N, weight.shape[0])
            if pooling == "f":
                grad_c = grad_h.clone(memory_format=torch.contiguous_format)
            else:
                o = gates[..., 2 * H : 3 * H]
                grad_c = torch.mul(o, grad_h)  # contiguous like o's block
                # dL/d(pre_o) = dh c o (1 - o)
                torch.mul(grad_h * c, torch.addcmul(o, o, o, value=-1), out=grad_pre[..., 2 * H : 3 * H])
            grad_c = grad_c.contiguous()
            grad_c[-1] += incoming
            shifted = torch.cat([a[1:], a.new_zeros(1, N, H)])  # a_{t+1}, 0 after the block
            _scan_(shifted.view(1, t1 - t0, N * H), grad_c.view(1, t1 - t0, N * H), reverse=True)  # G_t
            incoming = a[0] * grad_c[0]
            if block_keep is not None:
                grad_c.mul_(block_keep)  # G_t k_t: both gate paths pass through the keep multiplier
            if pooling == "ifo":
                i = gates[..., 3 * H :]
                # c_t = (1 - (1 - f) k) c_{t-1} + i k z
                torch.mul(grad_c * previous, torch.addcmul(f, f, f, value=-1), out=grad_pre[..., H : 2 * H])
                torch.mul(grad_c * i, torch.addcmul(one, z, z, value=-1), out=grad_pre[..., :H])
                torch.mul(grad_c * z, torch.addcmul(i, i, i, value=-1), out=grad_pre[..., 3 * H :])
            else:
                # c_t = (1 - (1 - f) k) c_{t-1} + (1 - f) k z
                torch.mul(grad_c * (previous - z), torch.addcmul(f, f, f, value=-1), out=grad_pre[..., H : 2 * H])
                torch.mul(grad_c.mul_(1 - f), torch.addcmul(one, z, z, value=-1), out=grad_pre[..., :H])
            grad_pre = grad_pre.view(-1, weight.shape[0])
            for j in range(window):
                lo, hi = t0 + window - 1 - j, t1 + window - 1 - j
                if need_x:
                    grad_ext[lo:hi].view(-1, features).addmm_(grad_pre, shifts[j])
                if need_w:
                    grad_shifts[j].addmm_(grad_pre.t(), extended[lo:hi].view(-1, features))
            if need_b:
                grad_b += grad_pre.sum(0)
        grad_w = torch.cat(grad_shifts, dim=1) if need_w else None
        grad_c0 = incoming if ctx.has_c0 and ctx.needs_input_grad[5] else None
        return grad_ext, grad_w, grad_b, None, None, grad_c0, None, None, None


def qrnn_layer(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    c0: Tensor | None = None,
    past: Tensor | None = None,
    keep: Tensor | None = None,
    mask: Tensor | None = None,
    pooling: str = "fo",
    block_steps: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One direction of a QRNN layer over a batch-first sequence.

    Args:
        x: (N, L, H_in) inputs.
        weight, bias: the convolution, (G * H, k * H_in) and (G * H,); rows [Z, F, O, I], columns [x_t, x_{t-1}, ...].
        c0: (N, H) pooling state before step 0; None: zeros.
        past: (N, k - 1, H_in) the inputs before step 0, oldest first; None: zeros.
        keep: None, or (N, L, 1) / (N, L, H) multiplying 1 - f_t (and i_t): 0 keeps the unit's state (padding,
            zoneout).
        mask: (N, L, 1) 1 at valid steps, 0 at padded steps, multiplying the outputs; None: all valid.
        pooling: ``"fo"``, ``"f"`` or ``"ifo"``.
        block_steps: time steps per fused block (the results do not depend on it); None: about 1024 rows.

    Returns ``(output, c_last, extended)``: output (N, L, H) (0 where ``mask`` is), c_last (N, H) the pooling
    state after the last step, and extended = [past, x] (N, k - 1 + L, H_in) (a view of a time-major tensor), from
    which the next window is read.
    Differentiable in x, weight, bias, c0 and past.
    """
    window = weight.shape[1] // x.shape[-1]
    steps = x.transpose(0, 1)  # time-major inside: see _QRNNLayer
    if window > 1:
        if past is None:
            past = x.new_zeros(x.shape[0], window - 1, x.shape[-1])
        extended = torch.cat([past.transpose(0, 1), steps], dim=0)
    else:
        extended = steps.contiguous()
    # The fused layer accumulates its window products in place, which autocast cannot retype: under autocast it runs
    # in the weights' precision (as the scan's state should anyway), like the other engines' outputs.
    dtype = weight.dtype

    def typed(tensor: Tensor | None) -> Tensor | None:
        return None if tensor is None else tensor.to(dtype)

    with torch.autocast(x.device.type, enabled=False):
        output, c_last = _QRNNLayer.apply(
            extended.to(dtype), weight, bias, typed(keep), typed(mask), typed(c0), window, pooling, block_steps
        )
    return output, c_last, extended.transpose(0, 1)


def _qrnn_layer_traceable(
    x: Tensor, weight: Tensor, bias: Tensor | None, c0: Tensor | None, past: Tensor | None, keep: Tensor | None,
    mask: Tensor | None, pooling: str,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """:func:`qrnn_layer` with plain torch ops and :func:`~seqmodels.nn.scan_cells.traceable_linear_scan`, which
    trace with a dynamic L (export): the same arguments (no block size) and results up to rounding."""
    N, L, features = x.shape
    window = weight.shape[1] // features
    H = weight.shape[0] // _BLOCKS[pooling]
    extended = x
    if window > 1:
        past = x.new_zeros(N, window - 1, features) if past is None else past
        extended = torch.cat([past, x], dim=1)  # x_t at index t + k - 1
    # the window convolution: one product per shift j, with the inputs x_{t-j}
    pre = sum(
        F.linear(extended[:, window - 1 - j : window - 1 - j + L], weight[:, j * features : (j + 1) * features])
        for j in range(window)
    )
    if bias is not None:
        pre = pre + bias
    gates = torch.cat([torch.tanh(pre[..., :H]), torch.sigmoid(pre[..., H:])], dim=-1)
    a, b = _pool_gates(gates, keep, H, pooling)
    c = traceable_linear_scan(a, b, c0)
    h = c if pooling == "f" else gates[..., 2 * H : 3 * H] * c
    return (h if mask is None else h * mask), c[:, -1], extended


class QRNN(StackedRecurrence):
    """A multi-layer QRNN (Bradbury et al. 2016): a width-k causal convolution giving gates, then fo-pooling.

    The ``cell="qrnn"`` engine of :class:`~seqmodels.nn.RecurrentEncoder` (usable on its own). Weights are named like
    torch's RNNs: ``weight_ih_l{k}[_reverse]`` (G * H, window * H_in of layer k) and ``bias_ih_l{k}...`` (G * H,),
    gate blocks [Z, F, O, I] (see the module docstring).

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: as for ``torch.nn.RNN``.
        residual, norm, ffn_expansion: the block options of :class:`~seqmodels.nn.stacked.StackedRecurrence`.
        init: ``"torch"`` (the official code's nn.Linear init) or ``"orthogonal"`` (Xavier per gate, zero biases).
        window: k, the convolution's width over time (>= 1; the paper's language model: 2).
        pooling: ``"fo"`` (the default), ``"f"`` (h_t = c_t) or ``"ifo"`` (a separate input gate).
        zoneout: probability in [0, 1) that a unit keeps its state at a step in training (forget gate set to 1).

    Inputs ``input, hx=None, lengths=None``; outputs ``output, h_n`` with ``h_n = (h, c, window)``, each
    (D * num_layers, N, S): S = H, H and (window - 1) * max(input_size, D * H).
    """

    cells = QRNN_CELLS
    inits = QRNN_INITS
    state_names = ("h", "c", "window")
    reads_h = False  # "h" reports the last output; the other state tensors carry the dynamics

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        window: int = 2,
        pooling: str = "fo",
        zoneout: float = 0.0,
        cell: str = "qrnn",
        **options,
    ) -> None:
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ValueError(f"window (the convolution's width over time) must be an integer >= 1, got {window!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose pooling=fo (the default), f or ifo")
        if isinstance(zoneout, bool) or not isinstance(zoneout, (int, float)) or not 0.0 <= zoneout < 1.0:
            raise ValueError(f"zoneout must be a probability in [0, 1), e.g. 0.1 (0: none), got {zoneout!r}")
        super().__init__(cell, input_size, hidden_size, num_layers, **options)
        self.window = window
        self.pooling = pooling
        self.zoneout = float(zoneout)
        self.build()

    @property
    def window_features(self) -> int:
        """W: the features of one input in the window state, the widest layer input."""
        return max(self.input_size, self.num_directions * self.hidden_size)

    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size, self.hidden_size, (self.window - 1) * self.window_features)

    def build_direction(self, suffix: str, input_size: int) -> None:
        rows = _BLOCKS[self.pooling] * self.hidden_size
        self.register_parameter(f"weight_ih{suffix}", nn.Parameter(torch.empty(rows, self.window * input_size)))
        if self.bias:
            self.register_parameter(f"bias_ih{suffix}", nn.Parameter(torch.empty(rows)))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.init_input_projection(_BLOCKS[self.pooling])

    def _keep(self, mask: Tensor | None, x: Tensor, N: int, L: int) -> Tensor | None:
        """The multiplier of 1 - f_t: padding (0) and zoneout (Bernoulli(1 - p) in training, 1 - p in evaluation)."""
        if not self.zoneout:
            return mask
        if self.training:
            zone = x.new_empty(N, L, self.hidden_size).bernoulli_(1.0 - self.zoneout)
        else:
            zone = x.new_full((N, L, 1), 1.0 - self.zoneout)
        return zone if mask is None else zone * mask

    def run_direction(
        self, suffix: str, x: Tensor, state: tuple[Tensor, ...] | None, mask: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        N, L, features = x.shape
        H, k = self.hidden_size, self.window
        weight = getattr(self, f"weight_ih{suffix}")
        bias = getattr(self, f"bias_ih{suffix}") if self.bias else None
        past = None if state is None or k == 1 else state[2].reshape(N, k - 1, self.window_features)[..., :features]
        mask = None if mask is None else mask.to(x.dtype)
        layer = _qrnn_layer_traceable if is_traceable(self) else qrnn_layer
        output, c_last, extended = layer(
            x, weight, bias, None if state is None else state[1], past, self._keep(mask, x, N, L), mask, self.pooling
        )
        if mask is None:
            h_last = output[:, -1]
            last = torch.full((N,), L, dtype=torch.long, device=x.device)
        else:
            last = mask.sum(1).squeeze(1).long()  # lengths
            h_last = output.gather(1, (last - 1).view(N, 1, 1).expand(N, 1, H)).squeeze(1)
        if k > 1:
            # the last k - 1 valid inputs: indices length .. length + k - 2 of ``extended`` = [past, x]
            index = last.unsqueeze(1) + torch.arange(k - 1, device=x.device)
            recent = extended.gather(1, index.unsqueeze(-1).expand(N, k - 1, features))
            recent = F.pad(recent, (0, self.window_features - features)).reshape(N, -1)
        else:
            recent = c_last[:, :0]  # size 0, but in the graph like the other state tensors (retain_grad works)
        return output, (h_last, c_last, recent)

    def extra_repr(self) -> str:
        extra = super().extra_repr() + f", window={self.window}, pooling={self.pooling!r}"
        return extra + (f", zoneout={self.zoneout}" if self.zoneout else "")


__all__ = ["POOLINGS", "QRNN", "QRNN_CELLS", "QRNN_INITS", "qrnn_layer"]
