"""Gradient-flow diagnostics: where gradients vanish or explode, and a guard against non-finite steps.

* :class:`GradientFlow` logs ||dL/dh_t|| for every step t of every :class:`~seqmodels.nn.RecurrentEncoder`
  (each layer and direction; a line figure and a time x training-step heat-map in TensorBoard), gradient norms
  per layer and per parameter, the global norm before and after clipping, and the fraction of clipped steps.
* :class:`NonFiniteGuard` skips (and counts) or stops on a step whose loss or gradients are NaN/Inf, naming the
  step and the worst parameter.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from seqmodels.nn.recurrent import RecurrentEncoder

log = logging.getLogger(__name__)

# torch's per-layer parameter suffix: weight_hh_l1_reverse -> l1_reverse (also the LayerNorm-LSTM's ln_*_l1).
_LAYER_SUFFIX = re.compile(r"_(l\d+(?:_reverse)?)$")


def layer_of(parameter_name: str) -> str:
    """The layer a parameter belongs to: ``net.encoder.rnn.weight_hh_l1_reverse`` -> ``net.encoder.rnn.l1_reverse``,
    ``net.head.linear.weight`` -> ``net.head.linear``."""
    parent, _, leaf = parameter_name.rpartition(".")
    match = _LAYER_SUFFIX.search(leaf)
    if match:
        return f"{parent}.{match.group(1)}" if parent else match.group(1)
    return parent or leaf


def _gradients(module: torch.nn.Module) -> dict[str, Tensor]:
    return {name: p.grad for name, p in module.named_parameters() if p.grad is not None}


def total_norm(grads: list[Tensor]) -> float:
    """The global 2-norm over all gradients, as ``clip_grad_norm_`` computes it."""
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads])))


def _encoders(module: torch.nn.Module) -> dict[str, RecurrentEncoder]:
    """The module's encoders, each under its module path ("encoder" for the module itself)."""
    return {name or "encoder": m for name, m in module.named_modules() if isinstance(m, RecurrentEncoder)}


class GradientFlow(L.Callback):
    """Logs how gradients flow through time and through the network.

    Every ``every_n_steps`` optimizer steps, the encoders' hidden states are probed for that step (see
    :meth:`RecurrentEncoder.state_gradient_norms`): ||dL/dh_t|| through every path, not just the direct one from
    the head, so a curve that decays towards t = 0 is a vanishing gradient. Hooks on the encoder outputs would
    only see the head's direct gradient (zero before the last step with last-step pooling), hence the probes.
    On that step the fused kernels give way to the step-by-step loop with the same weights, and so do the engines
    of minGRU, minLSTM, IndRNN and sLSTM; for QRNN, LRU and mLSTM the probed h_t is the layer's output, which their
    recurrences do not read, so their curves show the gradient arriving from above at each step, not its decay back
    through time (see :meth:`RecurrentEncoder.state_gradient_norms`).

    Logged (to every logger; figures to TensorBoard only):
        ``grad_norm/total_before_clip``, ``grad_norm/total_after_clip``, ``grad_norm/clipped_fraction`` (running,
        over all steps so far): every ``every_n_steps``.
        ``grad_norm/layer/<layer>`` and, with ``log_parameters``, ``grad_norm/param/<name>``.
        ``state_grad/<encoder>/<layer>/first_over_last``: ||dL/dh_0|| / ||dL/dh_{L-1}||.
        Figures ``state_grad/<encoder>/<layer>`` (the line over t) and ``state_grad_heatmap/<encoder>/<layer>``
        (rows: training steps, columns: t, colour: log10 norm; the last ``max_heatmap_rows`` probed steps).

    Args:
        every_n_steps: probe and log every this many optimizer steps (>= 1).
        log_parameters: also log one gradient norm per parameter.
        max_heatmap_rows: probed steps kept for the heat-map.
        figures: draw the TensorBoard figures (needs matplotlib).
    """

    def __init__(
        self, every_n_steps: int = 50, log_parameters: bool = True, max_heatmap_rows: int = 100, figures: bool = True
    ) -> None:
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"GradientFlow: every_n_steps must be an integer >= 1, got {every_n_steps!r}")
        if max_heatmap_rows < 1:
            raise ValueError(f"GradientFlow: max_heatmap_rows must be >= 1, got {max_heatmap_rows}")
        self.every_n_steps = every_n_steps
        self.log_parameters = log_parameters
        self.max_heatmap_rows = max_heatmap_rows
        self.figures = figures
        self.steps = 0
        self.clipped_steps = 0
        # "<encoder>/<layer>" -> [(training step, (L,) norms)], the probed history behind the heat-maps.
        self.history: dict[str, list[tuple[int, Tensor]]] = defaultdict(list)
        self.last_state_norms: dict[str, Tensor] = {}
        self._probing = False
        self._due_metrics: dict[str, float] = {}
        self._before_clip = float("nan")

    def _due(self, trainer: L.Trainer) -> bool:
        return trainer.global_step % self.every_n_steps == 0

    # -- the probed step ----------------------------------------------------------------------------------------

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self._probing = self._due(trainer)
        for encoder in _encoders(pl_module).values():
            encoder.probe_states = self._probing

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._probing:
            return
        self.last_state_norms = {}
        for enc_name, encoder in _encoders(pl_module).items():
            encoder.probe_states = False
            for layer, norms in encoder.state_gradient_norms().items():
                key = f"{enc_name}/{layer}"
                self.last_state_norms[key] = norms.cpu()
                rows = self.history[key]
                rows.append((trainer.global_step, norms.cpu()))
                del rows[: -self.max_heatmap_rows]

    # -- parameter gradients, before and after clipping --------------------------------------------------------

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        grads = _gradients(pl_module)
        self._before_clip = total_norm(list(grads.values()))
        self._due_metrics = {}
        if not self._due(trainer):
            return
        by_layer: dict[str, list[Tensor]] = defaultdict(list)
        for name, grad in grads.items():
            by_layer[layer_of(name)].append(grad)
            if self.log_parameters:
                self._due_metrics[f"grad_norm/param/{name}"] = float(grad.detach().norm())
        for layer, layer_grads in by_layer.items():
            self._due_metrics[f"grad_norm/layer/{layer}"] = total_norm(layer_grads)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        for encoder in _encoders(pl_module).values():
            encoder.probe_states = False  # also when no backward ran (a skipped training_step)
        if math.isnan(self._before_clip):
            return  # no optimizer step this batch (gradient accumulation)
        after_clip = total_norm(list(_gradients(pl_module).values()))
        self.steps += 1
        # Clipping rescales the gradient (and leaves it alone otherwise), so a smaller norm means it clipped.
        self.clipped_steps += int(after_clip < self._before_clip * (1 - 1e-6))
        step = trainer.global_step - 1  # the optimizer step just taken
        if step % self.every_n_steps == 0:
            metrics = {
                "grad_norm/total_before_clip": self._before_clip,
                "grad_norm/total_after_clip": after_clip,
                "grad_norm/clipped_fraction": self.clipped_steps / self.steps,
                **self._due_metrics,
            }
            for key, norms in self.last_state_norms.items() if self._probing else ():
                metrics[f"state_grad/{key}/first_over_last"] = float(norms[0] / norms[-1].clamp_min(1e-30))
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)
            if self._probing and self.figures and trainer.is_global_zero:
                self._log_figures(trainer, step)
        self._before_clip = float("nan")
        self._probing = False

    # -- figures --------------------------------------------------------------------------------------------------

    def _log_figures(self, trainer: L.Trainer, step: int) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers or not self.last_state_norms:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        for key, norms in self.last_state_norms.items():
            line = plot_state_gradients({key: norms}, title=f"{key}, step {step}")
            heatmap = plot_state_gradient_heatmap(self.history[key], title=key)
            for logger in loggers:
                logger.experiment.add_figure(f"state_grad/{key}", line, global_step=step, close=False)
                logger.experiment.add_figure(f"state_grad_heatmap/{key}", heatmap, global_step=step, close=False)
            plt.close(line)
            plt.close(heatmap)


def plot_state_gradients(curves: dict[str, Tensor], title: str = "", ax=None):
    """A figure of ||dL/dh_t|| over t (log scale), one line per entry of ``curves`` (label -> (L,) norms)."""
    import matplotlib.pyplot as plt

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, norms in curves.items():
        values = norms.detach().cpu().double()
        steps = torch.arange(len(values))
        positive = values > 0  # padded or unreachable steps have no place on a log axis
        ax.semilogy(steps[positive].numpy(), values[positive].numpy(), label=label)
    ax.set_xlabel("time step t")
    ax.set_ylabel("||dL/dh_t||")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(True, which="major", alpha=0.3)
    if fig is not None:
        fig.tight_layout()
    return fig if fig is not None else ax.figure


def plot_state_gradient_heatmap(rows: list[tuple[int, Tensor]], title: str = ""):
    """A heat-map of log10 ||dL/dh_t||: one row per probed training step, one column per time step."""
    import matplotlib.pyplot as plt

    width = max(len(norms) for _, norms in rows)
    image = torch.full((len(rows), width), float("nan"))
    for i, (_, norms) in enumerate(rows):
        image[i, : len(norms)] = norms.double().clamp_min(1e-30).log10().float()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [s for s, _ in rows]
    shown = ax.imshow(
        image.numpy(),
        aspect="auto",
        origin="lower",
        cmap="magma",
        interpolation="nearest",
        extent=(-0.5, width - 0.5, -0.5, len(rows) - 0.5),
    )
    ticks = sorted(set(torch.linspace(0, len(rows) - 1, min(len(rows), 6)).round().long().tolist()))
    ax.set_yticks(ticks, [str(steps[i]) for i in ticks])
    ax.set_xlabel("time step t")
    ax.set_ylabel("training step")
    if title:
        ax.set_title(title)
    fig.colorbar(shown, ax=ax, label="log10 ||dL/dh_t||")
    fig.tight_layout()
    return fig


class NonFiniteError(RuntimeError):
    """Training stopped on a NaN/Inf loss or gradient (raised by :class:`NonFiniteGuard` with ``action="raise"``)."""


class NonFiniteGuard(L.Callback):
    """Catches a NaN/Inf loss or gradient before the optimizer applies it.

    Args:
        action: ``"skip"``: drop the step's gradients, so the optimizer leaves the weights (and its own state,
            e.g. Adam's moments) untouched, and count it (logged as ``train/skipped_steps``); ``"raise"``: stop with
            a :class:`NonFiniteError` naming the step and the parameter with the most non-finite gradient entries.
        max_skips: with ``"skip"``, raise once more than this many steps were skipped (None: never).

    ``skipped_steps`` holds the count.
    """

    ACTIONS = ("skip", "raise")

    def __init__(self, action: str = "skip", max_skips: int | None = None) -> None:
        if action not in self.ACTIONS:
            raise ValueError(f"NonFiniteGuard: unknown action {action!r}; choose one of {', '.join(self.ACTIONS)}")
        if max_skips is not None and max_skips < 0:
            raise ValueError(f"NonFiniteGuard: max_skips must be >= 0 or null, got {max_skips}")
        self.action = action
        self.max_skips = max_skips
        self.skipped_steps = 0
        self._loss: float | None = None

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        self._loss = float(loss.detach())

    def describe(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str | None:
        """One line naming the step and the worst parameter, or None if the loss and every gradient are finite."""
        bad = []
        for name, grad in _gradients(pl_module).items():
            count = int((~torch.isfinite(grad)).sum())
            if count:
                bad.append((count, grad.numel(), name))
        loss_ok = self._loss is None or math.isfinite(self._loss)
        if loss_ok and not bad:
            return None
        where = f"at training step {trainer.global_step} (epoch {trainer.current_epoch})"
        if not bad:
            return f"non-finite loss ({self._loss}) {where}, though every gradient is finite"
        count, numel, name = max(bad)
        loss = "unknown" if self._loss is None else f"{self._loss:.6g}"  # None: manual optimization
        return (
            f"non-finite gradient {where}: {name} has {count} of {numel} non-finite values "
            f"({len(bad)} parameters affected; loss {loss}); lower the learning rate, tighten "
            "gradient_clip_val, or check the inputs"
        )

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        problem = self.describe(trainer, pl_module)
        self._loss = None
        if problem is None:
            return
        if self.action == "raise":
            raise NonFiniteError(problem)
        self.skipped_steps += 1
        if self.max_skips is not None and self.skipped_steps > self.max_skips:
            raise NonFiniteError(
                f"{problem} ({self.skipped_steps} steps skipped, more than max_skips={self.max_skips})"
            )
        log.warning("skipping the step: %s", problem)
        # Optimizers skip parameters without a gradient; clipping ignores them too.
        for group in optimizer.param_groups:
            for param in group["params"]:
                param.grad = None
        for logger in trainer.loggers:
            logger.log_metrics({"train/skipped_steps": self.skipped_steps}, step=trainer.global_step)


__all__ = [
    "GradientFlow",
    "NonFiniteError",
    "NonFiniteGuard",
    "layer_of",
    "plot_state_gradient_heatmap",
    "plot_state_gradients",
    "total_norm",
]
