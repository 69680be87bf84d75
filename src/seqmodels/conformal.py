"""Conformal prediction intervals around any point forecaster, from its backtest errors.

Split conformal (:class:`SplitConformal`): the absolute errors of the forecaster on every window of the validation
part (its *calibration scores*) give, per horizon step and target, the radius ``q`` such that ``[point - q,
point + q]`` covers a new value with probability at least ``level`` when errors are exchangeable: ``q`` is the
``k``-th smallest of the n scores with ``k = ceil((n + 1) * level)`` (the empirical quantile at level
``ceil((n + 1) * level) / n``, the finite-sample correction); infinite when ``k > n`` (too few scores for that
level). The guarantee is marginal over windows; overlapping rolling windows and a drifting series weaken it.

Adaptive conformal inference (:func:`adaptive_conformal`, Gibbs & Candes 2021, "Adaptive Conformal Inference
Under Distribution Shift") keeps coverage under drift in a rolling backtest: each horizon step h keeps its own
miscoverage level ``alpha_t``, used for the next interval (radius: the quantile of the scores at level ``1 -
alpha_t``), and updated ``alpha_t <- alpha_t + gamma * (alpha - err)`` each time the truth of one of its past
intervals arrives (``err`` = 1 if it missed). Step h of the window from origin o is observed h - 1 steps after o,
so only the intervals of earlier windows whose target is already past feed back (delayed feedback). The scores
are the calibration scores followed by each error as it is revealed (optionally the latest ``window`` of them).
``alpha_t <= 0`` gives an infinite interval, ``alpha_t >= 1`` a zero-width one. Whatever the data, the long-run
miscoverage of the revealed intervals is within ``(max(alpha, 1 - alpha) + gamma * h) / (gamma * T)`` of ``alpha``
(T revealed intervals; h the feedback delay).

Scope (:func:`calibrate_conformal`): ``pooled`` calibrates one radius per horizon step and target on the validation
windows of every series together; ``per_series`` (:class:`PerSeriesConformal`) calibrates each series on its own
validation windows. In a panel whose series differ in scale or volatility, pooled radii over-cover the calm series and
under-cover the volatile ones; per-series radii cover each series at its level (exchangeability within a series),
at the price of fewer scores per radius: a series needs ``min_calibration_size(level)`` validation windows, or it is
an error (``fallback="pooled"``: such a series takes the pooled radius instead).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def check_levels(levels: Any, name: str = "conformal") -> list[float]:
    """A level or a list of levels as floats in (0, 1): a one-line ``ValueError`` naming ``name`` otherwise."""
    if levels is None:
        return []
    values = list(levels) if isinstance(levels, Iterable) and not isinstance(levels, str) else [levels]
    if not values:
        raise ValueError(f"{name} needs at least one coverage level, e.g. {name}=0.8 or {name}=[0.8,0.95]")
    out = []
    for value in values:
        try:
            level = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} levels must be numbers in (0, 1), e.g. {name}=0.8; got {value!r}") from None
        if isinstance(value, bool) or not 0 < level < 1:
            raise ValueError(f"{name} levels must be in (0, 1), e.g. {name}=0.8 or {name}=[0.8,0.95]; got {value!r}")
        out.append(level)
    return out


def conformal_rank(n: int, level: float) -> int:
    """``k = ceil((n + 1) * level)``: the order statistic of n scores that bounds a new score with probability
    at least ``level`` (``k > n``: no finite one does). Rounded first, so ``(n + 1) * level`` that is an integer in
    exact arithmetic (e.g. 9 * 0.8 = 7.2 -> 8, 4 * 0.75 = 3) is not pushed up by float error."""
    return math.ceil(round((n + 1) * level, 9))


def min_calibration_size(level: float) -> int:
    """The fewest calibration scores that give a finite ``level`` radius (``conformal_rank(n, level) <= n``): 4 for
    80%, 19 for 95%."""
    n = 1
    while conformal_rank(n, level) > n:
        n += 1
    return n


def conformal_quantile(scores: np.ndarray, level: float) -> np.ndarray:
    """The ``conformal_rank(n, level)``-th smallest of n scores along axis 0 (``inf`` when it exceeds n): the
    split-conformal radius, per remaining index (e.g. (H, C) from (n, H, C) scores)."""
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[0]
    if n == 0:
        raise ValueError("conformal calibration needs at least one score (a validation window)")
    k = conformal_rank(n, level)
    if k > n:
        return np.full(scores.shape[1:], np.inf)
    return np.partition(scores, k - 1, axis=0)[k - 1]


@dataclass
class SplitConformal:
    """Split-conformal intervals from calibration scores ``scores`` (n windows, H, C): absolute errors of a point
    forecaster on the validation part (see :meth:`calibrate`)."""

    scores: np.ndarray

    @classmethod
    def calibrate(cls, point: np.ndarray, actual: np.ndarray) -> SplitConformal:
        """From (n, H, C) forecasts and the truth on the calibration (validation) windows."""
        point, actual = np.asarray(point, dtype=np.float64), np.asarray(actual, dtype=np.float64)
        if point.shape != actual.shape or point.ndim != 3:
            raise ValueError(f"need (n, H, C) forecasts and actual values, got {point.shape} and {actual.shape}")
        if not np.isfinite(point).all() or not np.isfinite(actual).all():
            raise ValueError("conformal calibration needs finite forecasts and actual values (found NaN or inf)")
        return cls(np.abs(actual - point))

    @property
    def size(self) -> int:
        """n, the number of calibration windows."""
        return int(self.scores.shape[0])

    def radius(self, level: float) -> np.ndarray:
        """(H, C) half-widths of the ``level`` intervals."""
        return conformal_quantile(self.scores, check_levels(level)[0])

    def interval(self, point: np.ndarray, level: float, series: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` around (N, H, C) point forecasts (or (H, C) for one forecast). ``series`` (each
        forecast's series) is accepted for the same call as :meth:`PerSeriesConformal.interval`; pooled radii do not
        depend on it."""
        radius = self.radius(level)
        point = np.asarray(point, dtype=np.float64)
        if point.shape[-2:] != radius.shape:
            raise ValueError(f"forecasts of shape {point.shape} do not match the calibration's (H, C) {radius.shape}")
        return point - radius, point + radius

    def check(self, levels: Any, series: Any = None) -> None:
        """Nothing to check: too few pooled scores for a level give an infinite radius (see :meth:`radius`)."""

    def adaptive_scores(self, level: float, series: Any = None) -> np.ndarray:
        """The scores :func:`adaptive_conformal` starts from: all of them."""
        return self.scores


CONFORMAL_SCOPES = ("pooled", "per_series")
CONFORMAL_FALLBACKS = ("error", "pooled")


def check_scope(scope: Any, fallback: Any = "error") -> tuple[str, str]:
    """``(scope, fallback)`` checked: a one-line ``ValueError`` naming the choices otherwise."""
    if scope not in CONFORMAL_SCOPES:
        raise ValueError(f"conformal_scope must be one of {', '.join(CONFORMAL_SCOPES)}, got {scope!r}")
    if fallback not in CONFORMAL_FALLBACKS:
        raise ValueError(f"conformal_fallback must be one of {', '.join(CONFORMAL_FALLBACKS)}, got {fallback!r}")
    return scope, fallback


def _percent(level: float) -> str:
    return f"{round(level * 100, 6):g}%"


@dataclass
class PerSeriesConformal:
    """Split-conformal intervals calibrated on each series' own validation windows.

    ``calibrations`` maps each series (its name or index, as the windows label it) to its :class:`SplitConformal`;
    ``pooled`` is the calibration on all windows together. A series with fewer than ``min_calibration_size(level)``
    windows (or none) cannot have a finite ``level`` radius of its own: asking for one is a one-line ``ValueError``
    (``fallback="error"``), or it takes the pooled radius (``fallback="pooled"``).
    """

    calibrations: dict[Any, SplitConformal]
    pooled: SplitConformal
    fallback: str = "error"

    @classmethod
    def calibrate(
        cls, point: np.ndarray, actual: np.ndarray, series: Any, fallback: str = "error"
    ) -> PerSeriesConformal:
        """From (n, H, C) forecasts, the truth and the (n,) series of each calibration (validation) window."""
        check_scope("per_series", fallback)
        pooled = SplitConformal.calibrate(point, actual)
        series = np.asarray(series)
        if series.shape != (pooled.size,):
            raise ValueError(f"need the series of each of the {pooled.size} calibration windows, got {series.shape}")
        calibrations = {_key(name): SplitConformal(pooled.scores[series == name]) for name in np.unique(series)}
        return cls(calibrations, pooled, fallback)

    @property
    def size(self) -> int:
        """n, the number of calibration windows of all series."""
        return self.pooled.size

    def sizes(self) -> dict[Any, int]:
        """The number of calibration windows of each series."""
        return {name: calibration.size for name, calibration in self.calibrations.items()}

    def calibration_of(self, name: Any, level: float) -> SplitConformal:
        """The calibration that gives series ``name`` its ``level`` radius: its own, or the pooled one when it has
        too few windows and ``fallback="pooled"``."""
        own = self.calibrations.get(_key(name))
        count, need = (own.size if own is not None else 0), min_calibration_size(level)
        if count >= need:
            return own  # type: ignore[return-value]
        if self.fallback == "pooled":
            return self.pooled
        raise ValueError(
            f"conformal_scope=per_series: series {_key(name)!r} has {count} validation windows, but a "
            f"{_percent(level)} interval needs at least {need}; lengthen data.val_size, lower the level, or set "
            "conformal_fallback=pooled to give such series the pooled radius"
        )

    def check(self, levels: Any, series: Any = None) -> None:
        """Raises the error of :meth:`calibration_of` for the first series (of ``series``, or every calibrated one)
        that is short of windows for a level: before any interval is computed."""
        names = self.calibrations if series is None else np.unique(np.asarray(series))
        for level in check_levels(levels):
            for name in names:
                self.calibration_of(name, level)

    def fallback_series(self, level: float) -> list[Any]:
        """The calibrated series that take the pooled ``level`` radius (too few windows of their own)."""
        return [name for name, own in self.calibrations.items() if own.size < min_calibration_size(level)]

    def radius(self, level: float, series: Any) -> np.ndarray:
        """(N, H, C) half-widths of the ``level`` intervals of forecasts of the (N,) ``series``."""
        series = np.asarray(series)
        H, C = self.pooled.scores.shape[1:]
        out = np.empty((len(series), H, C))
        for name in np.unique(series):
            out[series == name] = self.calibration_of(name, level).radius(level)
        return out

    def interval(self, point: np.ndarray, level: float, series: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` around (N, H, C) point forecasts of the (N,) ``series``."""
        point = np.asarray(point, dtype=np.float64)
        if series is None:
            raise ValueError("per-series conformal intervals need the series of each forecast")
        if point.ndim != 3 or point.shape[1:] != self.pooled.scores.shape[1:] or len(series) != len(point):
            raise ValueError(
                f"forecasts of shape {point.shape} for {len(series)} series labels do not match the calibration's "
                f"(N, H, C) with H, C = {self.pooled.scores.shape[1:]}"
            )
        radius = self.radius(level, series)
        return point - radius, point + radius

    def adaptive_scores(self, level: float, series: Any = None) -> dict[Any, np.ndarray]:
        """The scores each series' :func:`adaptive_conformal` run starts from (its own, or the pooled ones where
        :meth:`calibration_of` falls back), for the series of ``series`` (default: every calibrated one)."""
        names = self.calibrations if series is None else np.unique(np.asarray(series))
        return {name: self.calibration_of(name, level).scores for name in names}


def _key(name: Any) -> Any:
    """A series label as a plain Python value (numpy scalars to int/str), so dictionary look-ups and messages
    read the same whatever array held it."""
    return name.item() if isinstance(name, np.generic) else name


def calibrate_conformal(
    point: np.ndarray,
    actual: np.ndarray,
    scope: str = "pooled",
    series: Any = None,
    fallback: str = "error",
) -> SplitConformal | PerSeriesConformal:
    """Split conformal from (n, H, C) validation forecasts and truth: pooled over all windows, or
    ``scope="per_series"`` calibrated on each series' own windows (``series``: the (n,) series of each window).
    Both give ``interval(point, level, series)``, ``check(levels, series)`` and ``adaptive_scores(level, series)``."""
    scope, fallback = check_scope(scope, fallback)
    if scope == "pooled":
        return SplitConformal.calibrate(point, actual)
    if series is None:
        raise ValueError("conformal_scope=per_series needs the series of each calibration window")
    return PerSeriesConformal.calibrate(point, actual, series, fallback)


def coverage_by_series(lower: np.ndarray, upper: np.ndarray, actual: np.ndarray, series: Any) -> dict[Any, float]:
    """The share of each series' actual values inside ``[lower, upper]`` (all (N, H, C); ``series``: (N,))."""
    series = np.asarray(series)
    inside = (np.asarray(actual) >= lower) & (np.asarray(actual) <= upper)
    return {_key(name): float(inside[series == name].mean()) for name in np.unique(series)}


@dataclass
class AdaptiveIntervals:
    """:func:`adaptive_conformal`'s result: (N, H, C) ``lower``/``upper`` and the ``alpha`` each interval used."""

    lower: np.ndarray
    upper: np.ndarray
    alpha: np.ndarray

    def coverage(self, actual: np.ndarray) -> float:
        return float(((actual >= self.lower) & (actual <= self.upper)).mean())


def _radius_at(scores: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(C,) radii: per column of the (n, C) ``scores``, the ``ceil((n + 1) (1 - alpha))``-th smallest; inf for
    alpha <= 0 (or a rank past n), 0 for alpha >= 1."""
    n = scores.shape[0]
    ordered = np.sort(scores, axis=0)
    out = np.empty(scores.shape[1])
    for c in range(scores.shape[1]):
        if alpha[c] >= 1:
            out[c] = 0.0
            continue
        k = conformal_rank(n, 1.0 - alpha[c]) if alpha[c] > 0 else n + 1
        out[c] = ordered[k - 1, c] if k <= n else np.inf
    return out


def adaptive_conformal(
    point: np.ndarray,
    actual: np.ndarray,
    calibration_scores: np.ndarray,
    level: float,
    gamma: float = 0.05,
    series: np.ndarray | None = None,
    origin: np.ndarray | None = None,
    window: int | None = None,
) -> AdaptiveIntervals:
    """Adaptive conformal intervals over a rolling backtest (see the module docstring).

    Args:
        point, actual: (N, H, C) forecasts and truth of the backtest windows.
        calibration_scores: (n, H, C) absolute errors on the validation windows (``SplitConformal.scores``), or a
            mapping from each series (as named in ``series``) to its own (``PerSeriesConformal.adaptive_scores``).
        level: target coverage 1 - alpha.
        gamma: step size of the alpha updates (larger: faster reaction, more jitter).
        series, origin: (N,) each window's series and origin (index of its first target); each series is run on
            its own, in order of origin. None: one series whose windows start one step apart, in order.
        window: keep only the latest ``window`` scores (None: all of them).
    """
    level = check_levels(level)[0]
    if not gamma > 0:
        raise ValueError(f"the adaptive conformal step gamma must be > 0, got {gamma}")
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1 scores or None, got {window}")
    point, actual = np.asarray(point, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    N, H, C = point.shape
    series = np.zeros(N, dtype=np.int64) if series is None else np.asarray(series)
    if isinstance(calibration_scores, Mapping):
        missing = [name for name in np.unique(series) if name not in calibration_scores]
        if missing:
            raise ValueError(f"no calibration scores for series {missing[0]!r}: calibrate every series forecast")
        scores_of = {name: np.asarray(calibration_scores[name], dtype=np.float64) for name in np.unique(series)}
    else:
        pooled = np.asarray(calibration_scores, dtype=np.float64)
        scores_of = {name: pooled for name in np.unique(series)}
    for scores in scores_of.values():
        if scores.shape[1:] != (H, C) or not len(scores):
            raise ValueError(f"calibration scores of shape {scores.shape} do not match forecasts (N, {H}, {C})")
    origin = np.arange(N) if origin is None else np.asarray(origin)
    alpha_target = 1.0 - level
    lower, upper, alphas = np.empty_like(point), np.empty_like(point), np.empty_like(point)
    for name in np.unique(series):
        rows = np.flatnonzero(series == name)
        rows = rows[np.argsort(origin[rows], kind="stable")]
        alpha = np.full((H, C), alpha_target)
        pools = [list(scores_of[name][:, h]) for h in range(H)]  # per step: a list of (C,) scores
        revealed = np.zeros(H, dtype=np.int64)  # per step: how many of this series' windows fed back
        for j, row in enumerate(rows):
            for h in range(H):
                # Step h + 1 of an earlier window is observed before this origin when its target time is past.
                while revealed[h] < j and origin[rows[revealed[h]]] + h + 1 <= origin[row]:
                    past = rows[revealed[h]]
                    missed = ~((actual[past, h] >= lower[past, h]) & (actual[past, h] <= upper[past, h]))
                    alpha[h] += gamma * (alpha_target - missed)
                    pools[h].append(np.abs(actual[past, h] - point[past, h]))
                    revealed[h] += 1
                pool = np.asarray(pools[h][-window:] if window else pools[h])
                radius = _radius_at(pool, alpha[h])
                lower[row, h], upper[row, h] = point[row, h] - radius, point[row, h] + radius
                alphas[row, h] = alpha[h]
    return AdaptiveIntervals(lower, upper, alphas)


def conformal_backtest(
    calibration_point: np.ndarray,
    calibration_actual: np.ndarray,
    point: np.ndarray,
    levels: Sequence[float],
    actual: np.ndarray | None = None,
    gamma: float | None = 0.05,
    series: np.ndarray | None = None,
    origin: np.ndarray | None = None,
    scope: str = "pooled",
    calibration_series: np.ndarray | None = None,
    fallback: str = "error",
) -> dict[str, dict[float, tuple[np.ndarray, np.ndarray]]]:
    """Intervals at every level for (N, H, C) forecasts: ``{"conformal": {level: (lower, upper)}}``, and with the
    truth ``actual`` of a rolling backtest and a ``gamma``, ``"adaptive"`` (:func:`adaptive_conformal`) too. The
    calibration is the validation backtest's ``calibration_point``/``calibration_actual``; ``scope="per_series"``
    calibrates each series on its own windows (``calibration_series`` and ``series``: each window's series; see
    :func:`calibrate_conformal`)."""
    levels = check_levels(levels)
    calibration = calibrate_conformal(calibration_point, calibration_actual, scope, calibration_series, fallback)
    calibration.check(levels, series)
    out: dict[str, dict[float, tuple[np.ndarray, np.ndarray]]] = {"conformal": {}}
    for level in levels:
        out["conformal"][level] = calibration.interval(point, level, series)
        if actual is not None and gamma:
            scores = calibration.adaptive_scores(level, series)
            adaptive = adaptive_conformal(point, actual, scores, level, gamma, series, origin)
            out.setdefault("adaptive", {})[level] = (adaptive.lower, adaptive.upper)
    return out


def model_intervals(forecast: Any, interval_level: float | None = None) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """The intervals a forecaster gives itself, by nominal level: its ``lower``/``upper`` at ``interval_level``
    (the output's ``level``: a Gaussian head's ``interval``, a quantile head's outermost pair) and, for a quantile
    head, every symmetric pair of quantiles (q, 1 - q) at level 1 - 2q. ``forecast``: a
    :class:`~seqmodels.data.forecasting.Forecast` (or anything with those attributes)."""
    out: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    if getattr(forecast, "lower", None) is not None and interval_level is not None:
        out[round(float(interval_level), 6)] = (forecast.lower, forecast.upper)
    quantiles, levels = getattr(forecast, "quantiles", None), getattr(forecast, "quantile_levels", None)
    if quantiles is not None and levels:
        for i, q in enumerate(levels):
            for j, other in enumerate(levels):
                if q < 0.5 and abs(q + other - 1) < 1e-9:
                    out[round(1 - 2 * q, 6)] = (quantiles[..., i], quantiles[..., j])
    return out


__all__ = [
    "CONFORMAL_FALLBACKS",
    "CONFORMAL_SCOPES",
    "AdaptiveIntervals",
    "PerSeriesConformal",
    "SplitConformal",
    "adaptive_conformal",
    "calibrate_conformal",
    "check_levels",
    "check_scope",
    "conformal_backtest",
    "conformal_quantile",
    "conformal_rank",
    "coverage_by_series",
    "min_calibration_size",
    "model_intervals",
]
