"""Writes the bundled demo translation pairs, src/seqmodels/data/resources/numbers_en_fr.tsv (deterministic).

    .venv/bin/python scripts/make_translation_demo.py

English number words -> French number words for 1..9999 ("seventy one" -> "soixante et onze"): a small real
translation task with reordering and irregular forms, written by rule so that nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

EN_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
EN_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
FR_ONES = [
    "zéro",
    "un",
    "deux",
    "trois",
    "quatre",
    "cinq",
    "six",
    "sept",
    "huit",
    "neuf",
    "dix",
    "onze",
    "douze",
    "treize",
    "quatorze",
    "quinze",
    "seize",
    "dix-sept",
    "dix-huit",
    "dix-neuf",
]
FR_TENS = ["_", "_", "vingt", "trente", "quarante", "cinquante", "soixante", "_", "quatre-vingt", "_"]


def english(n: int) -> str:
    parts = []
    if n >= 1000:
        parts += [EN_ONES[n // 1000], "thousand"]
        n %= 1000
    if n >= 100:
        parts += [EN_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        parts.append(EN_TENS[n // 10])
        n %= 10
    if n or not parts:
        parts.append(EN_ONES[n])
    return " ".join(parts)


def french_below_100(n: int) -> str:
    if n < 20:
        return FR_ONES[n]
    tens, unit = divmod(n, 10)
    if tens in (7, 9):  # soixante-dix, quatre-vingt-dix: 60 / 80 + 10..19
        base = "soixante" if tens == 7 else "quatre-vingt"
        rest = n - (60 if tens == 7 else 80)
        return f"{base} et onze" if rest == 11 and tens == 7 else f"{base}-{FR_ONES[rest]}"
    if unit == 0:
        return "quatre-vingts" if tens == 8 else FR_TENS[tens]
    if unit == 1 and tens != 8:
        return f"{FR_TENS[tens]} et un"
    return f"{FR_TENS[tens]}-{FR_ONES[unit]}"


def french(n: int) -> str:
    parts = []
    thousands, n = divmod(n, 1000)
    if thousands:
        parts += ["mille"] if thousands == 1 else [FR_ONES[thousands], "mille"]
    hundreds, n = divmod(n, 100)
    if hundreds:
        parts += ["cent"] if hundreds == 1 else [FR_ONES[hundreds], "cents" if n == 0 else "cent"]
    if n or not parts:
        parts.append(french_below_100(n))
    return " ".join(parts)


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "src" / "seqmodels" / "data" / "resources" / "numbers_en_fr.tsv"
    lines = [f"{english(n)}\t{french(n)}" for n in range(1, 10000)]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(lines)} pairs); e.g. {lines[70]!r}, {lines[1996]!r}")


if __name__ == "__main__":
    main()
