"""Benchmark: one-to-many generation.

    .venv/bin/python scripts/benchmark_conditional.py [--samples 100] [--skip-digits] [--skip-music]

* Digit captioning (`digits_captioning`): caption exact match and token accuracy on the held-out digits.
* Conditioned music (`bach_conditioned`, chorales moved to tonic C and conditioned on mode) against the same
  melodies without the condition (`bach_melody data.transpose=true`): per-note negative log-likelihood on
  held-out chorales, and the share of generated notes that lie in the requested mode's scale (C major or
  C minor), sampled at temperature 1.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from benchmark_common import QUIET, environment, load_best, print_table, run_metrics

from seqmodels.config import compose_run_config
from seqmodels.data.music import MODES, in_scale_fraction
from seqmodels.train import train


def run(overrides: list[str]) -> tuple[object, float]:
    """What ``train`` returned, and its wall seconds."""
    start = time.perf_counter()
    result = train(compose_run_config([*overrides, *QUIET]))
    return result, time.perf_counter() - start


def digits() -> None:
    result, seconds = run(["experiment=digits_captioning"])
    metrics = run_metrics(result)
    print(
        f"digit captioning: test caption exact match {100 * metrics['test/exact']:.1f}%, token accuracy "
        f"{100 * metrics['test/acc']:.1f}% ({seconds:.0f} s)",
        flush=True,
    )


@torch.no_grad()
def scale_fractions(result: object, conditioned: bool, samples: int) -> dict[str, float]:
    model, datamodule = load_best(result, setup_data=False)
    net = model.net.eval()
    vocab = datamodule.vocab
    fractions = {}
    for index, mode in enumerate(MODES):
        generator = torch.Generator().manual_seed(index)
        if conditioned:
            tokens, lengths = net.generate(torch.full((samples,), index), 64, temperature=1.0, generator=generator)
        else:
            prompt = torch.full((samples, 1), vocab.bos_id)
            tokens, lengths = net.generate(prompt, 64, temperature=1.0, eos_id=vocab.eos_id, generator=generator)
        melodies = [vocab.decode(row[: int(n)]) for row, n in zip(tokens, lengths, strict=True)]
        fractions[mode] = sum(in_scale_fraction(m, mode) for m in melodies) / len(melodies)
    return fractions


def music(samples: int) -> None:
    conditioned, seconds_c = run(["experiment=bach_conditioned"])
    plain, seconds_p = run(["experiment=bach_melody", "data.transpose=true"])
    print(f"\nBach chorales, soprano lines moved to tonic C ({seconds_c:.0f} s and {seconds_p:.0f} s of training):")
    rows = []
    for name, result, conditioned_model in (("mode-conditioned", conditioned, True), ("unconditioned", plain, False)):
        fractions = scale_fractions(result, conditioned_model, samples)
        nll = run_metrics(result)["test/loss"]
        rows.append(
            (
                name,
                f"{nll:.3f}",
                f"{math.exp(nll):.2f}",
                f"{100 * fractions['major']:.1f}%",
                f"{100 * fractions['minor']:.1f}%",
            )
        )
    print_table(rows, header=["model", "test NLL/note", "perplexity", "in C major", "in C minor"])
    print(f"(in-scale: share of notes of {samples} melodies sampled per requested mode that lie in its scale)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--skip-digits", action="store_true")
    parser.add_argument("--skip-music", action="store_true")
    args = parser.parse_args()
    print(environment(), flush=True)
    if not args.skip_digits:
        digits()
    if not args.skip_music:
        music(args.samples)


if __name__ == "__main__":
    main()
