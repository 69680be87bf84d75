"""seqmodels from Python, without Hydra override strings: train an experiment on data held in memory, and forecast
on the data's own scale.

    import seqmodels

    result = seqmodels.fit("sunspots", data=train_frame, trainer={"max_epochs": 20})
    ahead = seqmodels.forecast(result, train_frame)  # the horizon after train_frame, in its units
    result.metrics["test/mae"], ahead.point, ahead.to_frame()

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
from omegaconf import DictConfig, OmegaConf, open_dict

from seqmodels.config import compose_run_config, config_dir, silence_library_noise
from seqmodels.data.forecasting import Forecast
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


# ------------------------------------------------------------------------------------------------ internals
def _forecaster(result: TrainResult) -> Any:
    if not isinstance(result, TrainResult):
        raise TypeError(f"pass the TrainResult that seqmodels.fit returned, got {type(result).__name__}")
    if not hasattr(result.datamodule, "forecast"):
        raise TypeError(f"{type(result.datamodule).__name__} does not forecast; train a forecasting experiment")
    return result.datamodule


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


__all__ = ["QUIET_SETTINGS", "backtest", "experiments", "fit", "forecast"]
