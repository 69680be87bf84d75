"""Benchmark: multi-horizon forecasting through seqmodels-train vs a plain PyTorch loop, and MASE on real data.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/benchmark_forecasting.py [--repeats 3] [--skip-real]

1. Noisy sine ``sin(2 pi t / 50) + 0.1 N(0, 1)``, 2000 points (numpy seed 0); train on points 0-1599, lookback
   24, horizon 12, one-layer LSTM with 64 units, linear head to all 12 steps, batch 32, 5 epochs, Adam 1e-3,
   L1 loss on standardised values. Validation: MAE on the original scale over all 389 rolling origins whose
   12 targets lie in points 1600-1999, in one batch. Seconds per epoch = one training pass plus that
   validation pass.
   The same model is trained by ``seqmodels.train.train`` (the Hydra config, Lightning Trainer and
   ForecastingDataModule of ``seqmodels-train``) and by plain loops over the same window tensors (nn.LSTM +
   nn.Linear, torch's default init): one with ``torch.optim.Adam(lr=1e-3)`` as written by hand, and one with
   ``fused=True`` like seqmodels' configs. Each seqmodels epoch is followed at once by one epoch of each plain
   loop, so every ratio compares epochs run seconds apart: this machine's speed drifts by up to 2x over minutes.
   Reported: medians over ``--repeats`` fits of 5 epochs each.
2. The shipped ``co2`` and ``airline`` experiments, trained and tested as ``seqmodels-train experiment=X`` would:
   test MAE and MASE of the model, of the seasonal-naive and of the naive forecast on the same windows.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from benchmark_common import (
    QUIET,
    EpochTime,
    Seconds,
    TrainingTimer,
    clock,
    environment,
    paired_ratios,
    print_table,
    run_metrics,
    since,
    spread,
)
from torch import nn

from seqmodels.config import compose_run_config
from seqmodels.data.forecasting import ForecastingDataModule
from seqmodels.train import train

EVAL_BATCH = 512  # validation windows per batch, in both trainers (all 389 origins at once)
CPU = ["trainer.accelerator=cpu"]
SINE = [
    "experiment=sunspots",  # a forecasting recipe whose data and model are then replaced below
    "data.source=sine",
    "data.lookback=24",
    "data.horizon=12",
    "data.val_size=400",
    "data.test_size=0",
    "data.seasonal_period=50",
    "data.batch_size=32",
    "data.calendar=null",
    f"data.eval_batch_size={EVAL_BATCH}",
    "model/encoder=lstm",
    "model.net.encoder.hidden_size=64",
    "model.net.encoder.num_layers=1",
    "model/forecasting_output=mae",
    "model.net.window_norm=none",
    "model.net.dropout=0.0",
    "model.net.head_hidden_size=null",
    "model.optimizer.lr=0.001",
    "model.plot_every_n_epochs=0",
    "trainer.max_epochs=5",
    "trainer.min_epochs=5",
    "trainer.gradient_clip_val=null",
    "callbacks=none",
    "logger=none",
    "trainer.enable_checkpointing=false",
    "test=false",
    "seed=0",
]
EPOCHS = 5


class PlainLSTM(nn.Module):
    def __init__(self, hidden: int = 64, horizon: int = 12) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x)
        return self.head(h[-1])


class PlainLoop:
    """The same model and data in a hand-written loop: the floor any framework overhead is measured against."""

    def __init__(self, fused: bool) -> None:
        data = ForecastingDataModule(
            source="sine",
            lookback=24,
            horizon=12,
            val_size=400,
            test_size=0,
            seasonal_period=50,
            calendar=None,
            batch_size=32,
            seed=0,
        )
        data.setup()
        self.train_x, self.train_y = data.train_set.tensors["inputs"], data.train_set.tensors["targets"][..., 0]
        self.val_x, self.val_actual = data.val_set.tensors["inputs"], data.val_set.tensors["actual"][..., 0]
        self.scaler = data.target_scaler()
        torch.manual_seed(0)
        self.model = PlainLSTM()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=fused or None)
        self.epoch = 0

    def run_epoch(self) -> tuple[float, Seconds]:
        """Validation MAE after one more epoch, and the epoch's wall and CPU seconds."""
        start = clock()
        model, loss_fn = self.model, nn.L1Loss()
        model.train()
        order = torch.randperm(len(self.train_x), generator=torch.Generator().manual_seed(self.epoch))
        for i in range(0, len(order), 32):
            idx = order[i : i + 32]
            self.optimizer.zero_grad()
            loss = loss_fn(model(self.train_x[idx]), self.train_y[idx])
            loss.backward()
            self.optimizer.step()
        model.eval()
        errors = []
        with torch.no_grad():
            for i in range(0, len(self.val_x), EVAL_BATCH):
                forecast = self.scaler.inverse(model(self.val_x[i : i + EVAL_BATCH]).unsqueeze(-1))[..., 0]
                errors.append((forecast - self.val_actual[i : i + EVAL_BATCH]).abs())
        mae = torch.cat(errors).mean().item()
        self.epoch += 1
        return mae, since(start)


def run_paired() -> tuple[dict[str, float], dict[str, list[Seconds]]]:
    """One seqmodels fit of 5 epochs, each paired with one epoch of each plain loop; final MAEs and seconds.

    A seqmodels epoch is timed whole (training, validation and every epoch-end hook); one epoch of each plain loop
    runs right after it, outside the seqmodels clock."""
    plain = {"plain": PlainLoop(fused=False), "plain_fused": PlainLoop(fused=True)}
    mae: dict[str, float] = {}
    seconds: dict[str, list[Seconds]] = {name: [] for name in plain}

    def plain_epochs(_: EpochTime) -> None:
        for name, loop in plain.items():
            mae[name], epoch_seconds = loop.run_epoch()
            seconds[name].append(epoch_seconds)

    timer = TrainingTimer(after_epoch=plain_epochs)
    quiet = [o for o in QUIET if not o.startswith("~callbacks.")]  # callbacks=none: nothing to remove
    result = train(compose_run_config([*SINE, *quiet, *CPU]), extra_callbacks=[timer])
    seconds = {"seqmodels": [epoch.total for epoch in timer.epochs], **seconds}
    assert all(len(epochs) == EPOCHS for epochs in seconds.values()), seconds
    return {"seqmodels": run_metrics(result)["val/mae"], **mae}, seconds


def real_data(experiment: str) -> dict[str, float]:
    return run_metrics(train(compose_run_config([f"experiment={experiment}", "logger=none", *QUIET, *CPU])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="seqmodels fits of 5 epochs, each epoch paired")
    parser.add_argument("--skip-real", action="store_true", help="only the sine benchmark")
    args = parser.parse_args()
    print(environment(), flush=True)
    names = ("seqmodels", "plain", "plain_fused")
    maes: dict[str, list[float]] = {name: [] for name in names}
    seconds: dict[str, list[Seconds]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        mae, run_seconds = run_paired()
        for name in names:
            maes[name].append(mae[name])
            seconds[name].extend(run_seconds[name])
        print(
            f"fit {repeat + 1}: "
            + ", ".join(
                f"{name} MAE {mae[name]:.4f} {statistics.mean(s.wall for s in run_seconds[name]):.3f} s/epoch"
                for name in names
            ),
            flush=True,
        )

    def row(label: str, name: str, note: str = "") -> tuple[str, ...]:
        wall, cpu = spread(s.wall for s in seconds[name]).median, spread(s.cpu for s in seconds[name]).median
        return label, f"MAE {spread(maes[name]).median:.4f}", note, f"{wall:.3f} s/epoch wall,", f"{cpu:.3f} s CPU"

    def ratio_text(name: str) -> str:  # per paired epoch
        wall = paired_ratios([s.wall for s in seconds["seqmodels"]], [s.wall for s in seconds[name]])
        cpu = paired_ratios([s.cpu for s in seconds["seqmodels"]], [s.cpu for s in seconds[name]])
        return f"{wall.median:.2f}x wall (quartiles {wall.quartiles()}), {cpu.median:.2f}x CPU"

    print(f"\nsine, 389 validation origins ({len(seconds['seqmodels'])} paired epochs from {args.repeats} fits):")
    rows = [
        row("seqmodels-train", "seqmodels", "(target <= 0.104)"),
        row("plain PyTorch, Adam", "plain"),
        row("plain PyTorch, fused Adam", "plain_fused"),
    ]
    print_table(rows, align="<<<>>", indent=2)
    print(
        f"  seqmodels / plain loop:       {ratio_text('plain')}; target <= 1.2x\n"
        f"  seqmodels / plain fused loop: {ratio_text('plain_fused')} (the framework alone)"
    )
    if args.skip_real:
        return
    for experiment in ("co2", "airline"):
        m = real_data(experiment)
        print(
            f"{experiment} test: MASE {m['test/mase']:.3f} "
            f"(target < 1; seasonal naive {m['test/seasonal_naive_mase']:.3f}, "
            f"naive {m['test/naive_mase']:.3f})  MAE {m['test/mae']:.3f} (seasonal naive "
            f"{m['test/seasonal_naive_mae']:.3f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
