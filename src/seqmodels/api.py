"""seqmodels from Python, without Hydra override strings: train an experiment on data held in memory, and forecast
on the data's own scale.

    import seqmodels

    result = seqmodels.fit("sunspots", data=train_frame, trainer={"max_epochs": 20})
    ahead = seqmodels.forecast(result, train_frame)  # the horizon after train_frame, in its units
    result.metrics["test/mae"], ahead.point, ahead.to_frame()

    seeds = [seqmodels.fit("sunspots", data=train_frame, seed=seed) for seed in range(3)]
    seqmodels.ensemble_forecast(seeds, train_frame)  # their mean forecast (or checkpoint paths instead)

    stream = seqmodels.api.stream_forecast(result)  # or a checkpoint path
    for value in new_values:  # one observation at a time, in the data's units
        ahead = stream.update(value)  # the horizon after it, without re-reading the history

:func:`fit` composes the same run config as ``seqmodels-train experiment=<experiment> ...`` (recipes in
``configs/experiment``), changes it with keyword arguments named after the config's top-level keys (nested dicts or
dotted keys: ``trainer={"max_epochs": 5}``, ``model={"net.encoder.hidden_size": 32}``; the data config is
``datamodule={...}``, since ``data`` is the data itself), and trains with the experiment's datamodule built around
``data``.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import io
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from seqmodels.config import compose_run_config, config_dir, silence_library_noise
from seqmodels.data.forecasting import Forecast
from seqmodels.data.timeseries_sources import Series, future_times
from seqmodels.train import TrainResult, train

#: What ``quiet=True`` sets before the caller's own keywords (which win): no progress bar, no model summary table.
QUIET_SETTINGS: dict[str, Any] = {
    "callbacks.rich_progress_bar": None,
    "callbacks.model_summary": None,
    "trainer.enable_progress_bar": False,
    "trainer.enable_model_summary": False,
}

#: Keyword arguments of :func:`fit` that name a config key other than themselves.
KEYWORD_KEYS = {"datamodule": "data"}

_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning_fabric", "pytorch_lightning")


def experiments() -> list[str]:
    """The recipes :func:`fit` (and ``seqmodels-train experiment=...``) can run."""
    return sorted(path.stem for path in (config_dir() / "experiment").glob("*.yaml"))


def fit(
    experiment: str,
    data: Any = None,
    output_dir: str | Path | None = None,
    *,
    overrides: Sequence[str] = (),
    quiet: bool = True,
    **config: Any,
) -> TrainResult:
    """Trains and tests ``experiment`` (a recipe of ``configs/experiment``, as ``seqmodels-train experiment=...``)
    on ``data`` held in memory; returns the run's :class:`~seqmodels.train.TrainResult`.

    Args:
        experiment: the recipe, e.g. ``"sunspots"`` (a univariate forecaster), ``"text_classification"``,
            ``"ner"``, ``"translation"``, ``"char_lm"``, ``"japanese_vowels"`` (see :func:`experiments`).
        data: the data itself, in any form the experiment's datamodule takes as ``data=`` (a DataFrame or arrays of
            series, ``(text, label)`` pairs, ``(tokens, tags)`` sentences, ``(source, target)`` pairs, a text,
            ``(X, y)``; see the datamodule's docstring). It replaces the experiment's files or bundled data set, in
            the run and in the config its checkpoints keep. None: the experiment's own data.
        output_dir: where checkpoints and logs go (None: a new temporary folder, kept: the best checkpoint lives
            there). A folder that already holds another run's checkpoints is refused.
        overrides: Hydra override strings, for what keywords cannot say: config groups
            (``"model/encoder=lstm"``) or ``+key=value``/``~key`` edits.
        quiet: no progress bar, no model summary, no table of test metrics, no Lightning start-up lines and no
            closing summary on stdout (the keywords below can still switch the first two back on).
        **config: top-level config keys (``trainer``, ``model``, ``callbacks``, ``logger``, ``seed``,
            ``optimized_metric``, ...; ``datamodule`` for the data config) set to a value or a nested dict, whose
            keys may be dotted: ``trainer={"max_epochs": 5}``, ``model={"net": {"encoder": {"hidden_size": 32}}}``,
            ``datamodule={"lookback": 48}``, ``logger=None``, ``seed=0``. A key must exist in the composed config,
            or be a parameter of the class its node builds (``trainer={"enable_checkpointing": False}`` needs no
            ``+``); an unknown key is a one-line ``ValueError`` naming it (with the nearest known key).

    Returns:
        ``metrics`` (``val/*``, ``test/*``, ``best/<metric>``), ``best_model_path``, ``task`` (with the best
        checkpoint's weights, those the test metrics score) and ``datamodule`` (fitted: vocabulary, labels,
        scaler). For forecasters, :func:`forecast` and :func:`backtest` turn them into forecasts on the data's scale.
    """
    if not isinstance(experiment, str) or experiment not in experiments():
        raise ValueError(f"unknown experiment {experiment!r}; choose one of {', '.join(experiments())}")
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise ValueError(f'overrides must be a list of strings such as ["model/encoder=lstm"], got {overrides!r}')
    try:
        cfg = compose_run_config([f"experiment={experiment}", *overrides], output_dir)
    except Exception as exc:  # Hydra's parse and composition errors run over several lines
        raise ValueError(f"overrides {list(overrides)}: {' '.join(str(exc).split())}") from None
    settings = _settings(config)
    _check_keys(cfg, settings)
    with open_dict(cfg):
        if quiet:
            for key, value in QUIET_SETTINGS.items():
                if _exists(cfg, key.rsplit(".", 1)[0]):
                    OmegaConf.update(cfg, key, value, merge=False, force_add=True)
        datamodule = None
        if data is not None:
            datamodule_class = _datamodule_class(cfg, experiment)
            for key, value in getattr(datamodule_class, "memory_config", {}).items():
                OmegaConf.update(cfg, f"data.{key}", value, merge=False, force_add=True)
        for shown, key, value in settings:
            try:
                OmegaConf.update(cfg, key, value, merge=False, force_add=True)
            except Exception as exc:  # e.g. a value OmegaConf cannot hold (an object)
                raise ValueError(f"{shown}: cannot set {value!r} ({' '.join(str(exc).split()[:12])})") from None
    if data is not None:
        # _partial_: the config's values are resolved, the data itself never goes through OmegaConf.
        datamodule = hydra.utils.instantiate(cfg.data, _partial_=True)(data=data)
    with _quiet(quiet):
        result = train(cfg, extra_callbacks=[_NoResultsTable()] if quiet else None, datamodule=datamodule)
    if result.best_model_path:
        from seqmodels.checkpoint import load_checkpoint

        result.task.load_state_dict(load_checkpoint(result.best_model_path)["state_dict"])
    return result


def forecast(result: TrainResult, history: Any = None) -> Forecast:
    """The ``horizon`` steps after the end of each series of ``history``, on the data's own scale.

    ``history`` is on the user's scale, in any form the datamodule takes as data (a DataFrame with the training
    columns, a pandas Series, arrays, ...) or a CSV path; None: the series the run trained on. It is scaled with the
    run's fitted scaler before the network sees it, and the forecast scaled back (see
    :meth:`ForecastingDataModule.forecast <seqmodels.data.ForecastingDataModule.forecast>`).
    """
    return _forecaster(result).forecast(result.task, history)


def backtest(result: TrainResult, split: str = "test", history: Any = None) -> Forecast:
    """Historical forecasts from every origin of the ``"val"`` or ``"test"`` part of each series, on the data's own
    scale, with the actual values and the naive and seasonal-naive forecasts beside them (see
    :meth:`ForecastingDataModule.backtest <seqmodels.data.ForecastingDataModule.backtest>`)."""
    return _forecaster(result).backtest(result.task, split, history)


def ensemble_forecast(models: Sequence[Any], history: Any = None, *, combine: str = "mean") -> Forecast:
    """As :func:`forecast`, by an ensemble of forecasters: ``models`` are the TrainResults
    of :func:`fit` or forecasting checkpoint paths (seeds, or the runs of a multirun), trained on the same data
    setup (a mismatch is a one-line ``ValueError`` naming the setting). Point forecasts and quantiles are the
    members' mean (``combine="median"``: their median); a Gaussian head's interval comes from the members' mixture
    (see :class:`seqmodels.predict.ForecastEnsemble`)."""
    task, datamodule = _ensemble(models, combine)
    return datamodule.forecast(task, history)


def ensemble_backtest(
    models: Sequence[Any], split: str = "test", history: Any = None, *, combine: str = "mean"
) -> Forecast:
    """As :func:`backtest`, by the ensemble of :func:`ensemble_forecast`."""
    task, datamodule = _ensemble(models, combine)
    return datamodule.backtest(task, split, history)


def stream_forecast(model: Any, num_series: int = 1, names: Sequence[str] | None = None) -> ForecastStream:
    """A :class:`ForecastStream` over a trained forecaster: feed it observations on the data's own scale, one at a
    time (or in chunks), and get the horizon after each, on the same scale, without re-reading the history.

    Args:
        model: the :class:`~seqmodels.train.TrainResult` of :func:`fit`, or a forecasting checkpoint's path.
        num_series: N, series streamed side by side (one batch).
        names: their names (default ``"0"``, ``"1"``, ...).
    """
    if isinstance(model, TrainResult):
        _forecaster(model)
        task, datamodule = model.task, model.datamodule
    elif isinstance(model, (str, Path)):
        from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint

        task, datamodule = build_from_checkpoint(load_checkpoint(model), setup_data=False)
    else:
        raise TypeError(
            f"pass the TrainResult that seqmodels.fit returned or a checkpoint path, got {type(model).__name__}"
        )
    return ForecastStream(task, datamodule, num_series, names)


class ForecastStream:
    """Streams observations on the data's own scale through a trained forecaster: each :meth:`update` (one step)
    or :meth:`extend` (T steps, one fused encoder call) scales the new observations with the training scaler,
    advances the network's recurrent state and returns the forecast of the ``horizon`` steps after them as a
    :class:`~seqmodels.data.forecasting.Forecast` on the data's scale. The forecast equals the batch forecast
    (:func:`forecast`, ``ForecastingTask.forecast``) with every observation streamed so far as its lookback: each
    new observation costs one recurrent step, never a re-run of the history.

    Needs a forecaster trained with ``window_norm=none`` and a unidirectional encoder.

    Args:
        task: the trained ``ForecastingTask``.
        datamodule: the ``ForecastingDataModule`` it was trained with (or one given its checkpoint's state).
        num_series: N, series streamed side by side; names: their names.

    Per observation (shapes for N series, T steps; a single series and step may drop those axes):
        values: (N, T, C) targets; past: (N, T, P) past covariates; future: (N, T, F) known-future covariates at
        the observed steps and ``ahead`` (N, H, F) at the H steps to forecast; ``time``: (T,) the steps' times
        (dates or numbers, one axis for all N series), needed when the model uses calendar features. Without time,
        the forecast's ``time`` counts steps from the first observation (1, 2, ...).
    """

    #: Time points kept to infer the sampling step of the forecast steps' times.
    KEEP_TIMES = 256

    def __init__(self, task: Any, datamodule: Any, num_series: int = 1, names: Sequence[str] | None = None) -> None:
        net = getattr(task, "net", None)
        if not callable(getattr(task, "forecast_stream", None)) or not hasattr(net, "stream"):
            raise TypeError(f"streaming forecasts need a ForecastingTask (the trained task), got {type(task).__name__}")
        if not hasattr(datamodule, "target_scaler") or not hasattr(datamodule, "_features"):
            raise TypeError(f"streaming forecasts need the ForecastingDataModule, got {type(datamodule).__name__}")
        if not isinstance(num_series, int) or isinstance(num_series, bool) or num_series < 1:
            raise ValueError(f"num_series must be an integer >= 1, got {num_series!r}")
        if datamodule.mean is None or datamodule.calendar_names is None:
            raise ValueError(
                "the datamodule has no fitted scaler; pass the one the task was trained with (seqmodels.fit's "
                "result.datamodule) or stream from the checkpoint (stream_forecast(path))"
            )
        ours, theirs = datamodule.target_scaler(), task.scaler
        same = (
            ours.transform == theirs.transform
            and torch.allclose(ours.mean, theirs.mean.detach().cpu())
            and torch.allclose(ours.std, theirs.std.detach().cpu())
        )
        if not same:
            raise ValueError(
                "the task's target scaler is not this datamodule's: stream with the datamodule the task was trained "
                "with (or one given its checkpoint's state)"
            )
        self.task, self.datamodule = task, datamodule
        self.num_series = num_series
        self.names = [str(n) for n in names] if names is not None else [str(i) for i in range(num_series)]
        if len(self.names) != num_series:
            raise ValueError(f"got {len(self.names)} names for num_series={num_series}; give one name per series")
        # Static covariates and per-series statistics of these (training) series, for every chunk streamed.
        self.context: dict[str, torch.Tensor] = datamodule.series_context(self.names)
        statics = {k: v for k, v in self.context.items() if k.startswith("static_")}
        net.initial_state(num_series, **statics)  # refuses a network that cannot stream, in one line
        self.horizon: int = datamodule.horizon
        self.num_targets: int = datamodule.num_targets
        self.num_past, self.num_future = len(datamodule.past_covariates), len(datamodule.future_covariates)
        self.calendar: list[str] = list(datamodule.calendar_names)
        self.reset()

    def reset(self) -> None:
        """Forgets every observation: the next one starts a new history."""
        self.state: Any = None  # the network's state (None: nothing observed)
        self.observed = 0
        self._times: np.ndarray | None = None  # the last KEEP_TIMES time points (None: no time given)

    # -------------------------------------------------------------------------------------------- observing
    def update(
        self, values: Any, time: Any = None, past: Any = None, future: Any = None, ahead: Any = None
    ) -> Forecast:
        """Reads one observation per series (``values`` (N, C); a float for one series and target) and returns the
        forecast of the ``horizon`` steps after it. ``time``: its time; ``past``, ``future``, ``ahead`` as in the
        class docstring (without the T axis)."""
        return self._observe(1, values, None if time is None else [time], past, future, ahead)

    def extend(
        self, values: Any, time: Any = None, past: Any = None, future: Any = None, ahead: Any = None
    ) -> Forecast:
        """Reads T observations per series (``values`` (N, T, C); (T,) for one series and target) in one fused
        encoder call and returns the forecast of the ``horizon`` steps after the last one."""
        shape, C = np.shape(values), self.num_targets
        if len(shape) == 3:
            T = shape[1]
        elif self.num_series > 1:  # (N, T) for one target, (N, C) for one step
            T = shape[1] if len(shape) == 2 and C == 1 else 1
        else:  # (T, C), (T,) for one target, (C,) for one step
            T = shape[0] if len(shape) == 2 or (len(shape) == 1 and C == 1) else 1
        return self._observe(T, values, time, past, future, ahead)

    def _observe(self, T: int, values: Any, time: Any, past: Any, future: Any, ahead: Any) -> Forecast:
        if T < 1:
            raise ValueError(f"extend takes (N, T, C) values with T >= 1, got shape {np.asarray(values).shape}")
        N, H, dm = self.num_series, self.horizon, self.datamodule
        values = _shaped(values, (N, T, self.num_targets), "values", "targets")
        past = _shaped(past, (N, T, self.num_past), "past", "past covariates")
        future = _shaped(future, (N, T, self.num_future), "future", "known-future covariates")
        ahead = _shaped(ahead, (N, H, self.num_future), "ahead", "known-future covariates of the steps ahead")
        for name, array in (("values", values), ("past", past), ("future", future), ("ahead", ahead)):
            if not np.isfinite(array).all():
                raise ValueError(
                    f"{name} holds NaN or inf at a streamed step; fill or interpolate missing values before streaming"
                )
        times, step_times, forecast_times = self._times_of(T, time)
        inputs, features = [], []
        for n in range(N):
            observed = Series(self.names[n], step_times, values[n], past[n], future[n])
            coming = Series(
                self.names[n], forecast_times, np.ones((H, self.num_targets)), np.zeros((H, self.num_past)), ahead[n]
            )
            inputs.append(dm._features(observed)[0])
            features.append(dm._features(coming)[1])
        task = self.task
        device = task.target_mean.device
        chunk = torch.stack(inputs).to(device)
        features_ahead = torch.stack(features).to(device) if features[0].shape[1] else None
        was_training = task.training or task.net.training
        if was_training:  # switching modes walks every module: only when needed
            task.eval()
        try:
            context = {key: value.to(device) for key, value in self.context.items()}
            out, state = task.forecast_stream(chunk, self.state, features_ahead, **context)
        finally:
            if was_training:
                task.train()
        self.state, self.observed, self._times = state, self.observed + T, times
        arrays: dict[str, Any] = {key: value.detach().cpu().numpy() for key, value in out.items()}
        levels = getattr(task.net.output, "levels", None)
        if "quantiles" in arrays and levels is not None:
            arrays["quantile_levels"] = [float(level) for level in levels.tolist()]
        return Forecast(
            series=list(self.names),
            time=np.broadcast_to(forecast_times, (N, H)).copy(),
            target_names=list(dm.target_names),
            **arrays,
        )

    def _times_of(self, T: int, time: Any) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """(time points kept after this chunk, the chunk's times, the forecast steps' times), all checked."""
        if time is None:
            if self._times is not None:
                raise ValueError("pass time with every observation, as with the first ones")
            if self.calendar:
                raise ValueError(
                    f"the model reads calendar features ({', '.join(self.calendar)}): pass each observation's time"
                )
            start = self.observed + 1
            steps = np.arange(start, start + T + self.horizon, dtype=np.float64)
            return None, steps[:T], steps[T:]
        if self._times is None and self.observed:
            raise ValueError("the first observations came without time: pass none now either (or reset the stream)")
        raw = np.asarray(time)
        if raw.shape != (T,):
            raise ValueError(f"time must hold one time per streamed step ({T}), got shape {raw.shape}")
        if np.issubdtype(raw.dtype, np.number):
            given = raw.astype(np.float64)
        else:
            try:
                given = raw.astype("datetime64[s]")
            except (TypeError, ValueError):
                raise ValueError(f"time must be dates or numbers, got {raw.tolist()[:3]}") from None
        kept = given if self._times is None else np.concatenate([self._times, given])
        if kept.dtype != given.dtype:
            raise ValueError("time switched between dates and numbers; use one kind throughout the stream")
        if not (kept[1:] > kept[:-1]).all():
            raise ValueError(f"time must be strictly increasing within the stream, got {kept[-T - 1 :].tolist()[:4]}")
        kept = kept[-self.KEEP_TIMES :]
        if len(kept) < 2:  # the sampling step is not known yet
            if self.calendar:
                raise ValueError(
                    "the forecast steps' calendar features need the sampling step, so two time points: stream the "
                    "first two observations together with extend"
                )
            unknown = np.full(self.horizon, np.nan) if given.dtype == np.float64 else np.full(self.horizon, "NaT")
            return kept, given, unknown.astype(given.dtype)
        return kept, given, future_times(kept, self.horizon)

    # -------------------------------------------------------------------------------------------- saving
    def state_dict(self) -> dict[str, Any]:
        """The stream's position: network state, count and recent times (``torch.save``s, loads with
        ``weights_only=True``)."""
        times = self._times
        kind = "none" if times is None else ("date" if np.issubdtype(times.dtype, np.datetime64) else "number")
        packed = None if times is None else torch.from_numpy(times.astype(np.int64) if kind == "date" else times)
        return {"state": self.state, "observed": self.observed, "times": packed, "time_kind": kind}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continues from a :meth:`state_dict` (of a stream over the same forecaster and series)."""
        self.state, self.observed = state_dict["state"], int(state_dict["observed"])
        times, kind = state_dict["times"], state_dict["time_kind"]
        self._times = None if times is None else times.numpy().astype("datetime64[s]" if kind == "date" else None)


def _shaped(array: Any, shape: tuple[int, int, int], name: str, what: str) -> np.ndarray:
    """``array`` as float64 of ``shape``, accepting it with any axis of size 1 left out."""
    if shape[-1] == 0:
        if array is not None:
            raise ValueError(f"the model reads no {what}; leave {name}= out")
        return np.zeros(shape)
    if array is None:
        raise ValueError(f"the model reads {shape[-1]} {what} per step; pass {name}= with them")
    try:
        out = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, got {type(array).__name__}") from None
    if out.shape != shape and out.squeeze().shape != tuple(d for d in shape if d != 1):
        raise ValueError(
            f"{name} has shape {out.shape} but this stream takes {shape} (series, steps, {what}); "
            f"pass {shape[-1]} {what} per series and step"
        )
    return out.reshape(shape)


# ------------------------------------------------------------------------------------------------ internals
def _forecaster(result: TrainResult) -> Any:
    if not isinstance(result, TrainResult):
        raise TypeError(f"pass the TrainResult that seqmodels.fit returned, got {type(result).__name__}")
    if not hasattr(result.datamodule, "forecast"):
        raise TypeError(f"{type(result.datamodule).__name__} does not forecast; train a forecasting experiment")
    return result.datamodule


def _ensemble(models: Sequence[Any], combine: str) -> tuple[Any, Any]:
    """The :class:`~seqmodels.predict.ForecastEnsemble` of ``models`` (TrainResults or checkpoint paths) and the
    datamodule that gives every member its windows."""
    from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
    from seqmodels.predict import ENSEMBLE_COMBINERS, ForecastEnsemble, check_same_forecast_setup

    if isinstance(models, (str, Path, TrainResult)) or not isinstance(models, Sequence) or not models:
        raise TypeError("pass a list of TrainResults (from seqmodels.fit) or forecasting checkpoint paths")
    if combine not in ENSEMBLE_COMBINERS:
        raise ValueError(f"combine must be one of {', '.join(ENSEMBLE_COMBINERS)}, got {combine!r}")
    checkpoints = [load_checkpoint(model) for model in models if isinstance(model, (str, Path))]  # all, before work
    loaded = iter(checkpoints)
    members = []
    for index, model in enumerate(models):
        if isinstance(model, TrainResult):
            _forecaster(model)
            name = model.best_model_path or f"model {index + 1}"
            members.append((name, model.task, model.datamodule))
        elif isinstance(model, (str, Path)):
            members.append((str(model), *build_from_checkpoint(next(loaded), setup_data=False)))
        else:
            raise TypeError(
                f"models[{index}] is a {type(model).__name__}; pass TrainResults (from seqmodels.fit) or "
                "forecasting checkpoint paths"
            )
    for name, task, _ in members:
        if not callable(getattr(task, "forecast", None)) or not hasattr(task, "scaler"):
            raise TypeError(f"{name} is a {type(task).__name__}, not a forecaster; ensemble forecasting checkpoints")
    check_same_forecast_setup(members)
    return ForecastEnsemble([task for _, task, _ in members], combine), members[0][2]


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _flatten(f"{prefix}.{key}", item)
    else:
        yield prefix, dict(value) if isinstance(value, Mapping) else value


def _settings(config: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """``(as the caller wrote it, config key, value)`` for every leaf of :func:`fit`'s keywords."""
    out = []
    for name, value in config.items():
        top = name.split(".", 1)[0]
        out += [(shown, KEYWORD_KEYS.get(top, top) + shown[len(top) :], item) for shown, item in _flatten(name, value)]
    return out


def _exists(cfg: DictConfig, key: str) -> bool:
    """Whether ``key`` names a config node (not null) in ``cfg``."""
    return isinstance(OmegaConf.select(cfg, key, default=None), DictConfig)


def _parameters(target: str) -> set[str] | None:
    """The keyword parameters the ``_target_`` takes (through ``**kwargs`` up its classes); None: any keyword."""
    try:
        obj = hydra.utils.get_object(target)
    except Exception:
        return None
    chain = [c for c in obj.__mro__ if c is not object and "__init__" in vars(c)] if isinstance(obj, type) else [obj]
    names: set[str] = set()
    for item in chain:
        try:
            parameters = inspect.signature(item).parameters
        except (TypeError, ValueError):
            return None
        names |= {n for n, p in parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return names - {"self"}
    return None


def _unknown(tree: Any, key: str, shown: str) -> str | None:
    """None when ``key`` may be set in the config ``tree``; else ``shown`` with the nearest known key, if any."""
    parts = key.split(".")
    node = tree
    for depth, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
            continue
        choices: set[str] = set(node) if isinstance(node, dict) else set()
        if depth == 0:
            choices = (choices - {"hydra", "data"}) | set(KEYWORD_KEYS)
            part = {value: name for name, value in KEYWORD_KEYS.items()}.get(part, part)
        elif isinstance(node, dict) and "_target_" in node:
            parameters = _parameters(str(node["_target_"]))
            if parameters is None or part in parameters:
                return None  # a parameter the node's class takes, not set by the recipe
            choices |= parameters
        close = difflib.get_close_matches(part, sorted(c for c in choices if not c.startswith("_")), n=1)
        shown_parts = shown.split(".")
        hint = f" (did you mean {'.'.join([*shown_parts[:depth], close[0]])}?)" if close else ""
        return shown + hint
    return None


def _check_keys(cfg: DictConfig, settings: list[tuple[str, str, Any]]) -> None:
    tree = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(tree, dict)
    tree.pop("hydra", None)
    unknown = [problem for shown, key, _ in settings if (problem := _unknown(tree, key, shown)) is not None]
    if unknown:
        raise ValueError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; fit takes the config's "
            "top-level keys (trainer, model, callbacks, logger, seed, ...; datamodule for the data config) as dicts"
        )


def _datamodule_class(cfg: DictConfig, experiment: str) -> type:
    target = str(cfg.data._target_)
    datamodule_class = hydra.utils.get_class(target)
    if "data" not in inspect.signature(datamodule_class).parameters:
        raise ValueError(
            f"experiment={experiment} reads its data with {datamodule_class.__name__}, which takes no data in memory; "
            "call fit without data="
        )
    return datamodule_class


class _NoResultsTable(L.Callback):
    """Keeps Lightning from printing its table of test metrics (rich prints it straight to a notebook's output,
    past any redirection of stdout); the metrics are in the returned ``metrics``."""

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.test_loop.verbose = False

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.validate_loop.verbose = False


@contextlib.contextmanager
def _quiet(quiet: bool) -> Iterator[None]:
    """Without Lightning's start-up lines, its warnings a caller cannot act on and the run summary on stdout."""
    silence_library_noise()
    if not quiet:
        yield
        return
    levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    try:
        for name in _LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=r".*GPU available but not used.*")
            warnings.filterwarnings("ignore", message=r".*`IterableDataset` has `__len__` defined.*")
            warnings.filterwarnings("ignore", message=r".*overridden `transfer_batch_to_device`.*")
            warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


__all__ = [
    "QUIET_SETTINGS",
    "ForecastStream",
    "backtest",
    "ensemble_backtest",
    "ensemble_forecast",
    "experiments",
    "fit",
    "forecast",
    "stream_forecast",
]
