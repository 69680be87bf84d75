"""Time per new observation: a streaming forecaster's step against re-running the batch forecast over the lookback.

For each lookback L (24, 96, 365) and network (direct, seq2seq; LSTM 64, horizon 12, CPU, one thread):

* ``network``: ``net.step(x_t, state)`` (one recurrent step, then the horizon) against ``net(window)`` over the last
  L observations;
* ``user scale``: ``ForecastStream.update(value)`` (scaling, the step, the forecast back on the data's scale)
  against ``ForecastingDataModule.forecast(task, last L values)`` (what ``seqmodels.forecast`` runs).

Timings alternate in pairs in one process (stream, batch, batch, stream, ...) so drift hits both alike; the
median over the repeats is reported. Prints a markdown table and writes ``benchmarks/streaming_forecast.json``.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/benchmark_streaming_forecast.py [--repeats 300]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from seqmodels.api import ForecastStream
from seqmodels.data.forecasting import ForecastingDataModule
from seqmodels.nn import DirectForecaster, RecurrentEncoder, Seq2SeqForecaster
from seqmodels.tasks.forecasting import ForecastingTask

LOOKBACKS = (24, 96, 365)
HORIZON, HIDDEN = 12, 64
NETWORKS = {"direct": DirectForecaster, "seq2seq": Seq2SeqForecaster}


def paired(stream_once, batch_once, repeats: int) -> tuple[float, float]:
    """Median seconds of each callable, timed in alternating pairs (the order flips every repeat)."""
    stream_times, batch_times = [], []
    for i in range(repeats):
        order = ((stream_once, stream_times), (batch_once, batch_times))
        for fn, times in order if i % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(stream_times), statistics.median(batch_times)


def build(network: str, lookback: int) -> tuple[ForecastingTask, ForecastingDataModule, np.ndarray]:
    t = np.arange(lookback + 400)
    values = 10 + 3 * np.sin(2 * np.pi * t / 25) + 0.1 * np.random.default_rng(0).standard_normal(len(t))
    dm = ForecastingDataModule(
        data=values, lookback=lookback, horizon=HORIZON, val_size=HORIZON, test_size=HORIZON, calendar=None
    )
    dm.setup()
    torch.manual_seed(0)
    encoder = RecurrentEncoder("lstm", input_size=1, hidden_size=HIDDEN, batch_first=True)
    net = NETWORKS[network](encoder, horizon=HORIZON)
    task = ForecastingTask(net, optimizer=partial(torch.optim.Adam, lr=1e-3))
    task.set_scaler(dm.target_scaler())
    return task.eval(), dm, values


@torch.no_grad()
def measure(network: str, lookback: int, repeats: int) -> list[dict]:
    task, dm, values = build(network, lookback)
    net = task.net
    rows = []
    # Network level, scaled inputs.
    window = torch.randn(1, lookback, 1)
    x_t = torch.randn(1, 1)
    _, state = net.stream(window, None)
    stream_s, batch_s = paired(lambda: net.step(x_t, state), lambda: net(window), repeats)
    rows.append(
        {"level": "network", "network": network, "lookback": lookback, "stream_s": stream_s, "batch_s": batch_s}
    )
    # User scale: scaling in, forecast out on the data's scale.
    stream = ForecastStream(task, dm)
    stream.extend(values[:lookback])
    history = values[:lookback]
    position = iter(range(lookback, len(values) * repeats))

    def stream_once() -> None:
        stream.update(values[next(position) % len(values)])

    stream_s, batch_s = paired(stream_once, lambda: dm.forecast(task, history), repeats)
    rows.append(
        {"level": "user scale", "network": network, "lookback": lookback, "stream_s": stream_s, "batch_s": batch_s}
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/streaming_forecast.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [row for network in NETWORKS for lookback in LOOKBACKS for row in measure(network, lookback, args.repeats)]
    print("| level | network | lookback | stream (ms/obs) | batch re-run (ms/obs) | speed-up |")
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        row["speedup"] = row["batch_s"] / row["stream_s"]
        print(
            f"| {row['level']} | {row['network']} | {row['lookback']} | {1e3 * row['stream_s']:.3f} | "
            f"{1e3 * row['batch_s']:.3f} | {row['speedup']:.1f}x |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    setup = {
        "cell": "lstm",
        "hidden_size": HIDDEN,
        "horizon": HORIZON,
        "batch": 1,
        "threads": 1,
        "device": "cpu",
        "repeats": args.repeats,
        "statistic": "median seconds per new observation, paired alternation",
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
    }
    args.output.write_text(json.dumps({"setup": setup, "results": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
