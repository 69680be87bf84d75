"""Benchmark: the topic_classification experiment (an RNN on Debian's fortune files) against scikit-learn baselines.

    .venv/bin/python scripts/benchmark_topic_classification.py --seeds 1 2 3 [extra Hydra overrides]

Each seed is one full `seqmodels-train experiment=topic_classification` run (train, then test on the best
checkpoint), in-process on the CPU; the seeds change only the initial weights and batch order, and every model
sees the one split drawn by --data-seed (12345, the config's default seed). The baselines are TF-IDF logistic
regressions on word uni+bigrams and on character 2-5-grams, fit on the same training split with C chosen on its
validation split, then scored on the same test split. Prints a markdown table (accuracy, macro F1, training time)
and writes benchmarks/topic_classification.json. Needs the fortunes package (make system-data).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from benchmark_common import QUIET, environment, run_metrics

from seqmodels.config import compose_run_config, instantiate_datamodule
from seqmodels.train import train

OUT = Path(__file__).resolve().parent.parent / "benchmarks" / "topic_classification.json"
EXPERIMENT = "experiment=topic_classification"


def rnn_run(seed: int, data_seed: int, overrides: list[str]) -> dict[str, float]:
    """One training run: ``seed`` sets the initial weights and batch order; the split stays ``data_seed``'s."""
    cfg = compose_run_config([EXPERIMENT, f"seed={seed}", f"data.seed={data_seed}", *QUIET, *overrides])
    start = time.perf_counter()
    metrics = run_metrics(train(cfg))
    seconds = time.perf_counter() - start
    return {"acc": float(metrics["test/acc"]), "macro_f1": float(metrics["test/f1"]), "seconds": seconds}


def splits(data_seed: int, overrides: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    """The experiment's own train/val/test quotations and labels for the split ``data_seed`` draws."""
    cfg = compose_run_config([EXPERIMENT, f"data.seed={data_seed}", *overrides])
    datamodule = instantiate_datamodule(cfg.data)
    datamodule.setup()
    return {split: ([r.text for r in rows], [r.label for r in rows]) for split, rows in datamodule._raw.items()}


def baselines(data: dict[str, tuple[list[str], list[str]]]) -> dict[str, dict[str, Any]]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline

    vectorizers = {
        "TF-IDF words 1-2 + logistic regression": dict(ngram_range=(1, 2), sublinear_tf=True),
        "TF-IDF chars 2-5 + logistic regression": dict(
            analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2
        ),
    }
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = data["train"], data["val"], data["test"]
    results = {}
    for name, options in vectorizers.items():
        best: tuple[float, float, Any, float] | None = None
        for c in (3.0, 30.0):  # chosen on validation accuracy
            start = time.perf_counter()
            model = make_pipeline(TfidfVectorizer(**options), LogisticRegression(C=c, max_iter=2000))
            model.fit(train_x, train_y)
            seconds = time.perf_counter() - start
            val_acc = accuracy_score(val_y, model.predict(val_x))
            if best is None or val_acc > best[0]:
                best = (val_acc, c, model, seconds)
        assert best is not None
        _, c, model, seconds = best
        predicted = model.predict(test_x)
        results[name] = {
            "acc": accuracy_score(test_y, predicted),
            "macro_f1": f1_score(test_y, predicted, average="macro"),
            "seconds": seconds,
            "C": c,
        }
        print(f"{name}: C={c} test/acc {results[name]['acc']:.4f} macro F1 {results[name]['macro_f1']:.4f}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--data-seed", type=int, default=12345, help="draws the one split every model uses")
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. model/encoder=lstm")
    args = parser.parse_args()
    print(environment(), flush=True)
    data = splits(args.data_seed, args.overrides)
    counts = {split: len(texts) for split, (texts, _) in data.items()}
    majority = max(set(data["train"][1]), key=data["train"][1].count)
    print(f"quotations: {counts}, {len(set(data['train'][1]))} categories", flush=True)
    rnn = []
    for seed in args.seeds:
        run = rnn_run(seed, args.data_seed, args.overrides)
        rnn.append(run)
        print(
            f"seed {seed}: test/acc {run['acc']:.4f} macro F1 {run['macro_f1']:.4f} wall {run['seconds']:.0f} s",
            flush=True,
        )
    base = {} if args.skip_baselines else baselines(data)
    test_labels = data["test"][1]
    rows = [("majority class", test_labels.count(majority) / len(test_labels), None, None)]
    for name, result in base.items():
        rows.append((f"{name} (C={result['C']:g})", result["acc"], result["macro_f1"], result["seconds"]))

    def mean_sd(values: list[float], digits: int = 3) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"

    print("\n| model | test accuracy | test macro F1 | training time (2 CPU cores) |\n|---|---|---|---|")
    if rnn:
        seconds = [r["seconds"] for r in rnn]
        print(
            f"| BiGRU, word level, max pooling ({len(rnn)} seeds) | {mean_sd([r['acc'] for r in rnn])} | "
            f"{mean_sd([r['macro_f1'] for r in rnn])} | {statistics.mean(seconds):.0f} s (train + test) |"
        )
    for name, acc, f1, seconds in rows:
        f1_text = f"{f1:.3f}" if f1 is not None else "-"
        time_text = f"{seconds:.0f} s" if seconds is not None else "-"
        print(f"| {name} | {acc:.3f} | {f1_text} | {time_text} |")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "environment": environment(),
                "overrides": args.overrides,
                "data_seed": args.data_seed,
                "quotations": counts,
                "categories": sorted(set(data["train"][1])),
                "rnn": [{"seed": s, **r} for s, r in zip(args.seeds, rnn, strict=True)],
                "baselines": base,
                "majority_class": {"label": majority, "acc": rows[0][1]},
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {OUT}")


if __name__ == "__main__":
    main()
