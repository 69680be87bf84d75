"""LRU: the Linear Recurrent Unit, a complex diagonal linear recurrence trained with a parallel scan.

Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu and De (2023), "Resurrecting Recurrent Neural Networks for Long
Sequences" (arXiv:2303.06349) make a plain RNN competitive with deep state-space models by keeping its recurrence
linear, diagonal (complex) and stable by construction. Per layer and direction, with state size P (``state_size``)::

    lambda   = exp(-exp(nu) + i exp(theta))              (P,) complex; |lambda| = exp(-exp(nu)) < 1 always
    gamma    = exp(gamma_log)                             (P,) trained, initialised to sqrt(1 - |lambda|^2)
    x_t      = lambda * x_{t-1} + gamma * (B u_t)         B = B_re + i B_im, (P, H_in) complex
    y_t      = Re(C x_t) + D u_t  (+ bias)                C = C_re + i C_im, (H, P) complex; D (H, H_in) real

(``*`` elementwise, u_t the layer's input, x_t the complex state, y_t the output). This is the paper's LRU layer
(its Appendix A): exponential parametrisation of lambda, normalisation gamma trained as exp(gamma_log). The layer is
linear: there is no nonlinearity on y_t. The paper's block around it (pre-norm, GLU/MLP, residual) comes from the
block options of :class:`~seqmodels.nn.stacked.StackedRecurrence`: ``norm``, ``ffn_expansion`` (a residual GELU MLP)
and ``residual``.

Differences from the paper, all documented choices: the paper's D is a vector (a diagonal skip) because its input and
output widths agree; here the input size H_in may differ from H (the first layer, and D * H inputs of a
bidirectional stack), so D is a full real (H, H_in) matrix, initialised diagonal N(0, 1) as the paper's when
H_in = H and with N(0, 1 / H_in) entries otherwise (each output then gets the paper's skip variance). ``bias=True``
adds a real output bias, initialised to 0 (the paper's layer has none: ``bias=False`` is exactly the paper's). The
exponents exp(nu) and exp(theta) are formed from nu, theta clipped at 80 (exp(80) is still finite in float32; there
|lambda| is 0 and the phase meaningless anyway), so no forward or backward pass meets exp(inf) = inf.

Initialisation (``init="torch"``, the only one, the paper's): |lambda| uniform on the ring r_min <= |lambda| <= r_max
(i.e. |lambda|^2 ~ U(r_min^2, r_max^2)), phase ~ U(0, max_phase); B_re, B_im ~ N(0, 1 / (2 H_in)) and C_re, C_im ~
N(0, 1 / P) (the paper's Glorot-style complex normals); gamma_log = log sqrt(1 - |lambda|^2). The defaults
r_min = 0, r_max = 1, max_phase = 2 pi are the paper's; on its long-range tasks the paper uses r_min = 0.9,
r_max = 0.999 and a smaller max_phase (e.g. pi / 10), set through ``cell_options``.

Training (:func:`lru_scan`): lambda does not depend on time, so the recurrence is computed in parallel. The sequence
is cut into K chunks of C ~ sqrt(L) steps; every chunk is scanned from a zero state (a loop over the C steps of a
chunk, all chunks, rows and channels at once), the states entering the chunks follow from a loop over the K chunk
boundaries with lambda^C, and each chunk's entering state is added to its steps in one broadcast multiply by the
closed-form powers lambda^1..lambda^C (computed in float64). Real and imaginary parts are kept as two real planes
(complex CPU kernels ran about 5x slower here). Only products of powers of lambda with |lambda| <= 1 appear (nothing
is divided by a power of lambda), so every intermediate stays bounded. The backward pass (written out) is the same
scan backward in time with conj(lambda), plus two reductions for the gradient of lambda. Memory is linear in L.

Padding: inputs at padded steps are zeroed, the outputs there are set to 0, and the final state is gathered at each
sequence's last valid step (padding is trailing within a direction; the reverse direction runs each sequence reversed
within its length). The state is ``(h, x_re, x_im)``: h (H) the output y at the last valid step (reported only), and
the real and imaginary parts of x (P each), which alone carry the dynamics, so ``hx`` continues a sequence exactly.

Export: while exporting (:func:`~seqmodels.nn.stacked.is_traceable`) the scan runs as :func:`traceable_lru_scan`,
the same recurrence one step at a time through torch's scan operator (an ONNX ``Scan`` over a dynamic length).

Shapes: N = batch, L = sequence length, D = 2 if bidirectional else 1, H_in = input_size, H = hidden_size, P = state
size.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmodels.nn.scan_cells import is_traceable, step_scan
from seqmodels.nn.stacked import StackedRecurrence

LRU_CELLS = ("lru",)
LRU_INITS = ("torch",)
# exp(80) ~ 5.5e34 is finite in float32: nu and theta are clipped there before exponentiating (see the docstring).
_EXPONENT_MAX = 80.0


def lru_eigenvalues(nu_log: Tensor, theta_log: Tensor) -> tuple[Tensor, Tensor]:
    """(Re lambda, Im lambda) of lambda = exp(-exp(nu_log) + i exp(theta_log)), differentiable and finite."""
    modulus = torch.exp(-torch.exp(nu_log.clamp(max=_EXPONENT_MAX)))
    phase = torch.exp(theta_log.clamp(max=_EXPONENT_MAX))
    return modulus * torch.cos(phase), modulus * torch.sin(phase)


# --- the scan ------------------------------------------------------------------------------------------------------


def _layout(steps: int) -> tuple[int, int]:
    """(C, K): K chunks of C steps covering ``steps``; C about sqrt(steps), a divisor of it when one is close."""
    C = max(1, min(64, math.isqrt(steps)))
    for c in range(C, max(1, C // 2) - 1, -1):
        if steps % c == 0:
            return c, steps // c
    return C, -(-steps // C)


def _powers(lam_re: Tensor, lam_im: Tensor, exponents: Tensor) -> tuple[Tensor, Tensor]:
    """(Re, Im) of lambda^k for each k in ``exponents`` (>= 1), (len, P), in closed form in float64."""
    re, im = lam_re.double(), lam_im.double()
    log_modulus = torch.log(torch.hypot(re, im))  # -inf where lambda = 0: then lambda^k = 0 for k >= 1
    angle = torch.atan2(im, re)
    k = exponents.double().unsqueeze(1)
    modulus = torch.exp(k * log_modulus)
    return (modulus * torch.cos(k * angle)).to(lam_re.dtype), (modulus * torch.sin(k * angle)).to(lam_re.dtype)


def _rotate_add_(target: Tensor, lam_re: Tensor, lam_im: Tensor, source: Tensor) -> None:
    """In place: target += lambda * source, for (..., 2, P) real/imaginary planes (target and source disjoint)."""
    t_re, t_im = target.select(-2, 0), target.select(-2, 1)
    s_re, s_im = source.select(-2, 0), source.select(-2, 1)
    t_re.addcmul_(lam_re, s_re).addcmul_(lam_im, s_im, value=-1)
    t_im.addcmul_(lam_re, s_im).addcmul_(lam_im, s_re)


@torch.no_grad()
def _scan_(lam_re: Tensor, lam_im: Tensor, x: Tensor, x0: Tensor | None = None, reverse: bool = False) -> Tensor:
    """In place: x_t <- lambda * x_{t-1} + x_t along dim 1 of a contiguous (N, L, 2, P) tensor, from x_{-1} = x0.

    The planes of dim 2 are the real and imaginary parts; lambda (P,) is given by its parts. ``reverse``:
    x_t <- lambda * x_{t+1} + x_t from a zero state after the end (no x0). See the module docstring for the chunks.
    """
    if reverse and x0 is not None:
        raise ValueError("_scan_ runs a reverse scan from a zero state only")
    N, L, _, P = x.shape  # noqa: N806 (the docstring's P)
    if L == 1:
        if x0 is not None:
            _rotate_add_(x[:, 0], lam_re, lam_im, x0)
        return x
    C, K = _layout(L)
    work = x
    if K * C != L:  # zero inputs after the end change nothing before it (reverse: they stay 0, from a zero state)
        work = F.pad(x, (0, 0, 0, 0, 0, K * C - L))
    chunks = work.view(N, K, C, 2, P)
    order = range(C - 1, -1, -1) if reverse else range(C)
    # 1. Every chunk from a zero state, all chunks at once.
    for prev, c in zip(order[:-1], order[1:], strict=True):
        _rotate_add_(chunks[:, :, c], lam_re, lam_im, chunks[:, :, prev])
    if K > 1 or x0 is not None:
        # lambda^1..lambda^C, the coefficient of a chunk's entering state at each of its steps
        pow_re, pow_im = _powers(lam_re, lam_im, torch.arange(1, C + 1, device=x.device))
        if reverse:
            pow_re, pow_im = pow_re.flip(0), pow_im.flip(0)
        # 2. The state entering each chunk: s_k = lambda^C s_{k-1} + (chunk k-1's last state from zero).
        entering = x.new_zeros(N, K, 2, P)
        boundaries = range(K - 1, -1, -1) if reverse else range(K)
        if x0 is not None:
            entering[:, boundaries[0]] = x0
        last_re, last_im = pow_re[C - 1 if not reverse else 0], pow_im[C - 1 if not reverse else 0]
        for prev, k in zip(boundaries[:-1], boundaries[1:], strict=True):
            entering[:, k] = chunks[:, prev, order[-1]]
            _rotate_add_(entering[:, k], last_re, last_im, entering[:, prev])
        # 3. Each chunk's entering state carried to its steps: x[k, c] += lambda^(c+1) s_k.
        s_re, s_im = entering[:, :, None, 0], entering[:, :, None, 1]  # (N, K, 1, P)
        x_re, x_im = chunks[:, :, :, 0], chunks[:, :, :, 1]  # (N, K, C, P)
        x_re.addcmul_(s_re, pow_re).addcmul_(s_im, pow_im, value=-1)
        x_im.addcmul_(s_re, pow_im).addcmul_(s_im, pow_re)
    if work is not x:
        x.copy_(work[:, :L])
    return x


class _LRUScan(torch.autograd.Function):
    """x = the scan of b (N, L, 2P: real planes then imaginary planes per step); ``inplace``: scanned in b itself."""

    @staticmethod
    def forward(ctx, lam_re: Tensor, lam_im: Tensor, b: Tensor, x0: Tensor | None, inplace: bool) -> Tensor:
        N, L, P = b.shape[0], b.shape[1], lam_re.shape[0]  # noqa: N806 (the docstring's P)
        x = b if inplace else b.clone(memory_format=torch.contiguous_format)
        _scan_(lam_re, lam_im, x.view(N, L, 2, P), x0)
        if inplace:
            ctx.mark_dirty(x)
        ctx.has_x0 = x0 is not None
        ctx.save_for_backward(lam_re, lam_im, x, x0 if x0 is not None else x)
        return x

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        lam_re, lam_im, x, x0 = ctx.saved_tensors
        N, L, P = x.shape[0], x.shape[1], lam_re.shape[0]  # noqa: N806 (the docstring's P)
        x = x.view(N, L, 2, P)
        # dL/dx_t through every later step: G_t = g_t + conj(lambda) G_{t+1}, the scan backward in time.
        grad_b = grad_out.clone(memory_format=torch.contiguous_format)
        grad = _scan_(lam_re, -lam_im, grad_b.view(N, L, 2, P), reverse=True)
        grad_lam_re = grad_lam_im = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            # x_t = lambda x_{t-1} + b_t: dL/dRe(lambda) = sum G_r p_r + G_i p_i, dL/dIm(lambda) = sum G_i p_r - G_r p_i
            # over all rows and steps, with p = x_{t-1} (x0, or 0, before step 0).
            g, p = grad[:, 1:], x[:, :-1]
            grad_lam_re = (g * p).sum((0, 1, 2))
            grad_lam_im = (g[:, :, 1] * p[:, :, 0]).sum((0, 1)) - (g[:, :, 0] * p[:, :, 1]).sum((0, 1))
            if ctx.has_x0:
                g_re, g_im, p_re, p_im = grad[:, 0, 0], grad[:, 0, 1], x0[:, 0], x0[:, 1]
                grad_lam_re = grad_lam_re + (g_re * p_re + g_im * p_im).sum(0)
                grad_lam_im = grad_lam_im + (g_im * p_re - g_re * p_im).sum(0)
        grad_x0 = None
        if ctx.has_x0 and ctx.needs_input_grad[3]:
            grad_x0 = torch.zeros_like(x0)
            _rotate_add_(grad_x0, lam_re, -lam_im, grad[:, 0])  # conj(lambda) G_0
        return grad_lam_re, grad_lam_im, grad_b, grad_x0, None


def lru_scan(lam_re: Tensor, lam_im: Tensor, b: Tensor, x0: Tensor | None = None) -> Tensor:
    """x_t = lambda * x_{t-1} + b_t along dim 1 for a complex diagonal lambda, differentiable in all inputs.

    Args:
        lam_re, lam_im: (P,) real and imaginary parts of lambda (|lambda| <= 1 keeps every intermediate bounded).
        b: (N, L, 2, P) inputs, real and imaginary parts in dim 2.
        x0: (N, 2, P) state before step 0; None: zeros.

    Returns x (N, L, 2, P). The backward pass is a second scan, backward in time, with conj(lambda).
    """
    if b.dim() != 4 or b.shape[2] != 2 or b.shape[3] != lam_re.shape[0]:
        raise ValueError(f"lru_scan expects b (N, L, 2, P={lam_re.shape[0]}), got {tuple(b.shape)}")
    N, L, _, P = b.shape  # noqa: N806 (the docstring's P)
    return _LRUScan.apply(lam_re, lam_im, b.reshape(N, L, 2 * P), x0, False).view(N, L, 2, P)


def traceable_lru_scan(lam_re: Tensor, lam_im: Tensor, b: Tensor, x0: Tensor | None = None) -> Tensor:
    """The LRU recurrence one step at a time through torch's scan operator
    (:func:`~seqmodels.nn.scan_cells.step_scan`), which traces with a dynamic L: b (N, L, 2P) (real planes, then
    imaginary ones) and x0 (N, 2, P) or None -> x (N, L, 2P)."""
    N, P = b.shape[0], lam_re.shape[0]  # noqa: N806 (the docstring's P)

    def step(state: tuple[Tensor, Tensor], b_t: Tensor) -> tuple[tuple[Tensor, Tensor], Tensor]:
        x_re, x_im = state
        b_re, b_im = b_t.split(P, dim=-1)
        x_re, x_im = lam_re * x_re - lam_im * x_im + b_re, lam_re * x_im + lam_im * x_re + b_im
        return (x_re, x_im), torch.cat([x_re, x_im], dim=-1)

    start = (b.new_zeros(N, P), b.new_zeros(N, P)) if x0 is None else (x0[:, 0], x0[:, 1])
    _, x = step_scan(step, start, b.transpose(0, 1))
    return x.transpose(0, 1).contiguous()  # the engine views it


# --- the stack ------------------------------------------------------------------------------------------------------


class LRU(StackedRecurrence):
    """A multi-layer Linear Recurrent Unit (Orvieto et al. 2023; see the module docstring).

    The ``cell="lru"`` engine of :class:`~seqmodels.nn.RecurrentEncoder` (usable on its own). Parameters per layer
    and direction (suffix ``_l{k}[_reverse]`` as torch's): ``nu_log``, ``theta_log``, ``gamma_log`` (P,), ``B_re``,
    ``B_im`` (P, H_in), ``C_re``, ``C_im`` (H, P), ``D`` (H, H_in), and with ``bias`` a real output ``bias`` (H,).

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: as for ``torch.nn.RNN``
            (``bias``: an output bias, initialised to 0, that the paper's layer does not have).
        residual, norm, ffn_expansion: the block options of :class:`~seqmodels.nn.stacked.StackedRecurrence` (the
            paper's blocks: pre-norm, an MLP/GLU after the LRU, residual).
        init: ``"torch"``, the only choice: the paper's initialisation.
        state_size: P, the complex state size (cell option; default hidden_size, as the paper's N = H).
        r_min, r_max: the ring of initial |lambda| (cell options; defaults 0 and 1, the paper's).
        max_phase: initial phases of lambda ~ U(0, max_phase) (cell option; default 2 pi, the paper's).

    Inputs ``input, hx=None, lengths=None``; outputs ``output, h_n`` as for ``torch.nn.RNN``, with the state a tuple
    ``(h, x_re, x_im)`` of (D * num_layers, N, H), (D * num_layers, N, P) and (D * num_layers, N, P). Output is
    exactly 0 at padded steps; each state is that of each sequence's last valid step.
    """

    cells = LRU_CELLS
    inits = LRU_INITS
    state_names = ("h", "x_re", "x_im")
    reads_h = False  # "h" reports the last output; the other state tensors carry the dynamics

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        cell: str = "lru",
        state_size: int | None = None,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = 2 * math.pi,
        **options,
    ) -> None:
        known = set(inspect.signature(StackedRecurrence.__init__).parameters)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"cell={cell!r} has no option {', '.join(unknown)}; its cell_options are state_size, r_min, r_max, "
                "max_phase"
            )
        if state_size is None:
            state_size = hidden_size
        if not isinstance(state_size, int) or isinstance(state_size, bool) or state_size < 1:
            raise ValueError(f"state_size must be an integer >= 1 (or null: hidden_size), got {state_size!r}")
        for name, value in (("r_min", r_min), ("r_max", r_max), ("max_phase", max_phase)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not 0.0 <= r_min <= r_max <= 1.0 or r_max == 0.0 or r_min == 1.0:
            raise ValueError(
                f"the ring needs 0 <= r_min <= r_max <= 1 with r_max > 0 and r_min < 1, got r_min={r_min!r}, "
                f"r_max={r_max!r}; e.g. r_min=0.0, r_max=1.0 (the paper's default) or 0.9, 0.999"
            )
        if not max_phase > 0:
            raise ValueError(f"max_phase must be > 0 (the paper's default: 2 pi), got {max_phase!r}")
        super().__init__(cell, input_size, hidden_size, num_layers, **options)
        self.state_size = state_size
        self.r_min, self.r_max, self.max_phase = float(r_min), float(r_max), float(max_phase)
        self.build()

    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size, self.state_size, self.state_size)

    def build_direction(self, suffix: str, input_size: int) -> None:
        H, P = self.hidden_size, self.state_size  # noqa: N806 (the docstring's P)
        shapes = {
            "nu_log": (P,),
            "theta_log": (P,),
            "gamma_log": (P,),
            "B_re": (P, input_size),
            "B_im": (P, input_size),
            "C_re": (H, P),
            "C_im": (H, P),
            "D": (H, input_size),
        }
        if self.bias:
            shapes["bias"] = (H,)
        for name, shape in shapes.items():
            self.register_parameter(f"{name}{suffix}", nn.Parameter(torch.empty(shape)))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        P = self.state_size  # noqa: N806 (the docstring's P)
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                suffix = self.suffix(layer, direction)

                def param(name: str, suffix: str = suffix) -> Tensor:
                    return getattr(self, f"{name}{suffix}").data

                H, fan_in = param("D").shape
                # Ring init (paper, Lemma 3.2): |lambda|^2 ~ U(r_min^2, r_max^2), phase ~ U(0, max_phase); u drawn
                # inside (0, 1) so that |lambda| < 1 and the logarithms below stay finite.
                u1, u2 = torch.rand(2, P, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)
                modulus_sq = u1 * (self.r_max**2 - self.r_min**2) + self.r_min**2
                nu = -0.5 * torch.log(modulus_sq)  # exp(nu_log) = -log |lambda|
                param("nu_log").copy_(torch.log(nu))
                param("theta_log").copy_(torch.log(self.max_phase * u2))
                param("gamma_log").copy_(0.5 * torch.log(-torch.expm1(-2 * nu)))  # log sqrt(1 - |lambda|^2)
                for name, std in (("B_re", 2 * fan_in), ("B_im", 2 * fan_in), ("C_re", P), ("C_im", P)):
                    nn.init.normal_(param(name), std=1.0 / math.sqrt(std))
                if fan_in == H:  # the paper's diagonal skip D ~ N(0, 1)
                    param("D").copy_(torch.diag(torch.randn(H)))
                else:  # no diagonal: N(0, 1 / H_in) entries give each output the paper's skip variance
                    nn.init.normal_(param("D"), std=1.0 / math.sqrt(fan_in))
                if self.bias:
                    nn.init.zeros_(param("bias"))

    def run_direction(
        self, suffix: str, x: Tensor, state: tuple[Tensor, ...] | None, mask: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        def param(name: str) -> Tensor:
            return getattr(self, f"{name}{suffix}")

        N, L, _ = x.shape
        P = self.state_size  # noqa: N806 (the docstring's P)
        lam_re, lam_im = lru_eigenvalues(param("nu_log"), param("theta_log"))
        gamma = torch.exp(param("gamma_log")).unsqueeze(1)
        weight_b = torch.cat([gamma * param("B_re"), gamma * param("B_im")])  # (2P, H_in): gamma * B u_t, re and im
        weight_out = torch.cat([param("C_re"), -param("C_im")], dim=1)  # (H, 2P): Re(C x) = C_re x_re - C_im x_im
        if mask is not None:
            x = x.masked_fill(~mask, 0.0)  # padded inputs may be anything; their states are never used
        skip = F.linear(x, param("D"), param("bias") if self.bias else None)  # D u_t (+ bias)
        x0 = None if state is None else torch.stack(state[1:], dim=1)  # (N, 2, P)
        # the product's result is used by nothing else, so the scan runs in it
        if is_traceable(self):
            states = traceable_lru_scan(lam_re, lam_im, F.linear(x, weight_b), x0)
        else:
            states = _LRUScan.apply(lam_re, lam_im, F.linear(x, weight_b), x0, True)  # (N, L, 2P)
        y = torch.addmm(skip.view(N * L, -1), states.view(N * L, 2 * P), weight_out.t()).view(N, L, -1)
        states = states.view(N, L, 2, P)
        if mask is None:
            last_y, last_x = y[:, -1], states[:, -1]
        else:
            last = (mask.sum(1).view(N, 1, 1) - 1).clamp(min=0)
            last_y = y.gather(1, last.expand(N, 1, y.shape[-1])).squeeze(1)
            last_x = states.gather(1, last.unsqueeze(-1).expand(N, 1, 2, P)).squeeze(1)
            y = y.masked_fill(~mask, 0.0)
        return y, (last_y, last_x[:, 0], last_x[:, 1])

    def extra_repr(self) -> str:
        extra = f"{super().extra_repr()}, state_size={self.state_size}"
        defaults = (0.0, 1.0, 2 * math.pi)
        if (self.r_min, self.r_max, self.max_phase) != defaults:
            extra += f", r_min={self.r_min}, r_max={self.r_max}, max_phase={self.max_phase}"
        return extra


__all__ = ["LRU", "LRU_CELLS", "LRU_INITS", "lru_eigenvalues", "lru_scan", "traceable_lru_scan"]
