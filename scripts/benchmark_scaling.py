"""Benchmark: scaling out on one machine: data-parallel training on 2 CPU processes, and a memory-mapped corpus.

    OMP_NUM_THREADS=1 python scripts/benchmark_scaling.py [--steps 40] [--corpus-mb 200] [--quick]

1. **DDP scaling efficiency** (``trainer=ddp_sim``: 2 processes, gloo, one torch thread each): training samples/s of
   the adding problem (LSTM 256, length 100) with per-process batch B on 2 processes against 1 process with batch B,
   efficiency = throughput(2) / (2 x throughput(1)). Start-up (spawning, imports) is taken out: each setting runs
   ``steps`` and ``2 * steps`` training batches and the difference of the two wall times gives the time per batch
   (after a warm-up run in this process).
2. **Memory-mapped corpus** (``data=token_corpus``): a generated character corpus of ``corpus-mb`` MB is tokenised
   once (MB/s of text), then every training window is read (tokens/s of the data path alone, against the in-memory
   ``data=text_corpus`` on a corpus small enough for it), with the growth of the process's anonymous memory.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from benchmark_common import QUIET, environment, print_table

from seqmodels.config import compose_run_config


def wall_of_training(batches: int, processes: int, batch: int, out: Path) -> float:
    from seqmodels.train import train

    overrides = [
        "experiment=adding_problem",
        "data.length=100",
        "data.num_train=100000",
        "data.num_val=64",
        "data.num_test=64",
        f"data.batch_size={batch}",
        "model.net.encoder.hidden_size=256",
        "trainer.max_epochs=1",
        f"trainer.limit_train_batches={batches}",
        "trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=0",
        "~callbacks.early_stopping",
        "test=false",
        "logger=none",
        *QUIET,
    ]
    if processes == 2:
        overrides.append("trainer=ddp_sim")
    cfg = compose_run_config(overrides, output_dir=out / f"p{processes}_b{batches}")
    start = time.perf_counter()
    train(cfg)
    return time.perf_counter() - start


def ddp_scaling(steps: int, batch: int, out: Path) -> list[list[str]]:
    rows, rates = [], {}
    wall_of_training(2, 1, batch, out / "warm-up")  # one-time costs (imports, first allocations) of this process
    for processes in (1, 2):
        short = wall_of_training(steps, processes, batch, out)
        long = wall_of_training(2 * steps, processes, batch, out)
        per_batch = (long - short) / steps
        rates[processes] = processes * batch / per_batch
        rows.append(
            [f"{processes}", f"{batch}", f"{per_batch * 1000:.1f} ms", f"{rates[processes]:,.0f}", f"{short:.1f} s"]
        )
    efficiency = rates[2] / (2 * rates[1])
    rows.append(["efficiency", "", "", f"{efficiency:.2f}", ""])
    return rows


def anon_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def corpus(corpus_mb: int, out: Path) -> list[list[str]]:
    from seqmodels.data import TextCorpusDataModule, TokenCorpusDataModule

    text = out / "corpus.txt"
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz   ..,\n", np.uint8)
    with open(text, "wb") as handle:
        for _ in range(corpus_mb):
            handle.write(letters[rng.integers(0, len(letters), 1_000_000)].tobytes())
    base, peak, running = anon_mib(), [0.0], [True]

    def sample() -> None:
        while running[0]:
            peak[0] = max(peak[0], anon_mib())
            time.sleep(0.005)

    thread = threading.Thread(target=sample)
    thread.start()
    start = time.perf_counter()
    mapped = TokenCorpusDataModule(path=str(text), level="char", batch_size=64, bptt=256, progress=False)
    mapped.setup()
    tokenise = time.perf_counter() - start
    start = time.perf_counter()
    tokens = sum(batch.inputs.numel() for batch in mapped.train_dataloader())
    read = time.perf_counter() - start
    running[0] = False
    thread.join()
    small = out / "small.txt"
    small.write_bytes(text.read_bytes()[:20_000_000])
    in_memory = TextCorpusDataModule(path=str(small), level="char", batch_size=64, bptt=256)
    in_memory.setup()
    start = time.perf_counter()
    small_tokens = sum(batch.inputs.numel() for batch in in_memory.train_dataloader())
    in_memory_rate = small_tokens / (time.perf_counter() - start)
    ids_mb = mapped.corpus.sizes["train"] * mapped.corpus.dtype.itemsize / 2**20
    return [
        ["corpus", f"{corpus_mb} MB of text, {ids_mb:.0f} MiB of {mapped.corpus.dtype.name} training ids"],
        ["tokenising (one pass)", f"{corpus_mb / tokenise:.1f} MB/s ({tokenise:.1f} s)"],
        ["reading every training window", f"{tokens / read / 1e6:.1f}M tokens/s"],
        ["in-memory text_corpus, same windows", f"{in_memory_rate / 1e6:.1f}M tokens/s"],
        ["anonymous memory growth, peak", f"{peak[0] - base:.0f} MiB"],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="training batches (and twice as many) per setting")
    parser.add_argument("--batch", type=int, default=32, help="per-process batch size")
    parser.add_argument("--corpus-mb", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: the code paths only")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.corpus_mb = 3, 4
    torch.set_num_threads(1)
    print(environment("1 thread per process"))
    out = Path(tempfile.mkdtemp(prefix="seqmodels_scaling_"))
    rows = ddp_scaling(args.steps, args.batch, out)
    print_table(rows, header=["processes", "batch each", "time per batch", "samples/s", f"wall of {args.steps} steps"])
    print_table(corpus(args.corpus_mb, out), header=["memory-mapped corpus", ""], align="<<")


if __name__ == "__main__":
    main()
