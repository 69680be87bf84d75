"""Performance benchmark: seqmodels against hand-written PyTorch, on this machine.

    .venv/bin/python scripts/benchmark.py                 # full run (a few minutes on 2 cores)
    .venv/bin/python scripts/benchmark.py --smoke         # tiny sizes: checks that every figure is produced

Each figure is measured side by side in one run, repeated (median reported):
 1. framework overhead: training samples/s of a seqmodels task (Lightning, datamodule, SequenceBatch, metrics)
    over a hand-written loop with the same LSTM, data, batch size and optimizer (hidden 64 and 256);
 2. compute efficiency: matmul GFLOP/s achieved by an LSTM training step over the measured float32 matmul peak;
 3. variable lengths: long-tailed lengths (10-1000, most short): length bucketing + packing vs random batches
    padded to the global maximum; per-sequence losses must match across batchings;
 4. generation: tokens/s at 100, 500 and 1000 new tokens with the state carried (cost linear in length);
 5. data pipeline: share of training-step time spent waiting for the next batch (default num_workers);
 6. start-up: seconds from `seqmodels-train` to the end of a one-step run of the default experiment.

Prints a table and writes benchmarks/results.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from benchmark_common import TrainingTimer, paired_ratios, print_table, spread
from torch import nn

from seqmodels.data import BucketBatchSampler, SequenceDataset, pad_collate
from seqmodels.nn import ManyToOneNet, RecurrentEncoder, RecurrentLanguageModel
from seqmodels.tasks import SequenceClassificationTask

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------- 1. framework overhead
class _TimedLoader:
    """Wraps a DataLoader and records how long each ``next(batch)`` took: the time training waits for data."""

    def __init__(self, loader: torch.utils.data.DataLoader) -> None:
        self.loader, self.waits = loader, []

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        iterator = iter(self.loader)
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            self.waits.append(time.perf_counter() - start)
            yield batch


def _classification_data(n: int, length: int, channels: int, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, length, channels, generator=g), torch.randint(0, classes, (n,), generator=g)


def seqmodels_throughput(hidden: int, inputs, targets, batch_size: int, steps: int, warmup: int) -> tuple[float, float]:
    """samples/s of SequenceClassificationTask trained by Lightning, and the share of step time waiting for data."""
    torch.manual_seed(0)
    dataset = SequenceDataset(list(inputs), targets)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=pad_collate)
    encoder = RecurrentEncoder("lstm", input_size=inputs.shape[-1], hidden_size=hidden, batch_first=True)
    task = SequenceClassificationTask(
        ManyToOneNet(encoder, num_outputs=int(targets.max()) + 1),
        num_classes=int(targets.max()) + 1,
        optimizer=lambda params: torch.optim.AdamW(params, lr=1e-3),
    )
    timer, timed_loader = TrainingTimer(warmup_steps=warmup), _TimedLoader(loader)
    trainer = L.Trainer(
        max_steps=steps + warmup,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        gradient_clip_val=1.0,
        limit_val_batches=0,
    )
    trainer.fit(task, train_dataloaders=timed_loader)
    elapsed = timer.seconds
    # Lightning fetches one batch ahead: batch k + 1 is loaded during the timed step k.
    data_wait = sum(timed_loader.waits[warmup + 1 : warmup + steps + 1])
    return steps * batch_size / elapsed, data_wait / elapsed


def plain_throughput(hidden: int, inputs, targets, batch_size: int, steps: int, warmup: int) -> float:
    """samples/s of a hand-written loop: nn.LSTM, last step, linear head, AdamW, clipping."""
    torch.manual_seed(0)
    lstm = nn.LSTM(inputs.shape[-1], hidden, batch_first=True)
    head = nn.Linear(hidden, int(targets.max()) + 1)
    params = [*lstm.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(inputs, targets), batch_size=batch_size, shuffle=True
    )
    step, start = 0, 0.0
    while step < steps + warmup:
        for x, y in loader:
            if step == warmup:
                start = time.perf_counter()
            output, _ = lstm(x)
            loss = F.cross_entropy(head(output[:, -1]), y)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            step += 1
            if step == steps + warmup:
                break
    return steps * batch_size / (time.perf_counter() - start)


# ------------------------------------------------------------------------------------- 2. compute efficiency
def matmul_peak(size: int, repeats: int) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)

    def once() -> float:
        start = time.perf_counter()
        torch.mm(a, b)
        return 2 * size**3 / (time.perf_counter() - start) / 1e9

    return max(once() for _ in range(repeats))


def lstm_gflops(hidden: int, batch: int, length: int, repeats: int) -> float:
    lstm = nn.LSTM(hidden, hidden, batch_first=True)
    x = torch.randn(batch, length, hidden, requires_grad=True)
    # Forward: input and recurrent matmuls, 2 * N * 4H * (C + H) per step; backward: twice that.
    flops = 3 * length * 2 * batch * 4 * hidden * (hidden + hidden)

    def once() -> float:
        start = time.perf_counter()
        output, _ = lstm(x)
        output.sum().backward()
        return flops / (time.perf_counter() - start) / 1e9

    once()
    return spread(once() for _ in range(repeats)).median


# ------------------------------------------------------------------------------------- 3. variable lengths
def long_tailed_lengths(n: int, low: int, high: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.round(rng.lognormal(np.log(40), 0.9, n)), low, high).astype(int)


def variable_length_figures(n: int, high: int, hidden: int, batch_size: int) -> dict[str, float]:
    lengths = long_tailed_lengths(n, 10, high)
    lengths[0] = high  # the global maximum is present
    g = torch.Generator().manual_seed(0)
    sequences = [torch.randn(int(length), 8, generator=g) for length in lengths]
    targets = torch.randint(0, 4, (n,), generator=g)
    dataset = SequenceDataset(sequences, targets)
    torch.manual_seed(0)
    encoder = RecurrentEncoder("lstm", input_size=8, hidden_size=hidden, batch_first=True)
    net = ManyToOneNet(encoder, num_outputs=4)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def epoch(batches) -> float:
        start = time.perf_counter()
        for batch in batches:
            loss = F.cross_entropy(net(batch.inputs, batch.lengths), batch.targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return n / (time.perf_counter() - start)

    bucketed = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=BucketBatchSampler(torch.tensor(lengths), batch_size, shuffle=True, seed=0),
        collate_fn=pad_collate,
    )
    random_batches = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=pad_collate)

    def padded_to_global_max():
        for batch in random_batches:
            inputs = F.pad(batch.inputs, (0, 0, 0, high - batch.inputs.shape[1]))
            yield type(batch)(inputs=inputs, lengths=batch.lengths, targets=batch.targets)

    packed_rate = epoch(bucketed)
    naive_rate = epoch(padded_to_global_max())

    # Identical per-sequence losses, however the sequences are batched (padding never leaks in).
    net.eval()
    with torch.no_grad():

        def losses(loader) -> torch.Tensor:  # per sequence, in dataset order
            return torch.cat([F.cross_entropy(net(b.inputs, b.lengths), b.targets, reduction="none") for b in loader])

        batched = losses(torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=pad_collate))
        alone = losses(torch.utils.data.DataLoader(dataset, batch_size=1, collate_fn=pad_collate))
    max_diff = float((batched - alone).abs().max())
    return {
        "bucketed_packed_seq_per_s": packed_rate,
        "padded_global_max_seq_per_s": naive_rate,
        "speedup": packed_rate / naive_rate,
        "max_loss_difference": max_diff,
    }


# ------------------------------------------------------------------------------------- 4. generation
def generation_rates(hidden: int, lengths: list[int]) -> dict[int, float]:
    torch.manual_seed(0)
    lm = RecurrentLanguageModel(vocab_size=100, embedding_dim=64, hidden_size=hidden, num_layers=2).eval()
    prompt = torch.randint(1, 100, (1, 10))
    lm.generate(prompt, 5, temperature=0)
    rates = {}
    for n in lengths:
        start = time.perf_counter()
        lm.generate(prompt, n, temperature=0)
        rates[n] = n / (time.perf_counter() - start)
    return rates


# ------------------------------------------------------------------------------------- 6. start-up
def startup_seconds() -> float:
    env = {**os.environ}
    env.setdefault("SEQMODELS_LOG_DIR", str(ROOT / "logs" / "benchmark_startup"))
    command = [
        sys.executable,
        "-m",
        "seqmodels.cli.train",
        "+trainer.max_steps=1",
        "test=false",
        "logger=none",
        "~callbacks.rich_progress_bar",
        "trainer.enable_progress_bar=false",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results.json"))
    args = parser.parse_args()
    smoke = args.smoke
    repeats = 1 if smoke else args.repeats
    overhead_repeats = 1 if smoke else 2 * args.repeats + 1
    load = os.getloadavg()[0]
    results: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_average_at_start": load,
        },
        "smoke": smoke,
    }
    if load > 0.5 and not smoke:
        print(
            f"warning: load average {load:.1f} at start: other processes share the CPU, so ratios are unreliable",
            file=sys.stderr,
        )
    rows: list[tuple[str, str, str]] = []

    # 1 and 5: the two loops alternate (which goes first alternates too), so a slow spell of a shared machine
    # hits both; the ratio is the median of the per-pair ratios.
    steps, warmup = (5, 2) if smoke else (100, 10)
    inputs, targets = _classification_data(512 if smoke else 4096, 20 if smoke else 50, 16, 10)
    overhead = {}
    for hidden in (64, 256):
        batch = 32
        pairs = []
        for repeat in range(overhead_repeats):
            run_seqmodels = functools.partial(seqmodels_throughput, hidden, inputs, targets, batch, steps, warmup)
            run_plain = functools.partial(plain_throughput, hidden, inputs, targets, batch, steps, warmup)
            if repeat % 2:
                plain = run_plain()
                (rate, wait) = run_seqmodels()
            else:
                (rate, wait) = run_seqmodels()
                plain = run_plain()
            pairs.append((rate, plain, wait))
        ratios = paired_ratios([r for r, _, _ in pairs], [p for _, p, _ in pairs])
        rate, plain = spread(r for r, _, _ in pairs).median, spread(p for _, p, _ in pairs).median
        overhead[hidden] = {
            "seqmodels_samples_per_s": rate,
            "plain_samples_per_s": plain,
            "ratio": ratios.median,
            "ratio_range": [ratios.low, ratios.high],
            "data_wait_share": spread(w for _, _, w in pairs).median,
        }
        rows.append(
            (
                f"1. framework overhead, LSTM hidden {hidden}",
                f"{ratios.median:.2f}x of plain PyTorch "
                f"({rate:,.0f} vs {plain:,.0f} samples/s; pairs {ratios.range()})",
                ">= 0.95",
            )
        )
    results["framework_overhead"] = overhead

    # 2
    hidden, batch, length = (64, 8, 10) if smoke else (256, 64, 100)
    peak = matmul_peak(256 if smoke else 2048, 3 if smoke else 10)
    achieved = lstm_gflops(hidden, batch, length, repeats)
    results["compute_efficiency"] = {"lstm_gflops": achieved, "matmul_peak_gflops": peak, "share": achieved / peak}
    rows.append(
        (
            f"2. LSTM training step, hidden {hidden}, batch {batch}, length {length}",
            f"{100 * achieved / peak:.0f}% of matmul peak ({achieved:.1f} of {peak:.1f} GFLOP/s)",
            ">= 55%",
        )
    )

    # 3
    variable = variable_length_figures(256 if smoke else 2048, 200 if smoke else 1000, 32 if smoke else 64, 32)
    results["variable_lengths"] = variable
    rows.append(
        (
            "3. long-tailed lengths: bucketing + packing vs padding to the maximum",
            f"{variable['speedup']:.1f}x ({variable['bucketed_packed_seq_per_s']:,.0f} vs "
            f"{variable['padded_global_max_seq_per_s']:,.0f} seq/s); loss diff {variable['max_loss_difference']:.1e}",
            ">= 1.5x, same losses",
        )
    )

    # 4
    gen = generation_rates(64 if smoke else 256, [20, 40, 80] if smoke else [100, 500, 1000])
    results["generation_tokens_per_s"] = gen
    first, last = min(gen), max(gen)
    rows.append(
        (
            "4. generation with carried state",
            ", ".join(f"{n}: {r:,.0f} tok/s" for n, r in gen.items())
            + f" (per-token cost x{gen[first] / gen[last]:.2f} from {first} to {last})",
            "linear (flat tok/s)",
        )
    )

    # 5
    share = max(v["data_wait_share"] for v in overhead.values())
    per_size = ", ".join(f"{100 * v['data_wait_share']:.1f}% at hidden {h}" for h, v in overhead.items())
    rows.append(("5. data pipeline (num_workers=0)", f"{per_size} of step time waiting for data", "< 5%"))
    results["data_wait_share"] = share

    # 6
    seconds = startup_seconds()
    results["startup_seconds"] = seconds
    rows.append(
        ("6. start-up: seqmodels-train, one step of the default experiment", f"{seconds:.1f} s end to end", "-")
    )

    print(
        f"\nseqmodels benchmark ({results['machine']['cpus']} CPUs, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}{', smoke sizes' if smoke else ''})"
    )
    print_table([(name, f"{value}   [target {target}]") for name, value, target in rows], align="<<")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
