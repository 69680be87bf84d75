"""Timing, statistics and reporting shared by the benchmark scripts (run them as ``python scripts/<name>.py``: this
folder is then on ``sys.path``, so they ``import benchmark_common``).

* :class:`TrainingTimer`: a Lightning callback that times training apart from validation, per epoch, in wall and
  CPU seconds, optionally skipping warm-up steps and running a hook between epochs, outside every clock.
* :func:`spread` (median, quartiles, range of repeated measurements), :func:`time_calls`, :func:`paired_ratios`.
* :func:`print_table`: aligned text columns.
* :func:`run_metrics`, :func:`best_model_path`, :func:`load_best`: what ``seqmodels.train.train`` returned.
* :data:`SCRATCH`: a script's temporary folder (its runs' checkpoints and logs), removed when it exits.
"""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch


def _scratch_folder() -> str | None:
    """When the program is one of these scripts: one temporary folder for the process, removed when it exits.

    Every run folder that ``compose_run_config`` makes without an ``output_dir`` (checkpoints, TensorBoard files)
    lands in it, so a benchmark of 40 runs leaves nothing under /tmp. ``SEQMODELS_KEEP_RUNS=1`` keeps it and names
    it at exit. A program that only imports this module (a test, a notebook) keeps its temporary folders as usual.
    """
    program = getattr(sys.modules.get("__main__"), "__file__", None)
    if program is None or Path(program).resolve().parent != Path(__file__).resolve().parent:
        return None
    folder = tempfile.mkdtemp(prefix="seqmodels_scripts_")
    tempfile.tempdir = folder
    if os.environ.get("SEQMODELS_KEEP_RUNS") == "1":
        atexit.register(lambda: print(f"run folders kept in {folder}", file=sys.stderr))
    else:
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


SCRATCH = _scratch_folder()

#: Hydra overrides that keep an in-process run's output to the scripts' own lines
QUIET = ["~callbacks.rich_progress_bar", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def environment(*details: str) -> str:
    """``torch 2.x, 2 threads`` and any further details, for a script's first line."""
    return ", ".join([f"torch {torch.__version__}", f"{torch.get_num_threads()} threads", *details])


# ------------------------------------------------------------------------------------------------ train()'s result
def run_metrics(result: Any) -> dict[str, float]:
    """The metrics of what ``train`` returned (a result object with ``.metrics``, or the metrics dict itself)."""
    return result.metrics if hasattr(result, "metrics") else result


def best_model_path(result: Any) -> str:
    """The best checkpoint of what ``train`` returned."""
    return result.best_model_path if hasattr(result, "best_model_path") else result["_best_model_path"]


def load_best(result: Any, **kwargs: Any) -> tuple[L.LightningModule, L.LightningDataModule]:
    """Task and datamodule rebuilt from the run's best checkpoint (``kwargs``: ``build_from_checkpoint``'s)."""
    from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint

    return build_from_checkpoint(load_checkpoint(best_model_path(result)), **kwargs)


# ------------------------------------------------------------------------------------------------ timing
def clock() -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (on a shared machine the second is less disturbed by others)."""
    return time.perf_counter(), time.process_time()


@dataclass
class Seconds:
    """Wall and CPU seconds, summed over spans of time."""

    wall: float = 0.0
    cpu: float = 0.0

    def add(self, start: tuple[float, float], end: tuple[float, float] | None = None) -> Seconds:
        end = clock() if end is None else end
        self.wall += end[0] - start[0]
        self.cpu += end[1] - start[1]
        return self


def since(start: tuple[float, float]) -> Seconds:
    """Wall and CPU seconds from ``start`` (a :func:`clock` reading) to now."""
    return Seconds().add(start)


@dataclass
class EpochTime:
    """One training epoch: its training steps, its validation runs, and the whole epoch (from its start to the next
    epoch's start or the end of training: training, validation and every epoch-end hook)."""

    training: Seconds = field(default_factory=Seconds)
    validation: Seconds = field(default_factory=Seconds)
    total: Seconds = field(default_factory=Seconds)


class TrainingTimer(L.Callback):
    """Times a run's training apart from its validation, per epoch (:attr:`epochs`), in wall and CPU seconds.

    An epoch's training time runs from its start to the end of its last training step, less any validation run
    in between; the sanity check is not counted.

    Args:
        warmup_steps: the first this many training steps are not counted: the clock starts at the start of the
            next step (Lightning has fetched that step's batch by then).
        after_epoch: called with each finished :class:`EpochTime` when the epoch closes (when the next one starts,
            or when training ends), outside every clock: e.g. to run a reference loop for one epoch in between.
    """

    def __init__(self, warmup_steps: int = 0, after_epoch: Callable[[EpochTime], None] | None = None) -> None:
        self.warmup_steps, self.after_epoch = warmup_steps, after_epoch
        self.epochs: list[EpochTime] = []
        self.steps = 0
        self._epoch: EpochTime | None = None
        self._epoch_start = (0.0, 0.0)
        self._running: tuple[float, float] | None = None  # the training clock's start, while it runs
        self._last_step_end: tuple[float, float] | None = None
        self._validation_start: tuple[float, float] | None = None

    # ----------------------------------------------------------------- figures
    @property
    def seconds(self) -> float:
        """Wall seconds of training, all epochs."""
        return sum(epoch.training.wall for epoch in self.epochs)

    @property
    def cpu_seconds(self) -> float:
        return sum(epoch.training.cpu for epoch in self.epochs)

    @property
    def validation_seconds(self) -> float:
        return sum(epoch.validation.wall for epoch in self.epochs)

    def summary(self) -> str:
        """``3 epochs, 4.2 min training (84 s/epoch), 0.3 min validating``."""
        epochs = len(self.epochs)
        return (
            f"{epochs} epochs, {self.seconds / 60:.1f} min training ({self.seconds / max(epochs, 1):.0f} s/epoch), "
            f"{self.validation_seconds / 60:.1f} min validating"
        )

    # ----------------------------------------------------------------- hooks
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_epoch()
        self._epoch, self._epoch_start = EpochTime(), clock()
        self._running = self._epoch_start if self.steps >= self.warmup_steps else None
        self._last_step_end = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._running is None and self.steps == self.warmup_steps:
            self._running = clock()
        self.steps += 1

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._last_step_end = clock()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and self._epoch is not None:
            self._pause()
            self._validation_start = clock()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._validation_start is None or self._epoch is None:
            return
        now = clock()
        self._epoch.validation.add(self._validation_start, now)
        self._validation_start = None
        if self.steps >= self.warmup_steps:
            self._running = now

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause()
        self._close_epoch()

    def _pause(self) -> None:
        """Adds the training time since the clock (re)started, up to the end of the last training step."""
        start, end = self._running, self._last_step_end
        if self._epoch is not None and start is not None and end is not None and end[0] > start[0]:
            self._epoch.training.add(start, end)
        self._running = None

    def _close_epoch(self) -> None:
        if self._epoch is None:
            return
        epoch, self._epoch = self._epoch, None
        epoch.total.add(self._epoch_start)
        self.epochs.append(epoch)
        if self.after_epoch is not None:
            self.after_epoch(epoch)


def time_calls(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Wall seconds of each of ``repeats`` calls of ``fn``."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


# ------------------------------------------------------------------------------------------------ statistics
@dataclass(frozen=True)
class Spread:
    """Median, quartiles and range of repeated measurements."""

    median: float
    q1: float
    q3: float
    low: float
    high: float
    count: int

    def quartiles(self, spec: str = ".2f") -> str:
        return f"{self.q1:{spec}}-{self.q3:{spec}}"

    def range(self, spec: str = ".2f") -> str:
        return f"{self.low:{spec}}-{self.high:{spec}}"


def spread(values: Iterable[float]) -> Spread:
    """Median, quartiles (``statistics.quantiles``, exclusive method) and range; one value is all of them."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("spread of no values")
    q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return Spread(statistics.median(values), q1, q3, min(values), max(values), len(values))


def paired_ratios(ours: Sequence[float], theirs: Sequence[float]) -> Spread:
    """The spread of ``ours[i] / theirs[i]``: measurements taken in pairs, seconds apart, so that a machine whose
    speed drifts slows both sides of a pair alike."""
    return spread(a / b for a, b in zip(ours, theirs, strict=True))


# ------------------------------------------------------------------------------------------------ reports
def print_table(
    rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None, align: str | None = None, indent: int = 0
) -> None:
    """Prints rows as aligned columns, two spaces apart; cells are ``str()``-ed (format numbers beforehand).

    ``align`` holds ``<`` or ``>`` per column (default: the first column left-aligned, the others right-aligned).
    """
    lines = [[str(cell) for cell in row] for row in ([header] if header is not None else []) + list(rows)]
    columns = max(len(line) for line in lines)
    align = align or "<" + ">" * (columns - 1)
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(columns)]
    for line in lines:
        cells = [f"{cell:{align[i]}{widths[i]}}" for i, cell in enumerate(line)]
        print(" " * indent + "  ".join(cells).rstrip(), flush=True)


def decoding_label(beam_size: int) -> str:
    """``greedy`` or ``beam 5``."""
    return "greedy" if beam_size == 1 else f"beam {beam_size}"
