"""Quality of every recurrent cell at an equal wall-clock budget, from seqmodels-train's own recipes.

    python scripts/modern_cells_quality.py [--tasks adding_1000 japanese_vowels char_lm sunspots]
        [--cells lstm gru mingru ...] [--seeds 3] [--budget 120] [--jobs 2] [--quick]

Each (task, cell, seed) is one ``seqmodels-train experiment=<recipe> model/encoder=<cell> seed=<s>`` run in its own
process with one torch thread, stopped by ``trainer.max_time`` after ``--budget`` seconds of training (faster cells
take more steps; validation and testing are outside the budget), ``--jobs`` runs at a time. Reported per task and
cell: the test metric's mean and range over seeds, and the median number of epochs reached. Tasks:

* ``adding_1000``: the adding problem at T=1000 (test MSE; 0.167 answers 1.0 always, < 0.01 solves it);
* ``japanese_vowels``: speaker identification from 12 LPC channels (test accuracy; the recipe's 60-epoch cosine
  schedule, so a cell that finishes it within the budget stops there);
* ``char_lm``: the asyncio sources, characters (test bits per character = loss / ln 2);
* ``sunspots``: yearly sunspot numbers (test MASE against seasonal naive).

Writes ``benchmarks/modern_cells_quality.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = {
    "adding_1000": (["experiment=adding_problem", "data.length=1000", "trainer.max_epochs=1000"], "test/mse", 1.0),
    # Its cosine schedule spans the recipe's 60 epochs: a cell that is done sooner stops there.
    "japanese_vowels": (["experiment=japanese_vowels"], "test/acc", 1.0),
    "char_lm": (["experiment=char_lm", "trainer.max_epochs=1000"], "test/loss", 1 / math.log(2)),
    "sunspots": (["experiment=sunspots", "trainer.max_epochs=1000"], "test/mase", 1.0),
}
LABELS = {"adding_1000": "MSE", "japanese_vowels": "accuracy", "char_lm": "bits/char", "sunspots": "MASE"}
RUN = """
import json, sys
from seqmodels.config import compose_run_config
from seqmodels.train import train
cfg = compose_run_config(sys.argv[2:], output_dir=sys.argv[1])
result = train(cfg)
print("RESULT " + json.dumps({k: float(v) for k, v in result.metrics.items()} | {"epochs": result.task.current_epoch}))
"""


def run(task: str, cell: str, seed: int, budget: float, quick: bool, out: Path) -> dict:
    overrides, metric, scale = TASKS[task]
    seconds = int(budget)
    extra = [
        f"model/encoder={cell}",
        f"seed={seed}",
        f"trainer.max_time=00:00:{seconds // 60:02d}:{seconds % 60:02d}",
        "callbacks.early_stopping=null",  # the budget, not patience, ends every run
        "~callbacks.rich_progress_bar",
        "trainer.enable_progress_bar=false",
        "logger=csv",
    ]
    if quick:
        extra += ["trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]
    folder = out / f"{task}_{cell}_{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(folder), *overrides, *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=budget * 4 + 600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"task": task, "cell": cell, "seed": seed, "error": tail[0][:200]}
    metrics = json.loads(lines[-1][len("RESULT ") :])
    return {"task": task, "cell": cell, "seed": seed, "value": metrics[metric] * scale, "epochs": metrics["epochs"]}


def main() -> None:
    from seqmodels.nn import MODERN_CELLS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", *MODERN_CELLS])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=120.0, help="training seconds per run")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one torch thread each)")
    parser.add_argument("--quick", action="store_true", help="two batches per epoch: the plumbing only")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "modern_cells_quality.json")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="seqmodels_quality_"))
    jobs = [(t, c, s) for t in args.tasks for c in args.cells for s in range(args.seeds)]
    print(f"{len(jobs)} runs of {args.budget:.0f} s, {args.jobs} at a time, one thread each", flush=True)
    results = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run, *job, args.budget, args.quick, out) for job in jobs]
        for future in concurrent.futures.as_completed(futures):
            result = future.result()
            results.append(result)
            shown = f"{result['value']:.4f}" if "value" in result else f"failed: {result['error']}"
            print(f"  {result['task']} {result['cell']} seed {result['seed']}: {shown}", flush=True)
    print(f"\n| cell | {' | '.join(f'{t} ({LABELS[t]})' for t in args.tasks)} |")
    print("|---|" + "---|" * len(args.tasks))
    table = {}
    for cell in args.cells:
        cells = []
        for task in args.tasks:
            runs = [r for r in results if r["task"] == task and r["cell"] == cell and "value" in r]
            if not runs:
                cells.append("failed")
                continue
            values = sorted(r["value"] for r in runs)
            epochs = statistics.median(r["epochs"] for r in runs)
            table.setdefault(task, {})[cell] = {"values": values, "epochs": epochs}
            cells.append(f"{statistics.mean(values):.3f} ({values[0]:.3f}-{values[-1]:.3f}), {epochs:.0f} ep")
        print(f"| {cell} | " + " | ".join(cells) + " |")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"budget_s": args.budget, "seeds": args.seeds, "results": results}, indent=1))


if __name__ == "__main__":
    main()
