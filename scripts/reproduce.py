"""Reproduce the classic benchmarks: train each recipe from its shipped experiment over seeds, print one table.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/reproduce.py                       # every benchmark: hours on a CPU
    OMP_NUM_THREADS=1 .venv/bin/python scripts/reproduce.py --only japanese_vowels sequential_digits --seeds 0 1 2
    OMP_NUM_THREADS=1 .venv/bin/python scripts/reproduce.py --quick               # about a minute per run
    .venv/bin/python scripts/reproduce.py --list                                  # the registry and its commands

Each run is `seqmodels-train experiment=<name> <overrides> seed=<seed>` run in-process (train, then test on the
best checkpoint). A row gives the benchmark, its metric, the published figure (or baseline) and its source, the
seqmodels figure as the mean and min-max range over the seeds, the training wall time per run on this machine
(train + test, mean over the seeds) and the command. A benchmark whose run fails prints FAIL and the first line
of its error, and the table goes on.

The rows are also written to ``benchmarks/reproduce.json`` and ``benchmarks/reproduce.md`` (``--quick``:
``benchmarks/reproduce_quick.*``; ``--output`` to choose). Rows already in that file for benchmarks not run this
time are kept, so the table can be filled a few benchmarks at a time. Extra Hydra overrides apply to every run;
after ``--seeds`` or ``--only``, put them behind ``--``:

    .venv/bin/python scripts/reproduce.py --only japanese_vowels --seeds 0 -- trainer.max_epochs=10

``--add-seeds`` keeps the results file's runs of other seeds in each row run now (same command): a long benchmark
gains a seed at a time, e.g. ``--only cmudict_g2p --seeds 1 --add-seeds``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark_common import QUIET, environment, print_table, run_metrics

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "benchmarks" / "reproduce.json"
QUICK_OUTPUT = ROOT / "benchmarks" / "reproduce_quick.json"
# Every --quick run stops after a minute of training whatever its own quick settings leave.
QUICK_LIMIT = ["trainer.max_time=00:00:01:00"]


def copy_baseline(length: int) -> float:
    """The copy task's memoryless cross-entropy per step: 10 log 8 / (T + 20) (blanks, then a uniform guess)."""
    return 10 * math.log(8) / (length + 20)


@dataclass(frozen=True)
class Benchmark:
    """One row of the table: a recipe (an experiment and its overrides), what is read from its runs, and the
    published figure it is compared with.

    ``keys`` are read from the run's metrics (``seqmodels.train.train``'s result) and passed to ``figures``, which
    turns them into the reported figures (one or more, e.g. WER and PER), each printed with ``spec``.
    ``rescore``, where set, computes further metrics from the trained run (its :class:`TrainResult`), named in
    ``rescored_keys``; the other keys are ones the task logs.
    """

    name: str
    experiment: str
    metric: str
    keys: tuple[str, ...]
    published: str
    source: str
    overrides: tuple[str, ...] = ()
    figures: Callable[[dict[str, float]], tuple[float, ...]] | None = None
    spec: str = ".3f"
    seeds: tuple[int, ...] = (0, 1, 2)
    quick: tuple[str, ...] = ()
    rescore: Callable[[Any], dict[str, float]] | None = None
    rescored_keys: tuple[str, ...] = ()
    note: str = ""

    def read(self, metrics: dict[str, float]) -> tuple[float, ...]:
        """The reported figures of one run's metrics."""
        missing = [key for key in self.keys if key not in metrics]
        if missing:
            raise KeyError(f"the run logged no {missing[0]} (it has {', '.join(sorted(metrics)) or 'no metrics'})")
        if self.figures is None:
            return tuple(metrics[key] for key in self.keys)
        return self.figures(metrics)

    def format(self, value: float) -> str:
        return f"{value:{self.spec}}"

    def run_overrides(self, seed: int, quick: bool = False, extra: Sequence[str] = ()) -> list[str]:
        """The Hydra overrides of one run."""
        return [
            f"experiment={self.experiment}",
            *self.overrides,
            f"seed={seed}",
            *((*QUICK_LIMIT, *self.quick) if quick else ()),
            *extra,
        ]

    @property
    def command(self) -> str:
        """The ``seqmodels-train`` command of one run (``seed=`` added per seed)."""
        return " ".join(["seqmodels-train", f"experiment={self.experiment}", *self.overrides])


def g2p_rescore(result: Any) -> dict[str, float]:
    """WER and PER of the tested G2P checkpoint with beam search (5) against every CMUdict pronunciation of each
    test word, the published scoring (``scripts/benchmark_g2p.py``'s)."""
    import torch
    from benchmark_g2p import decode_test, score

    predictions = decode_test(result.task, result.datamodule, beam_size=5, device=torch.device("cpu"))
    wer, per = score(predictions, result.datamodule.references["test"])
    return {"g2p/wer": wer, "g2p/per": per}


def _percent(key: str) -> Callable[[dict[str, float]], tuple[float, ...]]:
    return lambda metrics: (100 * metrics[key],)


_JSB = "JSB-Chorales-style piano rolls (music21's 371 chorales, not the original pickle)"
_QUICK_JSB = ("trainer.max_epochs=3",)  # the parsed chorales are cached after the first run
_QUICK_COPY = ("data.num_train=640", "data.num_val=128", "data.num_test=128", "trainer.max_epochs=2")


def _vowels(experiment: str, what: str) -> Benchmark:
    """A JapaneseVowels recipe's test accuracy over 5 seeds (its runs take seconds; seeds are what vary)."""
    return Benchmark(
        experiment,
        experiment,
        f"test accuracy %, {what}",
        ("test/acc",),
        "~99",
        "MLSTM-FCN, Karim et al. 2019",
        figures=_percent("test/acc"),
        spec=".1f",
        seeds=(0, 1, 2, 3, 4),
        quick=("trainer.max_epochs=5",),
    )


def _adding(name: str, length: int, cell: str) -> Benchmark:
    """The adding problem at T=``length`` with the 64-unit ``cell`` (the experiment's default is LSTM at T=100)."""
    overrides = () if length == 100 else (f"model/encoder={cell.lower()}", f"data.length={length}")
    return Benchmark(
        name,
        "adding_problem",
        f"test MSE, adding problem T={length} ({cell} 64)",
        ("test/mse",),
        "< 0.01 (baseline 0.167)",
        "solved below 0.01, Arjovsky et al. 2016 / Le et al. 2015; predicting 1 scores 0.167",
        overrides=overrides,
        spec=".4f",
        quick=(
            "data.num_train=1280",
            "data.num_val=256",
            "data.num_test=256",
            f"trainer.max_epochs={1 + (length == 100)}",
        ),
    )


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "jsb_chorales_lstm",
        "jsb_chorales",
        "test NLL per step (nats, 88 keys), LSTM 128",
        ("test/nll",),
        "8.45",
        "LSTM, Bai et al. 2018",
        spec=".2f",
        quick=_QUICK_JSB,
        note=_JSB,
    ),
    Benchmark(
        "jsb_chorales_gru",
        "jsb_chorales",
        "test NLL per step, GRU 128",
        ("test/nll",),
        "8.43",
        "GRU, Bai et al. 2018",
        overrides=("model/encoder=gru", "trainer.max_epochs=100"),
        spec=".2f",
        quick=_QUICK_JSB,
        note=_JSB,
    ),
    Benchmark(
        "jsb_chorales_rnn",
        "jsb_chorales",
        "test NLL per step, tanh RNN 128",
        ("test/nll",),
        "8.91",
        "tanh RNN, Bai et al. 2018",
        overrides=("model/encoder=rnn", "trainer.max_epochs=100"),
        spec=".2f",
        quick=_QUICK_JSB,
        note=_JSB,
    ),
    Benchmark(
        "copy_memory_t100",
        "copy_memory",
        "test cross-entropy per step, copy T=100 (GRU)",
        ("test/loss",),
        f"{copy_baseline(100):.3f}",
        "memoryless baseline 10 log 8 / (T + 20), Arjovsky et al. 2016",
        spec=".4f",
        quick=_QUICK_COPY,
    ),
    Benchmark(
        "copy_memory_t200",
        "copy_memory",
        "test cross-entropy per step, copy T=200 (GRU, 6 min)",
        ("test/loss",),
        f"{copy_baseline(200):.4f}",
        "memoryless baseline 10 log 8 / (T + 20), Arjovsky et al. 2016",
        overrides=("data.length=200", "trainer.max_time=00:00:06:00"),
        spec=".4f",
        quick=_QUICK_COPY,
    ),
    _adding("adding_problem", 100, "LSTM"),
    _adding("adding_problem_t400", 400, "GRU"),
    _adding("adding_problem_t1000", 1000, "GRU"),
    Benchmark(
        "sequential_digits",
        "sequential_digits",
        "test accuracy %, 8x8 digits pixel by pixel (LSTM 128)",
        ("test/acc",),
        "-",
        "no published figure (offline cousin of sequential MNIST)",
        figures=_percent("test/acc"),
        spec=".1f",
        quick=("trainer.max_epochs=2",),
    ),
    Benchmark(
        "sequential_digits_permuted",
        "sequential_digits",
        "test accuracy %, permuted pixel order",
        ("test/acc",),
        "-",
        "no published figure (offline cousin of permuted MNIST)",
        overrides=("data.permute=true",),
        figures=_percent("test/acc"),
        spec=".1f",
        quick=("trainer.max_epochs=2",),
    ),
    _vowels("japanese_vowels", "UEA JapaneseVowels (370 test utterances)"),
    _vowels("japanese_vowels_all", "JapaneseVowels, the same recipe trained on all 270 sequences, final weights"),
    Benchmark(
        "cmudict_g2p",
        "cmudict_g2p",
        "test WER % / PER %, CMUdict G2P, beam 5, any pronunciation counts",
        ("g2p/wer", "g2p/per"),
        "23.6 / 5.5",
        "Yao & Zweig 2015; their encoder-decoder LSTM: 28.6 / 7.6",
        figures=lambda metrics: (100 * metrics["g2p/wer"], 100 * metrics["g2p/per"]),
        spec=".1f",
        seeds=(0, 1),
        quick=("data.max_words=3000", "trainer.max_epochs=1"),
        rescore=g2p_rescore,
        rescored_keys=("g2p/wer", "g2p/per"),
        note="scored as scripts/benchmark_g2p.py does",
    ),
)


def registry(names: Sequence[str] | None = None) -> list[Benchmark]:
    """The registered benchmarks, or those named, in registry order."""
    by_name = {benchmark.name: benchmark for benchmark in BENCHMARKS}
    if not names:
        return list(BENCHMARKS)
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ValueError(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(by_name)}")
    return [benchmark for benchmark in BENCHMARKS if benchmark.name in set(names)]


# ------------------------------------------------------------------------------------------------ running
@dataclass
class Row:
    """A benchmark's runs: per seed its figures and wall seconds, or the first failure."""

    benchmark: Benchmark
    seeds: list[int] = field(default_factory=list)
    figures: list[tuple[float, ...]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        """What the JSON file holds for this row."""
        b = self.benchmark
        entry: dict[str, Any] = {
            "name": b.name,
            "metric": b.metric,
            "published": b.published,
            "source": b.source,
            "command": b.command,
            "seeds": self.seeds,
            "status": "FAIL" if self.error else "ok",
        }
        if self.error:
            entry["error"] = self.error
        if self.figures:
            columns = list(zip(*self.figures, strict=True))
            entry["runs"] = [
                {"seed": seed, "figures": list(figures), "wall_s": seconds}
                for seed, figures, seconds in zip(self.seeds, self.figures, self.seconds, strict=True)
            ]
            entry["mean"] = [statistics.mean(column) for column in columns]
            entry["min"] = [min(column) for column in columns]
            entry["max"] = [max(column) for column in columns]
            entry["wall_s_mean"] = statistics.mean(self.seconds)
            entry["figure"] = seqmodels_figure(b, entry)
        return entry


def seqmodels_figure(benchmark: Benchmark, entry: dict[str, Any]) -> str:
    """``8.75 (8.70-8.81)``: the mean and the min-max range of each figure over the seeds, ``/`` between figures."""
    parts = []
    for mean, low, high in zip(entry["mean"], entry["min"], entry["max"], strict=True):
        if len(entry["seeds"]) == 1:
            parts.append(benchmark.format(mean))
        else:
            parts.append(f"{benchmark.format(mean)} ({benchmark.format(low)}-{benchmark.format(high)})")
    return " / ".join(parts)


def run_once(benchmark: Benchmark, seed: int, quick: bool, extra: Sequence[str]) -> tuple[tuple[float, ...], float]:
    """Trains and tests one run in-process; returns its figures and wall seconds (train + test + rescoring)."""
    from seqmodels.config import compose_run_config
    from seqmodels.train import train

    cfg = compose_run_config([*benchmark.run_overrides(seed, quick, extra), *QUIET, "logger=none"])
    start = time.perf_counter()
    result = train(cfg)
    metrics = dict(run_metrics(result))
    if benchmark.rescore is not None:
        metrics.update(benchmark.rescore(result))
    return benchmark.read(metrics), time.perf_counter() - start


def run_benchmark(benchmark: Benchmark, seeds: Sequence[int], quick: bool, extra: Sequence[str]) -> Row:
    """Every seed of one benchmark; stops at the first failure, which the row keeps (its first line)."""
    row = Row(benchmark)
    for seed in seeds:
        try:
            figures, seconds = run_once(benchmark, seed, quick, extra)
        except Exception as error:  # noqa: BLE001 - a failing benchmark is reported and the table goes on
            first_line = (str(error).strip().splitlines() or [""])[0]
            row.error = f"seed {seed}: {type(error).__name__}: {first_line}"
            print(f"{benchmark.name} seed {seed}: FAIL {row.error}", flush=True)
            return row
        row.seeds.append(seed)
        row.figures.append(figures)
        row.seconds.append(seconds)
        shown = " / ".join(benchmark.format(value) for value in figures)
        print(f"{benchmark.name} seed {seed}: {shown}  ({seconds:.0f} s)", flush=True)
    return row


# ------------------------------------------------------------------------------------------------ reporting
def wall_label(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def table_rows(entries: Sequence[dict[str, Any]]) -> list[list[str]]:
    """benchmark, metric, published (source), seqmodels, wall per run, command; FAIL rows say why."""
    rows = []
    for entry in entries:
        if entry["status"] == "FAIL":
            figure, wall = f"FAIL {entry['error']}", "-"
        else:
            figure, wall = entry["figure"], wall_label(entry["wall_s_mean"])
        published = f"{entry['published']} ({entry['source']})"
        rows.append([entry["name"], entry["metric"], published, figure, wall, f"`{entry['command']}`"])
    return rows


HEADER = ["benchmark", "metric", "published / baseline (source)", "seqmodels mean (range)", "wall/run", "command"]


def markdown(entries: Sequence[dict[str, Any]], details: str) -> str:
    lines = [
        "# Classic benchmarks",
        "",
        f"Written by `scripts/reproduce.py`; {details}. seqmodels: mean (min-max) over the seeds listed in "
        "reproduce.json (each run adds `seed=<seed>` to the command); wall: train + test per run.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table_rows(entries)]
    return "\n".join(lines) + "\n"


def existing_rows(output: Path) -> dict[str, dict[str, Any]]:
    """The rows already in ``output`` by benchmark name (none if it does not exist). A file that is not this
    script's is an error, never overwritten: it may hold another script's results."""
    if not output.exists():
        return {}
    try:
        return {entry["name"]: entry for entry in json.loads(output.read_text())["benchmarks"]}
    except (ValueError, KeyError, TypeError):
        message = f"{output} is not a results file of scripts/reproduce.py; pass --output another.json"
        raise ValueError(message) from None


def with_earlier_runs(row: Row, earlier: dict[str, Any] | None) -> Row:
    """``row`` with the runs of ``earlier`` (the same benchmark's row in the results file) for other seeds, when
    that row ran the same command and succeeded: more seeds for a benchmark whose runs take long."""
    if row.error or not earlier or earlier.get("status") != "ok" or earlier.get("command") != row.benchmark.command:
        return row
    mine = zip(row.seeds, row.figures, row.seconds, strict=True)
    runs = {seed: (tuple(figures), seconds) for seed, figures, seconds in mine}
    for run in earlier.get("runs", []):
        runs.setdefault(run["seed"], (tuple(run["figures"]), run["wall_s"]))
    seeds = sorted(runs)
    return Row(row.benchmark, seeds, [runs[s][0] for s in seeds], [runs[s][1] for s in seeds])


def write_results(output: Path, entries: list[dict[str, Any]], details: str) -> list[dict[str, Any]]:
    """Writes ``output`` (JSON) and the markdown beside it; rows already there for benchmarks not run now are
    kept. Returns every row written, in registry order."""
    kept = existing_rows(output)
    kept.update({entry["name"]: entry for entry in entries})
    order = {benchmark.name: i for i, benchmark in enumerate(BENCHMARKS)}
    merged = sorted(kept.values(), key=lambda entry: order.get(entry["name"], len(order)))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"environment": details, "benchmarks": merged}, indent=2) + "\n")
    output.with_suffix(".md").write_text(markdown(merged, details))
    return merged


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these benchmarks only")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds of every benchmark (default: each one's own)")
    parser.add_argument("--quick", action="store_true", help="about a minute of training per run: tests the table")
    parser.add_argument("--output", type=Path, help=f"JSON file (default {DEFAULT_OUTPUT.relative_to(ROOT)})")
    parser.add_argument(
        "--add-seeds", action="store_true", help="keep the results file's runs of other seeds in each row run now"
    )
    parser.add_argument("--list", action="store_true", help="print the registry and exit")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args(argv)
    try:
        benchmarks = registry(args.only)
    except ValueError as error:
        parser.error(str(error))
    if args.list:
        rows = [[b.name, " ".join(map(str, b.seeds)), b.command] for b in benchmarks]
        print_table(rows, ["benchmark", "seeds", "command"], "<<<")
        return 0
    output = args.output or (QUICK_OUTPUT if args.quick else DEFAULT_OUTPUT)
    try:
        existing_rows(output)  # before hours of training, not after
    except ValueError as error:
        parser.error(str(error))
    details = environment("quick" if args.quick else "full recipes", *args.overrides)
    print(details, flush=True)

    entries = []
    for benchmark in benchmarks:
        seeds = args.seeds or list(benchmark.seeds)
        row = run_benchmark(benchmark, seeds, args.quick, args.overrides)
        if args.add_seeds:
            row = with_earlier_runs(row, existing_rows(output).get(benchmark.name))
        entry = row.summary()
        entries.append({**entry, "environment": details})

    print()
    print_table(table_rows(entries), HEADER, "<<<<><")
    write_results(output, entries, details)
    print(f"\nwritten: {output} and {output.with_suffix('.md')}", flush=True)
    return 1 if any(entry["status"] == "FAIL" for entry in entries) else 0


if __name__ == "__main__":
    sys.exit(main())
