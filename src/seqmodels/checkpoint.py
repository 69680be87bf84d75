"""The one place that loads a seqmodels checkpoint and rebuilds its task and datamodule, safely.

Trust model: configs typed on the command line or written in the user's config files are trusted; a checkpoint
is data. Its tensors load with ``torch.load(weights_only=True)``, and the run config stored inside it is rebuilt
only through an allow-list: every ``_target_``, at any depth, must name a class defined in ``seqmodels``, a
``torch.optim`` optimizer or learning-rate scheduler, or a Lightning callback. Anything else (a function such as
``builtins.open`` or ``torch.load``, a class from any other module, an interpolation that a resolver would run)
is refused with one line naming its key path, before any module it names is imported.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from seqmodels.callbacks import CHECKPOINT_KEY
from seqmodels.config import instantiate_datamodule
from seqmodels.tasks.capabilities import Capabilities


class UntrustedCheckpointError(ValueError):
    """A checkpoint's stored config asks to build something outside the allow-list."""


def _resolve(path: str) -> Any:
    """Imports ``module.attr`` for an allow-listed prefix; the caller has checked the prefix."""
    module_name, _, attr = path.rpartition(".")
    while module_name:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            module_name, _, outer = module_name.rpartition(".")
            attr = f"{outer}.{attr}"
            continue
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part, None)
        return obj
    return None


def _allowed_class(target: str) -> bool:
    """True where ``target`` names a class the checkpoint may build (see the module's trust model)."""
    if not isinstance(target, str) or not all(part.isidentifier() for part in target.split(".")):
        return False
    if target.startswith("seqmodels."):
        obj = _resolve(target)
        return isinstance(obj, type) and (obj.__module__ or "").startswith("seqmodels.")
    if target.startswith("torch.optim."):
        obj = _resolve(target)
        schedulers = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        return isinstance(obj, type) and issubclass(obj, (torch.optim.Optimizer, *schedulers))
    if target.startswith("lightning.pytorch.callbacks."):
        obj = _resolve(target)
        return isinstance(obj, type) and issubclass(obj, L.Callback)
    return False


_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def check_config(node: Any, key_path: str, source: str) -> None:
    """Raises :class:`UntrustedCheckpointError` for anything in ``node`` the allow-list does not admit.

    ``node`` is plain data (dicts, lists, strings, numbers); ``key_path`` names it in the message (e.g. ``model``).
    """
    if isinstance(node, dict):
        target = node.get("_target_")
        if "_target_" in node and not _allowed_class(target):
            raise UntrustedCheckpointError(
                f"{source}: refused to build {key_path}._target_={str(target)[:80]!r}: a checkpoint may only build "
                "seqmodels classes, torch.optim optimizers and schedulers, and Lightning callbacks; "
                "use a checkpoint written by seqmodels-train"
            )
        for flag in ("_partial_", "_recursive_"):
            if flag in node and not isinstance(node[flag], bool):
                raise UntrustedCheckpointError(f"{source}: {key_path}.{flag} must be true or false")
        if "_args_" in node and "_target_" not in node:
            raise UntrustedCheckpointError(f"{source}: {key_path}._args_ without a _target_")
        for key, value in node.items():
            if not isinstance(key, str):
                raise UntrustedCheckpointError(f"{source}: {key_path} has a non-string key {key!r}")
            if key.startswith("_") and key.endswith("_") and key not in _HYDRA_KEYS:
                raise UntrustedCheckpointError(f"{source}: {key_path}.{key} is not a key seqmodels writes")
            check_config(value, f"{key_path}.{key}", source)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            check_config(value, f"{key_path}[{index}]", source)
    elif isinstance(node, str):
        if "${" in node:  # stored configs are resolved: an interpolation here would run a resolver
            raise UntrustedCheckpointError(f"{source}: {key_path} holds an interpolation {node[:60]!r}")
    elif node is not None and not isinstance(node, (bool, int, float)):
        raise UntrustedCheckpointError(f"{source}: {key_path} holds a {type(node).__name__}, not plain data")


_TRAIN_HINT = "train one with seqmodels-train"


def load_checkpoint(path: str | os.PathLike, weights_only: bool = True) -> dict[str, Any]:
    """Loads a seqmodels checkpoint on the CPU (``weights_only=True`` unless asked otherwise) and checks its config.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` (one line naming the file) for one that is
    empty, truncated, a folder, not a seqmodels checkpoint, or holds a config outside the allow-list.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; pass ckpt_path=/path/to/run/checkpoints/epoch_NNN.ckpt")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}; pass ckpt_path=/path/to/run/checkpoints/epoch_NNN.ckpt")
    if path.stat().st_size == 0:
        raise ValueError(f"cannot load checkpoint {path}: the file is empty")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # torch raises several types for unreadable or unsafe files
        hint = " (it holds pickled objects; pass weights_only=false only if you trust it)" if weights_only else ""
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ValueError(f"cannot load checkpoint {path}{hint}: {reason}") from exc
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get(CHECKPOINT_KEY), dict):
        raise ValueError(
            f"{path} is not a seqmodels checkpoint (no '{CHECKPOINT_KEY}' config); train it with seqmodels-train"
        )
    config = checkpoint[CHECKPOINT_KEY].get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict) or "state_dict" not in checkpoint:
        raise ValueError(
            f"{path} is not a seqmodels checkpoint (no model config or weights); train it with seqmodels-train"
        )
    check_config(config, "config", str(path))
    return checkpoint


def task_class(checkpoint: dict[str, Any]) -> type:
    """The class of the checkpoint's task (its ``_target_`` passed the allow-list when the checkpoint was loaded)."""
    target = checkpoint[CHECKPOINT_KEY]["config"]["model"].get("_target_")
    if not _allowed_class(target):
        raise UntrustedCheckpointError(f"checkpoint: refused to build config.model._target_={str(target)[:80]!r}")
    return hydra.utils.get_class(target)


def task_capabilities(checkpoint: dict[str, Any]) -> tuple[type, Capabilities]:
    """The checkpoint's task class and what it declares it can do (predict, export, generate)."""
    cls = task_class(checkpoint)
    return cls, getattr(cls, "capabilities", Capabilities())


def build_from_checkpoint(
    checkpoint: dict[str, Any], data_overrides: DictConfig | None = None, setup_data: bool = True
) -> tuple[L.LightningModule, L.LightningDataModule]:
    """Rebuilds the datamodule (with its saved state) and the task (with its weights) from a loaded checkpoint.

    ``data_overrides`` come from the command line (trusted); the merged data config is checked again all the same.
    ``setup_data=False`` reads no data: enough to encode and decode with the saved vocabulary.
    """
    stored = checkpoint[CHECKPOINT_KEY]["config"]
    check_config(stored, "config", "checkpoint")  # also for a checkpoint dict built in memory
    saved = OmegaConf.create(stored)
    data_cfg = OmegaConf.merge(saved.data, data_overrides or {})
    check_config(OmegaConf.to_container(data_cfg), "config.data", "checkpoint")
    datamodule_state = checkpoint.get(hydra.utils.get_class(data_cfg._target_).__qualname__)
    datamodule = instantiate_datamodule(data_cfg, state=datamodule_state, setup=setup_data)
    model: L.LightningModule = hydra.utils.instantiate(saved.model)
    check_weights_fit(model, checkpoint["state_dict"], "the checkpoint")
    model.load_state_dict(checkpoint["state_dict"])
    return model, datamodule


def check_weights_fit(model: torch.nn.Module, state_dict: dict[str, Any], source: str) -> None:
    """One line naming the first weight of ``state_dict`` that ``model`` lacks, misses or shapes otherwise."""
    own = model.state_dict()
    for name, tensor in state_dict.items():
        if name not in own:
            raise ValueError(f"{source} holds a weight {name!r} that this model does not have; it is another model's")
        if tuple(own[name].shape) != tuple(getattr(tensor, "shape", ())):
            raise ValueError(
                f"{source}: weight {name!r} has shape {tuple(tensor.shape)}, this model's has "
                f"{tuple(own[name].shape)}; build the model with the sizes it was trained with"
            )
    missing = [name for name in own if name not in state_dict]
    if missing:
        raise ValueError(
            f"{source} lacks the weight {missing[0]!r} (and {len(missing) - 1} more); it is another model's"
        )
