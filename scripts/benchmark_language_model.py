"""Benchmark: a character language model on a text you pass, and the cost of generation.

    .venv/bin/python scripts/benchmark_language_model.py --path book.txt --epochs 3
    .venv/bin/python scripts/benchmark_language_model.py            # the stdlib's asyncio sources

Prints
* bits per character on the held-out test split (the last 5% of the text, read as one stream),
* training throughput in tokens/s (Lightning, the `char_lm` experiment, truncated BPTT with state carry),
* generation throughput with the recurrent state carried (each token one step) versus re-running the whole
  prefix for every new token, at 100 / 500 / 1000 new tokens: the carried cost grows linearly with length,
  the re-run cost quadratically.
"""

from __future__ import annotations

import argparse
import sysconfig
import time

import torch
from benchmark_common import QUIET, TrainingTimer, environment, print_table, run_metrics

from seqmodels.config import compose_run_config, instantiate_datamodule
from seqmodels.nn import RecurrentLanguageModel
from seqmodels.train import train


def train_and_measure(args: argparse.Namespace) -> None:
    overrides = [
        "experiment=char_lm",
        f"data.path={args.path}",
        f"data.pattern={args.pattern}",
        f"data.bptt={args.bptt}",
        f"data.batch_size={args.batch_size}",
        "data.eval_batch_size=1",
        f"trainer.max_epochs={args.epochs}",
        f"model.net.hidden_size={args.hidden}",
        f"model.net.num_layers={args.layers}",
        *QUIET,
        "~callbacks.early_stopping",
        "callbacks.generation_samples.max_new_tokens=100",
        *args.overrides,
    ]
    cfg = compose_run_config(overrides)
    timer = TrainingTimer()  # training steps only: not validation, sampling or test
    metrics = run_metrics(train(cfg, extra_callbacks=[timer]))
    datamodule = instantiate_datamodule(cfg.data)
    train_tokens = datamodule.num_tokens("train") * args.epochs
    print(
        f"corpus: {args.path} ({args.pattern}); vocabulary {len(datamodule.vocab)} characters; "
        f"train {datamodule.num_tokens('train'):,} / test {datamodule.num_tokens('test'):,} tokens"
    )
    print(
        f"test bits per character: {metrics['test/bpc']:.3f}  (val {metrics.get('val/bpc', float('nan')):.3f}, "
        f"test perplexity {metrics['test/ppl']:.2f}) after {args.epochs} epochs"
    )
    print(
        f"training throughput: {train_tokens / timer.seconds:,.0f} tokens/s "
        f"({timer.seconds / args.epochs:.1f} s per epoch, {torch.get_num_threads()} threads)"
    )


def generation_cost(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    lm = RecurrentLanguageModel(
        vocab_size=100, embedding_dim=64, hidden_size=args.hidden, num_layers=args.layers
    ).eval()
    prompt = torch.randint(1, 100, (1, 10))

    @torch.no_grad()
    def rerun(n: int) -> torch.Tensor:
        sequence = prompt
        for _ in range(n):
            logits, _ = lm(sequence)
            sequence = torch.cat([sequence, logits[:, -1].argmax(-1, keepdim=True)], 1)
        return sequence[:, prompt.shape[1] :]

    print(f"\ngeneration (hidden {args.hidden}, {args.layers} layers, greedy, batch 1):")
    rows = []
    for n in (100, 500, 1000):
        start = time.perf_counter()
        carried, _ = lm.generate(prompt, n, temperature=0)
        t_carried = time.perf_counter() - start
        if n <= args.max_rerun:
            start = time.perf_counter()
            reference = rerun(n)
            t_rerun = time.perf_counter() - start
            assert torch.equal(carried, reference), "carried and re-run generation disagree"
            rerun_text, speedup = f"{n / t_rerun:,.0f}", f"{t_rerun / t_carried:.1f}x"
        else:
            rerun_text, speedup = "skipped", ""
        rows.append((str(n), f"{n / t_carried:,.0f}", rerun_text, speedup, f"{1000 * t_carried / n:.3f}"))
    header = ["new tokens", "carried tok/s", "re-run tok/s", "speed-up", "carried ms/token"]
    print_table(rows, header=header, align=">>>>>")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default=f"{sysconfig.get_paths()['stdlib']}/asyncio", help="text file or folder")
    parser.add_argument("--pattern", default="*.py", help="files of a folder to read")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--bptt", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--max-rerun", type=int, default=1000, help="longest generation also timed by re-running")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()
    print(environment())
    if not args.skip_training:
        train_and_measure(args)
    generation_cost(args)


if __name__ == "__main__":
    main()
