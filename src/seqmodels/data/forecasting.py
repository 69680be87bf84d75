"""Forecasting data: fixed-length (lookback, horizon) windows over one or many series, split by time.

Each series is cut by time into a training, a validation and a test part (the last ``val_size + test_size``
steps are held out). A training window lies wholly inside the training part. A validation or test window's
*targets* lie wholly inside its part; its lookback is the history just before its first target (observed
earlier, so no leakage), which is how a forecaster is used: every origin of the held-out part is scored
("rolling origin" evaluation).

Targets (optionally log-transformed), past-observed and known-future covariates are scaled with statistics of
the training parts only: one set over all series (``scaling=global``) or one per series (``scaling=per_series``,
for panels whose series differ in level and spread), by ``scaler`` (``standard``: mean/std, ``robust``:
median/IQR, ``mean_abs``: mean absolute value). Calendar features (sin/cos of month, day of year, ...) are
already in [-1, 1]. The statistics travel in :meth:`ForecastingDataModule.state_dict` (so in every checkpoint;
per-series ones keyed by series name), and metrics and written forecasts are on the original scale.

Optional inputs: seasonal lags of the targets (``lag_features``) and causal rolling statistics
(``rolling_features``), computed once per series from its scaled targets before windows are cut, and static
covariates (per-series categorical and numeric attributes: ``static_categoricals``, ``static_reals``), which
batches carry as ``static_categoricals`` (N, K) category indices and ``static_reals`` (N, R) standardised values.

Windows are tensors built once by ``unfold`` (no per-item work while training), and :class:`WindowLoader`
serves batches by slicing them: no sampler, no collation. Stacked windows hold ``lookback`` copies of every step;
for series whose windows would not fit in memory, ``lazy_windows`` keeps only the series and an index of window
origins, and gathers each batch's windows when it is served (:class:`LazyForecastWindows`, identical batches).
"""

from __future__ import annotations

import importlib.resources
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from seqmodels.data.batch import SequenceBatch
from seqmodels.data.datamodule import SequenceDataModule
from seqmodels.data.timeseries_sources import (
    BUILTIN,
    MAX_VALUE,
    Series,
    calendar_features,
    calendar_width,
    check_finite,
    default_calendar,
    future_times,
    load_builtin,
    memory_series,
    read_csv_series,
    read_static_table,
    sine_series,
)
from seqmodels.data.vega_sources import VEGA_SOURCES, read_vega

SOURCES = ("csv", "memory", "sine", *BUILTIN, *VEGA_SOURCES)


def demo_demand_path() -> Path:
    """A bundled toy panel: daily ``sales`` of two stores (``store``) Jan 2022 - Jun 2023, with ``temperature``
    (past-observed) and ``promo`` (0/1, known ahead). Generated once with numpy (seed 0): a slow trend, busier
    weekends, +30% on promo days, a temperature effect and noise. For demos and smoke tests."""
    return Path(str(importlib.resources.files("seqmodels.data").joinpath("resources", "demand_demo.csv")))


#: Target transforms: ``log`` for positive data, ``sqrt`` (variance-stabilising for counts) for non-negative data.
TRANSFORMS = ("none", "log", "sqrt")
SCALINGS = ("global", "per_series")
SCALERS = ("standard", "robust", "mean_abs")
ROLLING_STATS = ("mean", "std", "min", "max")
#: IQR of the standard normal: a robust scale divided by it matches the standard deviation on Gaussian data.
NORMAL_IQR = 1.3489795003921634


@dataclass
class ForecastBatch(SequenceBatch):
    """A :class:`SequenceBatch` of forecasting windows (all of length L, so ``lengths`` is L everywhere).

    Shapes (N windows, L lookback, H horizon, C targets, C_in input channels, F known-future channels):
        inputs:      (N, L, C_in) scaled; channels are [targets, past covariates, future covariates, calendar]
        targets:     (N, H, C) scaled (log- or square-root-transformed first when ``transform=log``/``sqrt``)
        future:      (N, H, F) scaled known-future covariates and calendar features at the target steps, or None
        actual:      (N, H, C) targets on the original scale (evaluation splits only)
        naive:       (N, H, C) last observed value, repeated (evaluation splits only)
        seasonal_naive: (N, H, C) value one season (``seasonal_period`` steps) before each target
        mase_scale:  (N, C) in-sample MAE of the seasonal-naive forecast on the window's series' training part
        series:      (N,) index of the window's series
        origin:      (N,) index (within its series) of the window's first target step
        static_categoricals: (N, K) int64 category index of each static categorical (when the data has some)
        static_reals: (N, R) standardised static numeric attributes (when the data has some)
        target_loc, target_scale: (N, C) the window's series' target statistics (``scaling=per_series`` only):
            scaled = (value - loc) / scale
    """

    future: Tensor | None = None
    actual: Tensor | None = None
    naive: Tensor | None = None
    seasonal_naive: Tensor | None = None
    mase_scale: Tensor | None = None
    series: Tensor | None = None
    origin: Tensor | None = None
    static_categoricals: Tensor | None = None
    static_reals: Tensor | None = None
    target_loc: Tensor | None = None
    target_scale: Tensor | None = None

    def model_inputs(self) -> dict[str, Tensor | None]:
        """What a forecaster reads beside ``inputs``/``future``: the statics and per-series target statistics."""
        return {key: getattr(self, key) for key in WINDOW_EXTRAS}


#: The per-window tensors a forecaster reads beside inputs/future (None where the data has none).
WINDOW_EXTRAS = ("static_categoricals", "static_reals", "target_loc", "target_scale")


@dataclass
class Forecast:
    """Forecasts on the data's own scale (targets in their units, the transform and standardisation undone).

    Shapes (N forecasts: one per series for :meth:`ForecastingDataModule.forecast`, one per window for
    :meth:`ForecastingDataModule.backtest`; H horizon; C targets; Q quantiles):
        series: N series names
        time:   (N, H) times of the forecast steps (``datetime64[s]``, or numbers for a numeric time axis)
        point:  (N, H, C) point forecasts
        lower, upper: (N, H, C) interval bounds, when the model's output gives an interval
        quantiles: (N, H, C, Q) at ``quantile_levels``, for a quantile output
        actual, naive, seasonal_naive: (N, H, C) truth and the two baselines (backtests only)

    :meth:`to_frame` gives one row per forecast, step and target (pandas).
    """

    series: list[str]
    time: np.ndarray
    target_names: list[str]
    point: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    quantiles: np.ndarray | None = None
    quantile_levels: list[float] | None = None
    actual: np.ndarray | None = None
    naive: np.ndarray | None = None
    seasonal_naive: np.ndarray | None = None

    def to_frame(self) -> Any:
        """A pandas DataFrame: ``series, time, step, target, forecast`` and, when present, ``lower, upper``, one
        ``q<level>`` column per quantile, ``actual, naive, seasonal_naive``."""
        import pandas as pd

        N, H, C = self.point.shape
        columns: dict[str, Any] = {
            "series": np.repeat(np.asarray(self.series, dtype=object), H * C),
            "time": np.repeat(self.time.reshape(-1), C),
            "step": np.tile(np.repeat(np.arange(1, H + 1), C), N),
            "target": np.tile(np.asarray(self.target_names, dtype=object), N * H),
            "forecast": self.point.reshape(-1),
        }
        if self.lower is not None and self.upper is not None:
            columns["lower"], columns["upper"] = self.lower.reshape(-1), self.upper.reshape(-1)
        if self.quantiles is not None:
            flat = self.quantiles.reshape(N * H * C, -1)
            levels = self.quantile_levels or [float(q) for q in range(flat.shape[1])]
            for q, level in enumerate(levels):
                columns[f"q{level:g}"] = flat[:, q]
        for name in ("actual", "naive", "seasonal_naive"):
            values = getattr(self, name)
            if values is not None:
                columns[name] = values.reshape(-1)
        return pd.DataFrame(columns)


class ForecastWindows:
    """All windows of one split as stacked tensors; ``take(index)`` slices a :class:`ForecastBatch`."""

    def __init__(self, **tensors: Tensor | None) -> None:
        self.tensors = tensors
        inputs = tensors["inputs"]
        assert inputs is not None
        self.lookback = inputs.shape[1]
        self._lengths = torch.full((len(inputs),), self.lookback, dtype=torch.int64)  # sliced per batch

    def __len__(self) -> int:
        return self.tensors["inputs"].shape[0]  # type: ignore[union-attr]

    def take(self, index: Tensor | slice) -> ForecastBatch:
        parts = {k: v[index] for k, v in self.tensors.items() if v is not None}
        n = parts["inputs"].shape[0]
        if self._lengths.shape[0] < n:
            self._lengths = torch.full((n,), self.lookback, dtype=torch.int64)
        return ForecastBatch(lengths=self._lengths[:n], **parts)

    def __getitem__(self, index: int) -> ForecastBatch:
        return self.take(slice(index, index + 1))


#: The fields of an evaluation window that exist on the original scale (computed from the unscaled targets).
EVALUATION_FIELDS = ("actual", "naive", "seasonal_naive", "mase_scale")

#: ``lazy_windows=auto`` builds windows lazily when their stacked tensors would take more than this many bytes.
LAZY_WINDOWS_AUTO_BYTES = 256 * 2**20


@dataclass
class SeriesArrays:
    """Every series' per-step arrays, concatenated along time (series ``i`` holds rows ``offsets[i]`` onwards),
    and its per-series fields: what :class:`LazyForecastWindows` gathers windows from.

    Shapes (R rows = the series' total length, S series):
        steps:   (R, C_in) scaled inputs: [targets, past covariates, lag/rolling features, future covariates, calendar]
        future:  (R, F) scaled known-future covariates and calendar features, or None when F = 0
        values:  (R, C) float32 targets on the original scale
        offsets: (S,) int64 first row of each series
        per_series: (S, ...) fields of each series, gathered for its windows per batch: ``mase_scale`` and the
            :data:`WINDOW_EXTRAS` the data has
    """

    steps: Tensor
    future: Tensor | None
    values: Tensor
    offsets: Tensor
    per_series: dict[str, Tensor]

    def nbytes(self) -> int:
        tensors = [self.steps, self.future, self.values, self.offsets, *self.per_series.values()]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)


class LazyForecastWindows(ForecastWindows):
    """The windows of one split, kept as the series' arrays (:class:`SeriesArrays`, shared by the splits) and a
    (series, origin) index per window; ``take(index)`` gathers a :class:`ForecastBatch` equal to the one
    :class:`ForecastWindows` would slice (same values, dtypes and order), one indexing operation per field.

    Memory is that of the series plus 16 bytes per window, instead of ``lookback`` copies of every step.
    ``tensors`` is a read-only mapping that gathers a field over all windows when it is read (so reading
    ``tensors["inputs"]`` allocates what the eager windows hold; batches never do).
    """

    def __init__(
        self,
        arrays: SeriesArrays,
        series: Tensor,
        origin: Tensor,
        lookback: int,
        horizon: int,
        num_targets: int,
        seasonal_period: int,
        evaluate: bool,
    ) -> None:
        self.arrays, self.series, self.origin = arrays, series, origin
        self.lookback, self.horizon, self.num_targets = lookback, horizon, num_targets
        self.seasonal_period, self.evaluate = seasonal_period, evaluate
        self._lookback_steps = torch.arange(-lookback, 0)  # relative to a window's first target row
        self._horizon_steps = torch.arange(horizon)
        # Seasonal naive: target step h repeats the value m * (h // m + 1) steps before it (as the eager windows).
        self._seasonal_back = seasonal_period * (self._horizon_steps // seasonal_period + 1)
        self._lengths = torch.full((min(len(series), 1 << 16),), lookback, dtype=torch.int64)
        keys = ["inputs", "targets", "future", "series", "origin"]
        keys += list(EVALUATION_FIELDS) if evaluate else []
        self.keys = tuple(keys + [k for k in WINDOW_EXTRAS if k in arrays.per_series])

    def __len__(self) -> int:
        return len(self.series)

    @property
    def tensors(self) -> Mapping[str, Tensor | None]:  # type: ignore[override]
        return _GatheredFields(self)

    def nbytes(self) -> int:
        """Bytes this split holds of its own (the shared :class:`SeriesArrays` not counted)."""
        return self.series.numel() * 8 + self.origin.numel() * 8

    def gather(self, key: str, series: Tensor, origin: Tensor, row: Tensor) -> Tensor | None:
        """Field ``key`` of the windows of ``series``/``origin`` (first target at ``row`` of the arrays)."""
        a = self.arrays
        if key == "inputs":
            return a.steps[row[:, None] + self._lookback_steps]
        if key == "targets":
            return a.steps[row[:, None] + self._horizon_steps, : self.num_targets]
        if key == "future":
            return None if a.future is None else a.future[row[:, None] + self._horizon_steps]
        if key == "series":
            return series
        if key == "origin":
            return origin
        if key == "actual":
            return a.values[row[:, None] + self._horizon_steps]
        if key == "naive":
            return a.values[row - 1][:, None, :].expand(-1, self.horizon, -1).contiguous()
        if key == "seasonal_naive":
            # Clamped within the series (as the eager windows): never a row of the series before it.
            back = (origin[:, None] + self._horizon_steps - self._seasonal_back).clamp_min(0)
            return a.values[back + a.offsets[series][:, None]]
        return a.per_series[key][series]

    def take(self, index: Tensor | slice) -> ForecastBatch:
        series, origin = self.series[index], self.origin[index]
        row = self.arrays.offsets[series] + origin
        parts = {key: self.gather(key, series, origin, row) for key in self.keys}
        n = len(series)
        if self._lengths.shape[0] < n:
            self._lengths = torch.full((n,), self.lookback, dtype=torch.int64)
        return ForecastBatch(lengths=self._lengths[:n], **{k: v for k, v in parts.items() if v is not None})


class _GatheredFields(Mapping):
    """``LazyForecastWindows.tensors``: each field over all windows, gathered when read (not kept)."""

    def __init__(self, windows: LazyForecastWindows) -> None:
        self.windows = windows

    def __getitem__(self, key: str) -> Tensor | None:
        if key not in self.windows.keys:
            raise KeyError(key)
        w = self.windows
        return w.gather(key, w.series, w.origin, w.arrays.offsets[w.series] + w.origin)

    def __iter__(self) -> Iterator[str]:
        return iter(self.windows.keys)

    def __len__(self) -> int:
        return len(self.windows.keys)


#: ``data.window_sampling``: each training window equally often, or each series equally often.
WINDOW_SAMPLINGS = ("window", "series")


def _window_options(lazy_windows: bool | str, window_sampling: str) -> tuple[bool | str, str]:
    if not (isinstance(lazy_windows, bool) or lazy_windows == "auto"):
        raise ValueError(f"data.lazy_windows must be auto, true or false, got {lazy_windows!r}")
    if window_sampling not in WINDOW_SAMPLINGS:
        raise ValueError(f"data.window_sampling must be one of {', '.join(WINDOW_SAMPLINGS)}, got {window_sampling!r}")
    return lazy_windows, window_sampling


def series_balancing_weights(windows: ForecastWindows | LazyForecastWindows) -> Tensor:
    """(n_windows,) weights 1 / (windows of the window's series): drawing by them picks a series uniformly, then one
    of its windows uniformly."""
    series = windows.series if isinstance(windows, LazyForecastWindows) else windows.tensors["series"]
    counts = torch.bincount(series)
    return 1.0 / counts[series].double()


class WindowLoader:
    """Batches of a :class:`ForecastWindows` (or :class:`LazyForecastWindows`) by tensor slicing or gathering;
    reshuffled every epoch when ``shuffle``.

    The order of epoch ``e`` comes from ``seed + e`` (reproducible, independent of the global RNG). Under DDP
    each rank takes every ``num_replicas``-th window of the epoch's order. ``weights`` (one per window, with
    ``shuffle``): each epoch draws as many windows as there are, with replacement, in proportion to them.
    """

    def __init__(
        self,
        windows: ForecastWindows,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        weights: Tensor | None = None,
    ) -> None:
        if weights is not None and (not shuffle or weights.shape != (len(windows),)):
            raise ValueError(f"weights need shuffle=True and one weight per window ({len(windows)})")
        self.windows = windows
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas, self.rank = max(1, num_replicas or 1), rank or 0
        self.weights = weights
        self.epoch = 0

    def _count(self) -> int:
        return math.ceil((len(self.windows) - self.rank) / self.num_replicas)

    def __len__(self) -> int:
        return math.ceil(self._count() / self.batch_size)

    def __iter__(self) -> Iterator[ForecastBatch]:
        n = len(self.windows)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            if self.weights is None:
                order = torch.randperm(n, generator=generator)
            else:
                order = torch.multinomial(self.weights, n, replacement=True, generator=generator)
            self.epoch += 1
            order = order[self.rank :: self.num_replicas]
            for start in range(0, len(order), self.batch_size):
                yield self.windows.take(order[start : start + self.batch_size])
        elif self.num_replicas > 1:
            order = torch.arange(self.rank, n, self.num_replicas)
            for start in range(0, len(order), self.batch_size):
                yield self.windows.take(order[start : start + self.batch_size])
        else:
            for start in range(0, n, self.batch_size):  # contiguous slices are views: no copy at all
                yield self.windows.take(slice(start, start + self.batch_size))


class TargetScaler:
    """Targets' forward and inverse transform: optional log or square root, then ``(x - mean) / std`` per target
    channel.

    The inverse of ``sqrt`` is ``clamp(min=0) ** 2``: monotone, so quantiles and interval bounds map to quantiles and
    bounds exactly, and a point forecast becomes the square of the model's square-root-scale point, a median-type
    forecast (the median for a symmetric head), not the mean (which would add the sqrt-scale variance).

    ``mean``/``std`` are (C,) tensors. ``inverse`` takes any (..., C) tensor of scaled values. With
    ``per_series=True`` (``scaling=per_series``) ``mean``/``std`` are the identity and each window's own (N, C)
    ``loc``/``scale`` (``ForecastBatch.target_loc``/``target_scale``) must be given: they broadcast over
    (..., N, S, C) values (S steps).
    """

    def __init__(self, mean: Tensor, std: Tensor, transform: str = "none", per_series: bool = False) -> None:
        if transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}, got {transform!r}")
        self.mean, self.std, self.transform = mean.float(), std.float(), transform
        self.per_series = bool(per_series)

    def _windows(self, loc: Tensor | None, scale: Tensor | None) -> tuple[Tensor, Tensor] | None:
        if loc is None or scale is None:
            if self.per_series:
                raise ValueError(
                    "this model was trained with data.scaling=per_series: pass each window's target_loc and "
                    "target_scale (a ForecastBatch's fields), or forecast through ForecastingDataModule.forecast"
                )
            return None
        return loc[:, None, :], scale[:, None, :]

    def __call__(self, values: Tensor, loc: Tensor | None = None, scale: Tensor | None = None) -> Tensor:
        if self.transform == "log":
            values = torch.log(values)
        elif self.transform == "sqrt":
            if bool((values < 0).any()):
                raise ValueError(
                    f"transform=sqrt needs non-negative targets, got {values.min().item():g}; set data.transform=none"
                )
            values = torch.sqrt(values)
        values = (values - self.mean.to(values)) / self.std.to(values)
        window = self._windows(loc, scale)
        return values if window is None else (values - window[0].to(values)) / window[1].to(values)

    def inverse(self, scaled: Tensor, loc: Tensor | None = None, scale: Tensor | None = None) -> Tensor:
        window = self._windows(loc, scale)
        if window is not None:
            scaled = scaled * window[1].to(scaled) + window[0].to(scaled)
        values = scaled * self.std.to(scaled) + self.mean.to(scaled)
        if self.transform == "log":
            return torch.exp(values)
        if self.transform == "sqrt":
            return values.clamp(min=0) ** 2  # a negative sqrt-scale value is below every attainable one: 0
        return values


def location_scale(rows: np.ndarray, scaler: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-column (loc, scale) of (T, K) ``rows``: ``standard`` mean/std, ``robust`` median/(IQR / 1.349) (the
    standard deviation for Gaussian data), ``mean_abs`` 0/mean absolute value. A zero scale (a constant column)
    falls back to the standard deviation, then to 1, so nothing divides by zero."""
    std = rows.std(axis=0)
    if scaler == "standard":
        loc, scale = rows.mean(axis=0), std
    elif scaler == "robust":
        q25, median, q75 = np.percentile(rows, [25, 50, 75], axis=0)
        loc, scale = median, (q75 - q25) / NORMAL_IQR
        scale = np.where(scale > 1e-12, scale, std)
    else:
        loc, scale = np.zeros(rows.shape[1]), np.abs(rows).mean(axis=0)
        scale = np.where(scale > 1e-12, scale, std)
    return loc, np.where(scale > 1e-12, scale, 1.0)


def _names(columns: Any, key: str) -> list[str]:
    if columns is None:
        return []
    if isinstance(columns, str):
        return [columns]
    names = [str(c) for c in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"data.{key} names a column twice: {names}; name each once")
    return names


def _lags(lags: Any) -> list[int]:
    out = [] if lags is None else list(lags)
    if any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in out) or len(set(out)) != len(out):
        raise ValueError(f"data.lag_features must be distinct integers >= 1 (steps back), got {out}")
    return out


def _rolling(features: Any) -> list[tuple[int, str]]:
    out = []
    for entry in features or []:
        try:
            spec = dict(entry)
            window, stat = spec.pop("window"), spec.pop("stat", "mean")
        except (TypeError, ValueError, KeyError):
            raise ValueError(
                f"data.rolling_features entries look like {{window: 7, stat: mean}}, got {entry!r}"
            ) from None
        if spec or not isinstance(window, int) or isinstance(window, bool) or window < 2:
            raise ValueError(f"a rolling feature takes window (an integer >= 2) and stat only, got {dict(entry)}")
        if stat not in ROLLING_STATS:
            raise ValueError(f"rolling feature stat must be one of {', '.join(ROLLING_STATS)}, got {stat!r}")
        if (window, stat) in out:
            raise ValueError(f"data.rolling_features lists {{window: {window}, stat: {stat}}} twice")
        out.append((window, stat))
    return out


def target_features(targets: Tensor, lags: list[int], rolling: list[tuple[int, str]]) -> Tensor:
    """(T, C * (len(lags) + len(rolling))) lag and causal rolling features of (T, C) ``targets``: for each lag k
    the value at t - k, then for each (w, stat) the statistic over steps t - w + 1 .. t; NaN where the series is
    too short to give one (a window never includes those steps)."""
    T, C = targets.shape
    parts = []
    for k in lags:
        lagged = torch.full_like(targets, math.nan)
        lagged[k:] = targets[: max(T - k, 0)]
        parts.append(lagged)
    for window, stat in rolling:
        rolled = torch.full_like(targets, math.nan)
        if window <= T:
            spans = targets.unfold(0, window, 1)  # (T - w + 1, C, w): span i ends at step i + w - 1
            if stat == "mean":
                value = spans.mean(-1)
            elif stat == "std":
                value = spans.std(-1, correction=0)
            elif stat == "min":
                value = spans.amin(-1)
            else:
                value = spans.amax(-1)
            rolled[window - 1 :] = value
        parts.append(rolled)
    return torch.cat(parts, dim=1) if parts else targets.new_zeros(T, 0)


def _static_value(series: Series, column: str) -> str:
    if column not in series.static:
        raise ValueError(
            f"series {series.name!r} has no value for static column {column!r}; give it in the series' rows or in "
            "data.static_path"
        )
    return series.static[column]


def _static_number(series: Series, column: str) -> float:
    text = _static_value(series, column)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or abs(value) > MAX_VALUE:
        raise ValueError(
            f"series {series.name!r}: static real {column!r} holds {text!r}, not a finite number; fix it or list the "
            "column in data.static_categoricals"
        )
    return value


def _steps(size: float, length: int, name: str) -> int:
    """``size`` < 1 is a fraction of ``length``, else a count of time steps."""
    if size < 0:
        raise ValueError(f"{name} must be >= 0 (a count of steps, or a fraction < 1), got {size}")
    return int(round(size * length)) if size < 1 else int(size)


class ForecastingDataModule(SequenceDataModule):
    """Windows of ``lookback`` observed steps and the ``horizon`` steps after them, over one or many series.

    Args:
        source: ``"csv"`` (``path``), ``"sunspots"``, ``"co2"``, ``"airline"`` (bundled, see
            :mod:`seqmodels.data.timeseries_sources`), ``"sine"`` (generated: ``sine_length`` points of
            ``sin(2 pi t / sine_period) + sine_noise * N(0, 1)``, numpy seed ``seed``) or ``"memory"`` (``data``;
            set by itself when ``data`` is given), or ``"seattle_weather"``, ``"stocks"`` (tables inside the
            vega_datasets package, read with the configured columns: :mod:`seqmodels.data.vega_sources`).
        path: the CSV/TSV file for ``source=csv`` (header row; one row per time step); None: the bundled demo
            (:func:`demo_demand_path`).
        data: the series in memory instead of a file (not with ``path`` or a bundled ``source``): a pandas DataFrame
            with the columns the CSV would have (or indexed by time), a pandas Series, a numpy array ((T,) or
            (T, C): one series; (N, T, C): N series), or a list / ``{name: ...}`` dict of these; read and checked
            as a file is (see :func:`~seqmodels.data.timeseries_sources.memory_series`). It is kept out of the
            saved hyperparameters: a checkpoint holds ``source=memory`` and the scaler, and forecasts from it
            need the history passed again (:meth:`forecast`, ``seqmodels-predict input_file=...``).
        time_column: dates (ISO or YYYYMMDD) or numbers, strictly increasing within each series.
        target_columns: column(s) to forecast (C of them).
        past_covariates: columns observed up to the present only (inputs over the lookback).
        future_covariates: columns known ahead (inputs over the lookback and, to the model, over the horizon).
        series_column: a column naming the series of each row: one series per value (a panel).
        missing: NaN in a column: ``"error"`` (default for CSV), ``"interpolate"`` (linear in time) or ``"ffill"``.
        calendar: ``"auto"`` (month for monthly data, day of year/week for daily, ...; none for numeric or
            yearly time), a list from ``month, dayofyear, dayofweek, hour`` (sin/cos pairs), ``dayofweek_onehot,
            month_onehot``, ``weekend, month_start, month_end, holiday`` (0/1; US federal holidays), or ``null``:
            known-future features (see :func:`~seqmodels.data.timeseries_sources.calendar_features`).
        lookback: L, observed steps per window.
        horizon: H, steps forecast at once.
        val_size, test_size: the held-out end of each series: a fraction (< 1) of its length or a count of steps.
        stride: steps between consecutive training windows.
        transform: ``"log"`` models the log of the targets (multiplicative seasonality, positive data); ``"sqrt"``
            their square root (variance-stabilising for counts, non-negative data with zeros); forecasts come back
            squared (clamped at 0), so a point forecast is median-type, not the mean.
        eval_batch_size: windows per validation/test batch (None: ``batch_size``); evaluation keeps no
            gradients, so large batches are cheap and spare per-batch overhead.
        seasonal_period: m for the seasonal-naive baseline and MASE (12 monthly, 52 weekly, ...).
        scaling: ``"global"`` (one set of statistics over every series' training part) or ``"per_series"`` (each
            series scaled by its own training part: a global model then learns shapes, not levels; forecasting
            a series needs its statistics, so only series seen in training can be forecast).
        scaler: ``"standard"`` (mean, std), ``"robust"`` (median, IQR / 1.349: outliers do not set the scale) or
            ``"mean_abs"`` (no centring, mean absolute value: keeps zero at zero, for intermittent demand).
        static_categoricals: columns holding a per-series category (store type, region), constant within each
            series; the network embeds them (see ``model.net.static_mode``). Categories are those of the
            training series: an unseen one at forecast time is an error.
        static_reals: columns holding a per-series number (store size), standardised over the series.
        static_path: a CSV/TSV table with one row per series (keyed by the ``series_column`` values, the series
            names) holding the static columns, instead of reading them from the series' rows.
        lag_features: seasonal lags k of the targets (e.g. ``[52]`` weekly data, last year's week): the value at
            t - k is an extra input channel at step t. Lags inside the lookback add nothing to a recurrent
            network, which reads the lookback anyway; lags of a season or more bring a longer history.
        rolling_features: ``[{window: w, stat: mean|std|min|max}, ...]``: the statistic of the targets over the
            w steps up to and including t (causal), an extra input channel at step t.
        lazy_windows: ``False`` stacks every window of a split into tensors once (``lookback`` copies of each
            step: fastest batches, memory ``n_windows x lookback x channels``); ``True`` keeps only the series and a
            (series, origin) index per window and gathers each batch's windows when it is served
            (:class:`LazyForecastWindows`: memory about that of the series, for series or panels whose windows
            would not fit in memory); ``"auto"`` is lazy when the stacked windows of all splits would exceed
            :data:`LAZY_WINDOWS_AUTO_BYTES` (256 MiB). Both give identical batches.
        window_sampling: how training draws windows from a panel: ``"window"`` shuffles every window once per epoch
            (each window equally often, so long series weigh more); ``"series"`` draws as many windows, with
            replacement, picking a series uniformly and then one of its windows uniformly (each series equally
            often, however long).
        **base: :class:`SequenceDataModule` arguments (``batch_size``, ``seed``, ...).

    Input channels are [targets, past covariates, lag and rolling features, future covariates, calendar]. Lag and
    rolling features need ``max(lag, window - 1)`` steps of history before a window's first step: the first
    training window starts that much later, and forecasting needs that many more observed steps.

    dims: ``input_size`` (C_in), ``num_targets`` (C), ``future_size`` (F), ``lookback``, ``horizon``,
    ``static_cardinalities`` (categories per static categorical, a list), ``num_static_reals`` (R).
    """

    #: The config values that say the series came from ``data`` (:func:`seqmodels.fit` writes them into the run
    #: config that checkpoints keep, in place of the experiment's file or bundled source).
    memory_config: ClassVar[dict[str, Any]] = {"source": "memory", "path": None}

    def __init__(
        self,
        source: str = "csv",
        path: str | Path | None = None,
        time_column: str = "time",
        target_columns: str | list[str] = "value",
        past_covariates: list[str] | None = None,
        future_covariates: list[str] | None = None,
        series_column: str | None = None,
        missing: str = "error",
        calendar: str | list[str] | None = "auto",
        lookback: int = 24,
        horizon: int = 12,
        val_size: float = 0.15,
        test_size: float = 0.15,
        stride: int = 1,
        transform: str = "none",
        seasonal_period: int = 1,
        sine_length: int = 2000,
        sine_period: float = 50.0,
        sine_noise: float = 0.1,
        eval_batch_size: int | None = None,
        scaling: str = "global",
        scaler: str = "standard",
        static_categoricals: list[str] | None = None,
        static_reals: list[str] | None = None,
        static_path: str | Path | None = None,
        lag_features: list[int] | None = None,
        rolling_features: list[dict[str, Any]] | None = None,
        lazy_windows: bool | str = "auto",
        window_sampling: str = "window",
        data: Any = None,
        **base: Any,
    ) -> None:
        # The data itself stays out of the saved hyperparameters (checkpoints hold plain data).
        data, memory = None, data
        super().__init__(**base)
        for store in (self.hparams, self._hparams_initial):
            store.pop("data", None)
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
        if memory is not None:
            if path is not None:
                raise ValueError(f"pass the series as data= or as path={path}, not both")
            if source not in ("csv", "memory"):
                raise ValueError(f"pass the series as data= or as source={source}, not both")
            source = self.hparams["source"] = self._hparams_initial["source"] = "memory"
        for name, value in (
            ("lookback", lookback),
            ("horizon", horizon),
            ("stride", stride),
            ("seasonal_period", seasonal_period),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}, got {transform!r}")
        self.source, self.path, self.data = source, (str(path) if path is not None else None), memory
        if source == "csv" and path is None:
            # The bundled demo panel; its columns are the defaults below only when the user names none.
            self.path = str(demo_demand_path())
        self.time_column, self.series_column = time_column, series_column
        self.target_columns = [target_columns] if isinstance(target_columns, str) else list(target_columns)
        self.past_covariates = list(past_covariates or [])
        self.future_covariates = list(future_covariates or [])
        self.missing, self.calendar = missing, calendar
        self.lookback, self.horizon, self.stride = lookback, horizon, stride
        self.val_size, self.test_size = val_size, test_size
        self.transform, self.seasonal_period = transform, seasonal_period
        self.sine = dict(length=sine_length, period=sine_period, noise=sine_noise)
        if eval_batch_size is not None and eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1 or null, got {eval_batch_size}")
        self.eval_batch_size = eval_batch_size or self.batch_size
        if scaling not in SCALINGS:
            raise ValueError(f"data.scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")
        if scaler not in SCALERS:
            raise ValueError(f"data.scaler must be one of {', '.join(SCALERS)}, got {scaler!r}")
        self.scaling, self.scaler = scaling, scaler
        self.static_categoricals = _names(static_categoricals, "static_categoricals")
        self.static_reals = _names(static_reals, "static_reals")
        self.static_path = str(static_path) if static_path is not None else None
        if (self.static_categoricals or self.static_reals) and source not in ("csv", "memory", *VEGA_SOURCES):
            raise ValueError(
                "static covariates need series from a table (source=csv, seattle_weather, stocks or data=...), "
                f"not source={source}; drop data.static_categoricals/static_reals"
            )
        if self.static_path is not None and not (self.static_categoricals or self.static_reals):
            raise ValueError("data.static_path is set but no static columns are named; set data.static_categoricals")
        self.lag_features = _lags(lag_features)
        self.rolling_features = _rolling(rolling_features)
        #: Steps of history the lag and rolling features need before a window's first step.
        self.feature_history = max(
            [*self.lag_features, *(window - 1 for window, _ in self.rolling_features)], default=0
        )
        self.lazy_windows, self.window_sampling = _window_options(lazy_windows, window_sampling)
        #: Bytes the stacked (eager) windows of all splits take or would take, and whether the last build was lazy.
        self.eager_window_bytes = 0
        self.windows_are_lazy = False
        # Fitted in build() on the training parts, or restored by load_state_dict().
        self.mean: Tensor | None = None  # (C + P + F,) for [targets, past, future] channels
        self.std: Tensor | None = None
        #: scaling=per_series: {series name: (loc, scale)}, float64 (C + P + F,) arrays.
        self.series_stats: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
        self.static_vocab: dict[str, list[str]] | None = None  # categories of each static categorical
        self.static_real_stats: tuple[list[float], list[float]] | None = None  # (mean, std) over the series
        #: Encoded statics of the training series, {name: (category indices, standardised reals)}, kept in
        #: checkpoints so that a known series can be streamed by name.
        self.series_statics: dict[str, tuple[list[int], list[float]]] | None = None
        self.calendar_names: list[str] | None = None
        self.series: list[Series] = []
        self.split_points: list[tuple[int, int]] = []  # per series: (train_end, val_end)

    # ------------------------------------------------------------------ reading
    @property
    def num_targets(self) -> int:
        return 1 if self.source in ("sine", *BUILTIN) else len(self.target_columns)

    @property
    def target_names(self) -> list[str]:
        names = {"sine": "value", "sunspots": "SUNACTIVITY", "co2": "co2", "airline": "Passengers"}
        return [names[self.source]] if self.source in names else list(self.target_columns)

    def read_series(self, path: str | Path | None = None, future_rows: int = 0, data: Any = None) -> list[Series]:
        """The configured series, or those of another file (``path``) or of ``data`` in memory with the same
        columns (for forecasting them)."""
        if path is not None and data is not None:
            raise ValueError("pass the history as a file or as data, not both")
        if path is None and data is None:
            if self.source == "memory":
                if self.data is None:
                    raise ValueError(
                        "this forecaster was trained on series held in memory, which checkpoints do not keep; pass "
                        "the history (data=... in Python, input_file=... to seqmodels-predict)"
                    )
                data = self.data
            elif self.source == "sine":
                return [sine_series(seed=self.seed, **self.sine)]  # type: ignore[arg-type]
            elif self.source in VEGA_SOURCES:
                data = {self.source: read_vega(self.source)}  # a single series is named after its source
            elif self.source != "csv":
                return [load_builtin(self.source, missing=self.missing)]
        time_column = {"sunspots": "YEAR", "co2": "date", "airline": "Date"}.get(self.source, self.time_column)
        targets = self.target_names if self.source != "csv" else self.target_columns
        columns = (time_column, targets, self.past_covariates, self.future_covariates, self.series_column)
        statics = [*self.static_categoricals, *self.static_reals]
        inline = statics if self.static_path is None else []
        if data is not None:
            series = memory_series(data, *columns, self.missing, allow_future_rows=future_rows, static_columns=inline)
        else:
            series = read_csv_series(
                path or self.path,  # type: ignore[arg-type]
                *columns,
                self.missing,
                allow_future_rows=future_rows,
                static_columns=inline,
            )
        if self.static_path is not None:
            table = read_static_table(self.static_path, self.series_column or "series", statics)
            for s in series:
                if s.name not in table:
                    raise ValueError(
                        f"{self.static_path}: no row for series {s.name!r}; add one (keyed by the series name)"
                    )
                s.static = table[s.name]
        return series

    def _calendar_names(self, series: Series) -> list[str]:
        if self.calendar_names is None:
            if self.calendar == "auto":
                self.calendar_names = default_calendar(series.time)
            else:
                calendar = self.calendar
                self.calendar_names = [calendar] if isinstance(calendar, str) else list(calendar or [])
        return self.calendar_names

    def _raw_channels(self, series: Series) -> np.ndarray:
        """(T, C + P + F): targets (log- or square-root-transformed if asked), past, future covariates, unscaled."""
        values = series.values
        if self.transform in ("log", "sqrt"):
            observed = values[~np.isnan(values)]
            if self.transform == "log" and observed.size and observed.min() <= 0:
                raise ValueError(
                    f"transform=log needs positive targets, but series {series.name!r} has {observed.min():g}; "
                    "set data.transform=sqrt (non-negative data) or none"
                )
            if self.transform == "sqrt" and observed.size and observed.min() < 0:
                raise ValueError(
                    f"transform=sqrt needs non-negative targets, but series {series.name!r} has {observed.min():g}; "
                    "set data.transform=none"
                )
            values = np.log(values) if self.transform == "log" else np.sqrt(values)
        return np.concatenate([values, series.past, series.future], axis=1)

    def _location_scale(self, name: str) -> tuple[Tensor, Tensor]:
        """float64 (C + P + F,) statistics that scale the series ``name``."""
        assert self.mean is not None and self.std is not None
        if self.scaling == "global":
            return self.mean.double(), self.std.double()
        assert self.series_stats is not None
        if name not in self.series_stats:
            known = ", ".join(repr(n) for n in list(self.series_stats)[:5])
            raise ValueError(
                f"series {name!r} was not in training, so data.scaling=per_series has no statistics for it (known: "
                f"{known}{', ...' if len(self.series_stats) > 5 else ''}); forecast a known series, or retrain "
                "with data.scaling=global or with this series"
            )
        loc, scale = self.series_stats[name]
        return torch.from_numpy(loc), torch.from_numpy(scale)

    def _features(self, series: Series, time: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
        """Scaled inputs (T, C_in) and known-future features (T, F + K) of a series (with per-series scaling,
        by the statistics of the training series of the same name). Lag and rolling features are NaN over the
        first steps, which no window uses as inputs."""
        loc, scale = self._location_scale(series.name)
        # Scaled in float64, then stored as float32: large values (up to float32's limit) stay finite and exact.
        raw = torch.from_numpy(self._raw_channels(series))
        scaled64 = (raw - loc) / scale
        num_future = len(self.future_covariates)
        if self.lag_features or self.rolling_features:
            # From the scaled targets: lags and rolling mean/min/max then share the targets' scale.
            past_end = self.num_targets + len(self.past_covariates)
            derived = target_features(scaled64[:, : self.num_targets], self.lag_features, self.rolling_features)
            scaled64 = torch.cat([scaled64[:, :past_end], derived, scaled64[:, past_end:]], dim=1)
        scaled = scaled64.float()
        names = self._calendar_names(series)
        cal = torch.from_numpy(calendar_features(series.time if time is None else time, names)).float()
        future = torch.cat([scaled[:, scaled.shape[1] - num_future :], cal], dim=1)
        return torch.cat([scaled, cal], dim=1), future

    def _static_codes(self, series: Series) -> tuple[Tensor | None, Tensor | None]:
        """(K,) int64 category indices and (R,) standardised static reals of a series (None where none)."""
        codes = reals = None
        if self.static_categoricals:
            assert self.static_vocab is not None
            index = []
            for column in self.static_categoricals:
                value, known = _static_value(series, column), self.static_vocab[column]
                if value not in known:
                    shown = ", ".join(repr(k) for k in known[:6]) + (", ..." if len(known) > 6 else "")
                    raise ValueError(
                        f"series {series.name!r}: static column {column!r} holds {value!r}, a category not seen in "
                        f"training ({shown}); use a known category or retrain with this one"
                    )
                index.append(known.index(value))
            codes = torch.tensor(index, dtype=torch.int64)
        if self.static_reals:
            assert self.static_real_stats is not None
            mean, std = (torch.tensor(v, dtype=torch.float64) for v in self.static_real_stats)
            values = torch.tensor([_static_number(series, c) for c in self.static_reals], dtype=torch.float64)
            reals = ((values - mean) / std).float()
        return codes, reals

    # ------------------------------------------------------------------ building
    def build(self, series: list[Series] | None = None) -> None:
        """Splits ``series`` (default: the configured ones) and cuts every split's windows."""
        self.series = series if series is not None else self.read_series()
        if not self.series:
            raise ValueError("no series to forecast")
        self.split_points = []
        for s in self.series:
            # Files are checked row by row when read; this catches series made in memory (NaN, inf, too large).
            for values, names in (
                (s.values, self.target_names),
                (s.past, self.past_covariates),
                (s.future, self.future_covariates),
            ):
                if values.size:
                    columns = names if len(names) == values.shape[1] else [f"#{k}" for k in range(values.shape[1])]
                    check_finite(values, columns, f"series {s.name!r}")
            n_val, n_test = _steps(self.val_size, len(s), "val_size"), _steps(self.test_size, len(s), "test_size")
            train_end = len(s) - n_val - n_test
            need = self.lookback + self.horizon + self.feature_history
            if train_end < need:
                extra = f" + feature history {self.feature_history}" if self.feature_history else ""
                raise ValueError(
                    f"series {s.name!r} has {len(s)} steps; after val/test ({n_val} + {n_test}) its training part "
                    f"({train_end}) is shorter than lookback + horizon{extra} = {need}; "
                    "shorten data.lookback/horizon (or the lags/rolling windows) or data.val_size/test_size"
                )
            for part, size in (("val", n_val), ("test", n_test)):
                if 0 < size < self.horizon:
                    raise ValueError(
                        f"series {s.name!r}: the {part} part ({size} steps) is shorter than horizon={self.horizon}, "
                        f"so it holds no window; set data.{part}_size >= {self.horizon} (or 0)"
                    )
            if train_end <= self.seasonal_period:
                raise ValueError(
                    f"series {s.name!r}: the training part ({train_end} steps) must be longer than "
                    f"seasonal_period={self.seasonal_period} to scale MASE"
                )
            self.split_points.append((train_end, train_end + n_val))
        if self.mean is None:
            # Scaler statistics from the training parts only: held-out values never shape the inputs.
            ends = [end for end, _ in self.split_points]
            train_parts = [self._raw_channels(s)[:end] for s, end in zip(self.series, ends, strict=True)]
            if self.scaling == "global":
                mean, std = location_scale(np.concatenate(train_parts), self.scaler)
            else:
                # The global statistics are the identity; each series has its own (looked up by name).
                names = [s.name for s in self.series]
                if len(set(names)) != len(names):
                    raise ValueError("data.scaling=per_series needs distinct series names; name the series apart")
                self.series_stats = {
                    s.name: location_scale(part, self.scaler) for s, part in zip(self.series, train_parts, strict=True)
                }
                mean, std = np.zeros(train_parts[0].shape[1]), np.ones(train_parts[0].shape[1])
            self.mean = torch.tensor(mean, dtype=torch.float32)
            self.std = torch.tensor(std, dtype=torch.float32)
        self._fit_statics()
        origins = [self._origins(s, *ends) for s, ends in zip(self.series, self.split_points, strict=True)]
        self.eager_window_bytes = self._eager_bytes(origins)
        lazy = self.lazy_windows
        self.windows_are_lazy = self.eager_window_bytes > LAZY_WINDOWS_AUTO_BYTES if lazy == "auto" else bool(lazy)
        sets = self._lazy_sets(origins) if self.windows_are_lazy else self._eager_sets(origins)
        self.train_set, self.val_set, self.test_set = (sets[k] for k in ("train", "val", "test"))

    def _origins(self, s: Series, train_end: int, val_end: int) -> dict[str, range]:
        """Each split's window origins (index of the first target step) in series ``s``."""
        return {
            "train": range(self.lookback + self.feature_history, train_end - self.horizon + 1, self.stride),
            "val": range(train_end, val_end - self.horizon + 1),
            "test": range(val_end, len(s) - self.horizon + 1),
        }

    def _eager_bytes(self, origins: list[dict[str, range]]) -> int:
        """Bytes of the stacked windows of every split (what ``lazy_windows=false`` holds)."""
        dims = self._dims()
        L, H, C, F = self.lookback, self.horizon, self.num_targets, dims["future_size"]
        extras = 8 * len(self.static_categoricals) + 4 * len(self.static_reals)
        extras += 8 * C if self.scaling == "per_series" else 0
        train = 4 * (L * dims["input_size"] + H * C + H * F) + 16 + extras  # + series, origin (int64)
        evaluate = train + 4 * (3 * H * C + C)  # + actual, naive, seasonal_naive, mase_scale
        counts = {split: sum(len(o[split]) for o in origins) for split in ("train", "val", "test")}
        return counts["train"] * train + (counts["val"] + counts["test"]) * evaluate

    def _eager_sets(self, origins: list[dict[str, range]]) -> dict[str, ForecastWindows]:
        parts: dict[str, list[dict[str, Tensor | None]]] = {"train": [], "val": [], "test": []}
        for index, (s, (train_end, _)) in enumerate(zip(self.series, self.split_points, strict=True)):
            inputs, future = self._features(s)
            extras = self._series_extras(s)
            for split, split_origins in origins[index].items():
                if len(split_origins):
                    evaluate = split != "train"
                    windows = self._windows(index, s, inputs, future, split_origins, train_end, evaluate)
                    windows.update({key: value.expand(len(split_origins), -1) for key, value in extras.items()})
                    parts[split].append(windows)
        return {split: self._stack(split_parts) for split, split_parts in parts.items()}

    def _lazy_sets(self, origins: list[dict[str, range]]) -> dict[str, ForecastWindows]:
        """:class:`LazyForecastWindows` of each split over one shared :class:`SeriesArrays`."""
        steps, futures, values, extras, mase, offsets = [], [], [], [], [], [0]
        index: dict[str, tuple[list[Tensor], list[Tensor]]] = {split: ([], []) for split in ("train", "val", "test")}
        for i, (s, (train_end, _)) in enumerate(zip(self.series, self.split_points, strict=True)):
            inputs, future = self._features(s)
            steps.append(inputs)
            futures.append(future)
            values.append(torch.from_numpy(s.values).float())
            extras.append(self._series_extras(s))
            mase.append(self._mase_scale(s, train_end, self.seasonal_period)[None])
            offsets.append(offsets[-1] + len(inputs))
            for split, split_origins in origins[i].items():
                if len(split_origins):
                    origin = torch.arange(split_origins.start, split_origins.stop, split_origins.step)
                    index[split][0].append(torch.full((len(origin),), i, dtype=torch.int64))
                    index[split][1].append(origin)
        per_series = {key: torch.cat([e[key] for e in extras]) for key in extras[0]}
        arrays = SeriesArrays(
            steps=torch.cat(steps),
            future=torch.cat(futures) if futures[0].shape[1] else None,
            values=torch.cat(values),
            offsets=torch.tensor(offsets[:-1], dtype=torch.int64),
            per_series={"mase_scale": torch.cat(mase), **per_series},
        )
        del steps, futures, values  # the per-series copies: only the concatenated arrays stay
        sets: dict[str, ForecastWindows] = {}
        for split, (series, origin) in index.items():
            if not series:
                sets[split] = _EmptyWindows()
                continue
            sets[split] = LazyForecastWindows(
                arrays,
                torch.cat(series),
                torch.cat(origin),
                self.lookback,
                self.horizon,
                self.num_targets,
                self.seasonal_period,
                evaluate=split != "train",
            )
        return sets

    @staticmethod
    def _mase_scale(s: Series, train_end: int, period: int) -> Tensor:
        """(C,) in-sample MAE of the seasonal-naive forecast over the series' training part (MASE's scale)."""
        history = torch.from_numpy(s.values[:train_end])  # float64: differences of large values stay finite
        return (history[period:] - history[:-period]).abs().mean(dim=0).clamp(1e-8, MAX_VALUE).float()

    def _fit_statics(self) -> None:
        """Categories and the reals' mean/std over the (training) series, unless a checkpoint gave them."""
        if self.static_categoricals and self.static_vocab is None:
            self.static_vocab = {
                column: sorted({_static_value(s, column) for s in self.series}) for column in self.static_categoricals
            }
        if self.static_reals and self.static_real_stats is None:
            values = np.array([[_static_number(s, c) for c in self.static_reals] for s in self.series])
            std = values.std(axis=0)
            self.static_real_stats = (values.mean(axis=0).tolist(), np.where(std > 1e-12, std, 1.0).tolist())
        if (self.static_categoricals or self.static_reals) and self.series_statics is None:
            self.series_statics = {}
            for s in self.series:
                codes, reals = self._static_codes(s)
                self.series_statics[s.name] = (
                    codes.tolist() if codes is not None else [],
                    reals.tolist() if reals is not None else [],
                )

    def _series_extras(self, s: Series) -> dict[str, Tensor]:
        """(1, K) static categoricals, (1, R) static reals, (1, C) target loc/scale of a series, where present."""
        extras: dict[str, Tensor] = {}
        codes, reals = self._static_codes(s)
        if codes is not None:
            extras["static_categoricals"] = codes[None]
        if reals is not None:
            extras["static_reals"] = reals[None]
        if self.scaling == "per_series":
            loc, scale = self._location_scale(s.name)
            C = self.num_targets
            extras["target_loc"], extras["target_scale"] = loc[None, :C].float(), scale[None, :C].float()
        return extras

    def _windows(
        self, index: int, s: Series, inputs: Tensor, future: Tensor, origins: range, train_end: int, evaluate: bool
    ) -> dict[str, Tensor | None]:
        L, H, m = self.lookback, self.horizon, self.seasonal_period
        origin = torch.arange(origins.start, origins.stop, origins.step)
        starts = origin - L
        # unfold: (T - L - H + 1, C_in, L + H) views of every window; keep those at our origins.
        spans = inputs.unfold(0, L + H, 1)[starts].transpose(1, 2)  # (W, L + H, C_in)
        C = self.num_targets
        out: dict[str, Tensor | None] = {
            "inputs": spans[:, :L].contiguous(),
            "targets": spans[:, L:, :C].contiguous(),
            "future": (
                future.unfold(0, L + H, 1)[starts].transpose(1, 2)[:, L:].contiguous() if future.shape[1] else None
            ),
            "series": torch.full((len(origin),), index, dtype=torch.int64),
            "origin": origin,
        }
        if evaluate:
            values = torch.from_numpy(s.values).float()  # (T, C), the original scale
            steps = torch.arange(H)
            target_idx = origin[:, None] + steps  # (W, H)
            # Seasonal naive: the same season's most recent observed value, m * ceil(h / m) steps back.
            seasonal_idx = target_idx - m * (steps // m + 1)
            diffs = self._mase_scale(s, train_end, m)  # (C,)
            out.update(
                actual=values[target_idx],
                naive=values[origin - 1][:, None, :].expand(-1, H, -1).contiguous(),
                seasonal_naive=values[seasonal_idx.clamp_min(0)],
                mase_scale=diffs.expand(len(origin), -1).contiguous(),
            )
        return out

    @staticmethod
    def _stack(parts: list[dict[str, Tensor | None]]) -> ForecastWindows:
        if not parts:
            return _EmptyWindows()
        keys = parts[0].keys()
        return ForecastWindows(
            **{
                k: (torch.cat([p[k] for p in parts]) if parts[0][k] is not None else None)  # type: ignore[misc]
                for k in keys
            }
        )

    # ------------------------------------------------------------------ model-facing
    def _dims(self) -> dict[str, int]:
        assert self.series, "build() first"
        num_future = len(self.future_covariates) + calendar_width(self._calendar_names(self.series[0]))
        num_derived = self.num_targets * (len(self.lag_features) + len(self.rolling_features))
        input_size = self.num_targets + len(self.past_covariates) + num_derived + num_future
        dims = {
            "input_size": input_size,
            "num_targets": self.num_targets,
            "future_size": num_future,
            "lookback": self.lookback,
            "horizon": self.horizon,
        }
        if self.static_categoricals or self.static_reals:
            dims.update(self._static_dims())
        return dims

    def _static_dims(self) -> dict[str, Any]:
        vocab = self.static_vocab or {}
        return {
            "static_cardinalities": [len(vocab[c]) for c in self.static_categoricals],
            "num_static_reals": len(self.static_reals),
        }

    def dim(self, name: str) -> Any:
        """As :meth:`SequenceDataModule.dim`; ``static_cardinalities`` ([]) and ``num_static_reals`` (0) are
        answered (for the model config) even when the data has no static covariates, and :meth:`dims` omits them."""
        if name in ("static_cardinalities", "num_static_reals"):
            if self.dims_need_data and not self.is_built:
                self.setup()
            return self._static_dims()[name]
        return super().dim(name)

    def target_scaler(self) -> TargetScaler:
        """The targets' transform and standardisation, to bring forecasts back to the original scale."""
        if self.mean is None or self.std is None:
            self.setup()
        assert self.mean is not None and self.std is not None
        C = self.num_targets
        return TargetScaler(self.mean[:C], self.std[:C], self.transform, per_series=self.scaling == "per_series")

    def state_dict(self) -> dict[str, Any]:
        """Scaler statistics (per series: ``{name: {"loc": [...], "scale": [...]}}``), static categories and
        statistics, and calendar features (plain lists: loads under ``torch.load(weights_only=True)``)."""
        stats = self.series_stats
        return {
            "mean": self.mean.tolist() if self.mean is not None else None,
            "std": self.std.tolist() if self.std is not None else None,
            "calendar_names": self.calendar_names,
            "transform": self.transform,
            "scaling": self.scaling,
            "series_stats": (
                {name: {"loc": loc.tolist(), "scale": scale.tolist()} for name, (loc, scale) in stats.items()}
                if stats is not None
                else None
            ),
            "static_vocab": self.static_vocab,
            "series_statics": (
                {name: {"categoricals": c, "reals": r} for name, (c, r) in self.series_statics.items()}
                if self.series_statics is not None
                else None
            ),
            "static_real_stats": list(self.static_real_stats) if self.static_real_stats is not None else None,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Use a checkpoint's scaler (before ``setup``: the data is then scaled as in training)."""
        if state_dict.get("mean") is not None:
            self.mean = torch.tensor(state_dict["mean"], dtype=torch.float32)
            self.std = torch.tensor(state_dict["std"], dtype=torch.float32)
        if state_dict.get("calendar_names") is not None:
            self.calendar_names = list(state_dict["calendar_names"])
        self.transform = state_dict.get("transform", self.transform)
        self.scaling = state_dict.get("scaling", self.scaling)
        if state_dict.get("series_stats") is not None:
            self.series_stats = {
                str(name): (np.asarray(v["loc"], dtype=np.float64), np.asarray(v["scale"], dtype=np.float64))
                for name, v in state_dict["series_stats"].items()
            }
        if state_dict.get("static_vocab") is not None:
            self.static_vocab = {str(k): [str(c) for c in v] for k, v in state_dict["static_vocab"].items()}
        if state_dict.get("series_statics") is not None:
            self.series_statics = {
                str(name): ([int(c) for c in v["categoricals"]], [float(r) for r in v["reals"]])
                for name, v in state_dict["series_statics"].items()
            }
        if state_dict.get("static_real_stats") is not None:
            mean, std = state_dict["static_real_stats"]
            self.static_real_stats = ([float(m) for m in mean], [float(d) for d in std])
        if self.is_built:
            self._built = False
            self.setup()

    def __str__(self) -> str:  # Lightning's __str__ expects map-style datasets of items
        return repr(self)

    # ------------------------------------------------------------------ loaders
    def _loader(self, dataset: Any, train: bool) -> WindowLoader:  # type: ignore[override]
        num_replicas, rank = self._distributed_info()
        batch_size = self.batch_size if train else self.eval_batch_size
        weights = series_balancing_weights(dataset) if train and self.window_sampling == "series" else None
        return WindowLoader(
            dataset,
            batch_size,
            shuffle=train,
            seed=self.seed,
            num_replicas=num_replicas or 1,
            rank=rank or 0,
            weights=weights,
        )

    def backtest_windows(self, split: str, path: str | Path | None = None, data: Any = None) -> ForecastWindows:
        """Every window of the ``"val"`` or ``"test"`` part of the series, or of those in ``path`` or ``data`` (same
        columns as in training), split as in training. A checkpoint's scaler, when loaded, is kept."""
        if split not in ("val", "test"):
            raise ValueError(f"backtest must be val or test, got {split!r}; pass backtest=test (or backtest=val)")
        given = path is not None or data is not None
        self.build(self.read_series(path, data=data) if given else None)
        self._built = True
        windows: ForecastWindows = getattr(self, f"{split}_set")
        if not len(windows):
            raise ValueError(
                f"the {split} part holds no windows; set data.{split}_size to at least horizon={self.horizon}"
            )
        return windows

    # ------------------------------------------------------------------ forecasting ahead
    def last_windows(
        self, path: str | Path | None = None, data: Any = None
    ) -> tuple[list[Series], ForecastBatch, np.ndarray]:
        """The windows that forecast past the end of each series: its last ``lookback`` observed steps.

        With ``path`` (or ``data`` in memory, as the constructor takes it), the series come from that file (same
        columns as in training; with known-future covariates its last ``horizon`` rows give them for the steps to
        forecast, their targets left empty); otherwise from the configured source. The scaler is the training one.

        Returns the series, a batch (N series) without targets, and the (N, H) times of the forecast steps.
        """
        if self.mean is None:
            self.setup()
        ahead = self.horizon if self.future_covariates else 0
        given = path is not None or data is not None
        if ahead and not given:
            raise ValueError(
                f"the model uses known-future covariates ({', '.join(self.future_covariates)}): pass a history "
                f"(file or data) whose last {self.horizon} rows give them for the steps to forecast (targets empty)"
            )
        series = self.read_series(path, future_rows=ahead, data=data) if given else self.read_series()
        inputs, futures, times, extras = [], [], [], []
        need = self.lookback + self.feature_history
        for s in series:
            observed = len(s) - ahead
            if observed < need:
                looks = f"looks back {self.lookback}" + (
                    f" (+ {self.feature_history} for its lag/rolling features)" if self.feature_history else ""
                )
                raise ValueError(
                    f"series {s.name!r} has {observed} observed steps but the model {looks}; give a longer history"
                )
            if ahead:
                if len(s) < self.lookback + ahead:
                    raise ValueError(f"series {s.name!r} needs {ahead} trailing rows of future covariates")
                when = s.time[observed:]
            else:
                when = future_times(s.time, self.horizon)
            # One time axis over history and horizon: calendar features of the forecast steps come with it.
            full_time = np.concatenate([s.time[:observed], when])
            pad = self.horizon - ahead
            padded = Series(
                s.name,
                full_time,
                np.concatenate([s.values, np.ones((pad, s.values.shape[1]))]),
                np.concatenate([s.past, np.zeros((pad, s.past.shape[1]))]),
                np.concatenate([s.future, np.zeros((pad, s.future.shape[1]))]),
                static=s.static,
            )
            padded.values[observed:] = 1.0  # placeholders (log-safe): never part of a window's inputs
            padded.past[observed:] = 0.0
            x, f = self._features(padded)
            inputs.append(x[observed - self.lookback : observed])
            futures.append(f[observed:])
            times.append(when)
            extras.append(self._series_extras(s))
        future = torch.stack(futures) if futures[0].shape[1] else None
        batch = ForecastBatch(
            inputs=torch.stack(inputs),
            lengths=torch.full((len(series),), self.lookback, dtype=torch.int64),
            future=future,
            series=torch.arange(len(series)),
            **{key: torch.cat([e[key] for e in extras]) for key in extras[0]},
        )
        return series, batch, np.stack(times)

    def series_context(self, names: list[str]) -> dict[str, Tensor]:
        """What streaming the training series ``names`` needs beside their observations, as
        ``ForecastingTask.forecast_stream`` takes it: ``static_categoricals`` (N, K), ``static_reals`` (N, R) and,
        with ``scaling=per_series``, ``target_loc``/``target_scale`` (N, C); empty when the model needs none. A name
        not in training is refused (its statistics and statics are unknown), and so is a model with lag or rolling
        features (a stream sees only the new observations, not the history those features need)."""
        if self.lag_features or self.rolling_features:
            raise ValueError(
                "lag and rolling features need the history before each step, which a stream does not keep; forecast "
                "with seqmodels.forecast(result, history) (or retrain without data.lag_features/rolling_features)"
            )
        context: dict[str, Tensor] = {}
        if self.static_categoricals or self.static_reals:
            known = self.series_statics or {}
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ValueError(
                    f"series {unknown[0]!r} was not in training, so its static covariates are unknown; stream the "
                    f"training series by name ({', '.join(repr(n) for n in list(known)[:5])})"
                )
            if self.static_categoricals:
                context["static_categoricals"] = torch.tensor([known[n][0] for n in names], dtype=torch.int64)
            if self.static_reals:
                context["static_reals"] = torch.tensor([known[n][1] for n in names], dtype=torch.float32)
        if self.scaling == "per_series":
            C = self.num_targets
            stats = [self._location_scale(n) for n in names]
            context["target_loc"] = torch.stack([loc[:C] for loc, _ in stats]).float()
            context["target_scale"] = torch.stack([scale[:C] for _, scale in stats]).float()
        return context

    # ------------------------------------------------------------------ forecasts on the data's scale
    def forecast(self, task: Any, history: Any = None) -> Forecast:
        """The ``horizon`` steps after the end of each series of ``history``, forecast by ``task`` on the data's own
        scale: the history is scaled with this datamodule's training scaler before the network sees it (as
        :meth:`ForecastingTask.forecast <seqmodels.tasks.ForecastingTask.forecast>` expects), and the forecast is
        brought back by the task.

        ``history``: the series as the constructor's ``data`` takes them (a DataFrame with the training columns, a
        pandas Series, arrays, ...), a CSV/TSV path, or None (the training series, so the forecast runs past their
        end). With known-future covariates, its last ``horizon`` rows give them for the steps to forecast, their
        targets left empty (NaN). Each series needs at least ``lookback`` observed steps.
        """
        path, data = _history(history)
        series, batch, times = self.last_windows(path, data)
        arrays = _forecast_arrays(self, task, {"inputs": batch.inputs, "future": batch.future, **batch.model_inputs()})
        return Forecast(series=[s.name for s in series], time=times, target_names=self.target_names, **arrays)

    def backtest(self, task: Any, split: str = "test", history: Any = None) -> Forecast:
        """Historical forecasts: one from every origin of the ``"val"`` or ``"test"`` part of each series (split as
        in training), on the data's own scale, beside the ``actual`` values and both baselines (``naive``,
        ``seasonal_naive``). ``history`` as in :meth:`forecast` (None: the training series). Rebuilds the splits
        from that history."""
        path, data = _history(history)
        windows = self.backtest_windows(split, path, data)
        arrays = _forecast_arrays(self, task, windows)
        fields = windows.tensors  # read field by field: lazy windows gather only these, not the inputs
        t = {key: fields[key].numpy() for key in ("series", "origin", "actual", "naive", "seasonal_naive")}
        horizon = np.arange(self.horizon)
        times = np.stack([self.series[i].time[o + horizon] for i, o in zip(t["series"], t["origin"], strict=True)])
        return Forecast(
            series=[self.series[i].name for i in t["series"]],
            time=times,
            target_names=self.target_names,
            actual=t["actual"],
            naive=t["naive"],
            seasonal_naive=t["seasonal_naive"],
            **arrays,
        )


def _history(history: Any) -> tuple[str | Path | None, Any]:
    """``(path, data)``: a str/Path names a file; anything else is data in memory."""
    return (history, None) if isinstance(history, (str, Path)) else (None, history)


def _forecast_arrays(
    datamodule: ForecastingDataModule, task: Any, windows: ForecastWindows | dict[str, Tensor | None]
) -> dict[str, Any]:
    """``task.forecast`` over scaled windows (a split's :class:`ForecastWindows`, or a dict of ``inputs``,
    ``future`` and the :data:`WINDOW_EXTRAS` present), in batches on the task's device: numpy arrays on the
    original scale."""
    if not callable(getattr(task, "forecast", None)) or not hasattr(task, "scaler"):
        raise TypeError(f"forecasting needs a ForecastingTask (the trained task), got {type(task).__name__}")
    ours, theirs = datamodule.target_scaler(), task.scaler
    same = (
        ours.transform == theirs.transform
        and ours.per_series == theirs.per_series
        and ours.mean.shape == theirs.mean.shape
        and torch.allclose(ours.mean, theirs.mean.detach().cpu())
        and torch.allclose(ours.std, theirs.std.detach().cpu())
    )
    if not same:
        raise ValueError(
            "the task's target scaler is not this datamodule's: forecast with the datamodule the task was trained "
            "with (or one given its checkpoint's state)"
        )
    device = next(task.parameters()).device
    was_training = task.training
    task.eval()
    parts: dict[str, list[Tensor]] = {}
    try:
        step = datamodule.eval_batch_size
        names = ("inputs", "future", *WINDOW_EXTRAS)
        source = windows if isinstance(windows, ForecastWindows) else ForecastWindows(**windows)
        for start in range(0, len(source), step):
            batch = source.take(slice(start, start + step))  # lazy windows gather one chunk at a time
            chunk = {k: v.to(device) if (v := getattr(batch, k)) is not None else None for k in names}
            inputs, future = chunk.pop("inputs"), chunk.pop("future")
            extras = {k: v for k, v in chunk.items() if v is not None}
            for key, value in task.forecast(inputs, future, **extras).items():
                parts.setdefault(key, []).append(value.detach().cpu())
    finally:
        task.train(was_training)
    arrays: dict[str, Any] = {key: torch.cat(values).numpy() for key, values in parts.items()}
    output = getattr(getattr(task, "net", None), "output", None)
    if "quantiles" in arrays and hasattr(output, "levels"):
        arrays["quantile_levels"] = [float(level) for level in output.levels.tolist()]  # type: ignore[union-attr]
    return arrays


def _time_text(value: np.generic) -> str:
    if np.issubdtype(value.dtype, np.datetime64):
        text = str(value.astype("datetime64[s]"))
        return text.removesuffix("T00:00:00")
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:g}"


def _as_arrays(tensors: dict[str, Tensor | None]) -> dict[str, np.ndarray]:
    # Rows are written value by value: indexing numpy arrays costs a fraction of indexing tensors.
    return {key: value.detach().cpu().numpy() for key, value in tensors.items() if value is not None}


def _interval_columns(
    row: dict[str, str], forecast: dict[str, np.ndarray], i: int, h: int, c: int, quantile_levels: list[float] | None
) -> dict[str, str]:
    """Adds ``lower, upper`` and one ``q<level>`` column per quantile, when the forecast has them."""
    if "lower" in forecast:
        row["lower"] = f"{forecast['lower'][i, h, c]:.6g}"
        row["upper"] = f"{forecast['upper'][i, h, c]:.6g}"
    if "quantiles" in forecast and quantile_levels:
        for q, level in enumerate(quantile_levels):
            row[f"q{level:g}"] = f"{forecast['quantiles'][i, h, c, q]:.6g}"
    return row


def forecast_rows(
    series: list[Series],
    times: np.ndarray,
    forecast: dict[str, Tensor],
    target_names: list[str],
    quantile_levels: list[float] | None = None,
) -> list[dict[str, str]]:
    """One row per series, forecast step and target: ``series, time, step, target, forecast`` and, when the
    forecast has them, ``lower, upper`` and one ``q<level>`` column per quantile (all on the original scale).

    ``forecast`` holds (N, H, C) tensors ``point``/``lower``/``upper`` and (N, H, C, Q) ``quantiles``.
    """
    values = _as_arrays(forecast)  # type: ignore[arg-type]
    point = values["point"]
    rows = []
    for i, s in enumerate(series):
        for h in range(point.shape[1]):
            for c, target in enumerate(target_names):
                row = {
                    "series": s.name,
                    "time": _time_text(times[i, h]),
                    "step": str(h + 1),
                    "target": target,
                    "forecast": f"{point[i, h, c]:.6g}",
                }
                rows.append(_interval_columns(row, values, i, h, c, quantile_levels))
    return rows


def backtest_rows(
    series: list[Series],
    windows: ForecastWindows,
    forecast: dict[str, Tensor],
    target_names: list[str],
    quantile_levels: list[float] | None = None,
) -> list[dict[str, str]]:
    """Historical forecasts: one row per window, step and target, ``series, origin, time, step, target, actual,
    forecast``, the interval and quantile columns when the forecast has them, then the ``naive`` and
    ``seasonal_naive`` forecasts of the same step. ``origin`` is the time of the window's last observed step.
    """
    fields = windows.tensors  # read field by field: lazy windows gather only these, not the inputs
    t = _as_arrays({key: fields[key] for key in ("series", "origin", "actual", "naive", "seasonal_naive")})
    values = _as_arrays(forecast)  # type: ignore[arg-type]
    point = values["point"]
    rows = []
    for i in range(point.shape[0]):
        s = series[int(t["series"][i])]
        origin = int(t["origin"][i])  # index of the first forecast step
        for h in range(point.shape[1]):
            for c, target in enumerate(target_names):
                row = {
                    "series": s.name,
                    "origin": _time_text(s.time[origin - 1]),
                    "time": _time_text(s.time[origin + h]),
                    "step": str(h + 1),
                    "target": target,
                    "actual": f"{t['actual'][i, h, c]:.6g}",
                    "forecast": f"{point[i, h, c]:.6g}",
                }
                _interval_columns(row, values, i, h, c, quantile_levels)
                row["naive"] = f"{t['naive'][i, h, c]:.6g}"
                row["seasonal_naive"] = f"{t['seasonal_naive'][i, h, c]:.6g}"
                rows.append(row)
    return rows


class _EmptyWindows(ForecastWindows):
    """A split without windows (e.g. ``test_size=0``): Lightning skips an empty list of loaders."""

    def __init__(self) -> None:
        self.tensors = {}
        self.lookback = 0

    def __len__(self) -> int:
        return 0


__all__ = [
    "Forecast",
    "ForecastBatch",
    "ForecastWindows",
    "ForecastingDataModule",
    "LazyForecastWindows",
    "SeriesArrays",
    "TargetScaler",
    "WindowLoader",
    "backtest_rows",
    "demo_demand_path",
    "forecast_rows",
]
