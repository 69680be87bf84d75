"""The one place seqmodels relies on Lightning internals, and why. Both uses are for speed only.

1. **The forecaster's direct optimizer step** (:func:`can_step_directly`, :func:`step_directly`). A small
   forecaster's CPU step is about 3.5 ms; Lightning's public manual step (``manual_backward`` and
   ``LightningOptimizer.step``) passes through the strategy and precision plugin and calls a dozen hooks, about a
   tenth of that. With nothing listening to those hooks, :class:`~seqmodels.tasks.ForecastingTask` calls
   ``loss.backward()`` and the torch optimizer itself: the README's ``forecasting`` figure (1.18x a plain PyTorch
   loop per epoch; going through Lightning's wrappers measured about 0.1x more) depends on it. The step must
   still be counted (``global_step``, which checkpoints, schedulers and loggers read), and Lightning's only way to
   count a manual step is the pair of callables its manual loop puts on each ``LightningOptimizer`` for the
   duration of a training step: ``_on_before_step`` and ``_on_after_step`` (in
   ``lightning.pytorch.loops.optimization.manual._ManualOptimization.on_run_start``). :func:`step_directly` calls
   them around the torch step.
2. **Lightning's hook name** (:class:`CheapHookName`): Lightning sets ``LightningModule._current_fx_name`` around
   every hook call, about 40 times a training step; ``nn.Module.__setattr__``'s checks for parameters, buffers
   and submodules cost about 0.1 ms a step there, which the mixin skips for that one plain string.
3. **Step signatures** (:func:`cache_step_signatures`): Lightning's loops ask ``inspect.getfullargspec`` of the
   task's ``training_step`` (or ``validation_step``) at every batch, whether it takes ``batch_idx`` or
   ``dataloader_iter``: about 30 us a step, rebuilt from the code object each time. A function's
   ``__signature__`` is inspect's own cache, so each task class stores its step methods' signatures once. This
   uses no Lightning name; Lightning without the per-batch check simply never reads it.
4. **Logged values already in place** (:func:`skip_moves_to_the_same_device`): every ``self.log`` moves the
   stored result (``_ResultMetric.to``) to the device of the new value, which walks the whole object with
   ``apply_to_collection`` and deep-copies its metadata: about 0.13 ms per call, 8 calls per forecasting epoch,
   even when nothing moves. The patched ``to`` returns at once when the stored value and count are already on
   that device, and otherwise moves them as before.

If Lightning renames any of these, :func:`missing` names what is gone, :func:`can_step_directly` returns False (the
task then takes Lightning's public path, which trains identically, only slower), and
``tests/test_task_plumbing.py`` fails with that list. Nothing else in seqmodels touches Lightning's private API.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.utilities.model_helpers import is_overridden

# The hooks Lightning's wrappers call around backward and the optimizer step: if a callback or the task listens to
# one of them, the step goes through Lightning.
STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
_STEP_COUNTERS = ("_on_before_step", "_on_after_step")
_MANUAL_LOOP = "lightning.pytorch.loops.optimization.manual._ManualOptimization"
_RESULT_METRIC = "lightning.pytorch.trainer.connectors.logger_connector.result._ResultMetric"


class CheapHookName:
    """Mixin (before ``LightningModule`` in the bases): Lightning's ``_current_fx_name`` bypasses ``nn.Module``'s
    ``__setattr__``. Every other attribute goes through it as usual."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


@functools.cache
def missing() -> tuple[str, ...]:
    """The private Lightning names this module relies on that the installed Lightning lacks (empty: all there)."""
    gone: list[str] = []
    probe = LightningOptimizer(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0))
    gone += [f"LightningOptimizer.{name}" for name in _STEP_COUNTERS if not callable(getattr(probe, name, None))]
    try:
        from lightning.pytorch.loops.optimization.manual import _ManualOptimization
    except ImportError:
        gone.append(_MANUAL_LOOP)
    else:
        gone += [f"{_MANUAL_LOOP}.{name}" for name in _STEP_COUNTERS if not hasattr(_ManualOptimization, name)]
    if "_current_fx_name" not in vars(L.LightningModule()):
        gone.append("LightningModule._current_fx_name")
    try:
        from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric
    except ImportError:
        gone.append(_RESULT_METRIC)
    else:
        gone += [
            f"{_RESULT_METRIC}.{name}"
            for name in ("to", "value", "cumulated_batch_size")
            if not _has(_ResultMetric, name)
        ]
    return tuple(gone)


def _has(result_metric_class: type, name: str) -> bool:
    if name == "to":
        return callable(getattr(result_metric_class, "to", None))
    probe = result_metric_class(_probe_metadata(), is_tensor=True)
    return isinstance(probe.__dict__.get(name), torch.Tensor)


def _probe_metadata() -> Any:
    from lightning.pytorch.trainer.connectors.logger_connector.result import _Metadata

    return _Metadata(fx="probe", name="probe")


def skip_moves_to_the_same_device() -> None:
    """Make ``_ResultMetric.to(device)`` return at once when its tensors are already on ``device`` (idempotent).

    Every other call, and every call where either tensor is elsewhere, runs Lightning's own ``to``."""
    if missing():
        return
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric

    moving = _ResultMetric.to
    if getattr(moving, "skips_same_device", False):
        return

    @functools.wraps(moving)
    def to(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs and isinstance(args[0], torch.device):
            state = self.__dict__
            value, count = state.get("value"), state.get("cumulated_batch_size")
            if (
                isinstance(value, torch.Tensor)
                and isinstance(count, torch.Tensor)
                and value.device == args[0]
                and count.device == args[0]
            ):
                return self
        return moving(self, *args, **kwargs)

    to.skips_same_device = True  # type: ignore[attr-defined]
    _ResultMetric.to = to


def can_step_directly(module: L.LightningModule) -> bool:
    """True when ``module`` (manual optimization) may call :func:`step_directly` and torch's backward itself.

    That is when nothing needs Lightning's wrappers: one device, 32-bit precision, no profiler, one optimizer, no
    callback (or override of ``module``) on the hooks they call, and the private names above still exist.
    """
    trainer = module.trainer
    if module.automatic_optimization or missing():
        return False
    if type(trainer.strategy) is not SingleDeviceStrategy or type(trainer.precision_plugin) is not Precision:
        return False
    if not isinstance(trainer.profiler, PassThroughProfiler) or len(trainer.optimizers) != 1:
        return False
    if any(is_overridden(hook, callback, L.Callback) for callback in trainer.callbacks for hook in STEP_HOOKS):
        return False
    return not any(is_overridden(hook, module, L.LightningModule) for hook in (*STEP_HOOKS, "backward"))


STEP_METHODS = ("training_step", "validation_step", "test_step", "predict_step")


def cache_step_signatures(cls: type) -> None:
    """Store the signature of each step method ``cls`` defines on the function itself (``__signature__``), which
    ``inspect`` returns without re-reading the code object."""
    for name in STEP_METHODS:
        function = vars(cls).get(name)
        if inspect.isfunction(function) and "__signature__" not in vars(function):
            function.__signature__ = inspect.signature(function)


def step_directly(optimizer: LightningOptimizer) -> None:
    """``optimizer.step()`` without the strategy, precision plugin and hooks: the torch optimizer's step, between
    the two callables with which Lightning's manual loop counts it (``global_step``)."""
    optimizer._on_before_step()
    optimizer.optimizer.step()
    optimizer._on_after_step()


__all__ = [
    "STEP_HOOKS",
    "STEP_METHODS",
    "CheapHookName",
    "cache_step_signatures",
    "can_step_directly",
    "missing",
    "skip_moves_to_the_same_device",
    "step_directly",
]
