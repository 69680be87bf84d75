"""Prediction from a checkpoint, whatever its task (the library behind ``seqmodels-predict ckpt_path=...``).

    seqmodels-predict ckpt_path=run/checkpoints/epoch_019.ckpt input=seqmodels            # G2P
    seqmodels-predict ckpt_path=... input="'seventy one'"                                  # quote spaces
    seqmodels-predict ckpt_path=... input_file=words.txt output_file=phonemes.tsv beam_size=5 n_best=3
    seqmodels-predict ckpt_path=<text classifier>.ckpt input="'great value, works well'" n_best=2  # labels, probs
    seqmodels-predict ckpt_path=<tagger>.ckpt input="'EU rejects German call'"             # one tag per word
    seqmodels-predict ckpt_path=<video classifier>.ckpt input_file=clip.npy                 # or a folder of clips
    seqmodels-predict ckpt_path=<forecaster>.ckpt [input_file=series.csv] output_file=forecast.csv  # forecasting
    seqmodels-predict ckpt_path=<forecaster>.ckpt backtest=test output_file=backtest.csv   # historical forecasts
    seqmodels-predict ckpt_path=<forecaster>.ckpt backtest=test conformal=[0.8,0.95] baselines=true  # + ETS, ARIMA
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

Which reader and writer a checkpoint gets is what its task declares (``capabilities.predict``, see
:mod:`seqmodels.tasks.capabilities`); :func:`predict_from_checkpoint` dispatches on it.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

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
    """``conformal`` levels, ``conformal_gamma`` and ``baselines`` from the config, checked before any work."""
    from seqmodels.conformal import check_levels

    levels = check_levels(cfg.get("conformal"))
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


def write_forecasts(cfg: DictConfig, checkpoint: dict[str, Any] | None = None) -> bool:
    """For a forecaster's checkpoint: writes a CSV of forecasts and returns True (other checkpoints: False).

    By default the forecasts run past the end of each series: the checkpoint's own data, or ``input_file`` (a CSV
    with the training columns; with known-future covariates, its last ``horizon`` rows give them, targets empty).
    With ``backtest=val`` or ``backtest=test``, they are the historical forecasts from every origin of that part
    of the series (split as in training), beside the actual values and both baselines; a summary goes to stderr.

    ``conformal=0.8`` (or a list of levels) adds split-conformal intervals calibrated on the validation backtest
    (``conformal_lower_80``, ``conformal_upper_80``, see :mod:`seqmodels.conformal`) and, in a test backtest,
    adaptive conformal ones (``adaptive_lower_80``, ...; step ``conformal_gamma``, 0 or null: none);
    ``baselines=true`` adds the ``ets`` and ``arima`` forecasts of the same windows (with their intervals at the
    conformal levels, or 80% and 95%; see :mod:`seqmodels.forecast_baselines`). Either prints a table of errors
    and empirical coverage to stderr.
    """
    import csv

    from seqmodels.data.forecasting import backtest_rows, forecast_rows

    check_output_file(cfg)
    levels, gamma, baselines = forecast_options(cfg)
    if checkpoint is None:
        checkpoint = load_checkpoint(cfg.ckpt_path, weights_only=cfg.get("weights_only", True))
    if task_capabilities(checkpoint)[1].predict is not Prediction.SERIES_TO_FORECAST:
        return False
    if cfg.get("input") is not None:
        raise ValueError("a forecaster reads series, not text: pass input_file=/path/to/series.csv (or nothing)")
    model, datamodule = build_from_checkpoint(checkpoint, setup_data=False)
    model.eval()
    levels_of_quantiles = model.net.output.levels.tolist() if hasattr(model.net.output, "levels") else None
    batch_size = cfg.get("batch_size", 64)
    calibration = None
    if levels:
        calibration = _calibration(datamodule, model, cfg.get("input_file"), batch_size)
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
            for level in levels:
                low, high = calibration.interval(forecast["point"].numpy(), level)
                extra[f"conformal_lower_{_level_text(level)}"] = low
                extra[f"conformal_upper_{_level_text(level)}"] = high
    _add_columns(rows, extra)
    output = cfg.get("output_file")
    with open(output, "w", newline="", encoding="utf-8") if output else contextlib.nullcontext(sys.stdout) as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
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


def _calibration(datamodule: Any, model: torch.nn.Module, input_file: Any, batch_size: int) -> Any:
    """Split conformal calibrated on the model's backtest of the validation part (of ``input_file``'s series, when
    given, split as in training)."""
    from seqmodels.conformal import SplitConformal

    try:
        windows = datamodule.backtest_windows("val", input_file)
    except ValueError as error:
        raise ValueError(f"conformal intervals are calibrated on the validation part, but {error}") from None
    point = _forecast_windows(model, windows, batch_size)["point"].numpy()
    return SplitConformal.calibrate(point, windows.tensors["actual"].numpy())


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
    from seqmodels.conformal import adaptive_conformal, min_calibration_size, model_intervals
    from seqmodels.forecast_baselines import baseline_backtest, forecast_scores, interval_coverage, metrics_table

    t = {key: value.numpy() for key, value in windows.tensors.items() if value is not None}
    point, actual, scale = forecast["point"].numpy(), t["actual"], t["mase_scale"]
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
    if calibration is not None:
        rows["model + conformal"] = dict(rows["model"])
        if gamma:
            rows[f"model + adaptive (gamma {gamma:g})"] = dict(rows["model"])
        for level in levels:
            low, high = calibration.interval(point, level)
            columns[f"conformal_lower_{_level_text(level)}"] = low
            columns[f"conformal_upper_{_level_text(level)}"] = high
            rows["model + conformal"][f"coverage@{level:g}"] = interval_coverage(low, high, actual)
            if gamma:
                adaptive = adaptive_conformal(point, actual, calibration.scores, level, gamma, t["series"], t["origin"])
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
        short = [f"{level:.0%}" for level in levels if calibration.size < min_calibration_size(level)]
        if short:
            note += (
                f"\nconformal {', '.join(short)}: {calibration.size} validation windows give no finite radius "
                f"(intervals of +-inf); a longer validation part (data.val_size) gives one"
            )
    table = metrics_table(rows, table_levels)
    return columns, f"forecasters on the {split} part ({actual.size} values):\n{table}{note}"


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


def clip_paths(cfg: DictConfig) -> list[Path]:
    """``input_file``: one clip (a video file or a ``.npy``/``.npz`` array), or a folder of them (sorted by name;
    ``folder/<class>/*`` too)."""
    from seqmodels.data.video import list_frame_files

    if cfg.get("input") is not None or cfg.get("input_file") is None:
        raise ValueError(
            "a video classifier reads clips, not text: pass input_file=clip.mp4 or clip.npy (or a folder of clips)"
        )
    path = Path(str(cfg.input_file)).expanduser()
    if path.is_dir():
        return list_frame_files(path)[0]
    if not path.is_file():
        raise FileNotFoundError(
            f"input_file={cfg.input_file}: no such file or folder; pass a clip (.mp4, .npy, ...) or a folder of them"
        )
    return [path]


def label_texts(
    cfg: DictConfig, checkpoint: dict[str, Any] | None = None
) -> list[tuple[str, list[tuple[str, float]]]] | None:
    """For a text classifier: per input, its ``n_best`` labels with their probabilities. For a tagger: per input
    sentence (words separated by spaces), its tags, one per word. For a classifier whose datamodule reads files
    (``inputs_from_file``: video clips), per file of :func:`clip_paths`, its ``n_best`` labels with their
    probabilities. None for other checkpoints."""
    if checkpoint is None:
        checkpoint = load_checkpoint(cfg.ckpt_path, weights_only=cfg.get("weights_only", True))
    reads = task_capabilities(checkpoint)[1].predict
    if reads not in (Prediction.TEXT_TO_LABEL, Prediction.TEXT_TO_TAGS):
        return None
    model, datamodule = build_from_checkpoint(checkpoint, setup_data=False)
    reads_files = reads is Prediction.TEXT_TO_LABEL and hasattr(datamodule, "inputs_from_file")
    if not reads_files and not hasattr(datamodule, "inputs_from_text"):
        raise ValueError(
            f"{cfg.ckpt_path} classifies {type(datamodule).__name__} data, not text; score it on its data with "
            f"seqmodels-eval ckpt_path={cfg.ckpt_path}"
        )
    tagger = reads is Prediction.TEXT_TO_TAGS
    if tagger and cfg.n_best != 1:
        raise ValueError(f"a tagger gives one tag per word; set n_best=1 (got {cfg.n_best})")
    num_classes = 0 if tagger else len(datamodule.class_names)  # type: ignore[attr-defined]
    if not tagger and not 1 <= cfg.n_best <= num_classes:
        raise ValueError(f"n_best must be in [1, {num_classes}] (the classes), got {cfg.n_best}")
    device = requested_device(cfg)
    model.to(device).eval()
    inputs = [str(path) for path in clip_paths(cfg)] if reads_files else read_inputs(cfg)
    results: list[tuple[str, list[tuple[str, float]]]] = []
    with torch.no_grad():
        for start in range(0, len(inputs), cfg.batch_size):
            chunk = inputs[start : start + cfg.batch_size]
            if reads_files:  # the datamodule's own reader and batching, as in training
                clips = [datamodule.inputs_from_file(path) for path in chunk]  # type: ignore[attr-defined]
                batch = datamodule.collate_fn(clips).to(device)  # type: ignore[attr-defined]
            else:
                items = [datamodule.inputs_from_text(text) for text in chunk]  # type: ignore[attr-defined]
                batch = pad_collate(items, padding_value=datamodule.input_padding_value).to(device)
            if tagger:
                tags = model.predict_step(batch, 0)
                results.extend((text, [(" ".join(row), 1.0)]) for text, row in zip(chunk, tags, strict=True))
                continue
            top = model.predict_step(batch, 0)["probs"].topk(cfg.n_best, dim=-1)
            for text, probs, ids in zip(chunk, top.values.tolist(), top.indices.tolist(), strict=True):
                labels = [datamodule.class_names[i] for i in ids]  # type: ignore[attr-defined]
                results.append((text, list(zip(labels, probs, strict=True))))
    return results


Results = list[tuple[str, list[tuple[str, float]]]]


def predict_from_checkpoint(cfg: DictConfig) -> tuple[Prediction, Results | None]:
    """Runs what the checkpoint's task declares it predicts; returns that kind of prediction and, per input, its
    ``n_best`` outputs with their scores (None for a forecaster, whose CSV :func:`write_forecasts` has written)."""
    check_output_file(cfg)  # before any work: a bad path must not cost a whole prediction run
    checkpoint = load_checkpoint(cfg.ckpt_path, weights_only=cfg.get("weights_only", True))
    task, capabilities = task_capabilities(checkpoint)
    if capabilities.predict is not Prediction.SERIES_TO_FORECAST:
        for key in ("backtest", "conformal", "baselines"):
            if cfg.get(key):
                raise ValueError(f"{key}={cfg.get(key)} needs a forecasting checkpoint; {cfg.ckpt_path} is not one")
    if capabilities.predict is None:
        raise capabilities.refusal(task, "seqmodels-predict", cfg.ckpt_path)
    if cfg.get("stream") and capabilities.predict is not Prediction.AUDIO_TO_TEXT:
        raise ValueError(
            f"stream=true streams audio into a speech (CTC) checkpoint; {cfg.ckpt_path} is a {task.__name__} "
            "checkpoint: drop stream=true"
        )
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
