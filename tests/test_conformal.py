"""Conformal intervals: the finite-sample quantile by hand, split-conformal coverage on data with known Gaussian noise,
and adaptive conformal inference keeping its coverage through a variance shift that split conformal misses.

The forecaster is a fake that knows the noise-free signal, so every score is exactly |noise| and nothing is trained.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from seqmodels.conformal import (
    SplitConformal,
    adaptive_conformal,
    check_levels,
    conformal_quantile,
    conformal_rank,
    min_calibration_size,
    model_intervals,
)


def test_the_radius_is_the_ceil_n_plus_one_level_th_smallest_score():
    scores = np.array([7.0, 2.0, 10.0, 1.0, 5.0, 3.0, 9.0, 4.0, 8.0, 6.0])[:, None, None]  # 1..10, shuffled
    # n = 10: k = ceil(11 * 0.8) = 9, ceil(11 * 0.5) = 6; ceil(11 * 0.95) = 11 > 10: no finite radius.
    assert conformal_quantile(scores, 0.8).item() == 9.0
    assert conformal_quantile(scores, 0.5).item() == 6.0
    assert conformal_quantile(scores, 0.95).item() == math.inf
    # (n + 1) * level an integer: 10 * 0.8 = 8 exactly, not 9 from float error; 20 * 0.95 = 19.
    assert conformal_rank(9, 0.8) == 8 and conformal_rank(19, 0.95) == 19
    assert conformal_quantile(scores[:9], 0.8).item() == sorted([7, 2, 10, 1, 5, 3, 9, 4, 8])[7]
    # The fewest scores with a finite radius: ceil(5 * 0.8) = 4 <= 4 (the largest of 7, 2, 10, 1) but
    # ceil(4 * 0.8) = 4 > 3; 95%: 19.
    assert min_calibration_size(0.8) == 4 and min_calibration_size(0.95) == 19
    assert conformal_quantile(scores[:4], 0.8).item() == 10.0 and conformal_quantile(scores[:3], 0.8).item() == math.inf
    # One radius per horizon step and target.
    two = np.stack([scores[:, 0, 0], 10 * scores[:, 0, 0]], axis=1)[:, :, None]  # (10, H=2, C=1)
    lower, upper = SplitConformal(two).interval(np.zeros((3, 2, 1)), 0.8)
    assert upper[0, :, 0].tolist() == [9.0, 90.0] and lower[0, :, 0].tolist() == [-9.0, -90.0]


@pytest.mark.parametrize("level", [0.8, 0.95])
def test_split_conformal_covers_gaussian_noise_at_its_level(level):
    # Calibration: n windows; test: T windows; H steps with independent noise, sigma = 2.
    # Given the calibration, a test value is covered with probability Beta(k, n + 1 - k) distributed, mean
    # k / (n + 1) (= level here, as (n + 1) * level is an integer), variance about level (1 - level) / (n + 2);
    # T test values add binomial variance level (1 - level) / T; the H steps are independent calibrations, so
    # the average over them has variance level (1 - level) (1 / (n + 2) + 1 / T) / H. Tolerance: 4 standard deviations.
    n, T, H, sigma = 999, 4000, 3, 2.0
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(n + T, H, 1)) * 5  # what the fake forecaster knows
    actual = signal + sigma * rng.normal(size=signal.shape)
    calibration = SplitConformal.calibrate(signal[:n], actual[:n])
    lower, upper = calibration.interval(signal[n:], level)
    coverage = ((actual[n:] >= lower) & (actual[n:] <= upper)).mean()
    tolerance = 4 * math.sqrt(level * (1 - level) * (1 / (n + 2) + 1 / T) / H)
    assert abs(coverage - level) <= tolerance, (coverage, tolerance)
    # The radius estimates the Gaussian quantile sigma * z_{(1 + level) / 2}.
    z = {0.8: 1.2816, 0.95: 1.9600}[level]
    assert calibration.radius(level) == pytest.approx(np.full((H, 1), sigma * z), rel=0.1)


def _shifted(T: int, H: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibration noise sigma = 1; the backtest's noise doubles to sigma = 2. Returns signal, actual, scores."""
    rng = np.random.default_rng(seed)
    calibration_scores = np.abs(rng.normal(size=(300, H, 1)))
    signal = np.cumsum(rng.normal(size=(T, H, 1)), axis=0)
    actual = signal + 2.0 * rng.normal(size=signal.shape)
    return signal, actual, calibration_scores


def test_adaptive_conformal_tracks_the_target_through_a_variance_shift():
    T, level, gamma = 3000, 0.8, 0.05
    signal, actual, scores = _shifted(T, H=1)
    split = SplitConformal(scores)
    lower, upper = split.interval(signal, level)
    split_coverage = ((actual >= lower) & (actual <= upper)).mean()
    assert split_coverage < 0.6  # P(|2 Z| <= 1.28) = 0.48: split conformal believes the old noise
    adaptive = adaptive_conformal(signal, actual, scores, level, gamma)
    # Gibbs & Candes: for any sequence, the miscoverage of the T - 1 revealed intervals is within
    # (max(alpha, 1 - alpha) + gamma) / (gamma (T - 1)) of alpha; the last interval moves the average by <= 1 / T.
    alpha = 1 - level
    bound = (max(alpha, 1 - alpha) + gamma) / (gamma * (T - 1)) + 1 / T
    assert abs(adaptive.coverage(actual) - level) <= bound, (adaptive.coverage(actual), bound)
    # It reacts by lowering alpha_t at once (the pool of scores then fills with the new, larger errors), and its
    # intervals end wider than split conformal's.
    assert adaptive.alpha[1:300].mean() < alpha - 0.05
    assert (adaptive.upper - adaptive.lower)[T // 2 :].mean() > (upper - lower).mean() * 1.5


def test_adaptive_conformal_learns_each_step_only_after_its_truth_is_observed():
    T, H, level, gamma = 2000, 4, 0.9, 0.05
    signal, actual, scores = _shifted(T, H, seed=1)
    adaptive = adaptive_conformal(signal, actual, scores, level, gamma)
    alpha = 1 - level
    for h in range(H):
        # Step h + 1 of a window is revealed h + 1 origins later: the first h + 1 windows use the initial alpha.
        assert (adaptive.alpha[: h + 1, h] == alpha).all()
        assert adaptive.alpha[h + 1, h] != alpha
        revealed = T - (h + 1)
        # Feedback h + 1 steps late lets alpha_t run on h steps past the [-gamma, 1 + gamma] range.
        bound = (max(alpha, 1 - alpha) + gamma * (h + 1)) / (gamma * revealed) + (h + 1) / T
        inside = (actual[:, h] >= adaptive.lower[:, h]) & (actual[:, h] <= adaptive.upper[:, h])
        assert abs(inside.mean() - level) <= bound, (h, inside.mean(), bound)
    # The forecast of a window never depends on its own truth: changing the last window's truth changes nothing.
    changed = actual.copy()
    changed[-1] += 100.0
    again = adaptive_conformal(signal, changed, scores, level, gamma)
    assert np.array_equal(again.lower, adaptive.lower) and np.array_equal(again.upper, adaptive.upper)


def test_adaptive_conformal_runs_each_series_on_its_own_clock():
    # Two series, interleaved and shuffled: each is sorted by origin and runs as if it were alone.
    T, level, gamma = 400, 0.8, 0.05
    a_signal, a_actual, scores = _shifted(T, H=2, seed=2)
    b_signal, b_actual, _ = _shifted(T, H=2, seed=3)
    alone = [adaptive_conformal(s, y, scores, level, gamma) for s, y in ((a_signal, a_actual), (b_signal, b_actual))]
    order = np.random.default_rng(0).permutation(2 * T)
    signal = np.concatenate([a_signal, b_signal])[order]
    actual = np.concatenate([a_actual, b_actual])[order]
    series = np.repeat([0, 1], T)[order]
    origin = np.tile(np.arange(100, 100 + T), 2)[order]
    together = adaptive_conformal(signal, actual, scores, level, gamma, series=series, origin=origin)
    for k in (0, 1):
        rows = np.flatnonzero(series == k)
        rows = rows[np.argsort(origin[rows])]
        assert np.array_equal(together.lower[rows], alone[k].lower)


@pytest.mark.parametrize("bad", [1.5, 0, 1, -0.2, "high", [], [0.8, 2.0], True])
def test_levels_outside_zero_one_are_one_line_errors(bad):
    with pytest.raises(ValueError, match=r"conformal") as error:
        check_levels(bad)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="gamma must be > 0"):
        adaptive_conformal(np.zeros((2, 1, 1)), np.zeros((2, 1, 1)), np.ones((5, 1, 1)), 0.8, gamma=0.0)


def test_check_levels_accepts_a_level_or_a_list():
    assert check_levels(0.8) == [0.8]
    assert check_levels([0.8, 0.95]) == [0.8, 0.95]
    assert check_levels(None) == []


def test_model_intervals_reads_a_gaussian_interval_and_symmetric_quantile_pairs():
    point = np.zeros((2, 3, 1))
    quantiles = np.stack([point - 2, point - 1, point, point + 1, point + 2], axis=-1)
    quantile_head = SimpleNamespace(
        lower=point - 2, upper=point + 2, quantiles=quantiles, quantile_levels=[0.025, 0.1, 0.5, 0.9, 0.975]
    )
    found = model_intervals(quantile_head, interval_level=0.95)
    assert sorted(found) == [0.8, 0.95]
    assert np.array_equal(found[0.8][0], point - 1) and np.array_equal(found[0.8][1], point + 1)
    gaussian = SimpleNamespace(lower=point - 1, upper=point + 1, quantiles=None, quantile_levels=None)
    assert list(model_intervals(gaussian, interval_level=0.8)) == [0.8]
    assert model_intervals(SimpleNamespace(lower=None, upper=None)) == {}
