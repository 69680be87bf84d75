"""Research cells: RNN, LSTM and GRU written out in plain torch, and a multi-layer stack built from them.

* :class:`RNNCell`, :class:`LSTMCell`, :class:`GRUCell` compute one step exactly as ``torch.nn.RNNCell`` /
  ``LSTMCell`` / ``GRUCell`` do, with the same parameter names (``weight_ih``, ``weight_hh``, ``bias_ih``,
  ``bias_hh``), so weights copy across with ``load_state_dict``. :class:`LayerNormLSTMCell` adds layer
  normalisation (Ba et al., 2016).
* :class:`CustomRNN` is the ``impl="custom"`` counterpart of ``torch.nn.RNN/LSTM/GRU``: same arguments, same
  parameter names (``weight_hh_l0_reverse``, ...), same ``(output, h_n)`` results, plus LayerNorm-LSTM,
  recurrent (variational) dropout, zoneout, and state probes that expose the gradient of the loss with respect
  to every hidden state h_t. Its time loop is compiled with TorchScript (``scripts/benchmark_cells.py``
  compares it with ``torch.compile`` and the fused kernels).

Shapes: N = batch, L = sequence length, D = 2 if bidirectional else 1, H_in = input_size, H = hidden_size,
H_out = proj_size if proj_size > 0 else hidden_size.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmodels.nn.masking import as_lengths, check_lengths

# torch.nn's mode names, so one forward serves CustomRNN and the fused torch modules alike.
MODES = {"rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU", "lstm": "LSTM", "gru": "GRU"}
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# --- one step of each cell (TorchScript-compatible: the time loops below compile them in) -------------------------
# ``x_gates`` is the input projection W_ih x (+ biases, see each function), computed for all steps at once.


def rnn_step(x_gates: Tensor, h: Tensor, weight_hh: Tensor, relu: bool) -> Tensor:
    """h' = act(x_gates + W_hh h), with both biases already in ``x_gates``."""
    pre = torch.addmm(x_gates, h, weight_hh.t())
    return torch.relu(pre) if relu else torch.tanh(pre)


def lstm_step(
    x_gates: Tensor,
    h: Tensor,
    c: Tensor,
    weight_hh: Tensor,
    weight_hr: Optional[Tensor],
    ln_hh_weight: Optional[Tensor],
    ln_hh_bias: Optional[Tensor],
    ln_c_weight: Optional[Tensor],
    ln_c_bias: Optional[Tensor],
) -> tuple[Tensor, Tensor]:
    """(h', c') of an LSTM step; gate order i, f, g, o as in torch; both biases already in ``x_gates``.

    With layer norm (the ``ln_*`` tensors), W_hh h and the new cell state are normalised (``x_gates`` arrives
    normalised); ``weight_hr`` projects h' (``proj_size``).
    """
    if ln_hh_weight is not None and ln_hh_bias is not None:
        hh = torch.mm(h, weight_hh.t())
        gates = x_gates + F.layer_norm(hh, [hh.size(1)], ln_hh_weight, ln_hh_bias)
    else:
        gates = torch.addmm(x_gates, h, weight_hh.t())
    i, f, g, o = gates.chunk(4, 1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    c_out = c_new
    if ln_c_weight is not None and ln_c_bias is not None:
        c_out = F.layer_norm(c_new, [c_new.size(1)], ln_c_weight, ln_c_bias)
    h_new = torch.sigmoid(o) * torch.tanh(c_out)
    if weight_hr is not None:
        h_new = torch.mm(h_new, weight_hr.t())
    return h_new, c_new


def gru_step(x_gates: Tensor, h: Tensor, h_in: Tensor, weight_hh: Tensor, bias_hh: Optional[Tensor]) -> Tensor:
    """h' of a GRU step (gate order r, z, n as in torch); ``x_gates`` holds b_ih only, because b_hn sits inside
    the reset gate's product. ``h_in`` is the state fed to W_hh (``h`` after recurrent dropout)."""
    hh = torch.mm(h_in, weight_hh.t()) if bias_hh is None else torch.addmm(bias_hh, h_in, weight_hh.t())
    x_r, x_z, x_n = x_gates.chunk(3, 1)
    h_r, h_z, h_n = hh.chunk(3, 1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1.0 - z) * n + z * h


# --- one layer, one direction, over time ------------------------------------------------------------------------
# Shared arguments: x_gates (L, N, G * H); valid (L, N, 1) bool or None (no padding); h_mask (N, H_out) scaled
# recurrent-dropout mask or None; keep_h / keep_c (L, N, H_out / H) zoneout keep-probabilities (a Bernoulli
# draw in training, the rate itself in eval) or None; probe (L, N, H_out) zeros whose gradient is dL/dh_t, or None.
# Padded steps carry the state unchanged (torch.where, so garbage never leaks in); outputs there are zeroed later.
# Per-step tensors are unbound once up front: indexing x[t] inside the loop would make every step's backward
# allocate and fill a zero tensor the size of the whole sequence (this alone made training ~2x slower).


def _rnn_layer(
    x_gates: Tensor,
    h: Tensor,
    weight_hh: Tensor,
    relu: bool,
    valid: Optional[Tensor],
    h_mask: Optional[Tensor],
    keep_h: Optional[Tensor],
    probe: Optional[Tensor],
    reverse: bool,
) -> tuple[Tensor, Tensor]:
    steps = x_gates.size(0)
    xs = x_gates.unbind(0)
    valids = valid.unbind(0) if valid is not None else None
    keeps_h = keep_h.unbind(0) if keep_h is not None else None
    probes = probe.unbind(0) if probe is not None else None
    outputs: list[Tensor] = []
    for i in range(steps):
        t = steps - 1 - i if reverse else i
        h_new = rnn_step(xs[t], h if h_mask is None else h * h_mask, weight_hh, relu)
        if keeps_h is not None:
            h_new = torch.lerp(h_new, h, keeps_h[t])
        if probes is not None:
            h_new = h_new + probes[t]
        if valids is not None:
            h_new = torch.where(valids[t], h_new, h)
        h = h_new
        outputs.append(h)
    if reverse:
        outputs.reverse()
    return torch.stack(outputs), h


def _lstm_layer(
    x_gates: Tensor,
    h: Tensor,
    c: Tensor,
    weight_hh: Tensor,
    weight_hr: Optional[Tensor],
    ln_hh_weight: Optional[Tensor],
    ln_hh_bias: Optional[Tensor],
    ln_c_weight: Optional[Tensor],
    ln_c_bias: Optional[Tensor],
    valid: Optional[Tensor],
    h_mask: Optional[Tensor],
    keep_h: Optional[Tensor],
    keep_c: Optional[Tensor],
    probe: Optional[Tensor],
    reverse: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    steps = x_gates.size(0)
    xs = x_gates.unbind(0)
    valids = valid.unbind(0) if valid is not None else None
    keeps_h = keep_h.unbind(0) if keep_h is not None else None
    keeps_c = keep_c.unbind(0) if keep_c is not None else None
    probes = probe.unbind(0) if probe is not None else None
    outputs: list[Tensor] = []
    for i in range(steps):
        t = steps - 1 - i if reverse else i
        h_new, c_new = lstm_step(
            xs[t],
            h if h_mask is None else h * h_mask,
            c,
            weight_hh,
            weight_hr,
            ln_hh_weight,
            ln_hh_bias,
            ln_c_weight,
            ln_c_bias,
        )
        if keeps_h is not None and keeps_c is not None:
            h_new = torch.lerp(h_new, h, keeps_h[t])
            c_new = torch.lerp(c_new, c, keeps_c[t])
        if probes is not None:
            h_new = h_new + probes[t]
        if valids is not None:
            h_new = torch.where(valids[t], h_new, h)
            c_new = torch.where(valids[t], c_new, c)
        h, c = h_new, c_new
        outputs.append(h)
    if reverse:
        outputs.reverse()
    return torch.stack(outputs), h, c


def _gru_layer(
    x_gates: Tensor,
    h: Tensor,
    weight_hh: Tensor,
    bias_hh: Optional[Tensor],
    valid: Optional[Tensor],
    h_mask: Optional[Tensor],
    keep_h: Optional[Tensor],
    probe: Optional[Tensor],
    reverse: bool,
) -> tuple[Tensor, Tensor]:
    steps = x_gates.size(0)
    xs = x_gates.unbind(0)
    valids = valid.unbind(0) if valid is not None else None
    keeps_h = keep_h.unbind(0) if keep_h is not None else None
    probes = probe.unbind(0) if probe is not None else None
    outputs: list[Tensor] = []
    for i in range(steps):
        t = steps - 1 - i if reverse else i
        h_new = gru_step(xs[t], h, h if h_mask is None else h * h_mask, weight_hh, bias_hh)
        if keeps_h is not None:
            h_new = torch.lerp(h_new, h, keeps_h[t])
        if probes is not None:
            h_new = h_new + probes[t]
        if valids is not None:
            h_new = torch.where(valids[t], h_new, h)
        h = h_new
        outputs.append(h)
    if reverse:
        outputs.reverse()
    return torch.stack(outputs), h


LAYER_FUNCTIONS = {"rnn": _rnn_layer, "lstm": _lstm_layer, "gru": _gru_layer}
BACKENDS = ("script", "eager", "compile")


@functools.cache
def layer_function(kind: str, backend: str = "script") -> Any:
    """The time loop of one layer for ``kind`` in {"rnn", "lstm", "gru"}, compiled with ``backend``.

    ``"script"`` (TorchScript, the default), ``"eager"`` (plain Python) or ``"compile"`` (``torch.compile``: the
    fastest per step, but it unrolls the loop, so it takes minutes to compile and compiles anew for every sequence
    length and for grad/no-grad). ``scripts/benchmark_cells.py`` measures them against the fused kernels.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    fn = LAYER_FUNCTIONS[kind]
    if backend == "eager":
        return fn
    if backend == "compile":
        return torch.compile(fn, dynamic=False)
    with warnings.catch_warnings():
        # torch marks TorchScript deprecated; it still compiles once per process in well under a second, where
        # torch.compile takes minutes per shape.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return torch.jit.script(fn)
        except Exception as exc:  # a torch without TorchScript: the same loop, uncompiled
            warnings.warn(f"TorchScript unavailable ({exc}); running the recurrent loop eagerly", stacklevel=2)
            return fn


# --- per-step cells ------------------------------------------------------------------------------------------------


class _CellBase(nn.Module):
    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        rows = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(rows)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default: every weight uniform in [-1/sqrt(H), 1/sqrt(H)]."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, param in self.named_parameters():
            if name.startswith(("weight", "bias")):
                nn.init.uniform_(param, -bound, bound)

    def _batched(self, input: Tensor) -> tuple[Tensor, bool]:
        if input.dim() not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects input (N, {self.input_size}) or ({self.input_size},), "
                f"got shape {tuple(input.shape)}"
            )
        return (input, False) if input.dim() == 2 else (input.unsqueeze(0), True)

    def _zeros(self, input: Tensor) -> Tensor:
        return input.new_zeros(input.shape[0], self.hidden_size)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_CellBase):
    """One Elman step, h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or ReLU), like :class:`torch.nn.RNNCell`.

    Inputs: ``input`` (N, H_in) or (H_in,), ``hx`` (N, H) or None (zeros). Output: h' (N, H) (or (H,)).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, unbatched = self._batched(input)
        h = self._zeros(x) if hx is None else (hx.unsqueeze(0) if unbatched else hx)
        bias = None if self.bias_ih is None else self.bias_ih + self.bias_hh
        h_new = rnn_step(F.linear(x, self.weight_ih, bias), h, self.weight_hh, self.nonlinearity == "relu")
        return h_new.squeeze(0) if unbatched else h_new


class GRUCell(_CellBase):
    """One GRU step, like :class:`torch.nn.GRUCell` (gates r, z, n; h' = (1 - z) * n + z * h).

    Inputs: ``input`` (N, H_in) or (H_in,), ``hx`` (N, H) or None (zeros). Output: h' (N, H) (or (H,)).
    """

    gates = 3

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, unbatched = self._batched(input)
        h = self._zeros(x) if hx is None else (hx.unsqueeze(0) if unbatched else hx)
        h_new = gru_step(F.linear(x, self.weight_ih, self.bias_ih), h, h, self.weight_hh, self.bias_hh)
        return h_new.squeeze(0) if unbatched else h_new


class LSTMCell(_CellBase):
    """One LSTM step, like :class:`torch.nn.LSTMCell` (gates i, f, g, o; c' = f c + i g; h' = o tanh(c')).

    Inputs: ``input`` (N, H_in) or (H_in,), ``hx`` a tuple (h, c) of (N, H) or None (zeros).
    Output: (h', c'), each (N, H) (or (H,)).
    """

    gates = 4

    def _norms(self) -> tuple[Tensor | None, ...]:
        return None, None, None, None

    def _input_gates(self, x: Tensor) -> Tensor:
        bias = None if self.bias_ih is None else self.bias_ih + self.bias_hh
        return F.linear(x, self.weight_ih, bias)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        x, unbatched = self._batched(input)
        if hx is None:
            h, c = self._zeros(x), self._zeros(x)
        else:
            h, c = (s.unsqueeze(0) for s in hx) if unbatched else hx
        h_new, c_new = lstm_step(self._input_gates(x), h, c, self.weight_hh, None, *self._norms())
        return (h_new.squeeze(0), c_new.squeeze(0)) if unbatched else (h_new, c_new)


class LayerNormLSTMCell(LSTMCell):
    """An LSTM step with layer normalisation (Ba et al., 2016):

    gates = LN(W_ih x) + LN(W_hh h) + b,  c' = f c + i g,  h' = o tanh(LN(c')).

    Normalising the pre-activations keeps every gate in its responsive range whatever the weights' scale. Each
    LN has a gain (``ln_*_weight``, ones) and a shift (``ln_*_bias``, zeros); the torch biases stay, so forget-gate
    bias initialisation works as usual. Inputs and outputs as :class:`LSTMCell`.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, bias)
        for name, size in (("ih", 4 * hidden_size), ("hh", 4 * hidden_size), ("c", hidden_size)):
            self.register_parameter(f"ln_{name}_weight", nn.Parameter(torch.ones(size)))
            self.register_parameter(f"ln_{name}_bias", nn.Parameter(torch.zeros(size)))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for name, param in self.named_parameters():
            if name.startswith("ln_"):
                nn.init.ones_(param) if name.endswith("weight") else nn.init.zeros_(param)

    def _norms(self) -> tuple[Tensor | None, ...]:
        return self.ln_hh_weight, self.ln_hh_bias, self.ln_c_weight, self.ln_c_bias

    def _input_gates(self, x: Tensor) -> Tensor:
        gates = F.layer_norm(F.linear(x, self.weight_ih), [4 * self.hidden_size], self.ln_ih_weight, self.ln_ih_bias)
        return gates if self.bias_ih is None else gates + self.bias_ih + self.bias_hh


# --- the multi-layer, bidirectional stack --------------------------------------------------------------------------


def _suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction else "")


def _param(rnn: nn.Module, name: str) -> Tensor | None:
    return getattr(rnn, name, None)


def recurrent_forward(
    rnn: nn.Module,
    input: Tensor,
    hx: Tensor | tuple[Tensor, Tensor] | None = None,
    lengths: Tensor | None = None,
    probes: dict[str, Tensor] | None = None,
    backend: str = "script",
) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
    """Runs a :class:`CustomRNN` *or a fused* ``torch.nn.RNN/LSTM/GRU`` step by step with its own weights.

    The two share parameter names and attributes (``mode``, ``hidden_size``, ``proj_size``, ...), so the same loop
    gives the fused module's results (within float rounding) when its kernel cannot be used, e.g. to probe the
    hidden states. ``lengths`` must already be validated; ``probes``, if given, is filled with one zero tensor
    (L, N, H_out) per layer and direction (keys ``"layer0"``, ``"layer0_reverse"``) whose ``.grad`` after
    backward is dL/dh_t for every step t. Shapes as :class:`CustomRNN`.
    """
    mode = rnn.mode
    hidden_size, num_layers = rnn.hidden_size, rnn.num_layers
    proj_size = getattr(rnn, "proj_size", 0)
    state_size = proj_size or hidden_size
    directions = 2 if rnn.bidirectional else 1
    training = rnn.training
    layer_norm = getattr(rnn, "layer_norm", False)
    recurrent_dropout = getattr(rnn, "recurrent_dropout", 0.0)
    zoneout = getattr(rnn, "zoneout", 0.0)

    x = input.transpose(0, 1) if rnn.batch_first else input  # time-major from here on: (L, N, H_in)
    steps, batch = x.shape[0], x.shape[1]
    is_lstm = mode == "LSTM"
    if hx is None:
        h0 = x.new_zeros(directions * num_layers, batch, state_size)
        c0 = x.new_zeros(directions * num_layers, batch, hidden_size) if is_lstm else None
    elif is_lstm:
        h0, c0 = hx
    else:
        h0, c0 = hx, None

    valid = None
    if lengths is not None:
        valid = (torch.arange(steps, device=x.device).unsqueeze(1) < lengths.to(x.device).unsqueeze(0)).unsqueeze(-1)
        # Zero the padding once, so garbage there never reaches a product (not even one torch.where discards).
        x = x.masked_fill(~valid, 0.0)

    kind = {"RNN_TANH": "rnn", "RNN_RELU": "rnn", "LSTM": "lstm", "GRU": "gru"}[mode]
    loop = layer_function(kind, backend)
    h_n: list[Tensor] = []
    c_n: list[Tensor] = []
    for layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            sfx = _suffix(layer, direction)
            index = layer * directions + direction
            w_ih, w_hh = _param(rnn, "weight_ih" + sfx), _param(rnn, "weight_hh" + sfx)
            b_ih, b_hh = _param(rnn, "bias_ih" + sfx), _param(rnn, "bias_hh" + sfx)
            h = h0[index]
            if kind == "gru":
                x_gates = F.linear(x, w_ih, b_ih)
            elif layer_norm:
                x_gates = F.layer_norm(
                    F.linear(x, w_ih),
                    [w_ih.shape[0]],
                    _param(rnn, "ln_ih_weight" + sfx),
                    _param(rnn, "ln_ih_bias" + sfx),
                )
                x_gates = x_gates if b_ih is None else x_gates + (b_ih + b_hh)
            else:
                x_gates = F.linear(x, w_ih, None if b_ih is None else b_ih + b_hh)

            # Recurrent (variational) dropout: one mask per sequence, reused at every step (Gal & Ghahramani, 2016).
            h_mask = None
            if training and recurrent_dropout > 0:
                h_mask = h.new_empty(batch, state_size).bernoulli_(1 - recurrent_dropout) / (1 - recurrent_dropout)
            # Zoneout (Krueger et al., 2017): each unit keeps its previous value with probability `zoneout`;
            # eval uses the expectation, as dropout does.
            keep_h = keep_c = None
            if zoneout > 0:
                if training:
                    keep_h = h.new_empty(steps, batch, state_size).bernoulli_(zoneout)
                    keep_c = h.new_empty(steps, batch, hidden_size).bernoulli_(zoneout)
                else:
                    keep_h = h.new_full((1, 1, 1), zoneout).expand(steps, batch, state_size)
                    keep_c = h.new_full((1, 1, 1), zoneout).expand(steps, batch, hidden_size)
            probe = None
            if probes is not None:
                probe = h.new_zeros(steps, batch, state_size, requires_grad=True)
                probes[f"layer{layer}" + ("_reverse" if direction else "")] = probe

            reverse = direction == 1
            if kind == "rnn":
                out, h_last = loop(x_gates, h, w_hh, mode == "RNN_RELU", valid, h_mask, keep_h, probe, reverse)
            elif kind == "gru":
                out, h_last = loop(x_gates, h, w_hh, b_hh, valid, h_mask, keep_h, probe, reverse)
            else:
                norms = [_param(rnn, f"ln_{n}" + sfx) for n in ("hh_weight", "hh_bias", "c_weight", "c_bias")]
                out, h_last, c_last = loop(
                    x_gates,
                    h,
                    c0[index],
                    w_hh,
                    _param(rnn, "weight_hr" + sfx),
                    *norms,
                    valid,
                    h_mask,
                    keep_h,
                    keep_c,
                    probe,
                    reverse,
                )
                c_n.append(c_last)
            h_n.append(h_last)
            outputs.append(out)
        x = outputs[0] if directions == 1 else torch.cat(outputs, dim=-1)
        if valid is not None:
            x = x.masked_fill(~valid, 0.0)  # the reverse pass emits its initial state over the padding
        if layer < num_layers - 1 and rnn.dropout > 0 and training:
            x = F.dropout(x, rnn.dropout, training=True)

    output = x.transpose(0, 1) if rnn.batch_first else x
    h_final = torch.stack(h_n)
    return output, ((h_final, torch.stack(c_n)) if is_lstm else h_final)


class CustomRNN(nn.Module):
    """A multi-layer RNN, LSTM or GRU built from the cells above: the ``impl="custom"`` path of
    :class:`~seqmodels.nn.RecurrentEncoder`.

    Takes the arguments of ``torch.nn.LSTM`` (``proj_size`` for LSTM only) and names its parameters like it
    (``weight_ih_l0``, ``weight_hh_l1_reverse``, ``weight_hr_l0``, ...), so a fused module's ``state_dict`` loads
    as is and the results agree within float rounding. Beyond torch:

    Args:
        mode: ``"rnn_tanh"``, ``"rnn_relu"``, ``"lstm"`` or ``"gru"``.
        layer_norm: LayerNorm-LSTM (see :class:`LayerNormLSTMCell`); LSTM only. Adds ``ln_{ih,hh,c}_{weight,bias}``
            parameters per layer and direction.
        recurrent_dropout: probability of dropping each unit of h_{t-1} before W_hh, one mask per sequence
            (variational dropout), in [0, 1). Training only.
        zoneout: probability that a unit of h (and c) keeps its previous value at a step, in [0, 1); training
            draws it, eval uses the expectation h' = z h + (1 - z) h_new.
        backend: how the time loop runs: ``"script"`` (TorchScript), ``"compile"`` or ``"eager"``.

    Inputs: ``input, hx=None, lengths=None``: input (L, N, H_in) or (N, L, H_in) with ``batch_first``; hx
    (D * num_layers, N, H_out) or, for LSTM, (h_0, c_0) with c_0 (D * num_layers, N, H); lengths (N,) or None.

    Outputs: ``output, h_n`` as ``torch.nn.LSTM``: output (L, N, D * H_out) (0 at padded steps), h_n at each
    sequence's last valid step. Set ``probe_states = True`` to record ``state_probes`` (see
    :func:`recurrent_forward`).
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        backend: str = "script",
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name, value in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout), ("zoneout", zoneout)):
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if proj_size and mode != "lstm":
            raise ValueError(f"proj_size is only supported by mode='lstm', got mode={mode!r}")
        if not isinstance(proj_size, int) or proj_size < 0 or (proj_size and proj_size >= hidden_size):
            raise ValueError(f"proj_size must be 0 or in [1, hidden_size={hidden_size}), got {proj_size!r}")
        if layer_norm and mode != "lstm":
            raise ValueError(f"layer_norm is only supported by mode='lstm' (LayerNorm-LSTM), got mode={mode!r}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")

        self.mode = MODES[mode]  # torch's spelling: recurrent_forward reads fused modules too
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        self.dropout, self.proj_size = float(dropout), proj_size
        self.layer_norm = layer_norm
        self.recurrent_dropout, self.zoneout = float(recurrent_dropout), float(zoneout)
        self.backend = backend
        self.probe_states = False
        self.state_probes: dict[str, Tensor] = {}

        gates = GATES[self.mode]
        state_size = proj_size or hidden_size
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else directions * state_size
            for direction in range(directions):
                sfx = _suffix(layer, direction)
                self.register_parameter("weight_ih" + sfx, nn.Parameter(torch.empty(gates * hidden_size, layer_input)))
                self.register_parameter("weight_hh" + sfx, nn.Parameter(torch.empty(gates * hidden_size, state_size)))
                if bias:
                    self.register_parameter("bias_ih" + sfx, nn.Parameter(torch.empty(gates * hidden_size)))
                    self.register_parameter("bias_hh" + sfx, nn.Parameter(torch.empty(gates * hidden_size)))
                if proj_size:
                    self.register_parameter("weight_hr" + sfx, nn.Parameter(torch.empty(proj_size, hidden_size)))
                if layer_norm:
                    for name, size in (("ih", gates * hidden_size), ("hh", gates * hidden_size), ("c", hidden_size)):
                        self.register_parameter(f"ln_{name}_weight" + sfx, nn.Parameter(torch.ones(size)))
                        self.register_parameter(f"ln_{name}_bias" + sfx, nn.Parameter(torch.zeros(size)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default (uniform in [-1/sqrt(H), 1/sqrt(H)]); layer-norm gains 1 and shifts 0."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, param in self.named_parameters():
            if name.startswith("ln_"):
                nn.init.ones_(param) if "_weight" in name else nn.init.zeros_(param)
            else:
                nn.init.uniform_(param, -bound, bound)

    def forward(
        self,
        input: Tensor,
        hx: Tensor | tuple[Tensor, Tensor] | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
        if input.dim() != 3:
            layout = "(N, L, H_in)" if self.batch_first else "(L, N, H_in)"
            raise ValueError(f"CustomRNN expects a 3-D input {layout}, got shape {tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"input has {input.shape[-1]} features per step but input_size={self.input_size}")
        if lengths is not None:
            lengths = as_lengths(lengths)
            check_lengths(lengths, input.shape[1 if self.batch_first else 0], input.shape[0 if self.batch_first else 1])
        probes: dict[str, Tensor] | None = {} if self.probe_states else None
        result = recurrent_forward(self, input, hx, lengths, probes, self.backend)
        if probes is not None:
            self.state_probes = probes
        return result

    def extra_repr(self) -> str:
        parts = [repr(self.mode.lower()), f"{self.input_size}, {self.hidden_size}"]
        for name, default in (
            ("num_layers", 1),
            ("bias", True),
            ("batch_first", False),
            ("dropout", 0.0),
            ("bidirectional", False),
            ("proj_size", 0),
            ("layer_norm", False),
            ("recurrent_dropout", 0.0),
            ("zoneout", 0.0),
            ("backend", "script"),
        ):
            if getattr(self, name) != default:
                parts.append(f"{name}={getattr(self, name)!r}")
        return ", ".join(parts)


__all__ = [
    "CustomRNN",
    "GRUCell",
    "LSTMCell",
    "LayerNormLSTMCell",
    "RNNCell",
    "layer_function",
    "recurrent_forward",
]
