"""Benchmark: test accuracy and training wall time of the shipped JapaneseVowels experiment.

    .venv/bin/python scripts/benchmark_japanese_vowels.py --seeds 1 2 3 [extra Hydra overrides]

Each seed is one full `seqmodels-train experiment=japanese_vowels` run (train + test on the best checkpoint),
run in-process on the CPU. Prints one line per seed and the mean/min/max.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmark_common import QUIET, environment, run_metrics

from seqmodels.config import compose_run_config
from seqmodels.train import train


def run(seed: int, overrides: list[str]) -> tuple[float, float]:
    cfg = compose_run_config(["experiment=japanese_vowels", f"seed={seed}", *QUIET, *overrides])
    start = time.perf_counter()
    metrics = run_metrics(train(cfg))
    return metrics["test/acc"], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. model/encoder=gru")
    args = parser.parse_args()
    print(environment())
    accs, times = [], []
    for seed in args.seeds:
        acc, seconds = run(seed, args.overrides)
        accs.append(acc)
        times.append(seconds)
        print(f"seed {seed}: test/acc {acc:.4f}  wall {seconds:.1f} s", flush=True)
    print(
        f"JapaneseVowels test accuracy: mean {statistics.mean(accs):.4f} min {min(accs):.4f} max {max(accs):.4f} "
        f"(target >= 0.98); train+test wall time: mean {statistics.mean(times):.1f} s"
    )


if __name__ == "__main__":
    main()
