"""Benchmark: the custom (plain-torch) recurrent stack against torch's fused kernels.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/benchmark_cells.py [--hidden 128 256] [--cell lstm] [--compile]

For each hidden size, times a training step (forward + backward of a last-step loss) and an inference forward
(no_grad) of ``torch.nn.LSTM`` (or GRU/RNN) and of ``CustomRNN`` with the same weights, for each loop backend:
``script`` (TorchScript, what ``impl=custom`` uses), ``eager`` (plain Python loop) and, with ``--compile``,
``torch.compile`` (it unrolls the time loop: expect minutes of compilation per shape and mode). Timings are
medians over interleaved rounds, so a busy machine slows every contender alike. Prints milliseconds per call and
the ratio custom / fused, the median of the per-round ratios (the target for training is <= 2x).
"""

from __future__ import annotations

import argparse
import time

import torch
from benchmark_common import environment, paired_ratios, print_table, spread, time_calls
from torch import nn

from seqmodels.nn import CustomRNN

FUSED = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN}


def _train_step(module: nn.Module, x: torch.Tensor) -> None:
    output, _ = module(x)
    output[:, -1].square().sum().backward()
    module.zero_grad(set_to_none=True)


def _infer(module: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        module(x)


def _time(fn, module, x, iters: int) -> float:
    """Milliseconds per call, over ``iters`` calls."""
    return sum(time_calls(lambda: fn(module, x), iters)) / iters * 1000


def benchmark(cell: str, hidden: int, args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.length, args.input_size)
    fused = FUSED[cell](args.input_size, hidden, batch_first=True)
    contenders: dict[str, nn.Module] = {"fused": fused}
    backends = ["script", "eager"] + (["compile"] if args.compile else [])
    for backend in backends:
        custom = CustomRNN(cell, args.input_size, hidden, batch_first=True, backend=backend)
        custom.load_state_dict(fused.state_dict())
        contenders[backend] = custom

    for name, module in contenders.items():  # warm-up: TorchScript profiles, torch.compile compiles
        start = time.perf_counter()
        for _ in range(args.warmup):
            _train_step(module, x)
            _infer(module, x)
        if name == "compile":
            print(f"  (torch.compile warm-up, compilation included: {time.perf_counter() - start:.0f} s)", flush=True)

    results: dict[str, dict[str, list[float]]] = {name: {"train": [], "infer": []} for name in contenders}
    for _ in range(args.rounds):
        for name, module in contenders.items():
            results[name]["train"].append(_time(_train_step, module, x, args.iters))
            results[name]["infer"].append(_time(_infer, module, x, args.iters))

    print(f"{cell} hidden={hidden} (N={args.batch}, L={args.length}, H_in={args.input_size}):")
    rows = []
    for name, modes in results.items():
        row = [name]
        for mode in ("train", "infer"):
            ratio = paired_ratios(modes[mode], results["fused"][mode]).median
            row += [f"{spread(modes[mode]).median:.1f}", f"{ratio:.2f}"]
        rows.append(row)
    print_table(rows, header=["", "train ms", "ratio", "infer ms", "ratio"], indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=sorted(FUSED), default="lstm")
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=5, help="calls per timing")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timings per contender (median taken)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    args = parser.parse_args()
    print(environment("device cpu"))
    for hidden in args.hidden:
        benchmark(args.cell, hidden, args)


if __name__ == "__main__":
    main()
