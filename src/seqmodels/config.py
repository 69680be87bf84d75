"""Config plumbing the entrypoints share: where the config tree lives, resolvers, building objects from configs."""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
import secrets
import sysconfig
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.errors import InstantiationException
from lightning.pytorch import Callback, LightningDataModule
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf


def config_dir() -> Path:
    """The Hydra config tree: shipped inside the wheel, or ``configs/`` at the root of a source checkout."""
    packaged = Path(__file__).resolve().parent / "configs"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "configs"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"seqmodels' config tree was found neither at {packaged} nor at {checkout}; reinstall seqmodels"
    )


_active_datamodule: LightningDataModule | None = None


def _datamodule_dim(name: str) -> Any:
    if _active_datamodule is None:
        raise ValueError(
            f"${{datamodule:{name}}} needs a set-up datamodule; build the model with "
            "seqmodels.config.instantiate_model(cfg.model, datamodule)"
        )
    value = _active_datamodule.dim(name)
    # Resolvers may return primitives or OmegaConf containers, not plain lists (e.g. tag names).
    return OmegaConf.create(list(value)) if isinstance(value, (list, tuple)) else value


def _optuna_direction(mode: str) -> str:
    directions = {"max": "maximize", "min": "minimize"}
    if mode not in directions:
        raise ValueError(f"optimized_mode must be 'max' or 'min', got {mode!r}")
    return directions[mode]


def _python_lib() -> str:
    # The running Python's standard library: source text present wherever seqmodels is installed.
    return sysconfig.get_paths()["stdlib"]


def _run_id() -> str:
    # Two runs started in the same microsecond still get their own folder.
    return secrets.token_hex(2)


def register_resolvers() -> None:
    """``${datamodule:num_classes}`` reads sizes the data determines; ``${eval_direction:max}`` -> maximize;
    ``${python_lib:}`` is the standard library's folder (a text corpus that ships with every Python)."""
    OmegaConf.register_new_resolver("datamodule", _datamodule_dim, replace=True)
    OmegaConf.register_new_resolver("python_lib", _python_lib, replace=True)
    OmegaConf.register_new_resolver("eval_direction", _optuna_direction, replace=True)
    OmegaConf.register_new_resolver("run_id", _run_id, replace=True, use_cache=True)


register_resolvers()


@contextlib.contextmanager
def active_datamodule(datamodule: LightningDataModule) -> Iterator[None]:
    """Within this block ``${datamodule:...}`` interpolations resolve against ``datamodule``."""
    global _active_datamodule
    previous, _active_datamodule = _active_datamodule, datamodule
    try:
        yield
    finally:
        _active_datamodule = previous


def instantiate_datamodule(
    data_cfg: DictConfig, state: dict[str, Any] | None = None, setup: bool = True
) -> LightningDataModule:
    """Builds the datamodule and sets it up, so its sizes (classes, channels, vocabulary) are known.

    With ``setup=False`` no data is read: a checkpoint's ``state`` alone (vocabulary, scaler) must do, as when
    generating from a checkpoint whose corpus is not at hand.
    """
    datamodule = hydra.utils.instantiate(data_cfg)
    if state:
        # A checkpoint's vocabulary/scaler must be in place before setup builds anything from the data.
        datamodule.load_state_dict(state)
    if setup:
        datamodule.prepare_data()
        datamodule.setup("fit")
    return datamodule


def resolve_with_datamodule(cfg: DictConfig, datamodule: LightningDataModule) -> None:
    """Resolves the run's interpolations in place, ``${datamodule:...}`` included."""
    with active_datamodule(datamodule):
        for key in cfg:
            # Hydra's own node (present when composed with return_hydra_config) resolves at run time only.
            if key != "hydra" and OmegaConf.is_config(cfg[key]):
                OmegaConf.resolve(cfg[key])


def instantiate_callbacks(callbacks_cfg: DictConfig | None) -> list[Callback]:
    callbacks: list[Callback] = []
    for name, cb_conf in (callbacks_cfg or {}).items():
        if cb_conf is None:
            continue  # removed by an override such as callbacks.early_stopping=null
        if not isinstance(cb_conf, DictConfig) or "_target_" not in cb_conf:
            raise ValueError(f"callbacks.{name} must be a config with a _target_, got {cb_conf!r}")
        callbacks.append(hydra.utils.instantiate(cb_conf))
    return callbacks


def instantiate_loggers(logger_cfg: DictConfig | None) -> list[Logger]:
    loggers: list[Logger] = []
    for name, lg_conf in (logger_cfg or {}).items():
        if lg_conf is None:
            continue
        if not isinstance(lg_conf, DictConfig) or "_target_" not in lg_conf:
            raise ValueError(f"logger.{name} must be a config with a _target_, got {lg_conf!r}")
        loggers.append(hydra.utils.instantiate(lg_conf))
    return loggers


def requested_device(cfg: DictConfig) -> torch.device:
    """``cfg.device`` (default cpu), refused in one line when it is malformed or names CUDA on a machine without it."""
    try:
        device = torch.device(str(cfg.get("device", "cpu")))
    except RuntimeError:
        raise ValueError(f"device={cfg.get('device')!r} is not a device; use device=cpu or device=cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA device is available; use device=cpu")
    return device


_NOISE = ("💡 Tip", "Trainer already configured with model summary callbacks")


def _not_an_advert(record: logging.LogRecord) -> bool:
    # Lightning's advert for a cloud logger, and its note that it keeps seqmodels' model summary.
    return not str(record.msg).startswith(_NOISE)


def silence_library_noise() -> None:
    """Hides messages that a seqmodels user cannot act on; every other warning and message still shows.

    Lightning 2.6 builds torch's deprecated ``LeafSpec`` internally, so torch warns on every run; and it advertises
    a cloud logger at every start.
    """
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _not_an_advert not in rank_zero.filters:
        rank_zero.addFilter(_not_an_advert)


_FULL_KEY = re.compile(r"full_key:\s*(\S+)")


def compose_run_config(
    overrides: list[str], output_dir: str | Path | None = None, config_name: str = "train"
) -> DictConfig:
    """The config ``seqmodels-train <overrides>`` would run, writing into ``output_dir`` (a temp dir if None).

    For scripts and notebooks that call :func:`seqmodels.train.train` in-process.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    out = str(output_dir) if output_dir is not None else tempfile.mkdtemp(prefix="seqmodels_")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = cfg.hydra.runtime.output_dir = out
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_experiment_choice(overrides: list[str], default: str = "japanese_vowels") -> None:
    """Refuses ``data=X`` or ``model=Y`` on a command line that names no ``experiment=``.

    Such a run would keep the default recipe's task name, optimized metric, encoder and epochs around the new data:
    consistent only by chance. One line says which recipe to name instead, or ``experiment=none``.
    """
    names = {override.split("=", 1)[0].lstrip("+~") for override in overrides}
    if "experiment" in names:
        return
    chosen = [
        f"{name}={value}"
        for name, _, value in (o.lstrip("+~").partition("=") for o in overrides)
        if name in ("data", "model")
    ]
    if chosen:
        raise ValueError(
            f"{' '.join(chosen)} without experiment= keeps experiment={default} (the default) for the task name, "
            f"metric, model and epochs; name a recipe for it (e.g. experiment={chosen[0].split('=', 1)[1]}) or "
            "pass experiment=none to compose the run from its groups"
        )


def check_run_settings(cfg: DictConfig) -> None:
    """One line for a run setting of the wrong kind, before anything is built (a torch or Lightning error later
    would not name the key: ``'<=' not supported between 'float' and 'str'``)."""
    seed = cfg.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ValueError(f"seed must be an integer (or null), got {seed!r}")
    max_epochs = (cfg.get("trainer") or {}).get("max_epochs")
    if max_epochs is not None and (not isinstance(max_epochs, int) or max_epochs < -1):
        raise ValueError(f"trainer.max_epochs must be an integer >= 1 (or -1: no limit), got {max_epochs!r}")
    if max_epochs == 0 and cfg.get("train", True):
        raise ValueError(
            "trainer.max_epochs=0 trains nothing; give it >= 1, or test a checkpoint with seqmodels-eval ckpt_path=..."
        )
    for group in ("optimizer", "scheduler"):
        node = (cfg.get("model") or {}).get(group)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        try:
            defaults = inspect.signature(hydra.utils.get_class(node._target_)).parameters
        except (ImportError, ValueError, TypeError):
            continue  # a wrong _target_ is reported when it is built
        for key, value in node.items():
            default = defaults[key].default if key in defaults else None
            if _is_number(default) and not _is_number(value):
                raise ValueError(f"model.{group}.{key} must be a number, got {value!r}")


def describe_error(exc: BaseException) -> str:
    """One line naming the problem, prefixed with the config key that raised it.

    Hydra wraps a constructor's error in ``InstantiationException``s: their innermost cause is the message. An
    error of seqmodels' own already names the problem; the low-level error it was raised from (``from exc``) does
    not replace it.
    """
    key = None
    root: BaseException = exc
    while isinstance(root, InstantiationException):
        if match := _FULL_KEY.search(str(root)):
            key = match.group(1)
        if root.__cause__ is None or root.__cause__ is root:
            break
        root = root.__cause__
    if isinstance(root, InstantiationException):
        message = str(root).splitlines()[0]
    else:
        message = str(root.args[0]) if isinstance(root, KeyError) and root.args else str(root)
    message = " ".join(message.split())
    return f"{key}: {message}" if key else message
