#!/usr/bin/env python
"""Write the toy product-review CSV bundled with seqmodels: ``src/seqmodels/data/resources/reviews_tiny.csv``.

The sentences come from templates, so the file is a demo and smoke-test set, not a benchmark: labels follow
from the template (no label noise unless ``--label-noise`` is given) and a small model reaches high accuracy
quickly. Some templates negate an adjective of the opposite polarity ("not flimsy at all") so that a bag of
words is not quite enough. The output is byte-for-byte deterministic for a given ``--seed``/``--rows``::

    python scripts/make_reviews_csv.py            # rewrites the bundled file
    python scripts/make_reviews_csv.py --out /tmp/reviews.csv --rows 2000
"""

from __future__ import annotations

import argparse
import csv
import io
import random
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "seqmodels" / "data" / "resources" / "reviews_tiny.csv"

PRODUCTS = [
    "phone",
    "headphones",
    "blender",
    "backpack",
    "keyboard",
    "desk lamp",
    "charger",
    "coffee maker",
    "camera",
    "office chair",
    "water bottle",
    "tent",
    "monitor",
    "toaster",
    "rain jacket",
    "pair of running shoes",
    "vacuum cleaner",
    "router",
    "kettle",
    "mouse",
    "speaker",
    "suitcase",
    "frying pan",
    "smart watch",
]
POSITIVE = [
    "great",
    "excellent",
    "reliable",
    "comfortable",
    "sturdy",
    "fantastic",
    "well made",
    "quiet",
    "solid",
    "easy to use",
    "beautiful",
    "durable",
    "amazing",
    "fast",
]
NEGATIVE = [
    "terrible",
    "flimsy",
    "disappointing",
    "noisy",
    "useless",
    "overpriced",
    "awful",
    "fragile",
    "slow",
    "hard to use",
    "cheaply made",
    "broken",
    "unreliable",
    "uncomfortable",
]
POSITIVE_TEMPLATES = [
    "The {product} is {pos}.",
    "I love this {product}, it is {pos}.",
    "Really {pos} {product}, would buy again.",
    "Five stars, the {product} is {pos} and {pos2}.",
    "Arrived quickly and the {product} is {pos}.",
    "Not {neg} at all, the {product} is {pos}.",
    "My old {product} was {neg}, this one is {pos}.",
    "After {n} months the {product} is still {pos}.",
    "Highly recommend this {product}: {pos} and {pos2}.",
    "I was worried it would be {neg}, but the {product} is {pos}.",
]
NEGATIVE_TEMPLATES = [
    "The {product} is {neg}.",
    "I regret buying this {product}, it is {neg}.",
    "Really {neg} {product}, would not buy again.",
    "One star, the {product} is {neg} and {neg2}.",
    "Returned the {product} because it was {neg}.",
    "Not {pos} at all, the {product} is {neg}.",
    "My old {product} was {pos}, this one is {neg}.",
    "After {n} days the {product} was already {neg}.",
    "Do not buy this {product}: {neg} and {neg2}.",
    "I hoped it would be {pos}, but the {product} is {neg}.",
]


def generate(rows: int = 600, seed: int = 0, label_noise: float = 0.0) -> list[tuple[str, str]]:
    """``rows`` distinct (text, label) pairs, half positive, half negative, in a shuffled order."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    attempts = 0
    while len(out) < rows:
        attempts += 1
        if attempts > 100 * rows:
            raise RuntimeError(f"cannot make {rows} distinct sentences from the templates")
        label = "positive" if len(out) % 2 == 0 else "negative"
        templates = POSITIVE_TEMPLATES if label == "positive" else NEGATIVE_TEMPLATES
        pos, pos2 = rng.sample(POSITIVE, 2)
        neg, neg2 = rng.sample(NEGATIVE, 2)
        text = rng.choice(templates).format(
            product=rng.choice(PRODUCTS), pos=pos, pos2=pos2, neg=neg, neg2=neg2, n=rng.randint(2, 11)
        )
        text = text[0].upper() + text[1:]
        if text in seen:
            continue
        seen.add(text)
        if label_noise and rng.random() < label_noise:
            label = "negative" if label == "positive" else "positive"
        out.append((text, label))
    rng.shuffle(out)
    return out


def to_csv(rows: list[tuple[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label-noise", type=float, default=0.0, help="fraction of labels flipped at random")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_csv(generate(args.rows, args.seed, args.label_noise)), encoding="utf-8", newline="")
    print(f"wrote {args.rows} reviews to {args.out}")
    return args.out


if __name__ == "__main__":
    main()
