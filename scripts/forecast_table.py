"""One markdown table: the shipped forecasting recipes against naive, seasonal-naive, ETS and ARIMA forecasts on their
test parts, and how well each kind of interval covers.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/forecast_table.py [--experiments co2 sunspots] [--quick]
    OMP_NUM_THREADS=1 .venv/bin/python scripts/forecast_table.py --ckpt co2=runs/co2/.../epoch_017.ckpt
    OMP_NUM_THREADS=1 .venv/bin/python scripts/forecast_table.py --experiments sunspots --override seed=2
    OMP_NUM_THREADS=1 .venv/bin/python scripts/forecast_table.py --experiments stocks --conformal-scope per_series

For each experiment (``co2``, ``airline``, ``sunspots``, ``csv_forecast``, and ``weather`` and ``stocks``, which need
``pip install vega_datasets``) the shipped recipe is trained as ``seqmodels-train experiment=X`` would (or its
checkpoint is taken from ``--ckpt``), its best checkpoint forecasts every window of the validation and test parts, and
on the test part the script reports:

* MASE and sMAPE (%) of the model, the naive, the seasonal-naive, the ETS and the ARIMA forecasts of the same
  windows (ETS and ARIMA fitted on the training part only, chosen by AIC, forecast from each origin without
  refitting: :mod:`seqmodels.forecast_baselines`);
* the empirical coverage of 80% and 95% intervals: the model's own (its Gaussian or quantile head, at the levels
  it gives: ``-`` otherwise), split conformal around its point forecasts calibrated on the validation backtest,
  adaptive conformal (step ``--gamma``), and ETS's and ARIMA's (:mod:`seqmodels.conformal`). The conformal radii
  pool the validation windows of all series, or (``--conformal-scope per_series``) come from each series' own; for a
  panel, each series' coverage goes to stderr.

``--override`` adds ``seqmodels-train`` overrides (e.g. ``seed=2 data.lookback=44``) to every trained recipe: a
variant of a recipe, scored exactly as the shipped one is.

``--quick`` trains one epoch of a tiny network and searches a single ETS and ARIMA candidate: a smoke run in
seconds, its numbers meaningless. Per-experiment details (the models chosen, warnings caught, seconds) go to
stderr; the table to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

EXPERIMENTS = ("co2", "airline", "sunspots", "csv_forecast", "weather", "stocks")
LEVELS = (0.8, 0.95)
QUIET = [
    "~callbacks.rich_progress_bar",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.accelerator=cpu",
    "logger=none",
    "model.plot_every_n_epochs=0",
]
QUICK_TRAINING = ["trainer.max_epochs=1", "model.net.encoder.hidden_size=8", "+trainer.limit_train_batches=2"]


def quick_search() -> dict[str, Any]:
    """One ETS and one ARIMA candidate (no seasonal ARMA terms): the search of ``--quick``."""
    return {"ets_specs": (("add", "add", False, None),), "arima_orders": ((1, 0),), "seasonal_orders": ((0, 0),)}


def train_recipe(experiment: str, out: Path, quick: bool, overrides: list[str] = ()) -> str:
    """Trains ``experiment=<experiment>`` (tiny with ``quick``; plus ``overrides``) into ``out``; the best
    checkpoint's path."""
    from seqmodels.config import compose_run_config
    from seqmodels.train import train

    settings = [f"experiment={experiment}", *QUIET, *(QUICK_TRAINING if quick else []), *overrides]
    cfg = compose_run_config(settings, out)
    with contextlib.redirect_stdout(sys.stderr):  # the run's own summary: stdout is the table's
        path = train(cfg).best_model_path
    if not path:
        raise RuntimeError(f"the {experiment} run saved no checkpoint")
    return path


def score_checkpoint(path: str, gamma: float, search: dict[str, Any], scope: str = "pooled") -> dict[str, Any]:
    """Every figure of one table row for the forecaster at ``path``, plus details for stderr; conformal radii
    calibrated with ``scope`` (``pooled`` or ``per_series``)."""
    from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
    from seqmodels.conformal import (
        adaptive_conformal,
        calibrate_conformal,
        coverage_by_series,
        min_calibration_size,
        model_intervals,
    )
    from seqmodels.forecast_baselines import baseline_backtest, forecast_scores, interval_coverage

    task, datamodule = build_from_checkpoint(load_checkpoint(path))
    task.eval()
    validation = datamodule.backtest(task, "val")
    test = datamodule.backtest(task, "test")
    windows = datamodule.test_set.tensors  # the windows backtest("test") just built, in the Forecast's order
    scale, origin = (windows[key].numpy() for key in ("mase_scale", "origin"))
    actual = test.actual
    start = time.perf_counter()
    baselines = baseline_backtest(datamodule, "test", levels=LEVELS, **search)
    baseline_seconds = time.perf_counter() - start
    forecasts = {"model": test.point, "naive": test.naive, "seasonal_naive": test.seasonal_naive}
    forecasts.update(ets=baselines.point["ets"], arima=baselines.point["arima"])
    row: dict[str, Any] = {name: forecast_scores(point, actual, scale) for name, point in forecasts.items()}
    own = model_intervals(test, getattr(task.net.output, "level", None) if test.lower is not None else None)
    names = np.asarray(test.series, dtype=object)  # each test window's series, by name as in the validation part
    calibration = calibrate_conformal(
        validation.point, validation.actual, scope, np.asarray(validation.series, dtype=object), fallback="pooled"
    )
    coverage: dict[str, dict[float, float]] = {"model": {}, "conformal": {}, "adaptive": {}, "ets": {}, "arima": {}}
    by_series: dict[str, dict[Any, float]] = {}
    for level in LEVELS:
        if round(level, 6) in own:
            coverage["model"][level] = interval_coverage(*own[round(level, 6)], actual)
        conformal = calibration.interval(test.point, level, names)
        coverage["conformal"][level] = interval_coverage(*conformal, actual)
        scores = calibration.adaptive_scores(level, names)
        adaptive = adaptive_conformal(test.point, actual, scores, level, gamma, names, origin)
        coverage["adaptive"][level] = adaptive.coverage(actual)
        by_series[f"conformal {level:.0%}"] = coverage_by_series(*conformal, actual, names)
        by_series[f"adaptive {level:.0%}"] = coverage_by_series(adaptive.lower, adaptive.upper, actual, names)
        for name in ("ets", "arima"):
            coverage[name][level] = baselines.scores(name, level)["coverage"]
    row["coverage"] = coverage
    infinite = [f"{level:.0%}" for level in LEVELS if calibration.size < min_calibration_size(level)]
    row["details"] = (
        f"{len(test.point)} test windows, {calibration.size} calibration windows; "
        + "; ".join(baselines.chosen["ets"] + baselines.chosen["arima"])
        + f"; {baselines.warnings} statsmodels warnings caught, {baselines.failures} failed candidates; "
        f"baselines {baseline_seconds:.1f} s"
        + (f"; conformal {', '.join(infinite)} radius infinite (too few calibration windows)" if infinite else "")
    )
    fallbacks = [f"{level:.0%}" for level in LEVELS if getattr(calibration, "fallback_series", lambda _: [])(level)]
    if fallbacks:
        row["details"] += f"; per-series conformal {', '.join(fallbacks)}: pooled radius for series short of windows"
    if len(set(names)) > 1:
        row["details"] += f"; coverage by series (conformal_scope={scope}): " + "; ".join(
            f"{name} " + ", ".join(f"{kind} {values[name]:.2f}" for kind, values in by_series.items())
            for name in dict.fromkeys(names.tolist())
        )
    return row


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def markdown_table(rows: dict[str, dict[str, Any]]) -> str:
    """The table of all experiments (see the module docstring)."""
    names = ("model", "naive", "seasonal_naive", "ets", "arima")
    short = {"model": "model", "naive": "naive", "seasonal_naive": "s-naive", "ets": "ETS", "arima": "ARIMA"}
    kinds = ("model", "conformal", "adaptive", "ets", "arima")
    headers = ["experiment"]
    headers += [f"MASE {short[n]}" for n in names] + [f"sMAPE {short[n]}" for n in names]
    headers += [f"cov 80/95 {kind}" for kind in kinds]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for experiment, row in rows.items():
        cells = [experiment]
        cells += [_cell(row[n]["mase"], 3) for n in names] + [_cell(row[n]["smape"], 2) for n in names]
        for kind in kinds:
            cells.append(" / ".join(_cell(row["coverage"][kind].get(level), 2) for level in LEVELS))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", nargs="+", choices=EXPERIMENTS, default=list(EXPERIMENTS))
    parser.add_argument("--quick", action="store_true", help="tiny training and baseline search (a smoke run)")
    parser.add_argument("--ckpt", nargs="*", default=[], metavar="EXPERIMENT=PATH", help="skip training: score these")
    parser.add_argument("--gamma", type=float, default=0.05, help="adaptive conformal step size")
    parser.add_argument("--output-dir", default=None, help="where runs are written (default: a temporary folder)")
    parser.add_argument(
        "--override", nargs="*", default=[], metavar="KEY=VALUE", help="seqmodels-train overrides for every training"
    )
    parser.add_argument(
        "--conformal-scope",
        choices=("pooled", "per_series"),
        default="pooled",
        help="conformal radii from all series' validation windows, or each series' own (short series: pooled)",
    )
    args = parser.parse_args(argv)
    checkpoints = {}
    for item in args.ckpt:
        experiment, _, path = item.partition("=")
        if experiment not in EXPERIMENTS or not path:
            parser.error(f"--ckpt takes EXPERIMENT=PATH with EXPERIMENT one of {', '.join(EXPERIMENTS)}; got {item}")
        checkpoints[experiment] = path
    out = Path(args.output_dir or tempfile.mkdtemp(prefix="forecast_table_"))
    search = quick_search() if args.quick else {}
    rows: dict[str, dict[str, Any]] = {}
    for experiment in args.experiments:
        start = time.perf_counter()
        path = checkpoints.get(experiment) or train_recipe(experiment, out / experiment, args.quick, args.override)
        trained = time.perf_counter()
        rows[experiment] = score_checkpoint(path, args.gamma, search, args.conformal_scope)
        print(
            f"{experiment}: training {trained - start:.0f} s, scoring {time.perf_counter() - trained:.0f} s; "
            f"{rows[experiment]['details']}",
            file=sys.stderr,
            flush=True,
        )
    print(markdown_table(rows), flush=True)
    return rows


if __name__ == "__main__":
    main()
