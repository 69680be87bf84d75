"""Writes the bundled demo NER corpus, src/seqmodels/data/resources/ner_demo.conll (deterministic).

    .venv/bin/python scripts/make_ner_demo.py

Sentences come from templates filled with person, location and organisation names (some of them two
words long, so I- tags occur), tagged in BIO. Some words are ambiguous (Jordan is a person or a place, Ford a
person or part of an organisation), and about a third of the names are made up from syllables, most of them
seen once, so held-out sentences hold names the vocabulary lacks (<unk>) and only the context tells their type.
"""

from __future__ import annotations

import random
from pathlib import Path

PEOPLE = [
    "Anna Weber",
    "John",
    "Maria Lopez",
    "Chen Wei",
    "Olga",
    "Ravi Patel",
    "Sara",
    "Tom Becker",
    "Lena",
    "Pablo Ortiz",
    "Yuki Tanaka",
    "Omar",
    "Grace Kim",
    "Ivan Petrov",
    "Nora",
    "Ali Hassan",
    "Jordan",
    "Paris Hilton",
    "Ford",
    "Morgan Lee",
]
PLACES = [
    "Berlin",
    "New York",
    "Lagos",
    "Lima",
    "Osaka",
    "Cairo",
    "Oslo",
    "Cape Town",
    "Quito",
    "Jordan",
    "Paris",
    "Buenos Aires",
    "Hanoi",
    "Perth",
    "Madrid",
    "Kyoto",
]
ORGS = [
    "Acme Corp",
    "the United Nations",
    "Globex",
    "Ford Motor Company",
    "Initech",
    "Red Cross",
    "Morgan Stanley",
    "Umbrella Ltd",
    "the World Bank",
    "Siemens",
    "Hooli",
    "Stark Industries",
]
TEMPLATES = [
    "{PER} flew to {LOC} on Monday .",
    "{PER} works for {ORG} in {LOC} .",
    "{ORG} opened an office in {LOC} .",
    "Yesterday {PER} met {PER} at {ORG} .",
    "The mayor of {LOC} thanked {ORG} .",
    "{PER} said that {ORG} will hire in {LOC} .",
    "In {LOC} , {PER} founded {ORG} .",
    "{ORG} and {ORG} signed a deal .",
    "{PER} moved from {LOC} to {LOC} last year .",
    "According to {PER} , the weather in {LOC} was cold .",
    "Shares of {ORG} rose after {PER} spoke .",
    "{PER} visited {LOC} with {PER} .",
]
DRAW = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS}
SYLLABLES = ["ka", "lo", "mi", "ran", "te", "vo", "sel", "dri", "nu", "bar", "qui", "zen", "mor", "fa", "li"]
MADE_UP_SUFFIX = {"PER": [""], "LOC": ["", "", " City", " Valley"], "ORG": [" Inc", " Group", " Labs", ""]}


def made_up(rng: random.Random, kind: str) -> str:
    def word() -> str:
        return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()

    name = word() + (" " + word() if kind == "PER" and rng.random() < 0.6 else "")
    return name + rng.choice(MADE_UP_SUFFIX[kind])


def sentence(rng: random.Random) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for part in rng.choice(TEMPLATES).split():
        if part.startswith("{"):
            kind = part.strip("{}")
            name = made_up(rng, kind) if rng.random() < 0.35 else rng.choice(DRAW[kind])
            words = name.split()
            rows.extend((w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(words))
        else:
            rows.append((part, "O"))
    return rows


def main() -> None:
    rng = random.Random(13)
    out = Path(__file__).resolve().parents[1] / "src" / "seqmodels" / "data" / "resources" / "ner_demo.conll"
    blocks = ["\n".join(f"{w} {t}" for w, t in sentence(rng)) for _ in range(1200)]
    out.write_text("-DOCSTART- O\n\n" + "\n\n".join(blocks) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(blocks)} sentences)")


if __name__ == "__main__":
    main()
