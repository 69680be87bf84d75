"""Multi-horizon forecasters and their output distributions (point, Gaussian, quantiles).

Shapes: N batch, L lookback, H horizon, C target channels, C_in input channels (targets first), F known-future
channels, P parameters per target value (1 point, 2 Gaussian, Q quantiles).

Two networks, one contract ``forward(inputs (N, L, C_in), future (N, H, F) | None, targets (N, H, C) | None)
-> params (N, H, C, P)``:

* :class:`DirectForecaster`: encoder -> last state (+ the whole horizon's known-future features) -> MLP ->
  every horizon step at once. One pass, no error accumulation over the horizon.
* :class:`Seq2SeqForecaster`: encoder -> recurrent decoder, one step at a time, fed its previous value: the
  truth while training with probability ``teacher_forcing`` (1: teacher forcing; decay it for scheduled
  sampling), else its own forecast.

``window_norm="last"`` subtracts each window's last observed target value from the target channels and adds it
back to the forecast: the network models changes, so it extrapolates trends beyond the training range.

Static covariates (per-series attributes; both networks): ``static_categoricals`` (N, K) category indices, each
column embedded in ``static_embedding_size`` dimensions, and ``static_reals`` (N, R) form a static vector s
(N, S), S = K * static_embedding_size + R. ``static_mode="init"`` sets the encoder's initial state to
``tanh(W s + b)`` (every layer and state tensor; zero state without statics); ``"input"`` appends s to every
encoder step (and decoder step), so the encoder's ``input_size`` must be the data's C_in + S; ``"both"`` does both.

Streaming (both networks): ``initial_state(N)``, ``step(x_t (N, C_in), state, future) -> (params, state)`` and
``stream(chunk (N, T, C_in), state, future) -> (params, state)`` read new observations into the encoder's state
and forecast the H steps after the last one, without re-reading the lookback: after the first t observations, in
any chunking, the forecast equals ``forward(inputs[:, :t], future)``. The state is a dict of tensors (an LSTM's
``(h, c)`` tuple inside), which ``torch.save``/``torch.load(weights_only=True)`` round-trip; ``None`` is the
initial state. With static covariates, pass them to ``initial_state`` or to the first ``step``/``stream`` call:
the state keeps them (``"static_categoricals"``/``"static_reals"``), so later calls need not repeat them.
``window_norm="last"`` (which re-centres the whole lookback on each observation) and bidirectional encoders cannot
stream and refuse.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmodels.nn.heads import _mlp
from seqmodels.nn.recurrent import RecurrentEncoder

#: A forecaster's streaming state: ``{"encoder": h or (h, c)}``, plus ``"last"`` (N, C) for a seq2seq forecaster.
StreamState = dict[str, "Tensor | tuple[Tensor, Tensor]"]

WINDOW_NORMS = ("none", "last")
STATIC_MODES = ("init", "input", "both")


class PointOutput(nn.Module):
    """One value per step, trained with ``loss="mae"`` (L1, forecasts the median) or ``"mse"`` (the mean)."""

    def __init__(self, loss: str = "mae") -> None:
        super().__init__()
        if loss not in ("mae", "mse"):
            raise ValueError(f"PointOutput loss must be 'mae' or 'mse', got {loss!r}")
        self.loss_name = loss
        self.num_params = 1

    def loss(self, params: Tensor, targets: Tensor) -> Tensor:
        fn = F.l1_loss if self.loss_name == "mae" else F.mse_loss
        return fn(params[..., 0], targets)

    def point(self, params: Tensor) -> Tensor:
        return params[..., 0]

    def shift(self, params: Tensor, offset: Tensor) -> Tensor:
        """Forecast of ``y + offset`` from the forecast of ``y``; ``offset`` broadcasts to (N, H, C)."""
        return params + offset.unsqueeze(-1)

    def interval(self, params: Tensor) -> tuple[Tensor, Tensor] | None:
        return None

    def quantiles(self, params: Tensor) -> Tensor | None:
        return None


class GaussianOutput(PointOutput):
    """Mean and standard deviation per step, trained by Gaussian negative log-likelihood.

    Args:
        interval: nominal coverage of the central prediction interval, e.g. 0.8 -> the 10% and 90% quantiles.
        min_scale: floor of the standard deviation (keeps the likelihood finite on constant stretches).
    """

    def __init__(self, interval: float = 0.8, min_scale: float = 1e-3) -> None:
        nn.Module.__init__(self)
        if not 0.0 < interval < 1.0:
            raise ValueError(f"interval must be in (0, 1), got {interval}")
        self.num_params = 2
        self.level = interval
        self.min_scale = min_scale
        self.z = math.sqrt(2.0) * torch.erfinv(torch.tensor(interval)).item()  # Phi^-1((1 + level) / 2)

    def _scale(self, params: Tensor) -> Tensor:
        return F.softplus(params[..., 1]) + self.min_scale

    def loss(self, params: Tensor, targets: Tensor) -> Tensor:
        return F.gaussian_nll_loss(params[..., 0], targets, self._scale(params) ** 2, full=True)

    def shift(self, params: Tensor, offset: Tensor) -> Tensor:
        return torch.stack([params[..., 0] + offset, params[..., 1]], dim=-1)

    def interval(self, params: Tensor) -> tuple[Tensor, Tensor]:
        half = self.z * self._scale(params)
        return params[..., 0] - half, params[..., 0] + half


class QuantileOutput(PointOutput):
    """Q quantiles per step, trained by the pinball (quantile) loss; the point forecast is the median.

    Quantiles never cross: the network emits the lowest one and Q - 1 softplus gaps above it.

    Args:
        quantiles: increasing levels in (0, 1) including 0.5; the outermost two bound the prediction interval
            (0.1 and 0.9: an 80% interval).
    """

    def __init__(self, quantiles: list[float] | tuple[float, ...] = (0.1, 0.5, 0.9)) -> None:
        nn.Module.__init__(self)
        levels = [float(q) for q in quantiles]
        if len(levels) < 2 or any(not 0 < q < 1 for q in levels) or levels != sorted(set(levels)):
            raise ValueError(f"quantiles must be >= 2 increasing levels in (0, 1), got {list(quantiles)}")
        if 0.5 not in levels:
            raise ValueError(f"quantiles must include 0.5 (the point forecast), got {levels}")
        self.register_buffer("levels", torch.tensor(levels), persistent=False)
        self.median_index = levels.index(0.5)
        self.num_params = len(levels)
        self.level = levels[-1] - levels[0]

    def ordered(self, params: Tensor) -> Tensor:
        gaps = F.softplus(params[..., 1:])
        return torch.cat([params[..., :1], params[..., :1] + gaps.cumsum(-1)], dim=-1)

    def loss(self, params: Tensor, targets: Tensor) -> Tensor:
        q = self.ordered(params)
        error = targets.unsqueeze(-1) - q  # > 0: the quantile is too low
        return torch.maximum(self.levels * error, (self.levels - 1) * error).mean()

    def point(self, params: Tensor) -> Tensor:
        return self.ordered(params)[..., self.median_index]

    def shift(self, params: Tensor, offset: Tensor) -> Tensor:
        # Only the lowest quantile is a location; the gaps above it are shift-invariant.
        return torch.cat([params[..., :1] + offset.unsqueeze(-1), params[..., 1:]], dim=-1)

    def interval(self, params: Tensor) -> tuple[Tensor, Tensor]:
        q = self.ordered(params)
        return q[..., 0], q[..., -1]

    def quantiles(self, params: Tensor) -> Tensor:
        return self.ordered(params)


class _Forecaster(nn.Module):
    _feeds_last = False  # whether the forecast reads the last observed targets (kept in the state as "last")

    def __init__(
        self,
        encoder: RecurrentEncoder,
        horizon: int,
        num_targets: int,
        output: PointOutput | None,
        future_size: int,
        window_norm: str,
        network: str,
        static_cardinalities: list[int] | tuple[int, ...] = (),
        num_static_reals: int = 0,
        static_embedding_size: int = 4,
        static_mode: str = "init",
    ) -> None:
        super().__init__()
        for name, value in (("horizon", horizon), ("num_targets", num_targets)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{network}: {name} must be an integer >= 1, got {value!r}")
        if future_size < 0:
            raise ValueError(f"{network}: future_size must be >= 0, got {future_size}")
        if window_norm not in WINDOW_NORMS:
            raise ValueError(f"{network}: window_norm must be one of {', '.join(WINDOW_NORMS)}, got {window_norm!r}")
        if not encoder.batch_first:
            raise ValueError(f"{network} needs a batch_first=True encoder; set batch_first=True")
        cardinalities = [int(c) for c in static_cardinalities or ()]
        if any(c < 1 for c in cardinalities) or num_static_reals < 0 or static_embedding_size < 1:
            raise ValueError(
                f"{network}: static_cardinalities must be >= 1, num_static_reals >= 0 and static_embedding_size >= 1, "
                f"got {cardinalities}, {num_static_reals}, {static_embedding_size}"
            )
        if static_mode not in STATIC_MODES:
            raise ValueError(f"{network}: static_mode must be one of {', '.join(STATIC_MODES)}, got {static_mode!r}")
        self.static_cardinalities, self.num_static_reals = cardinalities, int(num_static_reals)
        self.static_embeddings = nn.ModuleList(nn.Embedding(c, static_embedding_size) for c in cardinalities)
        #: S, the width of the static vector (0: no static covariates).
        self.static_size = len(cardinalities) * static_embedding_size + self.num_static_reals
        self.static_mode = static_mode
        #: Static channels appended to each encoder step (static_mode input/both).
        self.static_input_size = self.static_size if static_mode in ("input", "both") else 0
        if encoder.input_size - self.static_input_size < num_targets:
            raise ValueError(
                f"{network}: encoder.input_size={encoder.input_size} leaves fewer than num_targets={num_targets} data "
                f"channels after the {self.static_input_size} static ones; with static_mode=input/both set "
                "model.net.encoder.input_size to the data's input_size + the static size"
            )
        self.encoder = encoder
        self.static_init: nn.Linear | None = None
        if self.static_size and static_mode in ("init", "both"):
            # The state's layout (a tensor or a tuple of (D * layers, 1, S_i) tensors) from a zero state.
            template = encoder.initial_state(1)
            parts = template if isinstance(template, tuple) else (template,)
            self._state_layout = [(p.shape[0], p.shape[2]) for p in parts]
            self._state_is_tuple = isinstance(template, tuple)
            self.static_init = nn.Linear(self.static_size, sum(a * b for a, b in self._state_layout))
        self.horizon, self.num_targets, self.future_size = horizon, num_targets, future_size
        self.output = output if output is not None else PointOutput()
        self.window_norm = window_norm
        self._network = network

    def _normalize(self, inputs: Tensor) -> tuple[Tensor, Tensor | None]:
        """Inputs with each window's last target value subtracted from the target channels, and that offset."""
        if self.window_norm == "none":
            return inputs, None
        C = self.num_targets
        offset = inputs[:, -1, :C]  # (N, C)
        return torch.cat([inputs[..., :C] - offset.unsqueeze(1), inputs[..., C:]], dim=-1), offset

    def _static_vector(
        self, static_categoricals: Tensor | None, static_reals: Tensor | None, batch_size: int
    ) -> Tensor | None:
        """(N, S): the embedded categoricals and the reals, or None without static covariates."""
        if not self.static_size:
            return None
        missing = [
            name
            for name, value, wanted in (
                ("static_categoricals", static_categoricals, len(self.static_cardinalities)),
                ("static_reals", static_reals, self.num_static_reals),
            )
            if wanted and (value is None or value.shape != (batch_size, wanted))
        ]
        if missing:
            raise ValueError(
                f"{self._network} reads static covariates: pass {' and '.join(missing)} (static_categoricals "
                f"(N, {len(self.static_cardinalities)}) int64, static_reals (N, {self.num_static_reals}); a "
                "ForecastBatch's fields)"
            )
        parts = [embed(static_categoricals[:, k]) for k, embed in enumerate(self.static_embeddings)]  # type: ignore[index]
        if self.num_static_reals:
            parts.append(static_reals.to(next(self.parameters()).dtype))  # type: ignore[union-attr]
        return torch.cat(parts, dim=1)

    def _static_state(self, static: Tensor | None) -> Tensor | tuple[Tensor, ...] | None:
        """The encoder's initial state from the static vector (static_mode init/both), else None (zeros)."""
        if static is None or self.static_init is None:
            return None
        flat = torch.tanh(self.static_init(static))  # (N, sum of D * layers * S_i)
        n, states, start = static.shape[0], [], 0
        for layers, size in self._state_layout:
            chunk = flat[:, start : start + layers * size].reshape(n, layers, size)
            states.append(chunk.transpose(0, 1).contiguous())
            start += layers * size
        return tuple(states) if self._state_is_tuple else states[0]

    def _with_static(self, inputs: Tensor, static: Tensor | None) -> Tensor:
        """``inputs`` (N, T, C) with the static vector appended to every step (static_mode input/both)."""
        if static is None or not self.static_input_size:
            return inputs
        return torch.cat([inputs, static.unsqueeze(1).expand(-1, inputs.shape[1], -1).to(inputs.dtype)], dim=-1)

    def _encode(self, inputs: Tensor, static: Tensor | None) -> Tensor | tuple[Tensor, ...]:
        """The encoder's final state over ``inputs``, from the statics' initial state (or zeros)."""
        hx = self._static_state(static)
        inputs = self._with_static(inputs, static)
        # Fixed-length windows: no lengths, so no packing.
        _, state = self.encoder(inputs) if hx is None else self.encoder(inputs, hx=hx)
        return state

    def _check(self, inputs: Tensor, future: Tensor | None) -> None:
        if inputs.dim() != 3:
            raise ValueError(f"inputs must be (N, L, C_in), got shape {tuple(inputs.shape)}")
        if self.static_input_size and inputs.shape[-1] + self.static_input_size != self.encoder.input_size:
            raise ValueError(
                f"static_mode={self.static_mode} appends {self.static_input_size} static channels to the "
                f"{inputs.shape[-1]} input channels but the encoder reads {self.encoder.input_size}; "
                f"set model.net.encoder.input_size={inputs.shape[-1] + self.static_input_size}"
            )
        if self.future_size and (future is None or future.shape[1:] != (self.horizon, self.future_size)):
            got = None if future is None else tuple(future.shape)
            raise ValueError(
                f"expected known-future features (N, {self.horizon}, {self.future_size}), got {got}; "
                "set future_size to the data's future_size"
            )

    # ------------------------------------------------------------------ streaming
    def _check_streamable(self) -> None:
        if self.window_norm != "none":
            raise ValueError(
                f"{self._network} with window_norm={self.window_norm!r} re-centres the whole lookback on every new "
                "observation, so it cannot stream; train it with window_norm=none to stream"
            )
        if self.encoder.bidirectional:
            raise ValueError(
                f"{self._network} has a bidirectional encoder, which re-reads the whole lookback backwards on every "
                "new observation, so it cannot stream; train it with bidirectional=false to stream"
            )

    def initial_state(
        self,
        batch_size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        static_categoricals: Tensor | None = None,
        static_reals: Tensor | None = None,
    ) -> StreamState:
        """The state before any observation: ``{"encoder": h or (h, c)}`` with h (layers, N, H_out) (and
        c (layers, N, H_cell)), zeros or (static_mode init/both) the statics' initial state, plus ``"last"`` (N, C),
        the last observed targets, for a seq2seq forecaster, and the static covariates given (kept for later
        steps). A forecaster with static covariates needs them here."""
        self._check_streamable()
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        weight = next(self.parameters())
        options = {"device": weight.device if device is None else device, "dtype": dtype or weight.dtype}
        static = self._static_vector(static_categoricals, static_reals, batch_size)
        encoder_state = self._static_state(static)
        if encoder_state is None:
            encoder_state = self.encoder.initial_state(batch_size, **options)
        state: StreamState = {"encoder": encoder_state}
        if self._feeds_last:
            state["last"] = torch.zeros(batch_size, self.num_targets, **options)
        self._keep_statics(state, static_categoricals, static_reals)
        return state

    def _keep_statics(
        self, state: StreamState, static_categoricals: Tensor | None, static_reals: Tensor | None
    ) -> None:
        """Keeps the static covariates in a streaming state: later steps read them from there."""
        if self.static_cardinalities and static_categoricals is not None:
            state["static_categoricals"] = static_categoricals
        if self.num_static_reals and static_reals is not None:
            state["static_reals"] = static_reals

    def step(
        self,
        x_t: Tensor,
        state: StreamState | None,
        future: Tensor | None = None,
        static_categoricals: Tensor | None = None,
        static_reals: Tensor | None = None,
    ) -> tuple[Tensor, StreamState]:
        """Reads one observation ``x_t`` (N, C_in) and forecasts the H steps after it: params (N, H, C, P) (the
        output's parameters, as ``forward`` returns them) and the new state. ``future`` (N, H, F): the known-future
        features of those H steps (when ``future_size > 0``). ``state=None``: the initial state. Static
        covariates: with the first call (or in ``initial_state``); the state keeps them."""
        if x_t.dim() != 2:
            raise ValueError(
                f"step takes one observation per series, (N, C_in), got shape {tuple(x_t.shape)}; "
                "use stream for (N, T, C_in) chunks"
            )
        return self.stream(x_t.unsqueeze(1), state, future, static_categoricals, static_reals)

    def stream(
        self,
        chunk: Tensor,
        state: StreamState | None,
        future: Tensor | None = None,
        static_categoricals: Tensor | None = None,
        static_reals: Tensor | None = None,
    ) -> tuple[Tensor, StreamState]:
        """Reads ``chunk`` (N, T, C_in), T new observations per series, in one fused encoder call, and forecasts the
        H steps after its last one: params (N, H, C, P) and the new state. ``future`` (N, H, F) and the static
        covariates as in :meth:`step`. The forecast equals ``forward`` over every observation streamed so far (the
        whole prefix as lookback)."""
        self._check_streamable()
        if chunk.dim() != 3 or chunk.shape[1] < 1:
            raise ValueError(f"stream takes a chunk (N, T >= 1, C_in), got shape {tuple(chunk.shape)}")
        channels = self.encoder.input_size - self.static_input_size
        if chunk.shape[-1] != channels:
            raise ValueError(
                f"the observations have {chunk.shape[-1]} channels but the forecaster reads "
                f"{channels}; pass every input channel (targets first, then covariates and calendar)"
            )
        if not bool(torch.isfinite(chunk).all()):
            raise ValueError(
                "a streamed observation holds NaN or inf; fill or interpolate missing values before streaming them"
            )
        self._check(chunk, future)
        hx = None
        if state is not None:
            if not isinstance(state, dict) or "encoder" not in state:
                raise ValueError(
                    f"state must be None or a state from initial_state/step/stream, got {type(state).__name__}"
                )
            if chunk.shape[0] != _batch_size(state["encoder"]):
                raise ValueError(
                    f"the chunk has {chunk.shape[0]} series but the state holds {_batch_size(state['encoder'])}; "
                    "start a state per batch size with initial_state(N)"
                )
            hx = state["encoder"]
            if static_categoricals is None:
                static_categoricals = state.get("static_categoricals")  # type: ignore[assignment]
            if static_reals is None:
                static_reals = state.get("static_reals")  # type: ignore[assignment]
        static = self._static_vector(static_categoricals, static_reals, chunk.shape[0])
        if hx is None:
            hx = self._static_state(static)
        _, encoder_state = self.encoder(self._with_static(chunk, static), hx=hx)
        new_state: StreamState = {"encoder": encoder_state}
        if self._feeds_last:
            # A copy: a view would keep (and torch.save would write) the whole chunk.
            new_state["last"] = chunk[:, -1, : self.num_targets].clone()
        self._keep_statics(new_state, static_categoricals, static_reals)
        return self._forecast_from(new_state, future, static), new_state

    def _forecast_from(self, state: StreamState, future: Tensor | None, static: Tensor | None) -> Tensor:
        raise NotImplementedError

    def predict(
        self,
        inputs: Tensor,
        future: Tensor | None = None,
        static_categoricals: Tensor | None = None,
        static_reals: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Point forecast (N, H, C), interval bounds and quantiles (when the output has them), scaled space."""
        params = self(inputs, future, static_categoricals=static_categoricals, static_reals=static_reals)
        out = {"point": self.output.point(params)}
        interval = self.output.interval(params)
        if interval is not None:
            out["lower"], out["upper"] = interval
        quantiles = self.output.quantiles(params)
        if quantiles is not None:
            out["quantiles"] = quantiles
        return out


class DirectForecaster(_Forecaster):
    """Encoder over the lookback, then an MLP from its final state to the whole horizon at once.

    Args:
        encoder: a ``batch_first=True`` :class:`RecurrentEncoder` over the C_in input channels.
        horizon: H, steps forecast.
        num_targets: C, target channels (the first C input channels).
        output: :class:`PointOutput` (default), :class:`GaussianOutput` or :class:`QuantileOutput`.
        future_size: F, known-future channels per horizon step (0: none), concatenated to the final state.
        head_hidden_size: optional hidden ReLU layer of the head.
        dropout: dropout on the head's input (and hidden layer).
        window_norm: ``"none"`` or ``"last"`` (see the module docstring).
        static_cardinalities: categories of each static categorical (the data's ``static_cardinalities``).
        num_static_reals: R, static numeric attributes.
        static_embedding_size: dimensions of each static categorical's embedding.
        static_mode: ``"init"``, ``"input"`` or ``"both"`` (see the module docstring).

    Inputs: ``inputs`` (N, L, C_in), ``future`` (N, H, F) or None, ``static_categoricals`` (N, K) and
    ``static_reals`` (N, R) when the network has static covariates. Output: params (N, H, C, P).
    """

    def __init__(
        self,
        encoder: RecurrentEncoder,
        horizon: int,
        num_targets: int = 1,
        output: PointOutput | None = None,
        future_size: int = 0,
        head_hidden_size: int | None = None,
        dropout: float = 0.0,
        window_norm: str = "none",
        static_cardinalities: list[int] | tuple[int, ...] = (),
        num_static_reals: int = 0,
        static_embedding_size: int = 4,
        static_mode: str = "init",
    ) -> None:
        super().__init__(
            encoder,
            horizon,
            num_targets,
            output,
            future_size,
            window_norm,
            "DirectForecaster",
            static_cardinalities,
            num_static_reals,
            static_embedding_size,
            static_mode,
        )
        features = encoder.num_directions * encoder.state_size + horizon * future_size
        self.head = _mlp(features, horizon * num_targets * self.output.num_params, head_hidden_size, dropout)

    def forward(
        self,
        inputs: Tensor,
        future: Tensor | None = None,
        targets: Tensor | None = None,
        static_categoricals: Tensor | None = None,
        static_reals: Tensor | None = None,
    ) -> Tensor:
        self._check(inputs, future)
        static = self._static_vector(static_categoricals, static_reals, inputs.shape[0])
        inputs, offset = self._normalize(inputs)
        state = self._encode(inputs, static)
        params = self._head(state, future)
        return self.output.shift(params, offset.unsqueeze(1)) if offset is not None else params

    def _head(self, state: Tensor | tuple[Tensor, Tensor], future: Tensor | None) -> Tensor:
        h_n = state[0] if isinstance(state, tuple) else state  # (D * layers, N, H_out)
        d, n = self.encoder.num_directions, h_n.shape[1]
        features = h_n[-1] if d == 1 else h_n[-d:].transpose(0, 1).reshape(n, -1)  # last layer, every direction
        if self.future_size:
            features = torch.cat([features, future.reshape(n, -1)], dim=1)  # type: ignore[union-attr]
        return self.head(features).view(n, self.horizon, self.num_targets, self.output.num_params)

    def _forecast_from(self, state: StreamState, future: Tensor | None, static: Tensor | None) -> Tensor:
        return self._head(state["encoder"], future)


class Seq2SeqForecaster(_Forecaster):
    """Encoder over the lookback; a recurrent decoder continues from its state, one horizon step at a time.

    The decoder (same cell, size and depth as the encoder) reads [previous target value, known-future
    features of this step]; the first previous value is the last observed one.

    Args:
        encoder: a unidirectional ``batch_first=True`` :class:`RecurrentEncoder`.
        horizon, num_targets, output, future_size, window_norm: as :class:`DirectForecaster`.
        static_cardinalities, num_static_reals, static_embedding_size, static_mode: as :class:`DirectForecaster`;
            with ``static_mode`` input/both the decoder reads the static vector at every step too.
        teacher_forcing: probability, per window and step, that training feeds the decoder the true previous
            value rather than its own forecast. 1.0 is teacher forcing (the whole horizon runs in one fused
            call); lower it over training (``ForecastingTask(teacher_forcing_end=...)``) for scheduled sampling.
            Evaluation always feeds forecasts.
        dropout: dropout on the decoder outputs.
    """

    _feeds_last = True

    def __init__(
        self,
        encoder: RecurrentEncoder,
        horizon: int,
        num_targets: int = 1,
        output: PointOutput | None = None,
        future_size: int = 0,
        teacher_forcing: float = 1.0,
        dropout: float = 0.0,
        window_norm: str = "none",
        static_cardinalities: list[int] | tuple[int, ...] = (),
        num_static_reals: int = 0,
        static_embedding_size: int = 4,
        static_mode: str = "init",
    ) -> None:
        super().__init__(
            encoder,
            horizon,
            num_targets,
            output,
            future_size,
            window_norm,
            "Seq2SeqForecaster",
            static_cardinalities,
            num_static_reals,
            static_embedding_size,
            static_mode,
        )
        if encoder.bidirectional:
            raise ValueError("Seq2SeqForecaster: the decoder continues the encoder's state; use bidirectional=false")
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"teacher_forcing must be in [0, 1], got {teacher_forcing}")
        self.teacher_forcing = float(teacher_forcing)
        self.decoder = RecurrentEncoder(
            cell=encoder.cell,
            input_size=num_targets + future_size + self.static_input_size,
            hidden_size=encoder.hidden_size,
            num_layers=encoder.num_layers,
            batch_first=True,
            dropout=encoder.dropout,
            proj_size=encoder.proj_size,
        )
        self.dropout = nn.Dropout(dropout)
        self.project = nn.Linear(encoder.state_size, num_targets * self.output.num_params)

    def _params(self, outputs: Tensor) -> Tensor:
        n, steps = outputs.shape[:2]
        return self.project(self.dropout(outputs)).view(n, steps, self.num_targets, self.output.num_params)

    def forward(
        self,
        inputs: Tensor,
        future: Tensor | None = None,
        targets: Tensor | None = None,
        static_categoricals: Tensor | None = None,
        static_reals: Tensor | None = None,
    ) -> Tensor:
        self._check(inputs, future)
        C = self.num_targets
        static = self._static_vector(static_categoricals, static_reals, inputs.shape[0])
        inputs, offset = self._normalize(inputs)
        state = self._encode(inputs, static)
        previous = inputs[:, -1, :C]  # (N, C): the last observed value
        steps_future = future if self.future_size else None
        if targets is not None and offset is not None:
            targets = targets - offset.unsqueeze(1)
        use_truth = self.training and targets is not None and self.teacher_forcing > 0
        if use_truth and self.teacher_forcing >= 1.0:
            # Teacher forcing: every decoder input is known up front, so the horizon is one fused RNN call.
            fed = torch.cat([previous.unsqueeze(1), targets[:, :-1]], dim=1)  # type: ignore[index]
            if steps_future is not None:
                fed = torch.cat([fed, steps_future], dim=-1)
            outputs, _ = self.decoder(self._with_static(fed, static), hx=state)
            params = self._params(outputs)
        else:
            params = self._decode(state, previous, steps_future, targets if use_truth else None, static)
        return self.output.shift(params, offset.unsqueeze(1)) if offset is not None else params

    def _decode(
        self,
        state: Tensor | tuple[Tensor, Tensor],
        previous: Tensor,
        future: Tensor | None,
        truth: Tensor | None,
        static: Tensor | None = None,
    ) -> Tensor:
        """The horizon one step at a time from the encoder's ``state``, fed its own forecasts (or, with ``truth``,
        the true previous value with probability ``teacher_forcing``)."""
        steps = []
        for t in range(self.horizon):
            fed = previous.unsqueeze(1)
            if future is not None:
                fed = torch.cat([fed, future[:, t : t + 1]], dim=-1)
            output, state = self.decoder(self._with_static(fed, static), hx=state)
            step = self._params(output)  # (N, 1, C, P)
            steps.append(step)
            # The model's own forecast is fed back without gradient (as at inference).
            previous = self.output.point(step[:, 0]).detach()
            if truth is not None:
                use = torch.rand(previous.shape[0], 1, device=previous.device) < self.teacher_forcing
                previous = torch.where(use, truth[:, t], previous)
        return torch.cat(steps, dim=1)

    def _forecast_from(self, state: StreamState, future: Tensor | None, static: Tensor | None) -> Tensor:
        steps_future = future if self.future_size else None
        return self._decode(state["encoder"], state["last"], steps_future, None, static)  # type: ignore[arg-type]


def _batch_size(encoder_state: Tensor | tuple[Tensor, Tensor]) -> int:
    h = encoder_state[0] if isinstance(encoder_state, tuple) else encoder_state
    return h.shape[1]


__all__ = [
    "STATIC_MODES",
    "WINDOW_NORMS",
    "DirectForecaster",
    "GaussianOutput",
    "PointOutput",
    "QuantileOutput",
    "Seq2SeqForecaster",
]
