"""Study: the adding problem's final test MSE against the sequence length T, per recurrent cell.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/adding_problem_study.py            # T in {50, 200}: ~8 min on CPU
    OMP_NUM_THREADS=1 .venv/bin/python scripts/adding_problem_study.py --seeds 1 2 3   # mean and range over seeds
    OMP_NUM_THREADS=1 .venv/bin/python scripts/adding_problem_study.py --full     # T in {50, ..., 400}: ~20 min
    .venv/bin/python scripts/adding_problem_study.py --collect logs/adding_problem_study/multiruns/<date_time>

Without ``--collect``, runs ``experiment=adding_problem_study`` in-process for every (T, cell) (extra Hydra
overrides are passed on). With ``--collect``, reads the runs of ``seqmodels-train -m experiment=adding_problem_study``
instead (their ``.hydra/config.yaml`` and the ``test/mse`` in their TensorBoard logs). Either way it prints a table
of test MSE (rows: cell, columns: T; always predicting 1.0 gives ~0.167) and saves a figure of MSE against T. With
several seeds, each entry is the mean and the range: whether a cell escapes the 0.167 plateau within the budget can
depend on the seed (and on the CPU's rounding), so one run is no verdict.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime
from pathlib import Path

import benchmark_common as common

BASELINE_MSE = 1 / 6
CELLS = ("rnn_tanh", "lstm", "gru")


def run_grid(
    lengths: list[int], cells: list[str], seeds: list[int], out: Path, overrides: list[str]
) -> dict[tuple[str, int], dict]:
    from seqmodels.config import compose_run_config
    from seqmodels.train import train

    results: dict[tuple[str, int], dict] = {}
    for seed in seeds:
        for length in lengths:
            for cell in cells:
                cfg = compose_run_config(
                    [
                        "experiment=adding_problem_study",
                        f"seed={seed}",
                        f"data.length={length}",
                        f"model.net.encoder.cell={cell}",
                        *common.QUIET,
                        "trainer.accelerator=cpu",
                        *overrides,
                    ],
                    output_dir=out / f"{cell}_T{length}_seed{seed}",
                )
                start = time.perf_counter()
                metrics = common.run_metrics(train(cfg))
                seconds = time.perf_counter() - start
                entry = results.setdefault((cell, length), {"mse": [], "seconds": []})
                entry["mse"].append(metrics["test/mse"])
                entry["seconds"].append(seconds)
                print(
                    f"seed {seed} T={length:4d} {cell:8s} test/mse {metrics['test/mse']:.4f}  ({seconds:.0f} s)",
                    flush=True,
                )
    return results


def collect(multirun: Path) -> dict[tuple[str, int], dict]:
    """Reads a ``-m`` sweep folder: one numbered sub-folder per run."""
    from omegaconf import OmegaConf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    results = {}
    for config_path in sorted(multirun.glob("*/.hydra/config.yaml")):
        run = config_path.parent.parent
        cfg = OmegaConf.load(config_path)
        events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0}).Reload()
        if "test/mse" not in events.Tags()["scalars"]:
            print(f"skipping {run}: no test/mse logged (unfinished run?)")
            continue
        key = (str(cfg.model.net.encoder.cell), int(cfg.data.length))
        entry = results.setdefault(key, {"mse": [], "seconds": []})
        entry["mse"].append(events.Scalars("test/mse")[-1].value)
    if not results:
        raise SystemExit(f"no finished runs under {multirun}; expected <run>/.hydra/config.yaml and <run>/tensorboard")
    return results


def print_table(results: dict[tuple[str, int], dict]) -> None:
    lengths = sorted({length for _, length in results})
    cells = [c for c in CELLS if any(cell == c for cell, _ in results)]
    runs = max(len(r["mse"]) for r in results.values())
    what = "test MSE" if runs == 1 else f"test MSE, mean (min-max) of {runs} seeds"
    print(f"\nAdding problem: {what} (always predicting 1.0: {BASELINE_MSE:.3f}; solved: < 0.01)")
    rows = []
    for cell in cells:
        row = [cell]
        for length in lengths:
            mses = results.get((cell, length), {}).get("mse", [])
            if not mses:
                row.append("-")
            elif len(mses) == 1:
                row.append(f"{mses[0]:.4f}")
            else:
                row.append(f"{statistics.mean(mses):.4f} ({min(mses):.4f}-{max(mses):.4f})")
        rows.append(row)
    common.print_table(rows, header=["cell", *(f"T={length}" for length in lengths)])
    seconds = [s for r in results.values() for s in r["seconds"]]
    if seconds:  # timed in-process (not collected from a sweep)
        print(f"wall time: {sum(seconds) / 60:.1f} min for {len(seconds)} runs")


def save_figure(results: dict[tuple[str, int], dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for cell in CELLS:
        points = sorted((length, r["mse"]) for (c, length), r in results.items() if c == cell)
        if points:
            x = [length for length, _ in points]
            mean = [statistics.mean(mses) for _, mses in points]
            spread = [
                [m - min(mses) for m, (_, mses) in zip(mean, points, strict=True)],
                [max(mses) - m for m, (_, mses) in zip(mean, points, strict=True)],
            ]
            ax.errorbar(x, mean, yerr=spread, marker="o", capsize=3, label=cell)
    ax.set_yscale("log")
    ax.axhline(BASELINE_MSE, color="gray", linestyle="--", label="predict 1.0 (0.167)")
    ax.axhline(0.01, color="gray", linestyle=":", label="solved (0.01)")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("test MSE")
    ax.set_title("Adding problem")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"figure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--full", action="store_true", help="T in {50, 100, 200, 400} (about three times longer)")
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[12345], help="one run per seed, cell and T")
    parser.add_argument("--collect", type=Path, help="a `seqmodels-train -m experiment=adding_problem_study` folder")
    parser.add_argument("--out", type=Path, help="where runs and the figure go (default logs/adding_problem_study/...)")
    parser.add_argument(
        "overrides", nargs="*", help="extra Hydra overrides, e.g. seed=2 model.net.encoder.hidden_size=128"
    )
    args = parser.parse_args()

    if args.collect is not None:
        results = collect(args.collect)
        out = args.out or args.collect
    else:
        out = args.out or Path("logs/adding_problem_study/script") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        lengths = [50, 100, 200, 400] if args.full else args.lengths
        print(f"{common.environment()}; runs under {out}", flush=True)
        results = run_grid(lengths, args.cells, args.seeds, out, args.overrides)
    print_table(results)
    save_figure(results, out / "adding_problem_study.png")


if __name__ == "__main__":
    main()
