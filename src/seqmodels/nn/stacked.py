"""StackedRecurrence: layers x directions of one recurrence, with lengths, hx, dropout, residuals and block options.

The engines of seqmodels' own cells (minGRU/minLSTM, IndRNN, LRU, sLSTM, mLSTM, QRNN) differ only in what one
direction of one layer computes. Everything around that is here, written once:

- the ``torch.nn.RNN`` interface: ``input`` (L, N, H_in) or (N, L, H_in) with ``batch_first``, ``hx``, ``lengths``,
  outputs ``(output, h_n)``; weights named ``<name>_l{k}[_reverse]`` like torch's;
- exact variable lengths without packing: an engine gets a mask of valid steps and must carry its state through
  padded steps and output 0 there; the reverse direction runs each sequence reversed within its length;
- dropout between layers (as torch's ``dropout``), and the block options the papers stack their cells with:
  ``residual`` (add a layer's input to its output from the second layer on), ``norm`` (pre-LayerNorm of each layer's
  input; the first layer's only when it has at least 3 features, see :attr:`StackedRecurrence.MIN_NORMED_INPUT`)
  and ``ffn_expansion`` (a position-wise residual MLP after each layer with inner width ``ffn_expansion * D * H``,
  the xLSTM paper's up-projection block; 0: none).

Gradient probes (``probe_states = True``, read by :meth:`RecurrentEncoder.state_gradient_norms
<seqmodels.nn.RecurrentEncoder.state_gradient_norms>`): see :meth:`StackedRecurrence.run_probed`.

State: one tensor per name in ``state_names``, each (D * num_layers, N, S_i) with S_i from :meth:`state_sizes`.
The first is always the hidden state h (S_0 = H), so code that reads ``h_n`` (or ``h_n[0]`` of a tuple, as for an
LSTM) gets a (D * num_layers, N, H) tensor. ``hx`` and ``h_n`` are a tensor for a one-tensor state and a tuple
otherwise.

Shapes: N = batch, L = sequence length, D = 2 if bidirectional else 1, H_in = input_size, H = hidden_size.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmodels.nn.masking import as_lengths, check_lengths

EngineState = Tensor | tuple[Tensor, ...]


def reverse_within(x: Tensor, lengths: Tensor | None) -> Tensor:
    """(N, L, F) -> each sequence's first ``length`` steps in reverse order; padded steps stay where they are."""
    if lengths is None:
        return x.flip(1)
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    last = lengths.unsqueeze(1) - 1
    index = torch.where(steps <= last, last - steps, steps)
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def is_traceable(engine: nn.Module) -> bool:
    """Whether an engine runs its traceable form: while ``torch.export`` (and so ONNX export) traces, or where its
    ``traceable`` attribute is set (:func:`seqmodels.export.traceable_engines` sets it)."""
    return bool(getattr(engine, "traceable", False)) or torch.compiler.is_exporting()


class FeedForward(nn.Module):
    """x -> x + W_2 gelu(W_1 LN(x)): a position-wise residual MLP between recurrent layers (0 at padded steps)."""

    def __init__(self, features: int, expansion: float, norm: bool) -> None:
        super().__init__()
        inner = max(1, round(expansion * features))
        self.norm = nn.LayerNorm(features) if norm else nn.Identity()
        self.up = nn.Linear(features, inner)
        self.down = nn.Linear(inner, features)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        y = self.down(F.gelu(self.up(self.norm(x))))
        return x + (y if mask is None else y * mask)


class StackedRecurrence(nn.Module):
    """Base of seqmodels' own recurrent engines (see the module docstring).

    A subclass sets ``cells`` (the ``cell=`` names it runs), ``inits`` (its ``init=`` choices, the first the default),
    optionally ``state_names`` and :meth:`state_sizes`, and implements:

    - :meth:`build_direction` ``(suffix, input_size)``: register one layer-direction's parameters;
    - :meth:`reset_parameters`;
    - :meth:`run_direction` ``(suffix, x, state, mask)``: x (N, L, H_in) batch-major, ``state`` a tuple of (N, S_i)
      tensors (None: zeros), ``mask`` (N, L, 1) bool or None (nothing padded) -> ``(output (N, L, H), state)``,
      output 0 at padded steps and the state that of each sequence's last valid step.

    Set ``probe_states = True`` and every forward that autograd records fills ``state_probes`` (see
    :meth:`run_probed`); off (the default), the forward adds nothing, neither tensors nor hooks.
    """

    cells: ClassVar[tuple[str, ...]] = ()
    inits: ClassVar[tuple[str, ...]] = ("torch",)
    state_names: ClassVar[tuple[str, ...]] = ("h",)
    #: Whether the recurrence reads the "h" of its state. False where "h" only reports the last output (the state's
    #: other tensors carry the dynamics): a network cannot start such a cell from a given h.
    reads_h: ClassVar[bool] = True

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        residual: bool = False,
        norm: bool = False,
        ffn_expansion: float = 0.0,
        init: str | None = None,
    ) -> None:
        super().__init__()
        if cell not in self.cells:
            raise ValueError(f"{type(self).__name__} runs cell={'/'.join(self.cells)}, not {cell!r}")
        init = self.inits[0] if init is None else init
        if init not in self.inits:
            raise ValueError(f"init={init!r} does not apply to cell={cell!r}; choose one of {', '.join(self.inits)}")
        if not isinstance(ffn_expansion, (int, float)) or ffn_expansion < 0:
            raise ValueError(f"ffn_expansion must be >= 0 (0: no feed-forward block), got {ffn_expansion!r}")
        self.cell = cell
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.residual = bool(residual)
        self.norm = bool(norm)
        self.ffn_expansion = float(ffn_expansion)
        self.init = init
        self.probe_states = False  # see run_probed
        self.state_probes: dict[str, Tensor] = {}
        D = self.num_directions
        self.norms = nn.ModuleList(
            self._input_norm(input_size) if layer == 0 else nn.LayerNorm(D * hidden_size)
            for layer in range(num_layers if norm else 0)
        )
        self.ffns = nn.ModuleList(
            FeedForward(D * hidden_size, self.ffn_expansion, self.norm)
            for _ in range(num_layers if self.ffn_expansion else 0)
        )

    #: The narrowest input the first layer's pre-norm normalises. Over one feature a LayerNorm outputs a constant
    #: (its bias) and over two it outputs +-1, so a univariate series or the adding problem's (value, marker) pair
    #: would reach the cell erased; such inputs go to the first layer as they are.
    MIN_NORMED_INPUT: ClassVar[int] = 3

    @classmethod
    def _input_norm(cls, input_size: int) -> nn.Module:
        return nn.LayerNorm(input_size) if input_size >= cls.MIN_NORMED_INPUT else nn.Identity()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        # A checkpoint saved when narrow inputs were normalised too keeps its first LayerNorm, and its outputs.
        if self.norm and isinstance(self.norms[0], nn.Identity) and f"{prefix}norms.0.weight" in state_dict:
            self.norms[0] = nn.LayerNorm(self.input_size).to(state_dict[f"{prefix}norms.0.weight"].device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def build(self) -> None:
        """Registers every layer-direction's parameters and initialises them; call at the end of ``__init__``."""
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self.num_directions * self.hidden_size
            for direction in range(self.num_directions):
                self.build_direction(self.suffix(layer, direction), layer_input)
        self.reset_parameters()

    @staticmethod
    def suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def state_sizes(self) -> tuple[int, ...]:
        """S_i of each state tensor named in ``state_names``; the first is H."""
        return (self.hidden_size,)

    def build_direction(self, suffix: str, input_size: int) -> None:
        raise NotImplementedError

    def reset_parameters(self) -> None:
        for module in (*self.norms, *self.ffns):
            for child in module.modules():
                if isinstance(child, (nn.LayerNorm, nn.Linear)):
                    child.reset_parameters()

    def init_input_projection(self, blocks: int) -> None:
        """Every ``weight_ih``/``bias_ih`` (``blocks`` gate blocks stacked in rows) as ``init`` says: ``"torch"``,
        ``nn.Linear``'s default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases (the papers' reference
        code builds these projections from ``nn.Linear``); ``"orthogonal"``, Xavier-uniform per block, zero biases."""
        for name, param in self.named_parameters():
            if not name.startswith(("weight_ih", "bias_ih")):
                continue
            if self.init == "torch":
                fan_in = getattr(self, name.replace("bias", "weight")).shape[1]
                nn.init.uniform_(param.data, -1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in))
            elif name.startswith("weight"):
                for block in param.data.chunk(blocks, dim=0):
                    nn.init.xavier_uniform_(block)
            else:
                nn.init.zeros_(param.data)

    def run_direction(
        self, suffix: str, x: Tensor, state: tuple[Tensor, ...] | None, mask: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        raise NotImplementedError

    def run_probed(
        self,
        layer: int,
        direction: int,
        x: Tensor,
        state: tuple[Tensor, ...] | None,
        mask: Tensor | None,
        lengths: Tensor | None,
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """:meth:`run_direction` with a gradient probe on h_t; the probe goes to ``state_probes``.

        The probe, named ``"layer{k}"`` or ``"layer{k}_reverse"`` as the classic cells' probes, is a zero tensor
        (L, N, H) in real time (the reverse direction's steps re-ordered to t = 0..L-1) requiring grad, added
        to h_t wherever h_t goes: the layer's output at step t, ``h_n`` and, where the recurrence reads h
        (``reads_h``), the state passed to step t + 1. After a backward its ``.grad`` is dL/dh_t through every path
        (the layers above, the head, ``h_n`` and all later steps), 0 at padded steps. What h_t is per cell family:

        - minGRU, minLSTM, IndRNN, sLSTM: h_t is the recurrent state, which is also the layer's output (sLSTM's
          h_t feeds the next step's gates; its other state tensors c, n, m are not probed). Probes inside the
          recurrence need a step boundary, so the direction then runs one step at a time through
          :meth:`run_direction` (the state carried between the calls, finished sequences dropped from the batch):
          the same function as the full-length call, equal within float rounding, at the cost of a Python loop
          over the L steps, as for the probed classic cells.
        - QRNN, LRU, mLSTM (``reads_h`` False): h_t is the layer's output only, which the recurrence does not read;
          the recurrent state is elsewhere (QRNN's pooling state c_t, LRU's complex state x_t, mLSTM's matrix
          memory C_t) and is not probed. dL/dh_t is then the gradient that reaches the output at step t from above
          (the next layer, the head, ``h_n``), not what flows back through the recurrence: with a loss on the last
          step alone it is 0 before that step. The direction runs at full length as usual, outputs unchanged.

        Random regularisers inside the engine (QRNN's zoneout) and dropout draw the same distribution but not the
        same masks as an unprobed forward.
        """
        suffix = self.suffix(layer, direction)
        N, L = x.shape[0], x.shape[1]
        probe = x.new_zeros(L, N, self.hidden_size, requires_grad=True)
        self.state_probes[f"layer{layer}" + ("_reverse" if direction else "")] = probe
        # the probe in the order this direction runs; 0 weight at padded steps, so their gradient reads 0
        along = probe.transpose(0, 1)
        if direction:
            along = reverse_within(along, lengths)
        if mask is not None:
            along = along * mask.to(along.dtype)
        if not self.reads_h:
            out, final = self.run_direction(suffix, x, state, mask)
            # h_n reports the output at the last valid step: the probe is on it too
            last = along[:, -1] if lengths is None else along[torch.arange(N, device=x.device), lengths - 1]
            # (cast: under autocast the engine's output may be in a lower precision than its input)
            return out + along.to(out.dtype), (final[0] + last.to(final[0].dtype), *final[1:])
        if lengths is None:
            running = [N] * L
        else:  # like packing: rows sorted by length, so the sequences still running at a step are the first ones
            order = torch.argsort(lengths, descending=True, stable=True)
            x, along = x[order], along[order]
            state = None if state is None else tuple(part[order] for part in state)
            longest = int(lengths.max())  # steps past every length are all padding: nothing runs there
            running = (lengths.cpu().unsqueeze(0) > torch.arange(longest).unsqueeze(1)).sum(1).tolist()
        outputs = []
        for t, rows in enumerate(running):
            step_state = None if state is None else tuple(part[:rows] for part in state)
            out, new = self.run_direction(suffix, x[:rows, t : t + 1], step_state, None)
            h_t = along[:rows, t].to(out.dtype)
            new = (new[0] + h_t.to(new[0].dtype), *new[1:])
            if state is not None and rows < N:  # finished sequences keep the state of their last valid step
                new = tuple(torch.cat([part, old[rows:]]) for part, old in zip(new, state, strict=True))
            state = new
            outputs.append(F.pad(out[:, 0] + h_t, (0, 0, 0, N - rows)))
        out = F.pad(torch.stack(outputs, dim=1), (0, 0, 0, L - len(outputs)))
        if lengths is not None:
            inverse = torch.argsort(order)
            out, state = out[inverse], tuple(part[inverse] for part in state)
        return out, state

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> EngineState:
        """Zeros in the layout of ``hx``: a (D * num_layers, N, S_i) tensor per state name (a tuple if several)."""
        reference = next(self.parameters())
        options = dict(device=device or reference.device, dtype=dtype or reference.dtype)
        rows = self.num_directions * self.num_layers
        zeros = tuple(torch.zeros(rows, batch_size, size, **options) for size in self.state_sizes())
        return zeros[0] if len(zeros) == 1 else zeros

    def _check_hx(self, hx: EngineState | None, batch: int) -> tuple[Tensor, ...] | None:
        if hx is None:
            return None
        parts = hx if isinstance(hx, tuple) else (hx,)
        names = self.state_names
        if len(parts) != len(names):
            layout = names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"
            raise ValueError(f"cell={self.cell!r} has the state {layout}; pass hx={layout}, got {len(parts)} tensors")
        rows = self.num_directions * self.num_layers
        for name, part, size in zip(names, parts, self.state_sizes(), strict=True):
            if tuple(part.shape) != (rows, batch, size):
                raise ValueError(
                    f"hx's {name} must be (D * num_layers, N, {size}) = {(rows, batch, size)}, got {tuple(part.shape)}"
                )
        return parts

    def forward(
        self, input: Tensor, hx: EngineState | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, EngineState]:
        x = input if self.batch_first else input.transpose(0, 1)  # (N, L, H_in)
        N, L = x.shape[0], x.shape[1]
        D = self.num_directions
        parts = self._check_hx(hx, N)
        mask = None
        if lengths is not None:
            lengths = as_lengths(lengths, x.device)
            if not torch.compiler.is_exporting():
                check_lengths(lengths.cpu(), L, N)
            if not is_traceable(self) and bool((lengths == L).all()):
                lengths = None  # nothing is padded (a branch on values, which a traced graph cannot take)
            else:
                mask = (torch.arange(L, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
        # Without autograd no backward can fill the probes: run as usual.
        probing = self.probe_states and torch.is_grad_enabled()
        if probing:
            self.state_probes = {}
        finals: list[tuple[Tensor, ...]] = []
        for layer in range(self.num_layers):
            layer_input = x
            if self.norm:
                x = self.norms[layer](x)
            if layer and self.dropout and self.training:
                x = F.dropout(x, self.dropout, training=True)
            outputs = []
            for direction in range(D):
                row = layer * D + direction
                state = None if parts is None else tuple(part[row] for part in parts)
                inputs = reverse_within(x, lengths) if direction else x
                if probing:
                    out, final = self.run_probed(layer, direction, inputs, state, mask, lengths)
                else:
                    out, final = self.run_direction(self.suffix(layer, direction), inputs, state, mask)
                finals.append(final)
                outputs.append(reverse_within(out, lengths) if direction else out)
            x = outputs[0] if D == 1 else torch.cat(outputs, dim=-1)
            if self.residual and layer:
                x = x + layer_input  # 0 at padded steps, like the previous layer's output
            if self.ffn_expansion:
                x = self.ffns[layer](x, None if mask is None else mask.to(x.dtype))
        output = x if self.batch_first else x.transpose(0, 1).contiguous()
        h_n = tuple(torch.stack(column) for column in zip(*finals, strict=True))
        return output, (h_n[0] if len(h_n) == 1 else h_n)

    def extra_repr(self) -> str:
        parts = [f"{self.cell!r}", f"{self.input_size}", f"{self.hidden_size}"]
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        if self.bidirectional:
            parts.append("bidirectional=True")
        for name in ("residual", "norm"):
            if getattr(self, name):
                parts.append(f"{name}=True")
        if self.ffn_expansion:
            parts.append(f"ffn_expansion={self.ffn_expansion}")
        return ", ".join(parts)


__all__ = ["EngineState", "FeedForward", "StackedRecurrence", "is_traceable", "reverse_within"]
