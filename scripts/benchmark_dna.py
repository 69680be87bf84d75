"""Benchmark: DNA experiments on Debian's kaptive-data capsule loci against their classical baselines.

    .venv/bin/python scripts/benchmark_dna.py                      # both experiments, a few minutes on 2 cores
    .venv/bin/python scripts/benchmark_dna.py --lm-batches 300 --skip-tagging

1. ``dna_lm``: bits per base of the recurrent language model on the held-out test loci (read as 8 streams, each
   from a zero state) against order-k Markov models (k = 1..8; Witten-Bell backoff and add-one) fit on the same
   training loci and scored on exactly the same test targets.
2. ``gene_tagging``: per-base accuracy and F1 (noncoding / CDS+ / CDS-) of the bidirectional tagger on the test
   loci's windows against the longest-open-reading-frame baseline on the same bases, and the share of annotated
   genes whose both boundaries are called exactly (gene-boundary recall).
3. ``locus_classification``: test accuracy and macro F1 of the many-to-one classifier (which of kaptive's four
   reference sets a 500-base window comes from) against logistic regression on 4-mer frequencies.

Prints tables with the training time and throughput (bases/s) and writes ``benchmarks/dna.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from benchmark_common import QUIET, TrainingTimer, environment, load_best, print_table, run_metrics

from seqmodels.config import compose_run_config, instantiate_datamodule
from seqmodels.data.collate import pad_collate
from seqmodels.data.genomic import (
    NucleotideTokenizer,
    coding_tags,
    gene_spans,
    kaptive_files,
    longest_orfs,
    markov_table,
    per_base_f1,
    require_biopython,
)
from seqmodels.train import train


def lm_benchmark(args: argparse.Namespace) -> dict:
    overrides = [
        "experiment=dna_lm",
        f"trainer.max_epochs={args.lm_epochs}",
        f"trainer.limit_train_batches={args.lm_batches}",
        f"model.net.hidden_size={args.lm_hidden}",
        *QUIET,
        "~callbacks.early_stopping",
        *args.overrides,
    ]
    cfg = compose_run_config(overrides)
    timer = TrainingTimer(warmup_steps=2)
    metrics = run_metrics(train(cfg, extra_callbacks=[timer]))
    datamodule = instantiate_datamodule(cfg.data)
    datamodule.setup()
    k = datamodule.k
    steps = max(timer.steps - 2, 1)
    window_tokens = cfg.data.batch_size * cfg.data.bptt
    bases_per_s = steps * window_tokens * k / timer.seconds
    rnn_bits = metrics["test/loss"] / math.log(2.0) / k
    train_streams = datamodule.streams["train"].numpy()
    test_streams = datamodule.streams["test"].numpy()
    seen_bases = steps * window_tokens * k
    print(
        f"\n== dna_lm: {len(datamodule.records['train'])} train / {len(datamodule.records['val'])} val / "
        f"{len(datamodule.records['test'])} test loci; {train_streams.size:,} train / {test_streams.size:,} test bases"
    )
    markov = markov_table(train_streams, test_streams, orders=range(1, 9))
    rows = [
        (
            f"LSTM {cfg.model.net.num_layers}x{cfg.model.net.hidden_size}",
            f"{rnn_bits:.3f}",
            "",
            f"{timer.seconds:.0f} s ({seen_bases / 1e6:.1f}M bases seen)",
            f"{bases_per_s:,.0f}",
        )
    ]
    for row in markov:
        fit_rate = train_streams.size * 2 / row["seconds"]  # both smoothings fit and scored
        rows.append(
            (
                f"Markov k={row['k']}",
                f"{row['witten_bell']:.3f}",
                f"{row['add_one']:.3f}",
                f"{row['seconds']:.1f} s",
                f"{fit_rate:,.0f}",
            )
        )
    print_table(
        rows,
        header=["model", "bits/base (backoff)", "bits/base (add-one)", "training time", "train bases/s"],
        align="<>>>>",
    )
    return {
        "rnn": {
            "model": f"LSTM {cfg.model.net.num_layers} layer(s) x {cfg.model.net.hidden_size}",
            "test_bits_per_base": rnn_bits,
            "val_bits_per_base": metrics.get("val/loss", float("nan")) / math.log(2.0) / k,
            "training_seconds": timer.seconds,
            "train_bases_seen": seen_bases,
            "train_bases_per_second": bases_per_s,
            "bptt": cfg.data.bptt,
            "batch_size": cfg.data.batch_size,
        },
        "markov": markov,
        "loci": {split: len(records) for split, records in datamodule.records.items()},
        "bases": {"train": int(train_streams.size), "test": int(test_streams.size)},
    }


def tagging_benchmark(args: argparse.Namespace) -> dict:
    overrides = [
        "experiment=gene_tagging",
        f"trainer.max_epochs={args.tag_epochs}",
        f"trainer.limit_train_batches={args.tag_batches}",
        *QUIET,
        "~callbacks.early_stopping",
        *args.overrides_tagging,
    ]
    cfg = compose_run_config(overrides)
    timer = TrainingTimer(warmup_steps=2)
    result = train(cfg, extra_callbacks=[timer])
    metrics = run_metrics(result)
    model, _ = load_best(result, setup_data=False)
    datamodule = instantiate_datamodule(cfg.data)
    datamodule.setup()
    model.eval()
    steps = max(timer.steps - 2, 1)
    bases_per_s = steps * cfg.data.batch_size * cfg.data.window / timer.seconds  # windows are (nearly) all full

    # The tagger and the ORF baseline on exactly the test windows' bases.
    records = datamodule.records["test"]
    tagger_pred, orf_pred, truth = [], [], []
    per_record_pred: dict[int, np.ndarray] = {}
    orf_by_record = {i: longest_orfs(r.sequence, min_length=args.orf_min_length) for i, r in enumerate(records)}
    tags_by_record = {i: coding_tags(r) for i, r in enumerate(records)}
    start_time = time.perf_counter()
    windows = list(zip(datamodule.spans["test"], datamodule.test_set, strict=True))
    with torch.no_grad():
        for first in range(0, len(windows), 64):
            chunk = windows[first : first + 64]
            batch = pad_collate([item for _, item in chunk], padding_value=datamodule.input_padding_value)
            predictions = model(batch.inputs, batch.lengths).argmax(-1).numpy()
            for ((index, start, end), _), pred in zip(chunk, predictions, strict=True):
                pred = pred[: end - start]
                per_record_pred.setdefault(index, np.zeros(len(records[index]), dtype=np.int64))[start:end] = pred
                tagger_pred.append(pred)
                orf_pred.append(orf_by_record[index][start:end])
                truth.append(tags_by_record[index][start:end])
    predict_seconds = time.perf_counter() - start_time
    tagger_pred, orf_pred, truth = map(np.concatenate, (tagger_pred, orf_pred, truth))

    def boundary_recall(predictions: dict[int, np.ndarray]) -> float:
        found = total = 0
        for i, record in enumerate(records):
            genes = {(f.start, f.end, 2 if f.strand == -1 else 1) for f in record.features if f.type == "CDS"}
            called = gene_spans(predictions[i]) if i in predictions else set()
            found += len(genes & called)
            total += len(genes)
        return found / max(total, 1)

    scores = {
        "tagger": {**per_base_f1(tagger_pred, truth), "gene_boundary_recall": boundary_recall(per_record_pred)},
        "longest_orf": {**per_base_f1(orf_pred, truth), "gene_boundary_recall": boundary_recall(orf_by_record)},
    }
    print(
        f"\n== gene_tagging: {len(datamodule.train_set)} train windows of {cfg.data.window} bases; "
        f"{len(truth):,} test bases in {len(datamodule.test_set)} windows of {len(records)} held-out loci"
    )
    rows = [
        (
            name,
            f"{s['acc']:.3f}",
            f"{s['f1_noncoding']:.3f}",
            f"{s['f1_CDS+']:.3f}",
            f"{s['f1_CDS-']:.3f}",
            f"{s['macro_f1']:.3f}",
            f"{s['gene_boundary_recall']:.3f}",
        )
        for name, s in (
            ("BiLSTM tagger", scores["tagger"]),
            (f"longest ORFs >= {args.orf_min_length}", scores["longest_orf"]),
        )
    ]
    print_table(
        rows, header=["model", "acc", "F1 noncoding", "F1 CDS+", "F1 CDS-", "macro F1", "gene recall"], align="<>>>>>>"
    )
    print(
        f"tagger training: {timer.seconds:.0f} s, {bases_per_s:,.0f} bases/s; prediction "
        f"{len(truth) / predict_seconds:,.0f} bases/s; task test/f1 {metrics.get('test/f1', float('nan')):.3f}"
    )
    return {
        "scores": scores,
        "training_seconds": timer.seconds,
        "train_bases_per_second": bases_per_s,
        "predict_bases_per_second": len(truth) / predict_seconds,
        "test_bases": len(truth),
        "window": cfg.data.window,
        "task_test_f1": metrics.get("test/f1"),
    }


def kmer_profiles(dataset, vocab, k: int = 4) -> np.ndarray:
    """Each window's k-mer frequencies (overlapping, ``N``-free k-mers), the features of the baseline classifier."""
    tokenizer = NucleotideTokenizer(k, stride=1)
    index = {kmer: i for i, kmer in enumerate(tokenizer.vocabulary().itos[3:])}
    rows = np.zeros((len(dataset), len(index)))
    for row, (inputs, _) in enumerate(dataset):
        for kmer in tokenizer("".join(vocab.decode(inputs.tolist()))):
            if kmer in index:
                rows[row, index[kmer]] += 1
    return rows / np.maximum(rows.sum(1, keepdims=True), 1)


def locus_benchmark(args: argparse.Namespace) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    overrides = [
        "experiment=locus_classification",
        f"trainer.max_epochs={args.locus_epochs}",
        *QUIET,
        "~callbacks.early_stopping",
        *args.overrides_locus,
    ]
    cfg = compose_run_config(overrides)
    timer = TrainingTimer(warmup_steps=2)
    metrics = run_metrics(train(cfg, extra_callbacks=[timer]))
    datamodule = instantiate_datamodule(cfg.data)
    datamodule.setup()
    steps = max(timer.steps - 2, 1)
    bases_per_s = steps * cfg.data.batch_size * cfg.data.window / timer.seconds
    start = time.perf_counter()
    train_x, test_x = (kmer_profiles(d, datamodule.vocab) for d in (datamodule.train_set, datamodule.test_set))
    train_y, test_y = datamodule.train_set.targets.numpy(), datamodule.test_set.targets.numpy()
    classifier = LogisticRegression(max_iter=2000, C=10.0).fit(train_x, train_y)
    predicted = classifier.predict(test_x)
    baseline_seconds = time.perf_counter() - start
    baseline = {"acc": accuracy_score(test_y, predicted), "macro_f1": f1_score(test_y, predicted, average="macro")}
    rnn = {"acc": metrics["test/acc"], "macro_f1": metrics["test/f1"]}
    sizes = {split: len(getattr(datamodule, f"{split}_set")) for split in ("train", "val", "test")}
    print(
        f"\n== locus_classification: {', '.join(datamodule.class_names)}; windows of {cfg.data.window} bases "
        f"train/val/test {sizes['train']}/{sizes['val']}/{sizes['test']} (near-identical loci kept in one split)"
    )
    print_table(
        [
            ("BiGRU + attention pooling", f"{rnn['acc']:.3f}", f"{rnn['macro_f1']:.3f}", f"{timer.seconds:.0f} s"),
            (
                "4-mer logistic regression",
                f"{baseline['acc']:.3f}",
                f"{baseline['macro_f1']:.3f}",
                f"{baseline_seconds:.0f} s",
            ),
        ],
        header=["model", "test acc", "test macro F1", "training time"],
    )
    return {
        "classes": datamodule.class_names,
        "windows": sizes,
        "rnn": {**rnn, "training_seconds": timer.seconds, "train_bases_per_second": bases_per_s},
        "kmer_logistic_regression": {**baseline, "seconds": baseline_seconds},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lm-epochs", type=int, default=2)
    parser.add_argument("--lm-batches", type=int, default=250, help="training windows per epoch (of 64 x 100 bases)")
    parser.add_argument("--lm-hidden", type=int, default=256)
    parser.add_argument("--tag-epochs", type=int, default=3)
    parser.add_argument("--tag-batches", type=int, default=40, help="training batches per epoch (of 32 windows)")
    parser.add_argument("--orf-min-length", type=int, default=300)
    parser.add_argument("--locus-epochs", type=int, default=4)
    parser.add_argument("--skip-lm", action="store_true")
    parser.add_argument("--skip-locus", action="store_true")
    parser.add_argument("--skip-tagging", action="store_true")
    parser.add_argument("--output", default="benchmarks/dna.json")
    parser.add_argument("--overrides", nargs="*", default=[], help="extra Hydra overrides for dna_lm")
    parser.add_argument("--overrides-tagging", nargs="*", default=[], help="extra Hydra overrides for gene_tagging")
    parser.add_argument(
        "--overrides-locus", nargs="*", default=[], help="extra Hydra overrides for locus_classification"
    )
    args = parser.parse_args()
    require_biopython()
    files = kaptive_files()
    print(environment(f"data: {', '.join(f.name for f in files)}"))
    output = Path(args.output)
    report: dict = json.loads(output.read_text()) if output.is_file() else {}  # parts not rerun are kept
    report.update({"environment": environment(), "data": [str(f) for f in files]})
    if not args.skip_lm:
        report["dna_lm"] = lm_benchmark(args)
    if not args.skip_tagging:
        report["gene_tagging"] = tagging_benchmark(args)
    if not args.skip_locus:
        report["locus_classification"] = locus_benchmark(args)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
