"""RecurrentEncoder: torch's RNN/LSTM/GRU, minGRU/minLSTM and IndRNN, behind one interface that takes sequence lengths.

Shapes: N = batch, L = sequence length, D = 2 if bidirectional else 1, H_in = input_size,
H_out = proj_size if proj_size > 0 else hidden_size, H_cell = hidden_size.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqmodels.nn.cells import CustomRNN, recurrent_forward
from seqmodels.nn.indrnn import IndRNN
from seqmodels.nn.lru import LRU
from seqmodels.nn.masking import as_lengths, check_lengths
from seqmodels.nn.mlstm import MLSTM
from seqmodels.nn.qrnn import QRNN
from seqmodels.nn.scan_cells import SCAN_CELLS, ScanRNN
from seqmodels.nn.slstm import SLSTM
from seqmodels.nn.stacked import StackedRecurrence, reverse_within
from seqmodels.nn.streaming import check_causal

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
INITS = ("orthogonal", "identity", "torch")
IMPLS = ("fused", "custom")
# Gate blocks stacked in torch's weight matrices (W_hh is (gates * H, H)).
_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}

State = Tensor | tuple[Tensor, ...]
# cell name -> the engine of seqmodels' own that runs it
_ENGINE_CLASSES: tuple[type[StackedRecurrence], ...] = (
    ScanRNN,
    IndRNN,
    LRU,
    MLSTM,
    SLSTM,
    QRNN,
)
ENGINES: dict[str, type[StackedRecurrence]] = {cell: engine for engine in _ENGINE_CLASSES for cell in engine.cells}
MODERN_CELLS = tuple(ENGINES)


class RecurrentEncoder(nn.Module):
    """A multi-layer RNN (tanh or ReLU), LSTM, GRU, minGRU or minLSTM that handles variable-length, padded batches.

    Arguments mirror :class:`torch.nn.LSTM`; the wrapped module is ``self.rnn``: with ``impl="fused"`` torch's own
    module, so its fused/cuDNN kernels are used, with ``impl="custom"`` a :class:`~seqmodels.nn.CustomRNN` built
    from plain-torch cells (LayerNorm-LSTM, recurrent dropout, zoneout). Both name their weights like torch's
    (``rnn.weight_hh_l0_reverse``), so checkpoints load across implementations. When ``lengths`` is given, padded
    steps never change any output or final state, in either direction (fused: the batch is packed once, internally).

    The cells of seqmodels' own engines (:class:`~seqmodels.nn.stacked.StackedRecurrence`) run without torch's RNN
    kernels, with the same inputs, outputs, padding rules and step mode: ``"mingru"``/``"minlstm"`` (Feng et al.
    2024, a parallel scan, :mod:`seqmodels.nn.scan_cells`) and ``"indrnn"`` (Li et al. 2018,
    :mod:`seqmodels.nn.indrnn`); :data:`MODERN_CELLS` lists them all. Their stacks take the block options
    ``residual``, ``norm`` and ``ffn_expansion``, and ``cell_options`` for what only one cell has; the classic cells'
    options that do not apply (``impl``, ``proj_size``, ``forget_bias``, ``layer_norm``, ``recurrent_dropout``,
    ``zoneout``) are refused. A state with several tensors (the xLSTM cells') is a tuple whose first tensor is h.

    Args:
        cell: ``"rnn_tanh"``, ``"rnn_relu"``, ``"lstm"``, ``"gru"`` or one of :data:`MODERN_CELLS`.
        input_size: H_in, features per time step.
        hidden_size: H_cell, features of the hidden (and LSTM cell) state.
        num_layers: stacked recurrent layers.
        bias: use bias weights.
        batch_first: inputs/outputs are (N, L, *) instead of (L, N, *).
        dropout: dropout on the outputs of each layer except the last, in [0, 1).
        bidirectional: run a second, time-reversed pass and concatenate (D = 2).
        proj_size: LSTM only: project the hidden state to this size (0: no projection).
        init: ``"orthogonal"`` (orthogonal recurrent weights, Xavier input weights, zero biases: keeps gradients
            alive over long sequences), ``"identity"`` (recurrent weights = identity, Xavier input weights, zero
            biases: the IRNN of Le et al. 2015, meant for ``rnn_relu``) or ``"torch"`` (torch's uniform default).
            None (the default): ``"orthogonal"``, and for :data:`MODERN_CELLS` the engine's default (its paper's).
        forget_bias: LSTM forget-gate bias (in ``bias_ih``); None: 1.0 for the orthogonal and identity inits (memories
            persist early in training), torch's draw for ``init="torch"``.
        impl: ``"fused"`` (torch's kernels) or ``"custom"`` (:class:`~seqmodels.nn.CustomRNN`); the options below
            need ``"custom"``.
        layer_norm: LayerNorm-LSTM (LSTM only).
        recurrent_dropout: variational dropout on h_{t-1} before W_hh, one mask per sequence, in [0, 1).
        zoneout: probability that a unit keeps its previous state at a step, in [0, 1) (eval: the expectation).
        residual: :data:`MODERN_CELLS` only: add each layer's input to its output from the second layer on.
        norm: :data:`MODERN_CELLS` only: LayerNorm each layer's input (pre-norm blocks, as xLSTM's).
        ffn_expansion: :data:`MODERN_CELLS` only: a residual position-wise MLP after each layer with inner width
            ``ffn_expansion * D * H`` (0: none).
        cell_options: keyword arguments only one engine takes (e.g. ``{"recurrent_max_abs": 1.0}`` for IndRNN).

    Set ``pack_sequences = False`` to run a padded batch without packing (:func:`unpacked_forward`): outputs and
    ``h_n`` stay exact, and the forward traces for ``torch.export`` and ONNX with dynamic batch and length
    (fused impl; an LSTM's ``c_n`` is then exact for full-length sequences only).

    Step mode (unidirectional encoders; see :mod:`seqmodels.nn.streaming`): :meth:`initial_state`,
    :meth:`step` (one step, x_t (N, H_in) -> y_t (N, H_out)) and :meth:`stream` (a chunk of T steps, laid out like
    ``input``) continue from a state ``(num_layers, N, H_out)`` (LSTM: ``(h, c)``, c ``(num_layers, N, H_cell)``)
    and together equal :meth:`forward` over the whole sequence.

    Set ``probe_states = True`` and, after the next forward and backward, :meth:`state_gradient_norms` returns
    ||dL/dh_t|| per step for every layer and direction (the fused path then runs the step-by-step loop once, with
    the same weights; for :data:`MODERN_CELLS` see :meth:`~seqmodels.nn.stacked.StackedRecurrence.run_probed`, which
    says what h_t is for each cell).

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
        init: str | None = None,
        forget_bias: float | None = None,
        impl: str = "fused",
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        residual: bool = False,
        norm: bool = False,
        ffn_expansion: float = 0.0,
        cell_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        cell = str(cell).lower()
        blocks = {"residual": residual, "norm": norm, "ffn_expansion": ffn_expansion, "cell_options": cell_options}
        init = _check_cell_options(
            cell, init, impl, proj_size, forget_bias, layer_norm, recurrent_dropout, zoneout, blocks
        )
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if proj_size and cell != "lstm":
            raise ValueError(
                f"proj_size is only supported by cell='lstm', got cell={cell!r}; set proj_size=0 or use lstm"
            )
        if not isinstance(proj_size, int) or proj_size < 0 or (proj_size and proj_size >= hidden_size):
            raise ValueError(f"proj_size must be 0 or in [1, hidden_size={hidden_size}), got {proj_size!r}")
        if cell in CELLS and init not in INITS:  # an engine of seqmodels' own checked its own inits above
            raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
        if impl not in IMPLS:
            raise ValueError(f"unknown impl {impl!r}; choose one of {', '.join(IMPLS)}")
        if forget_bias is not None and cell != "lstm":
            raise ValueError(f"forget_bias is only used by cell='lstm', got cell={cell!r}; set forget_bias=null")
        if impl == "fused":
            for name, value in (
                ("layer_norm", layer_norm),
                ("recurrent_dropout", recurrent_dropout),
                ("zoneout", zoneout),
            ):
                if value:
                    raise ValueError(f"{name} needs impl='custom' (torch's fused kernels have no such option)")

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
        self.forget_bias = forget_bias
        self.impl = impl
        self.probe_states = False  # see state_gradient_norms
        self.pack_sequences = True  # see unpacked_forward

        common = dict(
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            dropout=float(dropout),
            bidirectional=bidirectional,
        )
        self.residual = bool(residual)
        if cell in ENGINES:  # an engine of seqmodels' own
            _check_cell_option_names(cell, cell_options)
            self.rnn: nn.Module = ENGINES[cell](
                cell=cell,
                **common,
                residual=self.residual,
                norm=bool(norm),
                ffn_expansion=float(ffn_expansion),
                init=init,
                **dict(cell_options or {}),
            )
        elif impl == "custom":
            self.rnn = CustomRNN(
                cell,
                **common,
                proj_size=proj_size,
                layer_norm=layer_norm,
                recurrent_dropout=recurrent_dropout,
                zoneout=zoneout,
            )
        elif cell == "lstm":
            self.rnn = nn.LSTM(**common, proj_size=proj_size)
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

    @property
    def reads_hidden_state(self) -> bool:
        """Whether a given ``h`` (of ``hx``) changes what follows: False for the cells of seqmodels' own whose state
        ``h`` only reports the last output (LRU, mLSTM, QRNN), so a decoder cannot be started from a bridged h."""
        return getattr(self.rnn, "reads_h", True)

    @property
    def state_names(self) -> tuple[str, ...]:
        """The tensors of a state: ``("h",)``, ``("h", "c")`` for LSTM, more for some :data:`MODERN_CELLS`."""
        if self.is_modern:
            return self.rnn.state_names
        return ("h", "c") if self.is_lstm else ("h",)

    @property
    def is_modern(self) -> bool:
        """A cell run by an engine of seqmodels' own (one of :data:`MODERN_CELLS`) rather than torch's RNN kernels."""
        return self.cell in ENGINES

    def reset_parameters(self) -> None:
        if self.is_modern:
            self.rnn.init = self.init
            self.rnn.reset_parameters()
            return
        if self.init == "torch":
            self.rnn.reset_parameters()  # also sets any layer-norm gains to 1 and shifts to 0
            if self.forget_bias is not None:
                self._fill_forget_bias(self.forget_bias)
            return
        gates = _GATES[self.cell]
        for name, param in self.rnn.named_parameters():
            if name.startswith("weight_hh"):
                for block in param.data.chunk(gates, dim=0):
                    if self.init == "identity":
                        # IRNN: h_t starts as a copy of h_{t-1} plus input, so signals and gradients neither
                        # shrink nor grow through time at initialisation.
                        nn.init.eye_(block)
                    else:
                        # Orthogonal per gate block: recurrent Jacobians start norm-preserving.
                        nn.init.orthogonal_(block)
            elif name.startswith("weight_ih"):
                for block in param.data.chunk(gates, dim=0):
                    nn.init.xavier_uniform_(block)
            elif name.startswith("weight_hr"):  # LSTM projection
                nn.init.xavier_uniform_(param.data)
            elif name.startswith("bias"):
                nn.init.zeros_(param.data)
            elif name.startswith("ln_"):  # LayerNorm-LSTM: identity transform at the start
                nn.init.ones_(param.data) if "_weight" in name else nn.init.zeros_(param.data)
        if self.is_lstm:
            # Forget gate starts open so memories persist early in training.
            self._fill_forget_bias(1.0 if self.forget_bias is None else self.forget_bias)

    def _fill_forget_bias(self, value: float) -> None:
        for name, param in self.rnn.named_parameters():
            if name.startswith("bias_ih"):
                # The forget gate is the second block of i, f, g, o; bias_hh's block is zeroed so the sum is `value`.
                param.data[self.hidden_size : 2 * self.hidden_size].fill_(value)
            elif name.startswith("bias_hh") and self.init == "torch":
                param.data[self.hidden_size : 2 * self.hidden_size].zero_()

    def state_gradient_norms(self) -> dict[str, Tensor]:
        """||dL/dh_t|| for t = 0..L-1 from the last forward run with ``probe_states = True`` and its backward.

        One (L,) tensor per layer and direction (``"layer0"``, ``"layer0_reverse"``, ...): the norm over the batch and
        the H_out features of the gradient of the loss with respect to the hidden state h_t, through every path
        (the head and all later steps), so its decay over t shows vanishing gradients. Padded steps read 0.
        Empty if nothing was probed or the probed forward was not back-propagated.

        For :data:`MODERN_CELLS`, h_t is the recurrent state of minGRU, minLSTM, IndRNN and sLSTM, but the layer's
        output for QRNN, LRU and mLSTM, whose recurrences do not read it (their states are c_t, a complex x_t and a
        matrix memory): there the norm is the gradient reaching the output at t, without a path back in time
        (:meth:`~seqmodels.nn.stacked.StackedRecurrence.run_probed`).
        """
        if self.is_modern or self.impl == "custom":
            probes = self.rnn.state_probes
        else:
            probes = getattr(self, "_state_probes", {})
        return {
            name: probe.grad.detach().flatten(1).norm(dim=1) for name, probe in probes.items() if probe.grad is not None
        }

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
        if self.is_modern:
            if self.rnn.probe_states != self.probe_states:  # written on a change only: export traces no mutation
                self.rnn.probe_states = self.probe_states
            return self.rnn(input, hx, lengths)  # exact padding without packing: see seqmodels.nn.scan_cells
        if lengths is not None and not self.pack_sequences and self.impl == "fused" and not self.probe_states:
            lengths = as_lengths(lengths, input.device)
            if not torch.compiler.is_exporting():  # a traced graph cannot branch on the lengths' values
                batch, steps = (
                    (input.shape[0], input.shape[1]) if self.batch_first else (input.shape[1], input.shape[0])
                )
                check_lengths(lengths.cpu(), steps, batch)
            return unpacked_forward(self.rnn, input, lengths, hx)
        if lengths is not None:
            batch_dim, time_dim = (0, 1) if self.batch_first else (1, 0)
            total_length = input.shape[time_dim]
            # pack_padded_sequence wants CPU int64 lengths; the copy is tiny.
            lengths_cpu = as_lengths(lengths).cpu()
            check_lengths(lengths_cpu, total_length, input.shape[batch_dim])
        if self.impl == "custom":
            self.rnn.probe_states = self.probe_states
            return self.rnn(input, hx, lengths=None if lengths is None else as_lengths(lengths))
        if self.probe_states:
            # Probes must sit inside the recurrence, which the fused kernel does not expose: run the step-by-step
            # loop with the fused module's own weights (same results within float rounding).
            self._state_probes: dict[str, Tensor] = {}
            return recurrent_forward(
                self.rnn, input, hx, None if lengths is None else as_lengths(lengths), self._state_probes
            )
        if lengths is None or bool((lengths_cpu == total_length).all()):
            return self.rnn(input, hx)  # nothing is padded: packing would only cost time

        packed = pack_padded_sequence(input, lengths_cpu, batch_first=self.batch_first, enforce_sorted=False)
        packed_output, h_n = self.rnn(packed, hx)
        output, _ = pad_packed_sequence(packed_output, batch_first=self.batch_first, total_length=total_length)
        return output, h_n

    # ---------------------------------------------------------------- step mode
    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """Zeros: ``h_0`` (num_layers, N, H_out); for LSTM a tuple ``(h_0, c_0)`` with c_0 (num_layers, N, H_cell).

        ``device`` and ``dtype`` default to the encoder's parameters'.
        """
        check_causal(self, "encoder")
        if self.is_modern:
            return self.rnn.initial_state(batch_size, device=device, dtype=dtype)
        reference = next(self.parameters())
        options = dict(device=device or reference.device, dtype=dtype or reference.dtype)
        h_0 = torch.zeros(self.num_layers, batch_size, self.state_size, **options)
        if self.is_lstm:
            return h_0, torch.zeros(self.num_layers, batch_size, self.hidden_size, **options)
        return h_0

    def stream(self, chunk: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """T steps at once, continuing from ``state`` (None: the initial state), with the fused kernels.

        Args:
            chunk: (N, T, H_in) if batch_first else (T, N, H_in), T >= 1; every row runs all T steps.
            state: as returned by :meth:`initial_state`, :meth:`step` or :meth:`stream`.

        Returns ``(output, state)``: output (N, T, H_out) if batch_first else (T, N, H_out), equal to
        :meth:`forward`'s output at these steps of the whole sequence, and the state after the last step.
        """
        check_causal(self, "encoder")
        return self.forward(chunk, hx=state)

    def step(self, x_t: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """One step: ``x_t`` (N, H_in) -> ``(y_t, state)`` with y_t (N, H_out); :meth:`stream` of one step."""
        if x_t.dim() != 2:
            raise ValueError(
                f"step expects one step (N, H_in), got shape {tuple(x_t.shape)}; use stream() for a chunk of steps"
            )
        time_dim = 1 if self.batch_first else 0
        output, state = self.stream(x_t.unsqueeze(time_dim), state)
        return output.squeeze(time_dim), state

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
        if self.forget_bias is not None:
            parts.append(f"forget_bias={self.forget_bias}")
        if self.impl != "fused":
            parts.append(f"impl={self.impl!r}")
        if self.residual:
            parts.append("residual=True")
        for name in ("layer_norm", "recurrent_dropout", "zoneout", "norm", "ffn_expansion"):
            if getattr(self.rnn, name, False):
                parts.append(f"{name}={getattr(self.rnn, name)!r}")
        return ", ".join(parts)


def _check_cell_options(
    cell: str,
    init: str | None,
    impl: str,
    proj_size: int,
    forget_bias: float | None,
    layer_norm: bool,
    recurrent_dropout: float,
    zoneout: float,
    blocks: Mapping[str, Any],
) -> str:
    """The init to use (None: the cell's default), after one-line refusals of an unknown cell and of options that do
    not apply to it: the classic cells' options for one of :data:`MODERN_CELLS`, the block options for a classic
    cell."""
    if cell not in CELLS + MODERN_CELLS:
        raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS + MODERN_CELLS)}")
    if cell in CELLS:
        for name, value in blocks.items():
            if value:
                fix = (
                    "cell_options=null"
                    if name == "cell_options"
                    else f"{name}={'0' if name == 'ffn_expansion' else 'false'}"
                )
                raise ValueError(
                    f"{name} is an option of seqmodels' own cells ({', '.join(MODERN_CELLS)}), not cell={cell!r}; "
                    f"set {fix}"
                )
        return "orthogonal" if init is None else init
    inits = ENGINES[cell].inits
    init = inits[0] if init is None else init
    if init not in inits:
        raise ValueError(
            f"init={init!r} does not apply to cell={cell!r}; use init={inits[0]} (the paper's) or one of "
            f"{', '.join(inits[1:]) or 'none other'}"
        )
    if impl != "fused":
        raise ValueError(
            f"impl={impl!r} does not apply to cell={cell!r}, which always runs its own engine; set impl=fused"
        )
    for name, value, owner, fix in (
        ("proj_size", proj_size, "cell='lstm'", "proj_size=0"),
        ("forget_bias", forget_bias, "cell='lstm'", "forget_bias=null"),
        ("layer_norm", layer_norm, "impl='custom' LSTMs", "layer_norm=false"),
        ("recurrent_dropout", recurrent_dropout, "impl='custom' cells", "recurrent_dropout=0"),
        ("zoneout", zoneout, "impl='custom' cells", "zoneout=0"),
    ):
        if value:
            raise ValueError(f"{name} is an option of {owner}, not cell={cell!r}; set {fix}")
    return init


def _check_cell_option_names(cell: str, cell_options: Mapping[str, Any] | None) -> None:
    """One line for a ``cell_options`` key the cell's engine does not take, naming the ones it does."""
    engine = ENGINES[cell]
    shared = set(inspect.signature(StackedRecurrence.__init__).parameters) | {"self", "cell", "options"}
    own = [name for name in inspect.signature(engine.__init__).parameters if name not in shared]
    unknown = sorted(set(cell_options or {}) - set(own))
    if unknown:
        takes = ", ".join(own) if own else "none"
        raise ValueError(f"cell_options {', '.join(unknown)} do not apply to cell={cell!r}; it takes: {takes}")


def unpacked_forward(rnn: nn.RNNBase, input: Tensor, lengths: Tensor, hx: State | None = None) -> tuple[Tensor, State]:
    """A fused ``nn.RNN/LSTM/GRU`` over a padded batch without packing, layer by layer and direction by direction.

    Padding sits after each sequence's last step, so the forward direction's outputs at valid steps never see
    it; the reverse direction runs over each sequence reversed within its length. Outputs (0 at padded steps)
    and ``h_n`` (each direction's state at its last valid step) equal the packed computation's. An LSTM's
    ``c_n`` is the cell state after the whole padded length: exact only for sequences of full length.

    Packing needs the lengths on the CPU and data-dependent shapes; this needs neither, so it traces for
    ``torch.export`` and ONNX export with dynamic batch and length (``pack_sequences = False`` on a
    :class:`RecurrentEncoder` selects it).
    """
    cell = rnn.mode.lower()  # "lstm", "gru", "rnn_tanh", "rnn_relu"
    step = {
        "lstm": torch._VF.lstm,
        "gru": torch._VF.gru,
        "rnn_tanh": torch._VF.rnn_tanh,
        "rnn_relu": torch._VF.rnn_relu,
    }[cell]
    x = input if rnn.batch_first else input.transpose(0, 1)  # (N, L, H_in)
    N, L = x.shape[0], x.shape[1]
    lengths = lengths.to(x.device)
    mask = (torch.arange(L, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1).to(x.dtype)
    D = 2 if rnn.bidirectional else 1
    H_out = rnn.proj_size or rnn.hidden_size
    # The kernels' ``train`` flag (dropout is 0 here, applied between layers above): cuDNN keeps what its backward
    # needs only when it is set, and refuses a backward otherwise.
    keep_for_backward = torch.is_grad_enabled()
    h_0, c_0 = (hx if isinstance(hx, tuple) else (hx, None)) if hx is not None else (None, None)
    h_n: list[Tensor] = []
    c_n: list[Tensor] = []
    for layer in range(rnn.num_layers):
        if layer and rnn.dropout and rnn.training:
            x = torch.nn.functional.dropout(x, rnn.dropout, training=True)
        outputs = []
        for direction in range(D):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            names = [f"weight_ih{suffix}", f"weight_hh{suffix}"]
            if rnn.bias:
                names += [f"bias_ih{suffix}", f"bias_hh{suffix}"]
            if rnn.proj_size:
                names.append(f"weight_hr{suffix}")
            weights = [getattr(rnn, name) for name in names]
            k = layer * D + direction
            h = h_0[k : k + 1] if h_0 is not None else x.new_zeros(1, N, H_out)
            inputs = reverse_within(x, lengths) if direction else x
            if cell == "lstm":
                c = c_0[k : k + 1] if c_0 is not None else x.new_zeros(1, N, rnn.hidden_size)
                out, _, c_last = step(inputs, (h, c), weights, rnn.bias, 1, 0.0, keep_for_backward, False, True)
                c_n.append(c_last)
            else:
                out, _ = step(inputs, h, weights, rnn.bias, 1, 0.0, keep_for_backward, False, True)
            if direction:
                out = reverse_within(out, lengths)
                h_n.append(out[:, 0].unsqueeze(0))
            else:
                last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, out.shape[-1])
                h_n.append(out.gather(1, last).transpose(0, 1))
            outputs.append(out)
        x = torch.cat(outputs, dim=-1) * mask
    output = x if rnn.batch_first else x.transpose(0, 1)
    state_h = torch.cat(h_n)
    return output, ((state_h, torch.cat(c_n)) if cell == "lstm" else state_h)


__all__ = ["CELLS", "ENGINES", "IMPLS", "INITS", "MODERN_CELLS", "SCAN_CELLS", "RecurrentEncoder", "unpacked_forward"]
