"""Benchmark: training throughput and memory of seqmodels' own cells against torch's fused LSTM and GRU.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/benchmark_modern_cells.py [--long] [--rounds 5] [--threads 2]

For each length (128, 512, 2048; 8192 with ``--long``) at hidden 256, batch 16, input size 256, times a training
step (forward + backward of a mean-square loss over all outputs; the input needs no gradient) of ``nn.LSTM``,
``nn.GRU``, ``RecurrentEncoder(cell=c)`` for every c in ``MODERN_CELLS`` (minGRU, minLSTM, IndRNN, LRU, mLSTM,
sLSTM, QRNN: one layer each, the cell's default options, no block options) and, for reference, the textbook
log-space minGRU (``cumsum`` + ``logcumsumexp`` of Heinsen 2023, differentiated by autograd). Rounds
alternate the contenders (the order rotates each round), so a busy machine slows every contender alike; reported:
median tokens/s and the median and range of the per-round speed-up over ``nn.LSTM``.

Memory: the peak resident-memory growth of one training step, each contender and length in a fresh process, read
as ``VmHWM`` from /proc/self/status after resetting it (``/proc/self/clear_refs``) once a short warm-up step has
loaded the kernels (Linux only; ``--no-memory`` skips it). It counts everything the step allocates: activations
kept for backward, gradients and temporaries.

Prints a markdown table and writes ``benchmarks/modern_cells.json`` (with the machine's load average before and
after: the machine may be shared, which makes single timings noisy; the paired ratios are the robust number).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from benchmark_common import environment, paired_ratios, spread, time_calls
from torch import nn

from seqmodels.nn import MODERN_CELLS, RecurrentEncoder

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = ("nn.LSTM", "nn.GRU", *MODERN_CELLS, "mingru log-space (textbook)")


class LogSpaceMinGRU(nn.Module):
    """The textbook minGRU (the paper's log-space code): ``h = exp(a* + logcumsumexp(log b - a*))``, autograd."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_size, 2 * hidden_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        k_z, k_h = self.linear(x).chunk(2, dim=-1)
        log_z, log_a = -F.softplus(-k_z), -F.softplus(k_z)
        log_h = torch.where(k_h >= 0, (F.relu(k_h) + 0.5).log(), -F.softplus(-k_h))
        a_star = log_a.cumsum(1)
        return (a_star + torch.logcumsumexp(log_z + log_h - a_star, dim=1)).exp(), None


def build(name: str, size: int, device: str = "cpu") -> nn.Module:
    torch.manual_seed(0)
    if name == "nn.LSTM":
        module = nn.LSTM(size, size, batch_first=True)
    elif name == "nn.GRU":
        module = nn.GRU(size, size, batch_first=True)
    elif name.startswith("mingru log-space"):
        module = LogSpaceMinGRU(size, size)
    else:
        module = RecurrentEncoder(name, size, size, batch_first=True)
    return module.to(device)


def train_step(module: nn.Module, x: torch.Tensor) -> None:
    output, _ = module(x)
    output.square().mean().backward()
    module.zero_grad(set_to_none=True)
    if x.is_cuda:
        torch.cuda.synchronize(x.device)  # a timing ends when the kernels do, not when they are queued


def measure_cuda_memory(module: nn.Module, x: torch.Tensor) -> float:
    """MiB of peak CUDA-allocator growth over one training step (activations, gradients, temporaries)."""
    torch.cuda.synchronize(x.device)
    torch.cuda.reset_peak_memory_stats(x.device)
    base = torch.cuda.memory_allocated(x.device)
    train_step(module, x)
    return (torch.cuda.max_memory_allocated(x.device) - base) / 2**20


def _status_mib(key: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+) kB", text).group(1)) / 1024


def measure_memory(name: str, length: int, args: argparse.Namespace) -> float:
    """In this (fresh) process: MiB of peak resident-memory growth over one training step."""
    module = build(name, args.hidden)
    train_step(module, torch.randn(args.batch, 8, args.hidden))  # loads the kernels; small enough to leave no pool
    x = torch.randn(args.batch, length, args.hidden)
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    base = _status_mib("VmRSS")
    train_step(module, x)
    return _status_mib("VmHWM") - base


def memory_in_subprocess(name: str, length: int, args: argparse.Namespace) -> float | None:
    command = [sys.executable, __file__, "--measure-memory", name, str(length), "--threads", str(args.threads)]
    command += ["--hidden", str(args.hidden), "--batch", str(args.batch)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = result.stdout.strip().splitlines()
    try:
        return float(lines[-1])
    except (IndexError, ValueError):
        print(f"  (memory of {name} at L={length} failed: {result.stderr.strip()[-200:]})", flush=True)
        return None


def benchmark_length(length: int, args: argparse.Namespace) -> list[dict]:
    x = torch.randn(args.batch, length, args.hidden, device=args.device)
    modules = {name: build(name, args.hidden, args.device) for name in args.contenders}
    for module in modules.values():  # warm-up
        train_step(module, x)
    iters = max(1, 1024 // length)  # about 0.1 s or more per timing
    seconds: dict[str, list[float]] = {name: [] for name in modules}
    names = list(modules)
    for round_ in range(args.rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            seconds[name].append(sum(time_calls(lambda m=modules[name]: train_step(m, x), iters)) / iters)
    rows = []
    tokens = args.batch * length
    for name in names:
        speedup = paired_ratios(seconds["nn.LSTM"], seconds[name]) if "nn.LSTM" in seconds else None
        rate = spread(tokens / s for s in seconds[name])
        rows.append(
            {
                "length": length,
                "contender": name,
                "tokens_per_s": rate.median,
                "tokens_per_s_range": [rate.low, rate.high],
                "step_ms_median": spread(seconds[name]).median * 1000,
                "speedup_vs_lstm": None if speedup is None else speedup.median,
                "speedup_vs_lstm_range": None if speedup is None else [speedup.low, speedup.high],
                "peak_mib": None
                if args.no_memory
                else measure_cuda_memory(modules[name], x)
                if x.is_cuda
                else memory_in_subprocess(name, length, args),
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| L | cell | tokens/s (median) | x nn.LSTM (median, range) | peak memory (MiB) |",
        "|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        speed = row["speedup_vs_lstm"]
        ratio = "-" if speed is None else f"{speed:.2f} ({row['speedup_vs_lstm_range'][0]:.2f}-"
        ratio += "" if speed is None else f"{row['speedup_vs_lstm_range'][1]:.2f})"
        memory = "-" if row["peak_mib"] is None else f"{row['peak_mib']:.0f}"
        lines.append(f"| {row['length']} | {row['contender']} | {row['tokens_per_s']:,.0f} | {ratio} | {memory} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--long", action="store_true", help="also length 8192")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (memory then from the CUDA allocator)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timings per contender (medians taken)")
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--no-memory", action="store_true", help="skip the per-process peak-memory measurements")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "modern_cells.json")
    parser.add_argument("--measure-memory", nargs=2, metavar=("CONTENDER", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.measure_memory:
        print(measure_memory(args.measure_memory[0], int(args.measure_memory[1]), args))
        return
    if "nn.LSTM" not in args.contenders:
        args.contenders.insert(0, "nn.LSTM")  # the reference of every ratio
    lengths = sorted(set(args.lengths + ([8192] if args.long else [])))
    load_before = os.getloadavg()
    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    header = environment(f"{where}: {os.cpu_count()} visible cores", f"load average {load_before[0]:.1f}")
    print(header, flush=True)
    rows = []
    for length in lengths:
        print(f"L={length} ...", flush=True)
        rows += benchmark_length(length, args)
    load_after = os.getloadavg()
    table = markdown(rows)
    print(
        f"\nhidden {args.hidden}, batch {args.batch}, input size {args.hidden}, {args.threads} threads; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n"
    )
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "environment": header,
        "config": {
            "hidden": args.hidden,
            "batch": args.batch,
            "input_size": args.hidden,
            "threads": args.threads,
            "device": args.device,
            "rounds": args.rounds,
            "lengths": lengths,
        },
        "load_average_before": load_before,
        "load_average_after": load_after,
        "memory_method": "peak CUDA-allocator growth of one training step"
        if args.device.startswith("cuda")
        else "peak RSS growth of one training step in a fresh process (VmHWM after clear_refs)",
        "results": rows,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
