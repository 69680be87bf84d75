"""Benchmark: multi-horizon forecasting through seqmodels-train vs a plain PyTorch loop, and MASE on real data.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/benchmark_forecasting.py [--repeats 2] [--skip-real]

1. Noisy sine ``sin(2 pi t / 50) + 0.1 N(0, 1)``, 2000 points (numpy seed 0); train on points 0-1599, lookback
   24, horizon 12, one-layer LSTM with 64 units, linear head to all 12 steps, batch 32, 5 epochs, Adam 1e-3,
   L1 loss on standardised values. Validation: MAE on the original scale over all 389 rolling origins whose
   12 targets lie in points 1600-1999, in one batch. Seconds per epoch = one training pass plus that
   validation pass.
   The same model is trained twice in one process: by ``seqmodels.train.train`` (Hydra config, Lightning
   Trainer, ForecastingDataModule) and by a plain loop over the same window tensors (nn.LSTM + nn.Linear,
   torch's default init). With ``--repeats`` > 1 the two alternate, so load from other processes hits both.
2. The shipped ``co2`` and ``airline`` experiments, trained and tested as ``seqmodels-train experiment=X``
   would: test MAE and MASE of the model, of the seasonal-naive and of the naive forecast on the same windows.
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch
from torch import nn

from seqmodels.config import compose_run_config
from seqmodels.data.forecasting import ForecastingDataModule
from seqmodels.train import train

EVAL_BATCH = 512  # validation windows per batch, in both trainers (all 389 origins at once)
QUIET = ["~callbacks.rich_progress_bar", "+trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
         "trainer.accelerator=cpu"]
SINE = [
    "experiment=sunspots",  # a forecasting recipe whose data and model are then replaced below
    "data.source=sine", "data.lookback=24", "data.horizon=12", "data.val_size=400", "data.test_size=0",
    "data.seasonal_period=50", "data.batch_size=32", "data.calendar=null",
    f"data.eval_batch_size={EVAL_BATCH}",
    "model/encoder=lstm", "model.net.encoder.hidden_size=64", "model.net.encoder.num_layers=1",
    "model/forecasting_output=mae", "model.net.window_norm=none", "model.net.dropout=0.0",
    "model.net.head_hidden_size=null", "model.optimizer.lr=0.001",
    "model.plot_every_n_epochs=0", "trainer.max_epochs=5", "trainer.min_epochs=5", "trainer.gradient_clip_val=null",
    "model.gradient_clip_val=null",
    "callbacks=none", "logger=none", "+trainer.enable_checkpointing=false", "test=false", "seed=0",
]
EPOCHS = 5


def clock() -> tuple[float, float]:
    # Wall time, and this process's CPU time: on a shared machine the second is less disturbed by other jobs.
    return time.perf_counter(), time.process_time()


class EpochTimer(L.Callback):
    """Wall and CPU seconds of each epoch: its training pass and the validation pass after it."""

    def __init__(self) -> None:
        self.seconds: list[tuple[float, float]] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = clock()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            now = clock()
            self.seconds.append((now[0] - self._start[0], now[1] - self._start[1]))


def mean_seconds(seconds: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.mean(w for w, _ in seconds), statistics.mean(c for _, c in seconds)


def run_seqmodels() -> tuple[float, tuple[float, float]]:
    timer = EpochTimer()
    metrics = train(compose_run_config([*SINE, *QUIET[1:]]), extra_callbacks=[timer])
    assert len(timer.seconds) == EPOCHS, timer.seconds
    return metrics["val/mae"], mean_seconds(timer.seconds)


class PlainLSTM(nn.Module):
    def __init__(self, hidden: int = 64, horizon: int = 12) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x)
        return self.head(h[-1])


def run_plain() -> tuple[float, tuple[float, float]]:
    """The same model and data in a hand-written loop: the floor any framework overhead is measured against."""
    data = ForecastingDataModule(source="sine", lookback=24, horizon=12, val_size=400, test_size=0,
                                 seasonal_period=50, calendar=None, batch_size=32, seed=0)
    data.setup()
    train_x, train_y = data.train_set.tensors["inputs"], data.train_set.tensors["targets"][..., 0]
    val_x, val_actual = data.val_set.tensors["inputs"], data.val_set.tensors["actual"][..., 0]
    scaler = data.target_scaler()
    torch.manual_seed(0)
    model = PlainLSTM()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.L1Loss()
    seconds, mae = [], float("nan")
    for epoch in range(EPOCHS):
        start = clock()
        model.train()
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(order), 32):
            idx = order[i : i + 32]
            optimizer.zero_grad()
            loss = loss_fn(model(train_x[idx]), train_y[idx])
            loss.backward()
            optimizer.step()
        model.eval()
        errors = []
        with torch.no_grad():
            for i in range(0, len(val_x), EVAL_BATCH):
                forecast = scaler.inverse(model(val_x[i : i + EVAL_BATCH]).unsqueeze(-1))[..., 0]
                errors.append((forecast - val_actual[i : i + EVAL_BATCH]).abs())
        mae = torch.cat(errors).mean().item()
        now = clock()
        seconds.append((now[0] - start[0], now[1] - start[1]))
    return mae, mean_seconds(seconds)


def real_data(experiment: str) -> dict[str, float]:
    return train(compose_run_config([f"experiment={experiment}", "logger=none", *QUIET]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each trainer on the sine task")
    parser.add_argument("--skip-real", action="store_true", help="only the sine benchmark")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)", flush=True)
    results: dict[str, list[tuple[float, tuple[float, float]]]] = {"plain": [], "seqmodels": []}
    wall_ratios, cpu_ratios = [], []
    for repeat in range(args.repeats):
        for name, run in (("plain", run_plain), ("seqmodels", run_seqmodels)):
            mae, (wall, cpu) = run()
            results[name].append((mae, (wall, cpu)))
            print(f"run {repeat + 1} {name:>9}: val MAE {mae:.4f}  {wall:.3f} s/epoch wall, {cpu:.3f} s CPU", flush=True)
        # Ratios within a repeat: both trainers ran back to back, under the same load.
        wall_ratios.append(results["seqmodels"][-1][1][0] / results["plain"][-1][1][0])
        cpu_ratios.append(results["seqmodels"][-1][1][1] / results["plain"][-1][1][1])

    def median(name: str, index: int) -> float:
        return statistics.median(seconds[index] for _, seconds in results[name])

    ours_mae = statistics.median(m for m, _ in results["seqmodels"])
    plain_mae = statistics.median(m for m, _ in results["plain"])
    print(
        f"\nsine, 389 validation origins (medians of {args.repeats} alternating runs):\n"
        f"  seqmodels-train  MAE {ours_mae:.4f} (target <= 0.104)  {median('seqmodels', 0):.3f} s/epoch wall, "
        f"{median('seqmodels', 1):.3f} s CPU\n"
        f"  plain PyTorch    MAE {plain_mae:.4f}                    {median('plain', 0):.3f} s/epoch wall, "
        f"{median('plain', 1):.3f} s CPU\n"
        f"  seqmodels / plain: {statistics.median(wall_ratios):.2f}x wall "
        f"(runs {min(wall_ratios):.2f}-{max(wall_ratios):.2f}), {statistics.median(cpu_ratios):.2f}x CPU "
        f"(runs {min(cpu_ratios):.2f}-{max(cpu_ratios):.2f}); target <= 1.2x"
    )
    if args.skip_real:
        return
    for experiment in ("co2", "airline"):
        m = real_data(experiment)
        print(
            f"{experiment} test: MASE {m['test/mase']:.3f} (target < 1; seasonal naive {m['test/seasonal_naive_mase']:.3f}, "
            f"naive {m['test/naive_mase']:.3f})  MAE {m['test/mae']:.3f} (seasonal naive "
            f"{m['test/seasonal_naive_mae']:.3f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
