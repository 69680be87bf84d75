"""Benchmark: grapheme-to-phoneme on CMUdict (the `cmudict_g2p` experiment): test WER and PER, training time.

    .venv/bin/python scripts/benchmark_g2p.py          # the shipped recipe: WER 24.1%, PER 5.52% (beam 5), 35 min
    .venv/bin/python scripts/benchmark_g2p.py model.label_smoothing=0.0 --beams 1 5 10   # an ablation
    .venv/bin/python scripts/benchmark_g2p.py --epochs 3 --max-words 20000 trainer.accelerator=gpu
    .venv/bin/python scripts/benchmark_g2p.py "callbacks=[default,weight_averaging]"   # also scores the raw weights

Scoring follows published CMUdict results: a word counts as right (for WER) when the output matches any of
its pronunciations, and PER is the edit distance to the closest pronunciation over that pronunciation's length,
summed over the test words (edit distances: torchmetrics' word error rate with the phonemes as the words). Both
are printed for greedy decoding and for beam search (5).
"""

from __future__ import annotations

import argparse
import time

import torch
from benchmark_common import QUIET, TrainingTimer, best_model_path, decoding_label, environment, load_best
from torchmetrics.functional.text import word_error_rate

from seqmodels.checkpoint import load_checkpoint
from seqmodels.config import compose_run_config
from seqmodels.train import train


def phoneme_errors(predicted: list[str], reference: list[str]) -> int:
    """Edit distance between two phoneme sequences (substitutions, insertions and deletions of whole phonemes)."""
    rate = float(word_error_rate(" ".join(predicted), " ".join(reference)))  # errors / len(reference)
    return round(rate * len(reference))


def score(predictions: list[list[str]], references: list[list[list[str]]]) -> tuple[float, float]:
    """WER (share of words not matching any pronunciation) and PER (edit distance to the closest pronunciation,
    ties to the first in sorted order, over its length, summed over the words)."""
    wrong_words, errors, length = 0, 0, 0
    for predicted, refs in zip(predictions, references, strict=True):
        distance, closest = min((phoneme_errors(predicted, ref), ref) for ref in refs)
        wrong_words += distance > 0
        errors += distance
        length += len(closest)
    return wrong_words / len(predictions), errors / length


@torch.no_grad()
def decode_test(model, datamodule, beam_size: int, device: torch.device) -> list[list[str]]:
    model.to(device).eval()
    loader = torch.utils.data.DataLoader(datamodule.test_set, batch_size=256, collate_fn=datamodule.collate_fn)
    outputs: list[list[str]] = []
    for batch in loader:
        batch = batch.to(device)
        ids = model.decode_batch(batch, beam_size)
        outputs += [datamodule.target_vocab.decode(row) for row in ids]
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None, help="default: the experiment's")
    parser.add_argument("--max-words", type=int, default=None, help="a sample of CMUdict (quick runs)")
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 5], help="beam sizes to decode the test words with")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. model.net.hidden_size=512")
    args = parser.parse_args()
    overrides = [
        "experiment=cmudict_g2p",
        *QUIET,
        "model.test_beam_size=1",
        *args.overrides,
    ]
    if args.epochs is not None:
        overrides.append(f"trainer.max_epochs={args.epochs}")
    if args.max_words is not None:
        overrides.append(f"data.max_words={args.max_words}")
    cfg = compose_run_config(overrides)
    device_name = "cuda" if cfg.trainer.get("accelerator") == "gpu" else "cpu"
    print(environment(f"device {device_name}"), flush=True)

    timer = TrainingTimer()
    start = time.perf_counter()
    result = train(cfg, extra_callbacks=[timer])
    total = time.perf_counter() - start

    model, datamodule = load_best(result)
    references = datamodule.references["test"]
    print(
        f"\nCMUdict: {len(datamodule.train_set):,} train / {len(datamodule.val_set):,} val / "
        f"{len(references):,} test words; {len(datamodule.target_vocab) - 4} phonemes"
    )
    print(f"training: {timer.summary()}, {total / 60:.1f} min in all with test")
    device = torch.device(device_name)
    for beam in args.beams:
        start = time.perf_counter()
        predictions = decode_test(model, datamodule, beam, device)
        wer, per = score(predictions, references)
        print(
            f"{decoding_label(beam):>8}: test WER {100 * wer:.1f}%  PER {100 * per:.2f}%  "
            f"(decoding {time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    raw = load_checkpoint(best_model_path(result)).get("current_model_state")
    if raw is not None:  # trained with callbacks.weight_averaging: the weights before averaging, for the ablation
        model.load_state_dict(raw)
        for beam in args.beams:
            wer, per = score(decode_test(model, datamodule, beam, device), references)
            print(f"{decoding_label(beam):>8}: test WER {100 * wer:.1f}%  PER {100 * per:.2f}%  (without averaging)")
    print("targets: WER <= 25%, PER <= 6% (published: 23.6% / 5.5% bidirectional LSTM, 28.6% / 7.6% encoder-decoder)")


if __name__ == "__main__":
    main()
