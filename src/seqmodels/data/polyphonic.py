"""Polyphonic music as piano rolls: Bach's four-part chorales from music21's bundled corpus, JSB Chorales style.

Each chorale is sampled once per quarter note; step ``t`` is the set of MIDI pitches sounding at offset ``t``, an
88-dim binary vector over the piano keys (MIDI 21-108). The model reads step ``t`` and predicts step ``t + 1``
with one independent Bernoulli per key (Boulanger-Lewandowski et al., 2012). Nothing is downloaded: the chorales
ship inside the ``music21`` wheel. Parsing them all takes a minute or two, so the rolls are cached as JSON.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqmodels.data.datamodule import SequenceDataModule, SequenceDataset
from seqmodels.data.music import to_tonic_c

log = logging.getLogger(__name__)

CACHE_VERSION = 1
LOWEST_PITCH = 21  # A0, the piano's lowest key
NUM_PITCHES = 88  # A0 .. C8 (MIDI 21-108)


def sounding_pitches(score: Any) -> list[list[int]]:
    """The MIDI pitches sounding at each quarter-note offset ``0, 1, 2, ...`` of ``score`` (every part), sorted.

    A note sounds at offset ``t`` when ``onset <= t < onset + length``: held and tied notes fill every beat they
    span, notes that start and end between two beats (passing eighths) are not seen, and beats where every voice
    rests are empty. Grace notes (no length) are skipped.
    """
    spans: list[tuple[float, float, int]] = []
    for element in score.flatten().notes:
        length = float(element.duration.quarterLength)
        if length <= 0:
            continue
        onset = float(element.offset)
        spans.extend((onset, onset + length, p.midi) for p in element.pitches)
    if not spans:
        return []
    # Offsets are floats of exact fractions (triplets): the tolerance keeps a note ending on a beat off that beat.
    num_steps = math.ceil(max(end for _, end, _ in spans) - 1e-9)
    steps: list[set[int]] = [set() for _ in range(num_steps)]
    for onset, end, midi in spans:
        for t in range(math.ceil(onset - 1e-9), num_steps):
            if t >= end - 1e-9:
                break
            steps[t].add(midi)
    return [sorted(step) for step in steps]


def parse_chorale_rolls(max_chorales: int | None = None) -> list[dict[str, Any]]:
    """The chorales of music21's ``corpus.chorales.Iterator`` (Riemenschneider order), as sounding pitches per
    quarter note: ``{"name", "steps", "tonic", "mode"}`` (key: music21's analysis of the whole chorale)."""
    try:
        from music21 import corpus
    except ImportError as exc:
        raise ImportError("JSB chorales need music21: pip install 'seqmodels[datasets]'") from exc
    names = list(corpus.chorales.Iterator(returnType="filename"))
    if max_chorales is not None:
        names = names[:max_chorales]
    chorales = []
    for name in names:
        score = corpus.parse(name)
        steps = sounding_pitches(score)
        if len(steps) < 2:  # nothing to predict
            continue
        key = score.analyze("key")
        chorales.append({"name": str(name), "steps": steps, "tonic": key.tonic.pitchClass, "mode": key.mode})
    return chorales


def piano_roll(steps: list[list[int]], semitones: int = 0) -> torch.Tensor:
    """``(len(steps), 88)`` float 0/1: key ``p - 21`` is on where MIDI pitch ``p`` (moved by ``semitones``) sounds."""
    roll = torch.zeros(len(steps), NUM_PITCHES)
    for t, pitches in enumerate(steps):
        for pitch in pitches:
            key = pitch + semitones - LOWEST_PITCH
            if not 0 <= key < NUM_PITCHES:
                raise ValueError(f"MIDI pitch {pitch + semitones} at step {t} is off the piano (21-108)")
            roll[t, key] = 1.0
    return roll


class JSBChoralesDataModule(SequenceDataModule):
    """Bach chorales as quarter-note piano rolls for next-step prediction (the JSB Chorales benchmark).

    Item: inputs ``roll[:-1]`` and targets ``roll[1:]``, both ``(L - 1, 88)`` float 0/1, where ``roll`` is the
    chorale's piano roll (:func:`sounding_pitches`). Padded target rows are -100 (``target_lengths`` says how many
    are real). The split is by chorale, seeded: with the default fractions the corpus's 371 chorales give
    222/74/75, the proportions of the original 229/76/77.

    Args:
        max_chorales: use only the first n chorales (quick experiments and tests).
        val_fraction, test_fraction: shares of chorales for validation and test.
        transpose: move every chorale to tonic C (its analysed key's tonic, by the shorter way), as the
            original data set does (C major / C minor).
        cache_dir: where the parsed chorales are cached (the config's default: ``$SEQMODELS_CACHE_DIR`` or
            ``~/.cache/seqmodels``); None or "" parses every time.
        **base: :class:`SequenceDataModule` arguments (``batch_size``, ``seed``, ...).

    ``dims``: ``input_size=88``, ``num_pitches=88``.
    """

    dims_need_data = False
    target_mode = "pad"

    def __init__(
        self,
        max_chorales: int | None = None,
        val_fraction: float = 0.199,
        test_fraction: float = 0.2016,
        transpose: bool = True,
        cache_dir: str | Path | None = None,
        **base: Any,
    ) -> None:
        super().__init__(val_fraction=val_fraction, **base)
        if not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
            raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
        if max_chorales is not None and max_chorales < 1:
            raise ValueError(f"max_chorales must be >= 1 or null (all), got {max_chorales}")
        self.max_chorales = max_chorales
        self.test_fraction = test_fraction
        self.transpose = transpose
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None

    def chorales(self) -> list[dict[str, Any]]:
        """Every chorale's sounding pitches per step and key, from the cache or parsed (then cached)."""
        cache = None
        if self.cache_dir is not None:
            limit = "all" if self.max_chorales is None else str(self.max_chorales)
            cache = self.cache_dir / f"jsb_chorales_{limit}_v{CACHE_VERSION}.json"
            if cache.is_file():
                return json.loads(cache.read_text())
        log.info("Parsing Bach chorales from music21's corpus into piano rolls; cached afterwards")
        chorales = parse_chorale_rolls(self.max_chorales)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps(chorales))
            tmp.replace(cache)  # atomic: an interrupted write never leaves a broken cache
        return chorales

    def roll(self, chorale: dict[str, Any]) -> torch.Tensor:
        """The chorale's ``(L, 88)`` piano roll, moved to tonic C with ``transpose``."""
        return piano_roll(chorale["steps"], to_tonic_c(chorale["tonic"]) if self.transpose else 0)

    def _dataset(self, chorales: list[dict[str, Any]]) -> SequenceDataset:
        rolls = [self.roll(c) for c in chorales]
        return SequenceDataset([r[:-1] for r in rolls], [r[1:] for r in rolls])

    def build(self) -> None:
        chorales = self.chorales()
        order = np.random.default_rng(self.seed).permutation(len(chorales))
        num_test = int(round(self.test_fraction * len(chorales)))
        num_val = int(round(self.val_fraction * len(chorales)))
        if num_test + num_val >= len(chorales):
            raise ValueError(f"{len(chorales)} chorales leave none for training; raise data.max_chorales")
        test_idx, val_idx = order[:num_test], order[num_test : num_test + num_val]
        train_idx = order[num_test + num_val :]
        self.split_names = {
            split: [chorales[i]["name"] for i in sorted(idx)]
            for split, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx))
        }
        self.train_set = self._dataset([chorales[i] for i in sorted(train_idx)])
        self.val_set = self._dataset([chorales[i] for i in sorted(val_idx)])
        self.test_set = self._dataset([chorales[i] for i in sorted(test_idx)])

    def _dims(self) -> dict[str, int]:
        return {"input_size": NUM_PITCHES, "num_pitches": NUM_PITCHES}


__all__ = [
    "LOWEST_PITCH",
    "NUM_PITCHES",
    "JSBChoralesDataModule",
    "parse_chorale_rolls",
    "piano_roll",
    "sounding_pitches",
]
