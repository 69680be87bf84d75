"""Benchmark: validation and test accuracy and training wall time of the shipped JapaneseVowels experiment.

    .venv/bin/python scripts/benchmark_japanese_vowels.py --seeds 0 1 2 3 4 [extra Hydra overrides]

Each seed is one full `seqmodels-train experiment=japanese_vowels` run (train + test on the best checkpoint),
run in-process on the CPU. Prints one line per seed and the mean/min/max. The validation loss and accuracy are
those of the tested checkpoint (the one with the lowest validation loss) on the seed's held-out part of the
training set: compare recipes on them, not on the test figures.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from benchmark_common import QUIET, environment, run_metrics

from seqmodels.config import compose_run_config
from seqmodels.train import train


def validation_figures(result) -> tuple[float, float]:
    """Cross-entropy (without label smoothing) and accuracy of the tested checkpoint on the validation split."""
    task, datamodule = result.task, result.datamodule
    task.eval()
    losses, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for batch in datamodule.val_dataloader():
            logits = task(batch.inputs, batch.lengths)
            losses += float(F.cross_entropy(logits, batch.targets, reduction="sum"))
            correct += int((logits.argmax(-1) == batch.targets).sum())
            count += len(batch.targets)
    if count == 0:  # data.val_fraction=0: trained on every training sequence
        return float("nan"), float("nan")
    return losses / count, correct / count


def run(seed: int, overrides: list[str]) -> dict[str, float]:
    cfg = compose_run_config(["experiment=japanese_vowels", f"seed={seed}", *QUIET, *overrides])
    start = time.perf_counter()
    result = train(cfg)
    seconds = time.perf_counter() - start
    val_loss, val_acc = validation_figures(result)
    return {"test_acc": run_metrics(result)["test/acc"], "val_loss": val_loss, "val_acc": val_acc, "wall": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. model/encoder=lstm")
    args = parser.parse_args()
    print(environment(*args.overrides))
    runs = []
    for seed in args.seeds:
        figures = run(seed, args.overrides)
        runs.append(figures)
        print(
            f"seed {seed}: val/loss {figures['val_loss']:.4f}  val/acc {figures['val_acc']:.4f}  "
            f"test/acc {figures['test_acc']:.4f}  wall {figures['wall']:.1f} s",
            flush=True,
        )

    def mean(key: str) -> float:
        return statistics.mean(figures[key] for figures in runs)

    accs = [figures["test_acc"] for figures in runs]
    print(
        f"validation (tested checkpoint): loss {mean('val_loss'):.4f} acc {mean('val_acc'):.4f}; "
        f"JapaneseVowels test accuracy: mean {statistics.mean(accs):.4f} min {min(accs):.4f} max {max(accs):.4f} "
        f"(target >= 0.99); train+test wall time: mean {mean('wall'):.1f} s"
    )


if __name__ == "__main__":
    main()
