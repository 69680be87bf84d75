"""mLSTM: the matrix-memory LSTM of xLSTM, trained in chunkwise-parallel form.

Beck, Pöppel, Spanring, Auer, Prudnikova, Kopp, Klambauer, Brandstetter and Hochreiter (2024), "xLSTM: Extended Long
Short-Term Memory" (arXiv:2405.04517), section 2.3 (mLSTM) and the appendix (its stabilised and parallel forms). Each of
``heads`` heads (head size d = H / heads) stores a d x d matrix memory C, a normaliser vector n and a stabiliser
scalar m; its gates read x_t only::

    q_t = W_q x_t + b_q,   k_t = (W_k x_t + b_k) / sqrt(d),   v_t = W_v x_t + b_v          (d each, per head)
    i~_t = w_i^T x_t + b_i,   f~_t = w_f^T x_t + b_f                                          (one scalar per head)
    o_t = sigmoid(W_o x_t + b_o)                                                             (H)

    log f_t = logsigmoid(f~_t)                                        (sigmoid forget gate, in log space)
    m_t  = max(log f_t + m_{t-1}, i~_t)                               (stabiliser)
    i'_t = exp(i~_t - m_t),   f'_t = exp(log f_t + m_{t-1} - m_t)
    C_t  = f'_t C_{t-1} + i'_t v_t k_t^T
    n_t  = f'_t n_{t-1} + i'_t k_t
    h~_t = C_t q_t / max(|n_t^T q_t|, exp(-m_t))
    h_t  = o_t * GN(h~_t)                                             (heads concatenated)

with GN the per-head normalisation of the official cell (``head_norm=True``, the default; NX-AI/xlstm's mLSTMCell
ends in a MultiHeadLayerNorm, the paper's mLSTM block in a head-wise GroupNorm): a LayerNorm over each head's d
features with a learnt scale (init 1), no shift, eps 1e-5. ``head_norm=False`` gives the bare cell, h_t = o_t * h~_t.
GN is the default because h~ alone is badly scaled: where |n^T q| < exp(-m) it is C q, cubic in the input scale, and
C accumulates E[v k^T] over the whole memory while n^T q stays near 0 for zero-mean inputs, so h~ grows with the
memory length; small stacks of the bare cell train slowly.

This is the paper's stabilised form. Unstabilised, C^u_t = exp(m_t) C_t and n^u_t = exp(m_t) n_t, and the paper's
normaliser ``max{|n^u_t^T q_t|, 1}`` becomes ``max{|n_t^T q_t|, exp(-m_t)}``, so h_t does not depend on m: m only keeps
every exponent <= 0. The official code adds eps = 1e-6 to the denominator; here it is the paper's, with two guards
that only act where float32 (float64) runs out of range: the denominator is floored at the smallest normal float
(exp(-m_t) underflows for m_t > 87 and q_t may be orthogonal to n_t: 0/0), and exp(-m_t) is capped near the largest
float (it overflows for m_t < -88, where h~ is below 1e-38 |C_t q_t| either way; an inf would make the gradient
0 * inf). The key scaling 1/sqrt(d) applies to the projection with its bias, as in the official code
(the paper writes ``W_k x_t / sqrt(d) + b_k``; the two differ by a rescaling of b_k).

Chunkwise-parallel training (:func:`mlstm_chunkwise`). Since the gates read x only, the sequence is cut into chunks
of about ``chunk_size`` steps. With b_t the cumulative log forget gate within a chunk (b_0 = 0 at its start),
a_s = i~_s - b_s and (C', n', m') the state entering the chunk, the recurrence unrolls exactly into::

    m_t = b_t + M_t,   M_t = max(m', max_{s<=t} a_s)
    h~_t = [exp(m' - M_t) C' q_t + sum_{s<=t} exp(a_s - M_t) (k_s^T q_t) v_s]
           / max(|exp(m' - M_t) n'^T q_t + sum_{s<=t} exp(a_s - M_t) k_s^T q_t|, exp(-m_t))

i.e. within a chunk an attention-like form with a decay matrix exp(a_s - M_t) whose exponents are all <= 0 (the
stabiliser is the recurrence's own m_t, so saturated gates give 0, never inf). The states entering the chunks follow
from the chunk totals: m by a cumulative max (in float64, so that sums over thousands of steps keep float32's
precision), C and n by a linear scan over chunk boundaries (:func:`~seqmodels.nn.scan_cells.linear_scan`,
coefficients in [0, 1]; n rides along as an extra row of C, from values extended by a 1). With T steps per chunk,
work is O(L * (T + d) * H) and memory O(L * (T + d^2 / T) * heads) beyond the projections: linear in L (T = 64
balances the two terms at d = 64). Autograd differentiates it.

Padding: at a padded step log f = 0 and i~ = -inf, so f' = 1 and i' = 0: the state passes through unchanged, the
state after the last step is each sequence's state at its last valid step, and padded outputs are set to 0.

State: ("h", "C", "n", "m") of sizes H, heads * d * d (each head's C row-major, C[a, b] pairing v_a with k_b),
heads * d and heads; "h" is the output at the last valid step (no gate reads it), and the zero state has m = 0, as
the official code starts.

Initialisation, ``init="torch"`` (the default): that of the official PyTorch implementation (NX-AI/xlstm,
mLSTMLayer and mLSTMCell): W_q, W_k, W_v, W_o ~ N(0, 2 / (5 H_in)) (its "small init"), their biases 0; input gate
w_i = 0, b_i ~ N(0, 0.1^2); forget gate w_f = 0, b_f = linspace(3, 6) over the heads (f starts in [0.95, 0.9975]:
long memories first; with one head b_f = 3). ``init="orthogonal"``: the same gates, Xavier-uniform W_q, W_k, W_v,
W_o per block. The two names are those :class:`~seqmodels.nn.RecurrentEncoder` accepts for ``init``. The official
layer gates the normalised h~ with a separate SiLU branch of its up-projection; this cell keeps the paper's sigmoid
output gate o_t.

Export: while exporting (:func:`~seqmodels.nn.stacked.is_traceable`) the layer runs the recurrent form,
:func:`mlstm_recurrent`, through torch's scan operator (an ONNX ``Scan`` over a dynamic length; the chunkwise form's
cummax has no ONNX lowering), with log f = -softplus(-f~) (the exporter writes logsigmoid as Log(Sigmoid), -inf
below -88).

Shapes: N = batch, L = sequence length, D = 2 if bidirectional else 1, H_in = input_size, H = hidden_size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmodels.nn.scan_cells import is_traceable, linear_scan, step_scan, traceable_logsigmoid
from seqmodels.nn.stacked import StackedRecurrence

MLSTM_CELLS = ("mlstm",)
MLSTM_INITS = ("torch", "orthogonal")


def _chunk_layout(steps: int, chunk_size: int) -> tuple[int, int]:
    """(T, K): K chunks of T <= chunk_size steps covering ``steps`` with the least padding."""
    chunks = -(-steps // min(chunk_size, steps))
    return -(-steps // chunks), chunks


def mlstm_chunkwise(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i_pre: Tensor,
    log_f: Tensor,
    c0: Tensor,
    n0: Tensor,
    m0: Tensor,
    chunk_size: int = 64,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The mLSTM recurrence of B independent heads over L steps, chunkwise-parallel (see the module docstring).

    Args:
        q, k, v: (B, L, d) queries, keys (already scaled by 1/sqrt(d)) and values.
        i_pre: (B, L) input-gate pre-activations i~_t (-inf: a padded step, no input).
        log_f: (B, L) log forget gates, <= 0 (0 with i~ = -inf: a padded step, the state passes through).
        c0, n0, m0: (B, d, d), (B, d), (B,) the state (C, n, m) before step 0 (C[a, b] pairs v_a with k_b).
        chunk_size: steps per chunk at most (the result does not depend on it, up to rounding).

    Returns ``(h_tilde (B, L, d), C (B, d, d), n (B, d), m (B,))``, the state after the last step.
    """
    B, L, d = q.shape
    T, K = _chunk_layout(L, chunk_size)
    pad = T * K - L
    # The normaliser rides along as one more value row: with v~ = (v, 1), C~ = sum v~ k^T stacks C over n^T, so
    # every product below yields C q and n^T q together.
    v = torch.cat([v, v.new_ones(B, L, 1)], dim=-1)
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        i_pre = F.pad(i_pre, (0, pad), value=-math.inf)
        log_f = F.pad(log_f, (0, pad))
    q, k, v = q.reshape(B, K, T, d), k.reshape(B, K, T, d), v.reshape(B, K, T, d + 1)
    b = log_f.reshape(B, K, T).cumsum(-1)  # log decay from each chunk's start to step t (inclusive)
    a = i_pre.reshape(B, K, T) - b  # log weight of step s's input, relative to the chunk start
    # G_k = max_s a_s (g_max): the chunk's own stabiliser; finite even for a chunk of padding (all a = -inf).
    g_max = a.amax(-1).clamp_min(torch.finfo(a.dtype).min)

    # m entering each chunk, m'_{k+1} = B_k + max(m'_k, G_k) with B_k the chunk's total log forget gate, unrolled
    # as m'_k = Bex_k + max(m0, max_{j<k} (G_j - Bex_j)), Bex_k = sum_{j<k} B_j; in float64, so that long cumulative
    # sums stay exact.
    totals = b[..., -1].double()
    before = F.pad(totals.cumsum(-1), (1, 0))  # (B, K + 1): Bex_0 = 0 .. Bex_K
    running = torch.cummax(g_max.double() - before[:, :K], dim=-1).values
    m_bounds = before + torch.maximum(m0.double().unsqueeze(-1), F.pad(running, (1, 0), value=-math.inf))
    m_start = m_bounds[:, :K].to(q.dtype)  # (B, K)

    # States entering each chunk: each chunk's own contribution (stabilised by G_k), then a scan over chunks with
    # C'_{k+1} = exp(m'_k - max(m'_k, G_k)) C'_k + exp(G_k - max(m'_k, G_k)) C_local_k (both coefficients in [0, 1]).
    weight = (a - g_max.unsqueeze(-1)).exp()  # (B, K, T)
    local = torch.matmul(v.transpose(-1, -2), weight.unsqueeze(-1) * k)  # (B, K, d + 1, d): sum_s w_s v~_s k_s^T
    top = torch.maximum(m_start, g_max)
    keep, take = (m_start - top).exp(), (g_max - top).exp()  # (B, K)
    local = local.reshape(B, K, (d + 1) * d) * take.unsqueeze(-1)
    start = torch.cat([c0, n0.unsqueeze(-2)], dim=-2).reshape(B, (d + 1) * d)
    ends = linear_scan(keep.unsqueeze(-1).expand_as(local), local, start)  # (B, K, (d + 1) d): after each chunk
    states = torch.cat([start.unsqueeze(1), ends[:, :-1]], dim=1).reshape(B, K, d + 1, d)  # entering each chunk

    # Within each chunk: M_t = max(m', cummax a) (m_run), m_t = b_t + M_t; every exponent is <= 0.
    m_run = torch.maximum(m_start.unsqueeze(-1), torch.cummax(a, dim=-1).values)  # (B, K, T)
    future = torch.full((T, T), -math.inf, dtype=q.dtype, device=q.device).triu(1)  # s > t: no contribution
    decay = (a.unsqueeze(-2) - m_run.unsqueeze(-1) + future).exp()  # (B, K, T_t, T_s)
    carry = (m_start.unsqueeze(-1) - m_run).exp().unsqueeze(-1)  # (B, K, T, 1): weight of the entering state at t
    scores = torch.matmul(q, k.transpose(-1, -2)) * decay  # (B, K, T, T)
    both = torch.matmul(scores, v) + carry * torch.matmul(q, states.transpose(-1, -2))  # (B, K, T, d + 1)
    numerator, dot = both.split([d, 1], dim=-1)  # C_t q_t and n_t^T q_t
    # exp(-m_t), its exponent capped where it would overflow (m_t < -88 in float32): h~ is then ~0 either way, and
    # the gradient stays finite (an inf floor would give 0 * inf)
    floor = (-(b + m_run)).clamp(max=math.log(torch.finfo(q.dtype).max) - 1.0).exp().unsqueeze(-1)
    denominator = torch.maximum(dot.abs(), floor).clamp_min(torch.finfo(q.dtype).tiny)
    h_tilde = (numerator / denominator).reshape(B, K * T, d)[:, :L]

    C, n = ends[:, -1].reshape(B, d + 1, d).split([d, 1], dim=-2)
    return h_tilde, C, n.squeeze(-2), m_bounds[:, K].to(q.dtype)


def mlstm_recurrent(
    q: Tensor, k: Tensor, v: Tensor, i_pre: Tensor, log_f: Tensor, c0: Tensor, n0: Tensor, m0: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`mlstm_chunkwise` in the paper's recurrent form, one step at a time through torch's scan operator
    (:func:`~seqmodels.nn.scan_cells.step_scan`), which traces with a dynamic L; same arguments (no chunk size) and
    results up to rounding. The guards of the denominator are those of the chunkwise form."""
    exponent_max = math.log(torch.finfo(q.dtype).max) - 1.0
    tiny = torch.finfo(q.dtype).tiny

    def step(state: tuple[Tensor, Tensor, Tensor], inputs: tuple[Tensor, ...]):
        C, n, m = state
        q_t, k_t, v_t, i_t, log_f_t = inputs
        log_f_m = log_f_t + m
        m = torch.maximum(log_f_m, i_t)
        i_gate, f_gate = torch.exp(i_t - m).unsqueeze(-1), torch.exp(log_f_m - m).unsqueeze(-1)
        C = f_gate.unsqueeze(-1) * C + i_gate.unsqueeze(-1) * (v_t.unsqueeze(-1) * k_t.unsqueeze(-2))
        n = f_gate * n + i_gate * k_t
        dot = (n * q_t).sum(-1, keepdim=True)
        floor = (-m).clamp(max=exponent_max).exp().unsqueeze(-1)
        h_tilde = torch.matmul(C, q_t.unsqueeze(-1)).squeeze(-1) / torch.maximum(dot.abs(), floor).clamp_min(tiny)
        return (C, n, m), h_tilde

    steps = tuple(t.transpose(0, 1) for t in (q, k, v, i_pre, log_f))
    (C, n, m), h_tilde = step_scan(step, (c0, n0, m0), steps)
    return h_tilde.transpose(0, 1), C, n, m


class MLSTM(StackedRecurrence):
    """A multi-layer mLSTM (Beck et al. 2024; see the module docstring), trained in chunkwise-parallel form.

    The ``cell="mlstm"`` engine of :class:`~seqmodels.nn.RecurrentEncoder` (usable on its own). Weights are named
    like torch's RNNs: ``weight_ih_l{k}[_reverse]`` (4 H + 2 heads, H_in of layer k) and ``bias_ih_l{k}...``, with
    the row blocks [q (H), k (H), v (H), o (H), i~ (heads), f~ (heads)], and ``weight_norm_l{k}...`` (H,), the
    scale of the per-head norm (``head_norm``). There is no ``weight_hh``: no gate reads h.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: as for ``torch.nn.LSTM``
            (``bias=False`` drops every bias, the gates' too: the forget gate then starts at 0.5).
        residual, norm, ffn_expansion: the block options of :class:`~seqmodels.nn.stacked.StackedRecurrence` (the
            paper's mLSTM blocks are pre-LayerNorm residual blocks).
        init: ``"torch"`` (the official code's) or ``"orthogonal"`` (Xavier q, k, v, o; the same gates).
        heads: memory heads; hidden_size must be divisible by it (head size d = hidden_size / heads).
        chunk_size: steps per chunk of the parallel form (memory and speed only; results equal up to rounding).
        head_norm: normalise each head's h~ (the official cell's MultiHeadLayerNorm) before the output gate.

    Inputs ``input, hx=None, lengths=None``; outputs ``output, h_n`` as for ``torch.nn.LSTM``: output (N, L, D * H)
    if batch_first else (L, N, D * H), exactly 0 at padded steps; h_n the tuple (h, C, n, m), each
    (D * num_layers, N, S) with S = H, heads * d * d, heads * d, heads: the state at each sequence's last valid step.
    The h of an ``hx`` is not read (no gate reads h_{t-1}); C, n and m continue the sequence exactly.
    """

    cells = MLSTM_CELLS
    inits = MLSTM_INITS
    state_names = ("h", "C", "n", "m")
    reads_h = False  # "h" reports the last output; the other state tensors carry the dynamics

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        heads: int = 4,
        chunk_size: int = 64,
        head_norm: bool = True,
        cell: str = "mlstm",
        **options,
    ) -> None:
        if not isinstance(heads, int) or isinstance(heads, bool) or heads < 1 or hidden_size % heads:
            raise ValueError(
                f"mlstm needs hidden_size divisible by heads, got hidden_size={hidden_size}, heads={heads!r}; "
                f"set cell_options.heads to a divisor of {hidden_size}"
            )
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise ValueError(f"chunk_size must be an integer >= 1 (e.g. 64), got {chunk_size!r}")
        super().__init__(cell, input_size, hidden_size, num_layers, **options)
        self.heads = heads
        self.head_size = hidden_size // heads
        self.chunk_size = chunk_size
        self.head_norm = bool(head_norm)
        self.build()

    def state_sizes(self) -> tuple[int, ...]:
        H, d = self.hidden_size, self.head_size
        return (H, self.heads * d * d, self.heads * d, self.heads)

    def build_direction(self, suffix: str, input_size: int) -> None:
        rows = 4 * self.hidden_size + 2 * self.heads
        self.register_parameter(f"weight_ih{suffix}", nn.Parameter(torch.empty(rows, input_size)))
        if self.bias:
            self.register_parameter(f"bias_ih{suffix}", nn.Parameter(torch.empty(rows)))
        if self.head_norm:
            self.register_parameter(f"weight_norm{suffix}", nn.Parameter(torch.empty(self.hidden_size)))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        H, heads = self.hidden_size, self.heads
        for name, param in self.named_parameters():
            if name.startswith("weight_norm"):
                nn.init.ones_(param.data)
            if not name.startswith(("weight_ih", "bias_ih")):
                continue
            data = param.data
            if name.startswith("bias"):
                nn.init.zeros_(data[: 4 * H])
                nn.init.normal_(data[4 * H : 4 * H + heads], 0.0, 0.1)
                data[4 * H + heads :] = torch.linspace(3.0, 6.0, heads)
                continue
            nn.init.zeros_(data[4 * H :])  # the gates start from their biases alone
            if self.init == "torch":  # official small_init_init_: N(0, sqrt(2 / (5 dim)))
                nn.init.normal_(data[: 4 * H], 0.0, math.sqrt(2.0 / (5.0 * data.shape[1])))
            else:
                for block in data[: 4 * H].chunk(4, dim=0):
                    nn.init.xavier_uniform_(block)

    def run_direction(
        self, suffix: str, x: Tensor, state: tuple[Tensor, ...] | None, mask: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        N, L, _ = x.shape
        H, heads, d = self.hidden_size, self.heads, self.head_size
        weight = getattr(self, f"weight_ih{suffix}")
        bias = getattr(self, f"bias_ih{suffix}") if self.bias else None
        pre = F.linear(x, weight, bias)  # (N, L, 4 H + 2 heads): every step's projections at once
        q, k, v, o, i_pre, f_pre = pre.split([H, H, H, H, heads, heads], dim=-1)
        traceable = is_traceable(self)
        log_f = traceable_logsigmoid(f_pre) if traceable else F.logsigmoid(f_pre)
        if mask is not None:  # padded steps: f' = 1, i' = 0, so the state passes through
            i_pre = i_pre.masked_fill(~mask, -math.inf)
            log_f = log_f.masked_fill(~mask, 0.0)

        def by_head(t: Tensor) -> Tensor:  # (N, L, heads * e) -> (N * heads, L, e)
            return t.reshape(N, L, heads, -1).transpose(1, 2).reshape(N * heads, L, -1)

        if state is None:
            c0 = x.new_zeros(N * heads, d, d)
            n0 = x.new_zeros(N * heads, d)
            m0 = x.new_zeros(N * heads)
        else:
            c0 = state[1].reshape(N * heads, d, d)
            n0 = state[2].reshape(N * heads, d)
            m0 = state[3].reshape(N * heads)
        heads_q, heads_k, heads_v = by_head(q), by_head(k) / math.sqrt(d), by_head(v)
        heads_i, heads_f = by_head(i_pre).squeeze(-1), by_head(log_f).squeeze(-1)
        if traceable:
            h_tilde, C, n, m = mlstm_recurrent(heads_q, heads_k, heads_v, heads_i, heads_f, c0, n0, m0)
        else:
            h_tilde, C, n, m = mlstm_chunkwise(heads_q, heads_k, heads_v, heads_i, heads_f, c0, n0, m0, self.chunk_size)
        h_tilde = h_tilde.reshape(N, heads, L, d).transpose(1, 2)  # (N, L, heads, d)
        if self.head_norm:  # the official cell's MultiHeadLayerNorm: per head, scale only
            h_tilde = F.layer_norm(h_tilde, (d,), eps=1e-5) * getattr(self, f"weight_norm{suffix}").view(heads, d)
        h = torch.sigmoid(o) * h_tilde.reshape(N, L, H)
        if mask is None:
            h_last = h[:, -1]
        else:
            h = h * mask
            last = (mask.sum(1) - 1).view(N, 1, 1).expand(N, 1, H)
            h_last = h.gather(1, last).squeeze(1)
        return h, (h_last, C.reshape(N, -1), n.reshape(N, -1), m.reshape(N, -1))

    def extra_repr(self) -> str:
        extra = super().extra_repr() + f", heads={self.heads}" + ("" if self.head_norm else ", head_norm=False")
        return extra + (f", chunk_size={self.chunk_size}" if self.chunk_size != 64 else "")


__all__ = ["MLSTM", "MLSTM_CELLS", "MLSTM_INITS", "mlstm_chunkwise", "mlstm_recurrent"]
