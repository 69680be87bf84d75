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

from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
from seqmodels.config import compose_run_config
from seqmodels.data.music import MODES, in_scale_fraction
from seqmodels.train import train

QUIET = ["~callbacks.rich_progress_bar", "+trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def run(overrides: list[str]) -> tuple[dict, float]:
    start = time.perf_counter()
    metrics = train(compose_run_config([*overrides, *QUIET]))
    return metrics, time.perf_counter() - start


def digits() -> None:
    metrics, seconds = run(["experiment=digits_captioning"])
    print(
        f"digit captioning: test caption exact match {100 * metrics['test/exact']:.1f}%, token accuracy "
        f"{100 * metrics['test/acc']:.1f}% ({seconds:.0f} s)",
        flush=True,
    )


@torch.no_grad()
def scale_fractions(metrics: dict, conditioned: bool, samples: int) -> dict[str, float]:
    model, datamodule = build_from_checkpoint(load_checkpoint(metrics["_best_model_path"]), setup_data=False)
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
    print(f"{'model':<16} {'test NLL/note':>14} {'perplexity':>11} {'in C major':>11} {'in C minor':>11}")
    for name, metrics, conditioned_model in (("mode-conditioned", conditioned, True), ("unconditioned", plain, False)):
        fractions = scale_fractions(metrics, conditioned_model, samples)
        nll = metrics["test/loss"]
        print(
            f"{name:<16} {nll:14.3f} {math.exp(nll):11.2f} {100 * fractions['major']:10.1f}% "
            f"{100 * fractions['minor']:10.1f}%"
        )
    print(f"(in-scale: share of notes of {samples} melodies sampled per requested mode that lie in its scale)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--skip-digits", action="store_true")
    parser.add_argument("--skip-music", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    if not args.skip_digits:
        digits()
    if not args.skip_music:
        music(args.samples)


if __name__ == "__main__":
    main()
