"""Stacked against lazily gathered forecasting windows (``data.lazy_windows``) over one long series.

A generated sine series (``--length`` steps, lookback ``--lookback``, horizon 24, 10% validation and 10% test, no
calendar features: one input channel) is built both ways:

* memory: each build runs in its own process; reported are the bytes the windows hold (the stacked tensors, or the
  series arrays plus the window index), the process's resident memory after building, above what it held before,
  and at its peak while building, and the build time;
* speed: in one process, both kinds of windows alternate (eager, lazy, lazy, eager, ...; ``--repeats`` pairs) over
  the training split, shuffled as in training: ``WindowLoader`` batches per second alone (and over the validation
  split, in order, as evaluation reads it), and training steps per second of a small LSTM forecaster (hidden 64,
  direct output, Adam) fed by the loader, eager and lazy steps interleaved one by one. Medians are printed, and
  the share of a training step that serving its batch takes.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/benchmark_lazy_windows.py [--length 400000] [--lookback 168]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import torch

from seqmodels.data.forecasting import ForecastBatch, ForecastingDataModule, LazyForecastWindows, WindowLoader
from seqmodels.nn import DirectForecaster, RecurrentEncoder

HORIZON = 24


def datamodule(length: int, lookback: int, lazy: bool, batch_size: int = 64) -> ForecastingDataModule:
    return ForecastingDataModule(
        source="sine",
        sine_length=length,
        sine_period=24.0,
        lookback=lookback,
        horizon=HORIZON,
        val_size=0.1,
        test_size=0.1,
        batch_size=batch_size,
        lazy_windows=lazy,
    )


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_resident_bytes() -> int:
    """The process's peak resident memory (VmHWM starts afresh at exec, unlike getrusage's peak)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def held_bytes(dm: ForecastingDataModule) -> int:
    """Bytes the three splits hold: stacked tensors, or the shared series arrays and each split's index."""
    sets = [dm.train_set, dm.val_set, dm.test_set]
    if isinstance(dm.train_set, LazyForecastWindows):
        return dm.train_set.arrays.nbytes() + sum(s.nbytes() for s in sets if isinstance(s, LazyForecastWindows))
    return sum(v.numel() * v.element_size() for s in sets for v in s.tensors.values() if v is not None)


def probe_memory(length: int, lookback: int, lazy: bool) -> dict[str, float]:
    """Run in a fresh process: the memory one build takes."""
    torch.ones(1)
    before = resident_bytes()
    start = time.perf_counter()
    dm = datamodule(length, lookback, lazy)
    dm.setup()
    seconds = time.perf_counter() - start
    peak = peak_resident_bytes()
    return {
        "windows": len(dm.train_set) + len(dm.val_set) + len(dm.test_set),
        "held": held_bytes(dm),
        "growth": resident_bytes() - before,
        "peak_growth": peak - before,
        "seconds": seconds,
        "estimate": dm.eager_window_bytes,
    }


def measure_memory(length: int, lookback: int, lazy: bool) -> dict[str, float]:
    command = [sys.executable, __file__, "--probe", "lazy" if lazy else "eager"]
    command += ["--length", str(length), "--lookback", str(lookback)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def loader_rate(windows, batch_size: int, batches: int, seed: int, shuffle: bool = True) -> float:
    loader = WindowLoader(windows, batch_size, shuffle=shuffle, seed=seed)
    served, start = 0, time.perf_counter()
    for _, batch in zip(range(batches), loader, strict=False):
        batch.inputs.sum()  # touch the batch
        served += 1
    return served / (time.perf_counter() - start)


def endless(loader: WindowLoader) -> Iterator[ForecastBatch]:
    while True:
        yield from loader  # each pass is a new, reshuffled epoch


def training_rates(eager, lazy, net: torch.nn.Module, batch_size: int, steps: int, seed: int) -> dict[bool, float]:
    """Training steps per second fed by each kind of windows, the steps interleaved one by one (eager, lazy, lazy,
    eager, ...) so that load from other processes hits both alike; each step's time includes serving its batch."""
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loaders = [endless(WindowLoader(w, batch_size, shuffle=True, seed=seed)) for w in (eager, lazy)]
    seconds = {0: 0.0, 1: 0.0}
    for step in range(steps):
        for mode in (0, 1) if step % 2 == 0 else (1, 0):  # 0: eager, 1: lazy
            start = time.perf_counter()
            batch = next(loaders[mode])
            loss = torch.nn.functional.mse_loss(net(batch.inputs)[..., 0], batch.targets)  # (N, H, C, 1) output
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seconds[mode] += time.perf_counter() - start
    return {bool(mode): steps / total for mode, total in seconds.items()}


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=400_000)
    parser.add_argument("--lookback", type=int, default=168)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=200, help="batches per loader timing")
    parser.add_argument("--steps", type=int, default=30, help="training steps per timing")
    parser.add_argument("--probe", choices=("eager", "lazy"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe_memory(args.length, args.lookback, args.probe == "lazy")))
        return

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; sine series of {args.length} steps, "
        f"lookback {args.lookback}, horizon {HORIZON}, 1 input channel"
    )
    print("\nmemory (each build in its own process):")
    print(f"{'windows':>8} {'count':>9} {'held':>12} {'RSS growth':>12} {'RSS peak growth':>16} {'build s':>8}")
    found = {}
    for lazy in (False, True):
        m = found[lazy] = measure_memory(args.length, args.lookback, lazy)
        name = "lazy" if lazy else "eager"
        print(
            f"{name:>8} {m['windows']:>9} {mib(m['held']):>12} {mib(m['growth']):>12} {mib(m['peak_growth']):>16} "
            f"{m['seconds']:>8.2f}"
        )
    print(f"eager size estimate (lazy_windows=auto's measure): {mib(found[True]['estimate'])}")
    print(f"held: lazy / eager = 1 / {found[False]['held'] / found[True]['held']:.0f}")

    eager, lazy = (datamodule(args.length, args.lookback, mode) for mode in (False, True))
    eager.setup()
    lazy.setup()
    torch.manual_seed(0)
    encoder = RecurrentEncoder("lstm", input_size=1, hidden_size=64, batch_first=True)
    net = DirectForecaster(encoder, horizon=HORIZON, num_targets=1)
    rates: dict[str, dict[bool, list[float]]] = {"loader 64": {}, "loader 256": {}, "val 256": {}, "training 64": {}}
    for repeat in range(args.repeats):
        order = (False, True) if repeat % 2 == 0 else (True, False)  # alternate, so drift hits both alike
        for mode in order:
            windows = (lazy if mode else eager).train_set
            rates["loader 64"].setdefault(mode, []).append(loader_rate(windows, 64, args.batches, repeat))
            rates["loader 256"].setdefault(mode, []).append(loader_rate(windows, 256, args.batches, repeat))
            val = (lazy if mode else eager).val_set
            rates["val 256"].setdefault(mode, []).append(loader_rate(val, 256, args.batches, repeat, shuffle=False))
        for mode, rate in training_rates(eager.train_set, lazy.train_set, net, 64, args.steps, repeat).items():
            rates["training 64"].setdefault(mode, []).append(rate)
    print(f"\nbatches/s (median of {args.repeats}; training split shuffled, validation split in order):")
    print(f"{'':>12} {'eager':>9} {'lazy':>9} {'lazy/eager':>11}")
    for name, by_mode in rates.items():
        e, z = statistics.median(by_mode[False]), statistics.median(by_mode[True])
        print(f"{name:>12} {e:>9.1f} {z:>9.1f} {z / e:>11.3f}")
    for mode in (False, True):
        step = 1 / statistics.median(rates["training 64"][mode])
        served = 1 / statistics.median(rates["loader 64"][mode])
        name = "lazy" if mode else "eager"
        print(f"serving a batch of 64 ({name}): {served * 1e3:.3f} ms, {100 * served / step:.2f}% of a training step")


if __name__ == "__main__":
    main()
