"""Forecasting data: fixed-length (lookback, horizon) windows over one or many series, split by time.

Each series is cut by time into a training, a validation and a test part (the last ``val_size + test_size``
steps are held out). A training window lies wholly inside the training part. A validation or test window's
*targets* lie wholly inside its part; its lookback is the history just before its first target (observed
earlier, so no leakage), which is how a forecaster is used: every origin of the held-out part is scored
("rolling origin" evaluation).

Targets (optionally log-transformed), past-observed and known-future covariates are standardised with
statistics of the training parts only; calendar features (sin/cos of month, day of year, ...) are already in
[-1, 1]. The statistics travel in :meth:`ForecastingDataModule.state_dict` (so in every checkpoint), and
metrics and written forecasts are on the original scale.

Windows are tensors built once by ``unfold`` (no per-item work while training), and :class:`WindowLoader`
serves batches by slicing them: no sampler, no collation.
"""

from __future__ import annotations

import importlib.resources
import math
from collections.abc import Iterator
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
    check_finite,
    default_calendar,
    future_times,
    load_builtin,
    memory_series,
    read_csv_series,
    sine_series,
)

SOURCES = ("csv", "memory", "sine", *BUILTIN)


def demo_demand_path() -> Path:
    """A bundled toy panel: daily ``sales`` of two stores (``store``) Jan 2022 - Jun 2023, with ``temperature``
    (past-observed) and ``promo`` (0/1, known ahead). Generated once with numpy (seed 0): a slow trend, busier
    weekends, +30% on promo days, a temperature effect and noise. For demos and smoke tests."""
    return Path(str(importlib.resources.files("seqmodels.data").joinpath("resources", "demand_demo.csv")))


TRANSFORMS = ("none", "log")


@dataclass
class ForecastBatch(SequenceBatch):
    """A :class:`SequenceBatch` of forecasting windows (all of length L, so ``lengths`` is L everywhere).

    Shapes (N windows, L lookback, H horizon, C targets, C_in input channels, F known-future channels):
        inputs:      (N, L, C_in) scaled; channels are [targets, past covariates, future covariates, calendar]
        targets:     (N, H, C) scaled (log-transformed first when ``transform=log``)
        future:      (N, H, F) scaled known-future covariates and calendar features at the target steps, or None
        actual:      (N, H, C) targets on the original scale (evaluation splits only)
        naive:       (N, H, C) last observed value, repeated (evaluation splits only)
        seasonal_naive: (N, H, C) value one season (``seasonal_period`` steps) before each target
        mase_scale:  (N, C) in-sample MAE of the seasonal-naive forecast on the window's series' training part
        series:      (N,) index of the window's series
        origin:      (N,) index (within its series) of the window's first target step
    """

    future: Tensor | None = None
    actual: Tensor | None = None
    naive: Tensor | None = None
    seasonal_naive: Tensor | None = None
    mase_scale: Tensor | None = None
    series: Tensor | None = None
    origin: Tensor | None = None


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


class WindowLoader:
    """Batches of a :class:`ForecastWindows` by tensor slicing; reshuffled every epoch when ``shuffle``.

    The order of epoch ``e`` comes from ``seed + e`` (reproducible, independent of the global RNG). Under DDP
    each rank takes every ``num_replicas``-th window of the epoch's order.
    """

    def __init__(
        self,
        windows: ForecastWindows,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.windows = windows
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas, self.rank = max(1, num_replicas or 1), rank or 0
        self.epoch = 0

    def _count(self) -> int:
        return math.ceil((len(self.windows) - self.rank) / self.num_replicas)

    def __len__(self) -> int:
        return math.ceil(self._count() / self.batch_size)

    def __iter__(self) -> Iterator[ForecastBatch]:
        n = len(self.windows)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
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
    """Targets' forward and inverse transform: optional log, then ``(x - mean) / std`` per target channel.

    ``mean``/``std`` are (C,) tensors. ``inverse`` takes any (..., C) tensor of scaled values.
    """

    def __init__(self, mean: Tensor, std: Tensor, transform: str = "none") -> None:
        if transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}, got {transform!r}")
        self.mean, self.std, self.transform = mean.float(), std.float(), transform

    def __call__(self, values: Tensor) -> Tensor:
        values = torch.log(values) if self.transform == "log" else values
        return (values - self.mean.to(values)) / self.std.to(values)

    def inverse(self, scaled: Tensor) -> Tensor:
        values = scaled * self.std.to(scaled) + self.mean.to(scaled)
        return torch.exp(values) if self.transform == "log" else values


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
            set by itself when ``data`` is given).
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
            yearly time), a list from ``month, dayofyear, dayofweek, hour``, or ``null``: known-future features.
        lookback: L, observed steps per window.
        horizon: H, steps forecast at once.
        val_size, test_size: the held-out end of each series: a fraction (< 1) of its length or a count of steps.
        stride: steps between consecutive training windows.
        transform: ``"log"`` models the log of the targets (multiplicative seasonality, positive data).
        eval_batch_size: windows per validation/test batch (None: ``batch_size``); evaluation keeps no
            gradients, so large batches are cheap and spare per-batch overhead.
        seasonal_period: m for the seasonal-naive baseline and MASE (12 monthly, 52 weekly, ...).
        **base: :class:`SequenceDataModule` arguments (``batch_size``, ``seed``, ...).

    dims: ``input_size`` (C_in), ``num_targets`` (C), ``future_size`` (F), ``lookback``, ``horizon``.
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
        # Fitted in build() on the training parts, or restored by load_state_dict().
        self.mean: Tensor | None = None  # (C + P + F,) for [targets, past, future] channels
        self.std: Tensor | None = None
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
            elif self.source != "csv":
                return [load_builtin(self.source, missing=self.missing)]
        time_column = {"sunspots": "YEAR", "co2": "date", "airline": "Date"}.get(self.source, self.time_column)
        targets = self.target_names if self.source != "csv" else self.target_columns
        columns = (time_column, targets, self.past_covariates, self.future_covariates, self.series_column)
        if data is not None:
            return memory_series(data, *columns, self.missing, allow_future_rows=future_rows)
        return read_csv_series(path or self.path, *columns, self.missing, allow_future_rows=future_rows)  # type: ignore[arg-type]

    def _calendar_names(self, series: Series) -> list[str]:
        if self.calendar_names is None:
            if self.calendar == "auto":
                self.calendar_names = default_calendar(series.time)
            else:
                calendar = self.calendar
                self.calendar_names = [calendar] if isinstance(calendar, str) else list(calendar or [])
        return self.calendar_names

    def _raw_channels(self, series: Series) -> np.ndarray:
        """(T, C + P + F): targets (log-transformed if asked), past, future covariates, unscaled."""
        values = series.values
        if self.transform == "log":
            observed = values[~np.isnan(values)]
            if observed.size and observed.min() <= 0:
                raise ValueError(
                    f"transform=log needs positive targets, but series {series.name!r} has {observed.min():g}; "
                    "set data.transform=none"
                )
            values = np.log(values)
        return np.concatenate([values, series.past, series.future], axis=1)

    def _features(self, series: Series, time: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
        """Scaled inputs (T, C_in) and known-future features (T, F + K) of a series."""
        assert self.mean is not None and self.std is not None
        # Scaled in float64, then stored as float32: large values (up to float32's limit) stay finite and exact.
        raw = torch.from_numpy(self._raw_channels(series))
        scaled = ((raw - self.mean.double()) / self.std.double()).float()
        names = self._calendar_names(series)
        cal = torch.from_numpy(calendar_features(series.time if time is None else time, names)).float()
        num_future = len(self.future_covariates)
        future = torch.cat([scaled[:, scaled.shape[1] - num_future :], cal], dim=1)
        return torch.cat([scaled, cal], dim=1), future

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
            if train_end < self.lookback + self.horizon:
                raise ValueError(
                    f"series {s.name!r} has {len(s)} steps; after val/test ({n_val} + {n_test}) its training part "
                    f"({train_end}) is shorter than lookback + horizon = {self.lookback + self.horizon}; "
                    "shorten data.lookback/horizon or data.val_size/test_size"
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
            train_rows = np.concatenate(
                [self._raw_channels(s)[:end] for s, (end, _) in zip(self.series, self.split_points, strict=True)]
            )
            mean, std = train_rows.mean(axis=0), train_rows.std(axis=0)
            self.mean = torch.tensor(mean, dtype=torch.float32)
            self.std = torch.tensor(np.where(std > 1e-12, std, 1.0), dtype=torch.float32)
        parts: dict[str, list[dict[str, Tensor | None]]] = {"train": [], "val": [], "test": []}
        for index, (s, (train_end, val_end)) in enumerate(zip(self.series, self.split_points, strict=True)):
            inputs, future = self._features(s)
            ranges = {
                "train": range(self.lookback, train_end - self.horizon + 1, self.stride),
                "val": range(train_end, val_end - self.horizon + 1),
                "test": range(val_end, len(s) - self.horizon + 1),
            }
            for split, origins in ranges.items():
                if len(origins):
                    evaluate = split != "train"
                    parts[split].append(self._windows(index, s, inputs, future, origins, train_end, evaluate))
        self.train_set, self.val_set, self.test_set = (self._stack(parts[k]) for k in ("train", "val", "test"))

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
            history = torch.from_numpy(s.values[:train_end])  # float64: differences of large values stay finite
            diffs = (history[m:] - history[:-m]).abs().mean(dim=0).clamp(1e-8, MAX_VALUE).float()  # (C,)
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
        num_future = len(self.future_covariates) + 2 * len(self._calendar_names(self.series[0]))
        input_size = self.num_targets + len(self.past_covariates) + num_future
        return {
            "input_size": input_size,
            "num_targets": self.num_targets,
            "future_size": num_future,
            "lookback": self.lookback,
            "horizon": self.horizon,
        }

    def target_scaler(self) -> TargetScaler:
        """The targets' transform and standardisation, to bring forecasts back to the original scale."""
        if self.mean is None or self.std is None:
            self.setup()
        assert self.mean is not None and self.std is not None
        C = self.num_targets
        return TargetScaler(self.mean[:C], self.std[:C], self.transform)

    def state_dict(self) -> dict[str, Any]:
        """Scaler statistics and calendar features (plain lists: loads under ``torch.load(weights_only=True)``)."""
        return {
            "mean": self.mean.tolist() if self.mean is not None else None,
            "std": self.std.tolist() if self.std is not None else None,
            "calendar_names": self.calendar_names,
            "transform": self.transform,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Use a checkpoint's scaler (before ``setup``: the data is then scaled as in training)."""
        if state_dict.get("mean") is not None:
            self.mean = torch.tensor(state_dict["mean"], dtype=torch.float32)
            self.std = torch.tensor(state_dict["std"], dtype=torch.float32)
        if state_dict.get("calendar_names") is not None:
            self.calendar_names = list(state_dict["calendar_names"])
        self.transform = state_dict.get("transform", self.transform)
        if self.is_built:
            self._built = False
            self.setup()

    def __str__(self) -> str:  # Lightning's __str__ expects map-style datasets of items
        return repr(self)

    # ------------------------------------------------------------------ loaders
    def _loader(self, dataset: Any, train: bool) -> WindowLoader:  # type: ignore[override]
        num_replicas, rank = self._distributed_info()
        batch_size = self.batch_size if train else self.eval_batch_size
        return WindowLoader(
            dataset, batch_size, shuffle=train, seed=self.seed, num_replicas=num_replicas or 1, rank=rank or 0
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
        inputs, futures, times = [], [], []
        for s in series:
            observed = len(s) - ahead
            if observed < self.lookback:
                raise ValueError(
                    f"series {s.name!r} has {observed} observed steps but the model looks back {self.lookback}; "
                    "give a longer history"
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
            )
            padded.values[observed:] = 1.0  # placeholders (log-safe): never part of a window's inputs
            padded.past[observed:] = 0.0
            x, f = self._features(padded)
            inputs.append(x[observed - self.lookback : observed])
            futures.append(f[observed:])
            times.append(when)
        future = torch.stack(futures) if futures[0].shape[1] else None
        batch = ForecastBatch(
            inputs=torch.stack(inputs),
            lengths=torch.full((len(series),), self.lookback, dtype=torch.int64),
            future=future,
            series=torch.arange(len(series)),
        )
        return series, batch, np.stack(times)

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
        arrays = _forecast_arrays(self, task, batch.inputs, batch.future)
        return Forecast(series=[s.name for s in series], time=times, target_names=self.target_names, **arrays)

    def backtest(self, task: Any, split: str = "test", history: Any = None) -> Forecast:
        """Historical forecasts: one from every origin of the ``"val"`` or ``"test"`` part of each series (split as
        in training), on the data's own scale, beside the ``actual`` values and both baselines (``naive``,
        ``seasonal_naive``). ``history`` as in :meth:`forecast` (None: the training series). Rebuilds the splits
        from that history."""
        path, data = _history(history)
        windows = self.backtest_windows(split, path, data)
        arrays = _forecast_arrays(self, task, windows.tensors["inputs"], windows.tensors["future"])
        t = {key: value.numpy() for key, value in windows.tensors.items() if value is not None}
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
    datamodule: ForecastingDataModule, task: Any, inputs: Tensor, future: Tensor | None
) -> dict[str, Any]:
    """``task.forecast`` over scaled windows, in batches on the task's device: numpy arrays on the original scale."""
    if not callable(getattr(task, "forecast", None)) or not hasattr(task, "scaler"):
        raise TypeError(f"forecasting needs a ForecastingTask (the trained task), got {type(task).__name__}")
    ours, theirs = datamodule.target_scaler(), task.scaler
    same = (
        ours.transform == theirs.transform
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
        for start in range(0, len(inputs), step):
            window_future = future[start : start + step].to(device) if future is not None else None
            for key, value in task.forecast(inputs[start : start + step].to(device), window_future).items():
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
    t = _as_arrays(windows.tensors)
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
    "TargetScaler",
    "WindowLoader",
    "backtest_rows",
    "demo_demand_path",
    "forecast_rows",
]
