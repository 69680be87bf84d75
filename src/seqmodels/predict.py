"""Prediction from a checkpoint, whatever its task (the library behind ``seqmodels-predict ckpt_path=...``).

    seqmodels-predict ckpt_path=run/checkpoints/epoch_019.ckpt input=seqmodels            # G2P
    seqmodels-predict ckpt_path=... input="'seventy one'"                                  # quote spaces
    seqmodels-predict ckpt_path=... input_file=words.txt output_file=phonemes.tsv beam_size=5 n_best=3
    seqmodels-predict ckpt_path=<text classifier>.ckpt input="'great value, works well'" n_best=2  # labels, probs
    seqmodels-predict ckpt_path=<tagger>.ckpt input="'EU rejects German call'"             # one tag per word
    seqmodels-predict ckpt_path=<video classifier>.ckpt input_file=clip.npy                 # or a folder of clips
    seqmodels-predict ckpt_path=<series classifier>.ckpt input_file=series.csv n_best=3    # .npy, or a folder
    seqmodels-predict ckpt_path=<forecaster>.ckpt [input_file=series.csv] output_file=forecast.csv  # forecasting
    seqmodels-predict ckpt_path=<forecaster>.ckpt backtest=test output_file=backtest.csv   # historical forecasts
    seqmodels-predict ckpt_path=<forecaster>.ckpt backtest=test conformal=[0.8,0.95] baselines=true  # + ETS, ARIMA
    seqmodels-predict ckpt_path=<panel forecaster>.ckpt backtest=test conformal=0.8 conformal_scope=per_series
    seqmodels-predict ckpt_path=[a.ckpt,b.ckpt,c.ckpt] backtest=test                      # an ensemble's backtest
    seqmodels-predict ckpt_path='logs/sunspots/multiruns/<date>/*/checkpoints/epoch_*.ckpt' ensemble=median
    seqmodels-predict ckpt_path=<speech model>.ckpt input_file=digits.wav                  # prints the transcript
    seqmodels-predict ckpt_path=<speech model>.ckpt input_file=wavs.txt beam_size=1         # one WAV path per line
    seqmodels-predict ckpt_path=<streaming speech model>.ckpt input_file=digits.wav stream=true chunk_ms=100

The checkpoint holds the vocabularies, labels, scalers and the model config; nothing else is needed. Input
tokens a vocabulary lacks are read as ``<unk>`` (with a warning on stderr). Text inputs give one line each:
``input<TAB>output``, or with ``n_best`` > 1 one line per output with its score (log-probability for
encoder-decoders, probability for classifiers). A video classifier (e.g. ``experiment=video_classification``)
reads ``.npy``/``.npz`` clips instead of text: ``input_file`` is one clip or a folder of them (one answer per file,
sorted by name, ``path<TAB>label``), each preprocessed by the checkpoint's datamodule exactly as its training clips
were (``inputs_from_file``). A speech (CTC) checkpoint reads PCM WAV files at any sample
rate (resampled to the model's) and decodes with CTC prefix beam search (``beam_size=1``: greedy). With
``stream=true`` (a causal model: unidirectional encoder, ``normalize=cumulative`` features, e.g.
``experiment=spoken_digits_streaming``) the WAV is fed in ``chunk_ms`` chunks through a
:class:`~seqmodels.nn.ctc.StreamingRecognizer`; each partial transcript goes to stderr as it changes, and the
final one (greedy, equal to offline greedy decoding) is the output. Language models generate with
``seqmodels-generate``.

Several checkpoints in ``ckpt_path`` (a list, or glob patterns expanded to their sorted matches) are an ensemble:
forecasters' forecasts are combined (``ensemble=mean``, the default, or ``median``; see :class:`ForecastEnsemble`),
classifiers' class probabilities averaged. Every checkpoint is loaded before any work; other kinds of checkpoint
(encoder-decoders, taggers, speech models) are refused in one line.

Which reader and writer a checkpoint gets is what its task declares (``capabilities.predict``, see
:mod:`seqmodels.tasks.capabilities`); :func:`predict_from_checkpoint` dispatches on it.
"""

from __future__ import annotations

import contextlib
import glob
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig

from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint, task_capabilities
from seqmodels.config import requested_device
from seqmodels.data.collate import pad_collate
from seqmodels.data.files import read_utf8
from seqmodels.tasks.capabilities import Prediction


def _lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file, stripped, numbered from 1 as an editor numbers them (a file that is not
    UTF-8 is a one-line error naming the byte offset of its first bad byte); blank lines at the end are dropped."""
    lines = [line.strip() for line in io.StringIO(read_utf8(path), newline=None)]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _sequence_file(path: Path) -> bool:
    """Whether the name says FASTA, FASTQ or GenBank (``.fa``, ``.fastq.gz``, ``.gbk``, ...)."""
    from seqmodels.data.genomic import guess_format

    try:
        guess_format(path)
    except ValueError:
        return False
    return True


def read_inputs(cfg: DictConfig) -> list[str]:
    """``input``, or the lines of ``input_file``: one input per line, so output row ``i`` answers line ``i``; a
    FASTA, FASTQ or GenBank ``input_file`` (by its name) gives one input per record, its sequence.

    Every text task needs tokens, so a blank line among the inputs is a one-line error naming its line number
    (dropping it would shift every later output against its input); blank lines after the last input are ignored.
    """
    if (cfg.get("input") is None) == (cfg.get("input_file") is None):
        raise ValueError('pass exactly one of input="..." or input_file=/path/to/inputs.txt')
    if cfg.get("input") is not None:
        return [str(cfg.input)]
    path = Path(cfg.input_file).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}; pass input_file=/path/to/inputs.txt (one per line)")
    if _sequence_file(path):  # FASTA/FASTQ/GenBank, gzipped or not: one input per record
        from seqmodels.data.genomic import read_sequences

        records = read_sequences(path)
        if not records:
            raise ValueError(f"{path} holds no sequence records")
        return [record.sequence for record in records]
    inputs = _lines(path)
    if not inputs:
        raise ValueError(f"{path} holds no inputs (one per line)")
    blank = next((number for number, line in enumerate(inputs, start=1) if not line), None)
    if blank is not None:
        raise ValueError(
            f"{path}: line {blank} is blank; each line is one input and output rows line up with input lines, "
            "so remove the blank line or put an input on it"
        )
    return inputs


def check_output_file(cfg: DictConfig) -> Path | None:
    """``output_file`` checked before any work: its folder must exist and it must not be a folder itself."""
    if not cfg.get("output_file"):
        return None
    path = Path(str(cfg.output_file)).expanduser()
    if path.is_dir():
        raise ValueError(
            f"output_file={cfg.output_file} is a folder; name a file in it, e.g. output_file={path / 'predictions.tsv'}"
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"output_file={cfg.output_file}: folder {path.parent} does not exist; create it (mkdir -p) or pick "
            "another path"
        )
    return path


def predict(cfg: DictConfig, checkpoint: dict[str, Any] | None = None) -> list[tuple[str, list[tuple[str, float]]]]:
    """Returns, per input, its ``n_best`` decoded outputs with their scores."""
    if checkpoint is None:
        checkpoint = load_checkpoint(cfg.ckpt_path, weights_only=cfg.get("weights_only", True))
    model, datamodule = build_from_checkpoint(checkpoint, setup_data=False)
    if not hasattr(datamodule, "source_from_text") or not hasattr(model.net, "beam_search"):
        raise ValueError(
            f"{cfg.ckpt_path} is not a checkpoint seqmodels-predict reads (encoder-decoder, text classifier, tagger, "
            "forecaster, speech); for a language model use seqmodels-generate"
        )
    if cfg.beam_size < 1 or not 1 <= cfg.n_best <= cfg.beam_size:
        raise ValueError(f"need beam_size >= 1 and 1 <= n_best <= beam_size, got {cfg.beam_size}, {cfg.n_best}")
    device = requested_device(cfg)
    model.to(device).eval()
    inputs = read_inputs(cfg)
    sources = [datamodule.source_from_text(text) for text in inputs]
    # Each input decodes with the output length its own length allows, so batches hold inputs that share it: an
    # output never depends on which other lines are in the file.
    limits = [model.max_decode_length(torch.tensor([len(source)])) for source in sources]
    groups: dict[int, list[int]] = {}
    for index, limit in enumerate(limits):
        groups.setdefault(limit, []).append(index)
    decoded: dict[int, list[tuple[str, float]]] = {}
    for max_len, members in groups.items():
        for start in range(0, len(members), cfg.batch_size):
            rows = members[start : start + cfg.batch_size]
            batch = pad_collate([sources[i] for i in rows], padding_value=0).to(device)
            hypotheses = model.net.beam_search(
                batch.inputs,
                batch.lengths,
                beam_size=cfg.beam_size,
                max_len=max_len,
                length_penalty=cfg.length_penalty,
                n_best=cfg.n_best,
            )
            for row, best in zip(rows, hypotheses, strict=True):
                decoded[row] = [(datamodule.target_text(ids), score) for ids, score in best]
    return [(text, decoded[index]) for index, text in enumerate(inputs)]


def forecast_options(cfg: DictConfig) -> tuple[list[float], float | None, bool]:
    """``conformal`` levels, ``conformal_gamma`` and ``baselines`` from the config, checked before any work
    (``conformal_scope`` and ``conformal_fallback`` too: :func:`conformal_scope`)."""
    from seqmodels.conformal import check_levels

    levels = check_levels(cfg.get("conformal"))
    conformal_scope(cfg)
    gamma = cfg.get("conformal_gamma", 0.05)
    if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma < 0):
        raise ValueError(f"conformal_gamma must be a number >= 0 (0 or null: no adaptive intervals), got {gamma!r}")
    baselines = cfg.get("baselines", False)
    if not isinstance(baselines, bool):
        raise ValueError(f"baselines must be true or false, got {baselines!r}")
    backtest = cfg.get("backtest")
    if baselines and not backtest:
        raise ValueError("baselines=true scores ETS and ARIMA beside the model on a backtest: add backtest=test")
    if levels and backtest == "val":
        raise ValueError(
            "conformal intervals are calibrated on the validation part, so they cannot be scored on it: use "
            "backtest=test (or no backtest, for intervals on the forecasts ahead)"
        )
    return levels, (float(gamma) if gamma else None), baselines


def conformal_scope(cfg: DictConfig) -> tuple[str, str]:
    """``conformal_scope`` (``pooled``, the default, or ``per_series``) and ``conformal_fallback`` (``error``, the
    default, or ``pooled``) from the config, checked."""
    from seqmodels.conformal import check_scope

    return check_scope(cfg.get("conformal_scope") or "pooled", cfg.get("conformal_fallback") or "error")


def write_forecasts(cfg: DictConfig, checkpoint: dict[str, Any] | list[dict[str, Any]] | None = None) -> bool:
    """For a forecaster's checkpoint: writes a CSV of forecasts and returns True (other checkpoints: False).

    By default the forecasts run past the end of each series: the checkpoint's own data, or ``input_file`` (a CSV
    with the training columns; with known-future covariates, its last ``horizon`` rows give them, targets empty).
    With ``backtest=val`` or ``backtest=test``, they are the historical forecasts from every origin of that part
    of the series (split as in training), beside the actual values and both baselines; a summary goes to stderr.

    ``conformal=0.8`` (or a list of levels) adds split-conformal intervals calibrated on the validation backtest
    (``conformal_lower_80``, ``conformal_upper_80``, see :mod:`seqmodels.conformal`) and, in a test backtest,
    adaptive conformal ones (``adaptive_lower_80``, ...; step ``conformal_gamma``, 0 or null: none). The radii pool
    the validation windows of every series (``conformal_scope=pooled``) or come from each series' own
    (``conformal_scope=per_series``: a series with too few windows for a level is a one-line error, or with
    ``conformal_fallback=pooled`` takes the pooled radius); a backtest of several series also prints each series'
    coverage;
    ``baselines=true`` adds the ``ets`` and ``arima`` forecasts of the same windows (with their intervals at the
    conformal levels, or 80% and 95%; see :mod:`seqmodels.forecast_baselines`). Either prints a table of errors
    and empirical coverage to stderr.

    Several checkpoints (a list ``checkpoint``, or ``ckpt_path=[a.ckpt,b.ckpt]`` or a glob pattern) are an ensemble
    (:class:`ForecastEnsemble`): each window is forecast by every member and the forecasts combined (``ensemble=mean``
    or ``median``; a Gaussian head's interval from the members' mixture), so the backtests, the conformal
    calibration on the validation backtest and the baseline table all score the ensemble. The members must share
    the data setup and output head (:func:`check_same_forecast_setup`).
    """
    import csv

    from seqmodels.data.forecasting import backtest_rows, forecast_rows

    check_output_file(cfg)
    levels, gamma, baselines = forecast_options(cfg)
    combine = ensemble_combiner(cfg)
    paths = checkpoint_paths(cfg.ckpt_path)
    if checkpoint is None:
        checkpoints = load_checkpoints(paths, weights_only=cfg.get("weights_only", True))
    else:
        checkpoints = list(checkpoint) if isinstance(checkpoint, (list, tuple)) else [checkpoint]
    if len(paths) != len(checkpoints):  # checkpoints passed in memory: name them by position
        paths = [f"checkpoint {index + 1} of {len(checkpoints)}" for index in range(len(checkpoints))]
    if ensemble_capabilities(paths, checkpoints)[1].predict is not Prediction.SERIES_TO_FORECAST:
        return False
    if cfg.get("input") is not None:
        raise ValueError("a forecaster reads series, not text: pass input_file=/path/to/series.csv (or nothing)")
    if len(checkpoints) > 1:
        model, datamodule = forecast_ensemble(checkpoints, paths, combine)
    else:
        model, datamodule = build_from_checkpoint(checkpoints[0], setup_data=False)
    model.eval()
    levels_of_quantiles = model.net.output.levels.tolist() if hasattr(model.net.output, "levels") else None
    batch_size = cfg.get("batch_size", 64)
    calibration = None
    if levels:
        scope, fallback = conformal_scope(cfg)
        calibration = _calibration(datamodule, model, cfg.get("input_file"), batch_size, scope, fallback)
        calibration.check(levels)  # a series short of validation windows: an error before the forecasts
    summary, extra = "", {}
    if cfg.get("backtest"):
        windows = datamodule.backtest_windows(str(cfg.backtest), cfg.get("input_file"))
        forecast = _forecast_windows(model, windows, batch_size)
        rows = backtest_rows(datamodule.series, windows, forecast, datamodule.target_names, levels_of_quantiles)
        summary = _backtest_summary(str(cfg.backtest), windows, forecast)
        if levels or baselines:
            extra, table = _backtest_extras(
                datamodule, model, str(cfg.backtest), windows, forecast, calibration, levels, gamma, baselines
            )
            summary += "\n" + table
    else:
        series, batch, times = datamodule.last_windows(cfg.get("input_file"))
        forecast = model.forecast(batch)  # the whole batch: statics and per-series statistics travel with it
        rows = forecast_rows(series, times, forecast, datamodule.target_names, levels_of_quantiles)
        if calibration is not None:
            names = [s.name for s in series]
            for level in levels:
                low, high = calibration.interval(forecast["point"].numpy(), level, names)
                extra[f"conformal_lower_{_level_text(level)}"] = low
                extra[f"conformal_upper_{_level_text(level)}"] = high
    _add_columns(rows, extra)
    output = cfg.get("output_file")
    with open(output, "w", newline="", encoding="utf-8") if output else contextlib.nullcontext(sys.stdout) as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if summary and len(checkpoints) > 1:
        summary = f"ensemble of {len(checkpoints)} forecasters ({combine}): " + summary
    if summary:
        print(summary, file=sys.stderr)
    if output:
        print(f"wrote {len(rows)} forecast rows to {output}", file=sys.stderr)
    return True


def _level_text(level: float) -> str:
    """0.8 -> "80", 0.975 -> "97.5": the level in a column name."""
    return f"{round(level * 100, 6):g}"


def _add_columns(rows: list[dict[str, str]], columns: dict[str, Any]) -> None:
    """Appends each (N, H, C) array of ``columns`` to the rows, which run over windows, steps, then targets."""
    for name, values in columns.items():
        for row, value in zip(rows, np.asarray(values).reshape(-1), strict=True):
            row[name] = f"{value:.6g}"


def _calibration(
    datamodule: Any,
    model: torch.nn.Module,
    input_file: Any,
    batch_size: int,
    scope: str = "pooled",
    fallback: str = "error",
) -> Any:
    """Split conformal calibrated on the model's backtest of the validation part (of ``input_file``'s series, when
    given, split as in training): pooled, or per series (keyed by series name) with ``scope="per_series"``."""
    from seqmodels.conformal import calibrate_conformal

    try:
        windows = datamodule.backtest_windows("val", input_file)
    except ValueError as error:
        raise ValueError(f"conformal intervals are calibrated on the validation part, but {error}") from None
    point = _forecast_windows(model, windows, batch_size)["point"].numpy()
    names = _series_names(datamodule, windows)
    return calibrate_conformal(point, windows.tensors["actual"].numpy(), scope, names, fallback)


def _series_names(datamodule: Any, windows: Any) -> np.ndarray:
    """(N,) the name of each window's series (the same series keep their names across the val and test parts and
    the forecasts ahead, whereas indices depend on which file was read)."""
    names = [s.name for s in datamodule.series]
    return np.asarray([names[int(index)] for index in windows.tensors["series"]], dtype=object)


def _backtest_extras(
    datamodule: Any,
    model: torch.nn.Module,
    split: str,
    windows: Any,
    forecast: dict[str, torch.Tensor],
    calibration: Any,
    levels: list[float],
    gamma: float | None,
    baselines: bool,
) -> tuple[dict[str, np.ndarray], str]:
    """The conformal and baseline columns of a backtest, and the table of errors and coverage printed beside it."""
    from seqmodels.conformal import PerSeriesConformal, adaptive_conformal, model_intervals
    from seqmodels.forecast_baselines import baseline_backtest, forecast_scores, interval_coverage, metrics_table

    t = {key: value.numpy() for key, value in windows.tensors.items() if value is not None}
    point, actual, scale = forecast["point"].numpy(), t["actual"], t["mase_scale"]
    names = _series_names(datamodule, windows)
    intervals: dict[str, dict[float, tuple[np.ndarray, np.ndarray]]] = {}  # kind -> level -> (lower, upper)
    table_levels = levels or [0.8, 0.95]
    columns: dict[str, np.ndarray] = {}
    rows: dict[str, dict[str, float]] = {"model": forecast_scores(point, actual, scale)}
    own = model_intervals(
        SimpleNamespace(
            lower=_numpy(forecast.get("lower")),
            upper=_numpy(forecast.get("upper")),
            quantiles=_numpy(forecast.get("quantiles")),
            quantile_levels=model.net.output.levels.tolist() if hasattr(model.net.output, "levels") else None,
        ),
        getattr(model.net.output, "level", None),
    )
    for level in table_levels:
        if round(level, 6) in own:
            rows["model"][f"coverage@{level:g}"] = interval_coverage(*own[round(level, 6)], actual)
            intervals.setdefault("model", {})[level] = own[round(level, 6)]
    if calibration is not None:
        rows["model + conformal"] = dict(rows["model"])
        if gamma:
            rows[f"model + adaptive (gamma {gamma:g})"] = dict(rows["model"])
        for level in levels:
            low, high = calibration.interval(point, level, names)
            intervals.setdefault("conformal", {})[level] = (low, high)
            columns[f"conformal_lower_{_level_text(level)}"] = low
            columns[f"conformal_upper_{_level_text(level)}"] = high
            rows["model + conformal"][f"coverage@{level:g}"] = interval_coverage(low, high, actual)
            if gamma:
                scores = calibration.adaptive_scores(level, names)
                adaptive = adaptive_conformal(point, actual, scores, level, gamma, names, t["origin"])
                intervals.setdefault("adaptive", {})[level] = (adaptive.lower, adaptive.upper)
                columns[f"adaptive_lower_{_level_text(level)}"] = adaptive.lower
                columns[f"adaptive_upper_{_level_text(level)}"] = adaptive.upper
                rows[f"model + adaptive (gamma {gamma:g})"][f"coverage@{level:g}"] = adaptive.coverage(actual)
    for name in ("naive", "seasonal_naive"):
        rows[name] = forecast_scores(t[name], actual, scale)
    note = ""
    if baselines:
        found = baseline_backtest(datamodule, split, models=("ets", "arima"), levels=table_levels)
        for name in ("ets", "arima"):
            columns[name] = found.point[name]
            for level in table_levels:
                columns[f"{name}_lower_{_level_text(level)}"] = found.lower[name][level]
                columns[f"{name}_upper_{_level_text(level)}"] = found.upper[name][level]
            rows[name] = found.scores(name)
            for level in table_levels:
                rows[name][f"coverage@{level:g}"] = found.scores(name, level)["coverage"]
        chosen = "; ".join(f"{text}" for name in ("ets", "arima") for text in found.chosen[name])
        note = f"\nbaselines fitted on the training part: {chosen} ({found.warnings} statsmodels warnings caught)"
    if calibration is not None:
        note += _calibration_notes(calibration, levels)
    table = metrics_table(rows, table_levels)
    if len(set(names)) > 1 and intervals:
        scope = "per_series" if isinstance(calibration, PerSeriesConformal) else "pooled"
        note += f"\ncoverage by series (conformal_scope={scope}):\n" + series_coverage_table(intervals, actual, names)
    return columns, f"forecasters on the {split} part ({actual.size} values):\n{table}{note}"


def _calibration_notes(calibration: Any, levels: list[float]) -> str:
    """Lines under the backtest table on levels the calibration cannot serve as asked: too few pooled windows (an
    infinite radius), or series that fall back to the pooled radius."""
    from seqmodels.conformal import PerSeriesConformal, min_calibration_size

    note = ""
    short = [f"{level:.0%}" for level in levels if calibration.size < min_calibration_size(level)]
    if short:
        note += (
            f"\nconformal {', '.join(short)}: {calibration.size} validation windows give no finite radius "
            f"(intervals of +-inf); a longer validation part (data.val_size) gives one"
        )
    if isinstance(calibration, PerSeriesConformal):
        for level in levels:
            pooled = calibration.fallback_series(level)
            if pooled:
                note += (
                    f"\nconformal {level:.0%}: series {', '.join(map(str, pooled))} have too few validation "
                    "windows of their own and take the pooled radius (conformal_fallback=pooled)"
                )
    return note


def series_coverage_table(
    intervals: dict[str, dict[float, tuple[np.ndarray, np.ndarray]]], actual: np.ndarray, series: Any
) -> str:
    """A plain-text table: one row per series, its number of windows and the coverage of each kind of interval
    (``intervals``: kind -> level -> (N, H, C) ``(lower, upper)``) at each level."""
    from seqmodels.conformal import coverage_by_series

    series = np.asarray(series)
    names = list(dict.fromkeys(series.tolist()))  # in order of first appearance
    headers = ["series", "windows"]
    columns = []
    for kind, by_level in intervals.items():
        for level, (lower, upper) in by_level.items():
            headers.append(f"{kind} {level:.0%}")
            columns.append(coverage_by_series(lower, upper, actual, series))
    lines = [headers]
    for name in names:
        lines.append([str(name), str(int((series == name).sum())), *(f"{column[name]:.3f}" for column in columns)])
    widths = [max(len(row[k]) for row in lines) for k in range(len(headers))]
    return "\n".join(
        " ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in lines
    )


def _numpy(value: torch.Tensor | None) -> np.ndarray | None:
    return value.numpy() if value is not None else None


def _forecast_windows(model: torch.nn.Module, windows: Any, batch_size: int) -> dict[str, torch.Tensor]:
    """``model.forecast`` over all windows, in batches; the outputs concatenated along the windows."""
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(windows), max(batch_size, 1)):
        batch = windows.take(slice(start, start + batch_size))
        for key, value in model.forecast(batch).items():  # type: ignore[operator]
            parts.setdefault(key, []).append(value)
    return {key: torch.cat(values) for key, values in parts.items()}


def _backtest_summary(split: str, windows: Any, forecast: dict[str, torch.Tensor]) -> str:
    from seqmodels.tasks.forecasting import ForecastMetrics

    t = windows.tensors
    metrics = ForecastMetrics()
    metrics.update(
        forecast["point"],
        t["actual"],
        t["mase_scale"],
        t["naive"],
        t["seasonal_naive"],
        forecast.get("lower"),
        forecast.get("upper"),
    )
    m = {key: float(value) for key, value in metrics.compute().items()}
    coverage = f", interval coverage {m['coverage']:.3f}" if "coverage" in m else ""
    return (
        f"backtest over the {split} part, {len(windows)} windows: MAE {m['mae']:.4g} (seasonal naive "
        f"{m['seasonal_naive_mae']:.4g}, naive {m['naive_mae']:.4g}), MASE {m['mase']:.3f}, "
        f"sMAPE {m['smape']:.2f}%{coverage}"
    )


# ------------------------------------------------------------------------------------------------ ensembles
#: The prediction kinds whose checkpoints combine into an ensemble (``ckpt_path=[a.ckpt,b.ckpt,...]``).
ENSEMBLE_KINDS = (Prediction.SERIES_TO_FORECAST, Prediction.TEXT_TO_LABEL)

#: How an ensemble combines its forecasters' point forecasts and quantiles (``ensemble=...``).
ENSEMBLE_COMBINERS = ("mean", "median")

#: The data settings an ensemble's forecasters must share: they shape the windows every member reads, and the
#: windows come from one datamodule. (Batch sizes, workers, stride and seed shape training; a seed that shapes
#: generated data shows in the scaler statistics, compared too.)
SHARED_DATA_SETTINGS = (
    "target_columns",
    "lookback",
    "horizon",
    "past_covariates",
    "future_covariates",
    "series_column",
    "calendar",
    "val_size",
    "test_size",
    "transform",
    "scaling",
    "scaler",
    "seasonal_period",
    "static_categoricals",
    "static_reals",
    "lag_features",
    "rolling_features",
)

#: The datamodule state an ensemble's forecasters must share: the scaler statistics their forecasts are undone
#: with, and the statics and calendar features their inputs are built with.
SHARED_DATA_STATE = (
    "mean",
    "std",
    "series_stats",
    "calendar_names",
    "static_vocab",
    "series_statics",
    "static_real_stats",
)


def checkpoint_paths(ckpt_path: Any) -> list[str]:
    """``ckpt_path`` as a list of checkpoint paths: one path, a list of them (an ensemble), or glob patterns
    (``logs/sunspots/multiruns/<date>/*/checkpoints/best*.ckpt``), each expanded to its sorted matches."""
    given = [str(item) for item in ckpt_path] if isinstance(ckpt_path, (list, tuple, ListConfig)) else [str(ckpt_path)]
    if not given:
        raise ValueError("ckpt_path=[] names no checkpoint; pass ckpt_path=run.ckpt or a list [a.ckpt,b.ckpt]")
    paths: list[str] = []
    for item in given:
        if not glob.has_magic(item):
            paths.append(item)
            continue
        found = sorted(glob.glob(str(Path(item).expanduser()), recursive=True))
        if not found:
            raise FileNotFoundError(f"ckpt_path={item} matches no file; check the pattern (quote it in the shell)")
        paths.extend(found)
    return paths


def load_checkpoints(paths: list[str], weights_only: bool = True) -> list[dict[str, Any]]:
    """Every checkpoint of ``paths``, loaded before any work: a missing or unreadable one is a one-line error
    naming it, and nothing is written."""
    return [load_checkpoint(path, weights_only=weights_only) for path in paths]


def ensemble_combiner(cfg: DictConfig) -> str:
    """``ensemble`` from the config, checked before any work."""
    combine = cfg.get("ensemble") or "mean"
    if combine not in ENSEMBLE_COMBINERS:
        raise ValueError(f"ensemble must be one of {', '.join(ENSEMBLE_COMBINERS)}, got {combine!r}")
    return str(combine)


def ensemble_capabilities(paths: list[str], checkpoints: list[dict[str, Any]]) -> tuple[type, Any]:
    """The task class and capabilities the checkpoints share; one line naming the first that differs, or (for
    several checkpoints) refusing a kind of prediction that does not average."""
    task, capabilities = task_capabilities(checkpoints[0])
    for path, checkpoint in zip(paths[1:], checkpoints[1:], strict=True):
        other, _ = task_capabilities(checkpoint)
        if other is not task:
            raise ValueError(
                f"ensemble members must be the same kind of model: {path} is a {other.__name__} checkpoint but "
                f"{paths[0]} is a {task.__name__} one; list checkpoints of one task in ckpt_path"
            )
    if len(checkpoints) > 1 and capabilities.predict not in ENSEMBLE_KINDS:
        raise ValueError(
            f"ckpt_path lists {len(checkpoints)} checkpoints, but only forecasters (averaged forecasts) and "
            f"classifiers (averaged class probabilities) combine into an ensemble; {paths[0]} is a {task.__name__} "
            "checkpoint: pass one ckpt_path"
        )
    return task, capabilities


class ForecastEnsemble(torch.nn.Module):
    """Forecasters combined into one, with the interface a forecaster's task offers to seqmodels-predict and to
    :meth:`ForecastingDataModule.forecast <seqmodels.data.ForecastingDataModule.forecast>`: :meth:`forecast`,
    ``scaler`` and ``net.output``. Build it with :func:`forecast_ensemble`, which checks the members share the
    data setup and output head.

    Point forecasts are the members' mean (``combine="median"``: their median), quantiles likewise per level. A
    Gaussian head's interval comes from the members' equal-weight mixture, summarised by its mean (the mean of the
    means) and variance (the mean of the variances plus the variance of the means), in the space where the heads
    are Gaussian (the log of the data for ``data.transform=log``, its square root for ``sqrt``).
    """

    def __init__(self, members: Sequence[torch.nn.Module], combine: str = "mean") -> None:
        super().__init__()
        if combine not in ENSEMBLE_COMBINERS:
            raise ValueError(f"ensemble must be one of {', '.join(ENSEMBLE_COMBINERS)}, got {combine!r}")
        if not members:
            raise ValueError("an ensemble needs at least one forecaster")
        self.members = torch.nn.ModuleList(members)
        self.combine = combine
        # Read by the writers for the quantile levels and the interval's nominal level, shared by every member.
        self.net = SimpleNamespace(output=members[0].net.output)  # type: ignore[union-attr]

    @property
    def scaler(self) -> Any:
        return self.members[0].scaler

    @torch.no_grad()
    def forecast(self, inputs: Any, future: torch.Tensor | None = None, **extras: Any) -> dict[str, torch.Tensor]:
        """As ``ForecastingTask.forecast`` (a :class:`ForecastBatch` or scaled tensors), the members combined."""
        forecasts = [member.forecast(inputs, future, **extras) for member in self.members]  # type: ignore[operator]
        return combine_forecasts(forecasts, self.combine, self.net.output, self.scaler.transform)


def combine_forecasts(
    forecasts: list[dict[str, torch.Tensor]], combine: str, output: Any, transform: str = "none"
) -> dict[str, torch.Tensor]:
    """The members' ``forecast`` outputs (``point``, ``lower``/``upper``, ``quantiles``) combined as
    :class:`ForecastEnsemble` describes; ``output`` is their (shared) output head, ``transform`` the data's target
    transform (``none``, ``log``, ``sqrt``: the space a Gaussian head's interval is combined in)."""
    from seqmodels.nn.forecasting import GaussianOutput

    def reduce(key: str) -> torch.Tensor:
        stacked = torch.stack([forecast[key] for forecast in forecasts]).double()
        # torch.median picks the lower middle value of an even count; the 0.5 quantile averages the two.
        combined = stacked.mean(0) if combine == "mean" else torch.quantile(stacked, 0.5, dim=0)
        return combined.to(forecasts[0][key].dtype)

    out = {"point": reduce("point")}
    if "quantiles" in forecasts[0]:
        out["quantiles"] = reduce("quantiles")
    if "lower" not in forecasts[0]:
        return out
    if isinstance(output, GaussianOutput):
        out["lower"], out["upper"] = gaussian_mixture_interval(forecasts, output.z, transform)
    elif "quantiles" in out:  # the interval is the outermost quantiles
        out["lower"], out["upper"] = out["quantiles"][..., 0], out["quantiles"][..., -1]
    else:
        out["lower"], out["upper"] = reduce("lower"), reduce("upper")
    return out


def gaussian_mixture_interval(
    forecasts: list[dict[str, torch.Tensor]], z: float, transform: str = "none"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The central interval (``mean -+ z * std``) of the equal-weight mixture of the members' Gaussians, each read
    back from its point forecast (the mean) and interval (``mean -+ z * std``), in the space the heads are Gaussian
    in: the data's, its log (``transform=log``) or its square root (``transform=sqrt``).

    For ``sqrt`` the lower bound came back clamped at 0, so each member's std is read from its point and upper
    bound, ``(sqrt(upper) - sqrt(point)) / z``: exact while the member's sqrt-scale mean is >= 0 (a point forecast
    above 0); a member whose point forecast is 0 counts with mean 0 and the std that reaches its upper bound. The
    combined bounds come back as the forecasts do, ``clamp(min=0) ** 2``."""
    if transform not in ("none", "log", "sqrt"):
        raise ValueError(f"transform must be one of none, log, sqrt, got {transform!r}")

    def space(values: torch.Tensor) -> torch.Tensor:
        values = values.double()
        if transform == "log":
            return torch.log(values)
        return values.clamp(min=0).sqrt() if transform == "sqrt" else values

    means = torch.stack([space(forecast["point"]) for forecast in forecasts])
    if transform == "sqrt":
        stds = torch.stack([(space(forecast["upper"]) - space(forecast["point"])) / z for forecast in forecasts])
    else:
        stds = torch.stack([(space(forecast["upper"]) - space(forecast["lower"])) / (2 * z) for forecast in forecasts])
    mean = means.mean(0)
    variance = (stds**2).mean(0) + means.var(0, unbiased=False)
    half = z * variance.sqrt()
    lower, upper = mean - half, mean + half
    if transform == "log":
        lower, upper = torch.exp(lower), torch.exp(upper)
    elif transform == "sqrt":
        lower, upper = lower.clamp(min=0) ** 2, upper.clamp(min=0) ** 2
    dtype = forecasts[0]["point"].dtype
    return lower.to(dtype), upper.to(dtype)


def _output_head(model: Any) -> str:
    """The output head and its levels, as a mismatch message names them (a point head's loss may differ: the mean
    of median and mean forecasts is still a point forecast)."""
    output = model.net.output
    levels = getattr(output, "levels", None)
    described = f"quantiles {[round(q, 6) for q in levels.tolist()]}" if levels is not None else ""
    if not described and getattr(output, "level", None) is not None:
        described = f"interval {output.level:g}"
    return f"{type(output).__name__}({described})"


def check_same_forecast_setup(members: list[tuple[str, Any, Any]]) -> None:
    """One line naming the first setting (data config, scaler statistics, output head) in which a member, given
    as ``(name, task, datamodule)``, differs from the first member."""
    first_name, first_task, first_data = members[0]
    first_state = first_data.state_dict()
    for name, task, datamodule in members[1:]:
        for key in SHARED_DATA_SETTINGS:
            ours, theirs = first_data.hparams.get(key), datamodule.hparams.get(key)
            if ours != theirs:
                raise ValueError(
                    f"ensemble members must share the data setup: {name} has data.{key}={theirs} but {first_name} "
                    f"has data.{key}={ours}; combine forecasters trained on the same data config"
                )
        state = datamodule.state_dict()
        for key in SHARED_DATA_STATE:
            if state.get(key) != first_state.get(key):
                raise ValueError(
                    f"ensemble members must share the data setup: {name} has other scaler statistics ({key}) than "
                    f"{first_name}; combine forecasters trained on the same series and splits"
                )
        if _output_head(task) != _output_head(first_task):
            raise ValueError(
                f"ensemble members must share the output head: {name} has {_output_head(task)} but {first_name} "
                f"has {_output_head(first_task)}; combine forecasters trained with the same model/forecasting_output"
            )


def forecast_ensemble(
    checkpoints: list[dict[str, Any]], names: list[str], combine: str = "mean"
) -> tuple[ForecastEnsemble, Any]:
    """The :class:`ForecastEnsemble` of forecasting checkpoints (``names``: their paths, for messages) and the
    first one's datamodule, which gives every member its windows (their data setups are checked equal)."""
    members = [
        (name, *build_from_checkpoint(checkpoint, setup_data=False))
        for name, checkpoint in zip(names, checkpoints, strict=True)
    ]
    check_same_forecast_setup(members)
    return ForecastEnsemble([task for _, task, _ in members], combine), members[0][2]


def audio_paths(cfg: DictConfig) -> list[Path]:
    """``input_file``: one ``.wav``, or a text file with one WAV path per line (relative to that file)."""
    if cfg.get("input") is not None or cfg.get("input_file") is None:
        raise ValueError("a speech model reads audio: pass input_file=/path/to/audio.wav (or a list of WAV paths)")
    path = Path(cfg.input_file).expanduser()
    if path.suffix.lower() == ".wav" or not path.is_file():
        return [path]  # a missing file is reported by the WAV reader
    with path.open("rb") as handle:
        if handle.read(4) == b"RIFF":
            return [path]  # a WAV file without the .wav suffix
    lines = _lines(path)
    paths = [(path.parent / line).resolve() if not Path(line).is_absolute() else Path(line) for line in lines if line]
    if not paths:
        raise ValueError(f"{path} lists no WAV files (one path per line)")
    return paths


def transcribe_audio(
    cfg: DictConfig, checkpoint: dict[str, Any] | None = None
) -> list[tuple[str, list[tuple[str, float]]]] | None:
    """For a speech (CTC) checkpoint: per WAV file, its ``n_best`` transcripts with their log-probabilities.

    None for other checkpoints.
    """
    from seqmodels.nn.ctc import ctc_prefix_beam_search

    if checkpoint is None:
        checkpoint = load_checkpoint(cfg.ckpt_path, weights_only=cfg.get("weights_only", True))
    if task_capabilities(checkpoint)[1].predict is not Prediction.AUDIO_TO_TEXT:
        return None
    if cfg.beam_size < 1 or not 1 <= cfg.n_best <= cfg.beam_size:
        raise ValueError(f"need beam_size >= 1 and 1 <= n_best <= beam_size, got {cfg.beam_size}, {cfg.n_best}")
    paths = audio_paths(cfg)
    model, datamodule = build_from_checkpoint(checkpoint, setup_data=False)
    device = requested_device(cfg)
    model.to(device).eval()
    results: list[tuple[str, list[tuple[str, float]]]] = []
    with torch.no_grad():
        for path in paths:
            features = datamodule.features_from_wav(path).to(device)
            log_probs, lengths = model.net(features.unsqueeze(0), torch.tensor([features.shape[0]]))
            best = ctc_prefix_beam_search(log_probs, lengths, cfg.beam_size, model.blank, cfg.n_best)[0]
            results.append((str(path), [(model.text(ids), score) for ids, score in best]))
    return results


def streaming_recognizer(checkpoint: dict[str, Any], source: str = "the checkpoint") -> tuple[Any, Any]:
    """The :class:`~seqmodels.nn.ctc.StreamingRecognizer` of a speech checkpoint, and its datamodule; a one-line
    ``ValueError`` naming ``source`` and the fix when the model is not causal (bidirectional encoder, per-utterance
    feature normalisation)."""
    from seqmodels.nn.ctc import StreamingRecognizer

    model, datamodule = build_from_checkpoint(checkpoint, setup_data=False)
    model.eval()
    try:
        return StreamingRecognizer(datamodule.featurizer, model.net, model.labels, model.blank), datamodule
    except ValueError as exc:
        raise ValueError(f"stream=true cannot use {source}: {exc}") from None


def stream_audio(
    cfg: DictConfig, checkpoint: dict[str, Any] | None = None, on_partial: Any = None
) -> list[tuple[str, list[tuple[str, float]]]]:
    """For a causal speech checkpoint: per WAV file, its greedy transcript and best-path log-probability, read in
    ``cfg.chunk_ms`` chunks as a live stream would arrive. ``on_partial(path, seconds, text)`` is called each time
    the partial transcript changes (default: a line on stderr)."""
    if checkpoint is None:
        checkpoint = load_checkpoint(cfg.ckpt_path, weights_only=cfg.get("weights_only", True))
    if task_capabilities(checkpoint)[1].predict is not Prediction.AUDIO_TO_TEXT:
        raise ValueError(
            f"stream=true reads audio with a speech (CTC) checkpoint; {cfg.ckpt_path} is not one: drop stream=true"
        )
    if cfg.get("n_best", 1) != 1:
        raise ValueError(f"stream=true decodes greedily, one transcript per file; set n_best=1 (got {cfg.n_best})")
    chunk_ms = float(cfg.get("chunk_ms", 100.0))
    if not chunk_ms > 0:
        raise ValueError(f"chunk_ms must be > 0 milliseconds of audio per chunk, got {cfg.chunk_ms}")
    paths = audio_paths(cfg)
    recognizer, datamodule = streaming_recognizer(checkpoint, str(cfg.ckpt_path))
    device = requested_device(cfg)
    recognizer.net.to(device)
    recognizer.featurizer.to(device)
    if on_partial is None:

        def on_partial(path: str, seconds: float, text: str) -> None:
            name = f"{Path(path).name} " if len(paths) > 1 else ""
            print(f"{name}[{seconds:6.2f} s] {text}", file=sys.stderr, flush=True)

    from seqmodels.data.audio import read_wav

    chunk = max(1, round(datamodule.sample_rate * chunk_ms / 1000))
    results: list[tuple[str, list[tuple[str, float]]]] = []
    for path in paths:
        waveform, rate = read_wav(path)
        # A file at another rate is resampled whole (a live source would deliver the model's rate).
        samples = datamodule.waveform_for_model(waveform, rate, source=str(Path(path).expanduser())).to(device)
        state, shown = recognizer.initial_state(1, device), ""
        starts = range(0, samples.shape[0], chunk)
        for index, start in enumerate(starts):
            final = index == len(starts) - 1
            text, state = recognizer.stream(samples[start : start + chunk], state, final=final)
            if text != shown:
                on_partial(str(path), min(start + chunk, samples.shape[0]) / datamodule.sample_rate, text)
                shown = text
        results.append((str(path), [(text, float(state["score"][0]))]))
    return results


def clip_paths(cfg: DictConfig, datamodule: Any = None) -> list[Path]:
    """``input_file``: one file the datamodule reads (a clip: a video file or a ``.npy``/``.npz`` array; a series
    file for series classifiers), or a folder of them (sorted by name; for clips ``folder/<class>/*`` too)."""
    from seqmodels.data.video import list_frame_files

    what = getattr(datamodule, "input_file_description", None)
    if cfg.get("input") is not None or cfg.get("input_file") is None:
        if what is None:
            raise ValueError(
                "a video classifier reads clips, not text: pass input_file=clip.mp4 or clip.npy (or a folder of clips)"
            )
        raise ValueError(f"this classifier reads series, not text: pass input_file=<path>, {what}, or a folder of them")
    what = what or "a clip (.mp4, .npy, ...)"
    path = Path(str(cfg.input_file)).expanduser()
    if path.is_dir():
        lister = getattr(datamodule, "list_input_files", None)
        return lister(path) if callable(lister) else list_frame_files(path)[0]
    if not path.is_file():
        raise FileNotFoundError(f"input_file={cfg.input_file}: no such file or folder; pass {what} or a folder of them")
    return [path]


def label_texts(
    cfg: DictConfig, checkpoint: dict[str, Any] | list[dict[str, Any]] | None = None
) -> list[tuple[str, list[tuple[str, float]]]] | None:
    """For a text classifier: per input, its ``n_best`` labels with their probabilities. For a tagger: per input
    sentence (words separated by spaces), its tags, one per word. For a classifier whose datamodule reads files
    (``inputs_from_file``: video clips, series files), per file of :func:`clip_paths`, its ``n_best`` labels with their
    probabilities. None for other checkpoints.

    Several classifier checkpoints (a list ``checkpoint``, or ``ckpt_path=[a.ckpt,b.ckpt]``) are an ensemble: the
    class probabilities are the mean of the members', each member reading the inputs with its own datamodule; they
    must share the class names."""
    paths = checkpoint_paths(cfg.ckpt_path)
    if checkpoint is None:
        checkpoints = load_checkpoints(paths, weights_only=cfg.get("weights_only", True))
    else:
        checkpoints = list(checkpoint) if isinstance(checkpoint, (list, tuple)) else [checkpoint]
    if len(paths) != len(checkpoints):  # checkpoints passed in memory: name them by position
        paths = [f"checkpoint {index + 1} of {len(checkpoints)}" for index in range(len(checkpoints))]
    reads = ensemble_capabilities(paths, checkpoints)[1].predict
    if reads not in (Prediction.TEXT_TO_LABEL, Prediction.TEXT_TO_TAGS):
        return None
    tagger = reads is Prediction.TEXT_TO_TAGS
    if len(checkpoints) > 1 and tagger:
        raise ValueError(
            f"ckpt_path lists {len(checkpoints)} checkpoints, but taggers do not combine into an ensemble (only "
            "forecasters and classifiers do): pass one ckpt_path"
        )
    if len(checkpoints) > 1 and ensemble_combiner(cfg) != "mean":
        raise ValueError("an ensemble of classifiers averages their class probabilities: set ensemble=mean")
    members = [build_from_checkpoint(member, setup_data=False) for member in checkpoints]
    model, datamodule = members[0]
    reads_files = reads is Prediction.TEXT_TO_LABEL and hasattr(datamodule, "inputs_from_file")
    if not reads_files and not hasattr(datamodule, "inputs_from_text"):
        raise ValueError(
            f"{paths[0]} classifies {type(datamodule).__name__} data, not text; score it on its data with "
            f"seqmodels-eval ckpt_path={paths[0]}"
        )
    if tagger and cfg.n_best != 1:
        raise ValueError(f"a tagger gives one tag per word; set n_best=1 (got {cfg.n_best})")
    class_names = [] if tagger else list(datamodule.class_names)  # type: ignore[attr-defined]
    for path, (_, other) in zip(paths[1:], members[1:], strict=True):
        theirs = list(other.class_names)  # type: ignore[attr-defined]
        if theirs != class_names:
            raise ValueError(
                f"ensemble members must share the classes: {path} has {theirs[:6]} but {paths[0]} has "
                f"{class_names[:6]}; combine classifiers trained on the same labels"
            )
    if not tagger and not 1 <= cfg.n_best <= len(class_names):
        raise ValueError(f"n_best must be in [1, {len(class_names)}] (the classes), got {cfg.n_best}")
    device = requested_device(cfg)
    for member, _ in members:
        member.to(device).eval()
    inputs = [str(path) for path in clip_paths(cfg, datamodule)] if reads_files else read_inputs(cfg)
    results: list[tuple[str, list[tuple[str, float]]]] = []
    with torch.no_grad():
        for start in range(0, len(inputs), cfg.batch_size):
            chunk = inputs[start : start + cfg.batch_size]
            if tagger:
                tags = model.predict_step(_label_batch(datamodule, chunk, reads_files, device), 0)
                results.extend((text, [(" ".join(row), 1.0)]) for text, row in zip(chunk, tags, strict=True))
                continue
            probs = torch.stack(
                [
                    member.predict_step(_label_batch(member_data, chunk, reads_files, device), 0)["probs"]
                    for member, member_data in members
                ]
            ).mean(0)
            top = probs.topk(cfg.n_best, dim=-1)
            for text, values, ids in zip(chunk, top.values.tolist(), top.indices.tolist(), strict=True):
                results.append((text, list(zip([class_names[i] for i in ids], values, strict=True))))
    return results


def _label_batch(datamodule: Any, chunk: list[str], reads_files: bool, device: Any) -> Any:
    """A batch of ``chunk`` (texts, or clip paths) read and collated by ``datamodule`` as in training."""
    if reads_files:
        return datamodule.collate_fn([datamodule.inputs_from_file(path) for path in chunk]).to(device)
    items = [datamodule.inputs_from_text(text) for text in chunk]
    return pad_collate(items, padding_value=datamodule.input_padding_value).to(device)


Results = list[tuple[str, list[tuple[str, float]]]]


def predict_from_checkpoint(cfg: DictConfig) -> tuple[Prediction, Results | None]:
    """Runs what the checkpoint's task declares it predicts; returns that kind of prediction and, per input, its
    ``n_best`` outputs with their scores (None for a forecaster, whose CSV :func:`write_forecasts` has written).

    ``ckpt_path`` may list several checkpoints (or glob patterns): an ensemble of forecasters or classifiers (see
    :func:`write_forecasts` and :func:`label_texts`); every one is loaded before any work."""
    check_output_file(cfg)  # before any work: a bad path must not cost a whole prediction run
    ensemble_combiner(cfg)
    paths = checkpoint_paths(cfg.ckpt_path)
    checkpoints = load_checkpoints(paths, weights_only=cfg.get("weights_only", True))
    task, capabilities = ensemble_capabilities(paths, checkpoints)
    shown = paths[0] if len(paths) == 1 else f"[{', '.join(paths)}]"
    if capabilities.predict is not Prediction.SERIES_TO_FORECAST:
        for key in ("backtest", "conformal", "baselines"):
            if cfg.get(key):
                raise ValueError(f"{key}={cfg.get(key)} needs a forecasting checkpoint; {shown} is not one")
    if capabilities.predict is None:
        raise capabilities.refusal(task, "seqmodels-predict", paths[0])
    if cfg.get("stream") and capabilities.predict is not Prediction.AUDIO_TO_TEXT:
        raise ValueError(
            f"stream=true streams audio into a speech (CTC) checkpoint; {shown} is a {task.__name__} "
            "checkpoint: drop stream=true"
        )
    if len(checkpoints) > 1:  # forecasters or classifiers (ensemble_capabilities refused the other kinds)
        if capabilities.predict is Prediction.SERIES_TO_FORECAST:
            write_forecasts(cfg, checkpoints)
            return capabilities.predict, None
        return capabilities.predict, label_texts(cfg, checkpoints)
    checkpoint = checkpoints[0]
    if cfg.get("stream"):
        return capabilities.predict, stream_audio(cfg, checkpoint)
    if capabilities.predict is Prediction.SERIES_TO_FORECAST:
        write_forecasts(cfg, checkpoint)
        return capabilities.predict, None
    readers = {
        Prediction.TEXT_TO_TEXT: predict,
        Prediction.TEXT_TO_LABEL: label_texts,
        Prediction.TEXT_TO_TAGS: label_texts,
        Prediction.AUDIO_TO_TEXT: transcribe_audio,
    }
    return capabilities.predict, readers[capabilities.predict](cfg, checkpoint)
