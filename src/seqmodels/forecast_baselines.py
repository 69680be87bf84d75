"""Statistical baselines scored on the same rolling-origin windows as a neural forecaster.

:func:`baseline_backtest` gives, for every window of the ``"val"`` or ``"test"`` part of a
:class:`~seqmodels.data.ForecastingDataModule`, the forecasts of

* ``naive``: the last observed value, repeated;
* ``seasonal_naive``: the value one season (``seasonal_period`` steps, ``m``) before each target, as the datamodule
  computes it;
* ``ets``: an exponential smoothing state-space model (statsmodels' ``ETSModel``), the one of :data:`ETS_SPECS`
  with the lowest AIC;
* ``arima``: statsmodels' ``ARIMA``, the orders of :data:`ARIMA_ORDERS` (and :data:`SEASONAL_ORDERS`) with the
  lowest AIC, differencing chosen by tests first (see :func:`fit_arima`);

all on the original scale, as (N windows, H, C) arrays in the order of the datamodule's windows, so that they line
up with :meth:`ForecastingDataModule.backtest <seqmodels.data.ForecastingDataModule.backtest>`'s ``Forecast``.
ETS and ARIMA are fitted once per series and target on the training part only (the datamodule's ``split_points``);
their state is then run forward over the later observations with the fitted parameters unchanged (no refit), and
each window's forecast starts from the state at its origin, so it sees exactly the history the neural model sees
(all observations before the origin) and none after it. Both also give prediction intervals at any level.

:func:`forecast_scores` computes MAE, RMSE, sMAPE, MASE and interval coverage as
:class:`~seqmodels.tasks.forecasting.ForecastMetrics` does (MASE scaled by the in-sample seasonal-naive MAE of the
training part), so every forecaster is compared like for like.

statsmodels warns freely while it searches (convergence, non-invertible starts): those warnings are caught and
counted (:attr:`BaselineForecasts.warnings`), never printed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BASELINES = ("naive", "seasonal_naive", "ets", "arima")

#: ETS candidates as (error, trend, damped, seasonal). Seasonal ones only when the period m > 1 and the training
#: part holds two full seasons; multiplicative ones only for positive data. No multiplicative trend: its
#: forecasts explode too easily to be a fair baseline.
ETS_SPECS: tuple[tuple[str, str | None, bool, str | None], ...] = (
    ("add", None, False, None),
    ("add", "add", False, None),
    ("add", "add", True, None),
    ("add", None, False, "add"),
    ("add", "add", False, "add"),
    ("add", "add", True, "add"),
    ("mul", None, False, "mul"),
    ("mul", "add", False, "mul"),
    ("mul", "add", True, "mul"),
)
#: Non-seasonal ARMA orders (p, q) searched for ARIMA(p, d, q); d comes from a test, not from AIC.
ARIMA_ORDERS: tuple[tuple[int, int], ...] = ((0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (0, 2), (2, 1), (1, 2), (2, 2))
#: Seasonal ARMA orders (P, Q) searched beside each (p, q), for periods up to :data:`MAX_SEASONAL_ARMA_PERIOD`.
SEASONAL_ORDERS: tuple[tuple[int, int], ...] = ((0, 0), (1, 0), (0, 1))
#: Seasonal AR/MA terms of period m add m states to the Kalman filter, whose cost grows with the cube of the
#: state size: above this period, ARIMA takes a seasonal difference when the data asks for one, but no seasonal
#: AR/MA terms (weekly data with m = 52 would otherwise take minutes per candidate).
MAX_SEASONAL_ARMA_PERIOD = 24
#: STL seasonal strength (Wang, Smith & Hyndman 2006) from which ARIMA takes a seasonal difference.
SEASONAL_STRENGTH_THRESHOLD = 0.64
#: Simulated paths per window for ETS intervals without a closed form (multiplicative error or season).
ETS_SIMULATIONS = 500


@dataclass
class BaselineForecasts:
    """Baseline forecasts of every window of a backtest split, on the original scale.

    Shapes (N windows, H horizon, C targets):
        point: ``{name: (N, H, C)}`` for each baseline computed (see :data:`BASELINES`)
        lower, upper: ``{name: {level: (N, H, C)}}`` prediction intervals (``ets`` and ``arima``)
        actual: (N, H, C) the truth; mase_scale: (N, C) in-sample seasonal-naive MAE of the training part
        series, origin: (N,) each window's series index and first target step (as the datamodule's windows)
        chosen: ``{name: ["series/target: model", ...]}`` the model each search picked
        warnings: statsmodels warnings caught while fitting and forecasting; failures: candidate fits that raised
    """

    point: dict[str, np.ndarray]
    actual: np.ndarray
    mase_scale: np.ndarray
    series: np.ndarray
    origin: np.ndarray
    lower: dict[str, dict[float, np.ndarray]] = field(default_factory=dict)
    upper: dict[str, dict[float, np.ndarray]] = field(default_factory=dict)
    chosen: dict[str, list[str]] = field(default_factory=dict)
    warnings: int = 0
    failures: int = 0

    def scores(self, name: str, level: float | None = None) -> dict[str, float]:
        """:func:`forecast_scores` of baseline ``name`` (coverage of its ``level`` interval, when it has one)."""
        lower = self.lower.get(name, {}).get(level) if level is not None else None
        upper = self.upper.get(name, {}).get(level) if level is not None else None
        return forecast_scores(self.point[name], self.actual, self.mase_scale, lower, upper)


# ------------------------------------------------------------------------------------------------ metrics
def forecast_scores(
    point: np.ndarray,
    actual: np.ndarray,
    mase_scale: np.ndarray,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> dict[str, float]:
    """``mae, rmse, smape`` (%), ``mase`` over every value of (N, H, C) forecasts, and ``coverage`` (the share of
    actual values inside [lower, upper]) when an interval is given: the definitions of
    :class:`~seqmodels.tasks.forecasting.ForecastMetrics` (sMAPE counts 0 where forecast and truth are both 0; MASE
    divides each error by its window's (N, C) ``mase_scale``)."""
    point, actual = np.asarray(point, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    error = np.abs(point - actual)
    denominator = np.abs(point) + np.abs(actual)
    smape = np.where(denominator > 0, 200.0 * error / np.maximum(denominator, 1e-12), 0.0)
    scores = {
        "mae": float(error.mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "smape": float(smape.mean()),
        "mase": float((error / np.asarray(mase_scale, dtype=np.float64)[:, None, :]).mean()),
    }
    if lower is not None and upper is not None:
        scores["coverage"] = interval_coverage(lower, upper, actual)
    return scores


def interval_coverage(lower: np.ndarray, upper: np.ndarray, actual: np.ndarray) -> float:
    """The share of ``actual`` values with ``lower <= actual <= upper`` (NaN bounds never cover)."""
    return float(((actual >= lower) & (actual <= upper)).mean())


# ------------------------------------------------------------------------------------------------ windows
def split_windows(datamodule: Any, split: str) -> Any:
    """The datamodule's ``ForecastWindows`` of ``split`` (``"val"``/``"test"``), built when they are not yet."""
    if split not in ("val", "test"):
        raise ValueError(f"baselines are scored on val or test windows, got split={split!r}")
    windows = getattr(datamodule, f"{split}_set", None) if getattr(datamodule, "is_built", False) else None
    if windows is None or not len(windows):
        windows = datamodule.backtest_windows(split)
    return windows


def naive_forecasts(values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """(W, H, C): the value just before each origin, repeated over the horizon."""
    return np.repeat(values[origins - 1][:, None, :], horizon, axis=1)


def seasonal_naive_forecasts(values: np.ndarray, origins: np.ndarray, horizon: int, period: int) -> np.ndarray:
    """(W, H, C): for target step h (0-based), the value ``m * (h // m + 1)`` steps before it: the same season's
    latest observation before the origin (the datamodule's definition)."""
    steps = np.arange(horizon)
    index = origins[:, None] + steps - period * (steps // period + 1)
    return values[np.maximum(index, 0)]


# ------------------------------------------------------------------------------------------------ fitting
class _Caught:
    """Counts the warnings raised inside ``with`` blocks, printing none."""

    def __init__(self) -> None:
        self.count = 0

    def __enter__(self) -> _Caught:
        self._context = warnings.catch_warnings(record=True)
        self._records = self._context.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.count += len(self._records)
        self._context.__exit__(*exc)


@dataclass
class FittedBaseline:
    """A statistical model fitted on a training part: ``description`` (e.g. ``ETS(A,Ad,A)``), its AIC, and what it
    takes to run it over a longer series with the same parameters (see :func:`rolling_forecasts`)."""

    kind: str  # "ets" or "arima"
    description: str
    aic: float
    spec: dict[str, Any]
    params: Any
    extra: dict[str, Any] = field(default_factory=dict)
    results: Any = None  # statsmodels' results of the fit on the training part


def _ets_code(error: str, trend: str | None, damped: bool, seasonal: str | None) -> str:
    letter = {"add": "A", "mul": "M", None: "N"}
    return f"ETS({letter[error]},{letter[trend]}{'d' if damped else ''},{letter[seasonal]})"


def fit_ets(
    train: np.ndarray,
    period: int,
    specs: Sequence[tuple[str, str | None, bool, str | None]] = ETS_SPECS,
    caught: _Caught | None = None,
) -> tuple[FittedBaseline | None, int]:
    """The :data:`ETS_SPECS` candidate with the lowest AIC on ``train`` (T,), and the number of candidates that
    failed to fit. Seasonal candidates need ``period > 1`` and two full seasons; multiplicative ones positive data.
    Initial states are estimated with the smoothing parameters (the classical heuristic, a decomposition of the
    first seasons, when that fails): slower for long seasons (about 3 s per candidate for m = 52) but a far better
    fit than the heuristic states."""
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    caught = caught or _Caught()
    positive = bool(np.all(train > 0))
    best, failures = None, 0
    for error, trend, damped, seasonal in specs:
        if seasonal is not None and (period < 2 or len(train) < 2 * period):
            continue
        if "mul" in (error, seasonal) and not positive:
            continue
        spec = dict(error=error, trend=trend, damped_trend=damped, seasonal=seasonal)
        if seasonal is not None:
            spec["seasonal_periods"] = period
        fitted = None
        for initialization in ("estimated", "heuristic"):
            try:
                with caught:
                    model = ETSModel(pd.Series(train), initialization_method=initialization, **spec)
                    fitted = model.fit(disp=False)
                if np.isfinite(fitted.aic):
                    break
            except (ValueError, np.linalg.LinAlgError, ZeroDivisionError):
                fitted = None
        if fitted is None or not np.isfinite(fitted.aic):
            failures += 1
            continue
        if best is None or fitted.aic < best.aic:
            initial = {"initial_level": fitted.initial_level}
            if trend is not None:
                initial["initial_trend"] = fitted.initial_trend
            if seasonal is not None:
                initial["initial_seasonal"] = np.asarray(fitted.initial_seasonal)
            smoothing = dict(zip(fitted.model.param_names, np.asarray(fitted.params), strict=True))
            code = _ets_code(error, trend, damped, seasonal)
            best = FittedBaseline("ets", code, float(fitted.aic), spec, smoothing, initial, fitted)
    return best, failures


def seasonal_strength(train: np.ndarray, period: int) -> float:
    """``max(0, 1 - var(remainder) / var(season + remainder))`` of an STL decomposition (0: no seasonality)."""
    from statsmodels.tsa.seasonal import STL

    parts = STL(train, period=period, robust=True).fit()
    spread = np.var(parts.seasonal + parts.resid)
    return float(max(0.0, 1.0 - np.var(parts.resid) / spread)) if spread > 0 else 0.0


def differences_needed(train: np.ndarray, max_d: int = 2, caught: _Caught | None = None) -> int:
    """How many first differences make ``train`` level-stationary by the KPSS test at 5% (at most ``max_d``)."""
    from statsmodels.tsa.stattools import kpss

    caught = caught or _Caught()
    x = np.asarray(train, dtype=np.float64)
    for d in range(max_d + 1):
        if len(x) < 10 or np.ptp(x) == 0:
            return d
        with caught:
            p_value = kpss(x, regression="c", nlags="auto")[1]
        if p_value >= 0.05:
            return d
        x = np.diff(x)
    return max_d


def fit_arima(
    train: np.ndarray,
    period: int,
    arima_orders: Sequence[tuple[int, int]] = ARIMA_ORDERS,
    seasonal_orders: Sequence[tuple[int, int]] = SEASONAL_ORDERS,
    caught: _Caught | None = None,
) -> tuple[FittedBaseline | None, int]:
    """ARIMA(p, d, q)(P, D, Q)m on ``train`` (T,): the lowest AIC over ``arima_orders`` x ``seasonal_orders``, and the
    number of candidates that failed.

    Differencing is chosen first (AIC cannot compare models of differently differenced data): D = 1 when the
    period m > 1, the training part spans three seasons and its STL seasonal strength is at least
    :data:`SEASONAL_STRENGTH_THRESHOLD`; then d by repeated KPSS tests on the (seasonally differenced) series.
    Seasonal AR/MA terms only for ``m <= MAX_SEASONAL_ARMA_PERIOD`` with three seasons of data. A constant when
    nothing is differenced, a drift when one difference is taken, neither with more.
    """
    from statsmodels.tsa.arima.model import ARIMA

    caught = caught or _Caught()
    seasonal = period > 1 and len(train) >= 3 * period
    with caught:
        D = int(seasonal and seasonal_strength(train, period) >= SEASONAL_STRENGTH_THRESHOLD)
    base = train[period:] - train[:-period] if D else train
    d = differences_needed(base, caught=caught)
    trend = {0: "c", 1: "t"}.get(d + D, "n")
    seasonal_arma = seasonal_orders if seasonal and period <= MAX_SEASONAL_ARMA_PERIOD else ((0, 0),)
    best, failures = None, 0
    for p, q in arima_orders:
        for sp, sq in seasonal_arma:
            seasonal_terms = bool(sp or D or sq)
            spec = dict(order=(p, d, q), seasonal_order=(sp, D, sq, period) if seasonal_terms else (0, 0, 0, 0))
            spec["trend"] = trend
            try:
                with caught:
                    fitted = ARIMA(train, **spec).fit(cov_type="none")
            except (ValueError, np.linalg.LinAlgError):
                failures += 1
                continue
            if not np.isfinite(fitted.aic):
                failures += 1
                continue
            if best is None or fitted.aic < best.aic:
                seasonal_text = f"({sp},{D},{sq}){period}" if seasonal_terms else ""
                description = f"ARIMA({p},{d},{q}){seasonal_text}" + {"c": "+c", "t": "+drift"}.get(trend, "")
                params = np.asarray(fitted.params)
                best = FittedBaseline("arima", description, float(fitted.aic), spec, params, results=fitted)
    return best, failures


# ------------------------------------------------------------------------------------------------ forecasting
def rolling_forecasts(
    fitted: FittedBaseline,
    values: np.ndarray,
    origins: np.ndarray,
    horizon: int,
    levels: Sequence[float] = (),
    caught: _Caught | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, dict[float, np.ndarray], dict[float, np.ndarray]]:
    """Forecasts of ``horizon`` steps from each origin of a model fitted on the first part of ``values`` (T,).

    The model runs over all of ``values`` with its fitted parameters (a Kalman filter for ARIMA, the exponential
    smoothing recursions for ETS: no refit), and the forecast from origin ``o`` starts from the state after
    observation ``o - 1``: it depends on ``values[:o]`` only. Returns the (W, H) point forecasts and
    ``{level: (W, H)}`` interval bounds (ETS: exact variances for additive models, ``ETS_SIMULATIONS`` simulated
    paths for multiplicative ones, seeded by ``seed``; ARIMA: Gaussian).
    """
    caught = caught or _Caught()
    shape = (len(origins), horizon)
    point = np.full(shape, np.nan)
    lower = {level: np.full(shape, np.nan) for level in levels}
    upper = {level: np.full(shape, np.nan) for level in levels}
    with caught:
        if fitted.kind == "ets":
            import pandas as pd
            from statsmodels.tsa.exponential_smoothing.ets import ETSModel

            model = ETSModel(pd.Series(values), initialization_method="known", **fitted.spec, **fitted.extra)
            results = model.smooth([fitted.params[name] for name in model.param_names])
            rng = np.random.default_rng(seed)
            for w, origin in enumerate(origins):
                prediction = results.get_prediction(
                    start=int(origin),
                    end=int(origin) + horizon - 1,
                    dynamic=0,
                    simulate_repetitions=ETS_SIMULATIONS,
                    rng=rng,
                )
                point[w] = np.asarray(prediction.predicted_mean)
                for level in levels:
                    bounds = np.asarray(prediction.pred_int(alpha=1 - level))
                    lower[level][w], upper[level][w] = bounds[:, 0], bounds[:, 1]
        else:
            from statsmodels.tsa.arima.model import ARIMA

            results = ARIMA(values, **fitted.spec).filter(fitted.params, cov_type="none")
            for w, origin in enumerate(origins):
                prediction = results.get_prediction(start=int(origin), end=int(origin) + horizon - 1, dynamic=True)
                point[w] = np.asarray(prediction.predicted_mean)
                for level in levels:
                    bounds = np.asarray(prediction.conf_int(alpha=1 - level))
                    lower[level][w], upper[level][w] = bounds[:, 0], bounds[:, 1]
    return point, lower, upper


def baseline_backtest(
    datamodule: Any,
    split: str = "test",
    models: Sequence[str] = BASELINES,
    levels: Sequence[float] = (0.8, 0.95),
    ets_specs: Sequence[tuple[str, str | None, bool, str | None]] = ETS_SPECS,
    arima_orders: Sequence[tuple[int, int]] = ARIMA_ORDERS,
    seasonal_orders: Sequence[tuple[int, int]] = SEASONAL_ORDERS,
    seed: int = 0,
) -> BaselineForecasts:
    """Every baseline of ``models`` (see :data:`BASELINES`) on every window of the datamodule's ``split`` part.

    ETS and ARIMA are fitted per series and target on the training part (``datamodule.split_points``), with the
    datamodule's ``seasonal_period`` as the period, and forecast from each window's origin without refitting (see
    :func:`rolling_forecasts`). A series whose every candidate fails gets NaN forecasts (and ``chosen`` says so).
    """
    unknown = [name for name in models if name not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline {unknown[0]!r}; choose from {', '.join(BASELINES)}")
    for level in levels:
        if not 0 < level < 1:
            raise ValueError(f"interval levels must be in (0, 1), got {level}")
    windows = split_windows(datamodule, split)
    # only the fields used here: lazily built windows make each field when it is read
    t = {key: windows.tensors[key].numpy() for key in ("series", "origin", "actual", "mase_scale")}
    series_index, origin = t["series"].astype(np.int64), t["origin"].astype(np.int64)
    H, m = int(datamodule.horizon), int(datamodule.seasonal_period)
    N, C = len(origin), t["actual"].shape[-1]
    point = {name: np.full((N, H, C), np.nan) for name in models}
    lower: dict[str, dict[float, np.ndarray]] = {}
    upper: dict[str, dict[float, np.ndarray]] = {}
    for name in models:
        if name in ("ets", "arima"):
            lower[name] = {level: np.full((N, H, C), np.nan) for level in levels}
            upper[name] = {level: np.full((N, H, C), np.nan) for level in levels}
    chosen: dict[str, list[str]] = {name: [] for name in models if name in ("ets", "arima")}
    caught, failures = _Caught(), 0
    targets = list(getattr(datamodule, "target_names", [f"#{c}" for c in range(C)]))
    for s, series in enumerate(datamodule.series):
        rows = np.flatnonzero(series_index == s)
        if not len(rows):
            continue
        values = np.asarray(series.values, dtype=np.float64)
        train_end = int(datamodule.split_points[s][0])
        origins = origin[rows]
        if "naive" in point:
            point["naive"][rows] = naive_forecasts(values, origins, H)
        if "seasonal_naive" in point:
            point["seasonal_naive"][rows] = seasonal_naive_forecasts(values, origins, H, m)
        for name in chosen:
            for c in range(C):
                train = values[:train_end, c]
                if name == "ets":
                    fitted, failed = fit_ets(train, m, ets_specs, caught)
                else:
                    fitted, failed = fit_arima(train, m, arima_orders, seasonal_orders, caught)
                failures += failed
                label = f"{series.name}/{targets[c] if c < len(targets) else c}"
                if fitted is None:
                    chosen[name].append(f"{label}: every candidate failed")
                    continue
                chosen[name].append(f"{label}: {fitted.description}")
                forecast, low, high = rolling_forecasts(fitted, values[:, c], origins, H, levels, caught, seed)
                point[name][rows, :, c] = forecast
                for level in levels:
                    lower[name][level][rows, :, c], upper[name][level][rows, :, c] = low[level], high[level]
    return BaselineForecasts(
        point=point,
        actual=t["actual"].astype(np.float64),
        mase_scale=t["mase_scale"].astype(np.float64),
        series=series_index,
        origin=origin,
        lower=lower,
        upper=upper,
        chosen=chosen,
        warnings=caught.count,
        failures=failures,
    )


# ------------------------------------------------------------------------------------------------ reporting
def metrics_table(rows: dict[str, dict[str, float]], levels: Sequence[float] = ()) -> str:
    """A plain-text table: one row per forecaster, ``MAE, sMAPE %, MASE`` and coverage at each of ``levels``
    (``coverage@<level>`` keys of a row's scores; ``-`` where it has none)."""
    headers = ["forecaster", "MAE", "sMAPE %", "MASE", *(f"cov {level:.0%}" for level in levels)]
    lines = []
    for name, scores in rows.items():
        cells = [name, _number(scores.get("mae")), _number(scores.get("smape"), 2), _number(scores.get("mase"), 3)]
        cells += [_number(scores.get(f"coverage@{level:g}"), 3) for level in levels]
        lines.append(cells)
    widths = [max(len(str(row[k])) for row in [headers, *lines]) for k in range(len(headers))]
    return "\n".join(
        " ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *lines]
    )


def _number(value: float | None, digits: int | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if digits is not None else f"{value:.4g}"


__all__ = [
    "ARIMA_ORDERS",
    "BASELINES",
    "ETS_SPECS",
    "SEASONAL_ORDERS",
    "BaselineForecasts",
    "FittedBaseline",
    "baseline_backtest",
    "differences_needed",
    "fit_arima",
    "fit_ets",
    "forecast_scores",
    "interval_coverage",
    "metrics_table",
    "naive_forecasts",
    "rolling_forecasts",
    "seasonal_naive_forecasts",
    "seasonal_strength",
    "split_windows",
]
