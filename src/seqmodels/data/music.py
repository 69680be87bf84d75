"""Bach chorale melodies from music21's bundled corpus, as (pitch, duration) token sequences.

Nothing is downloaded: the chorales ship inside the ``music21`` wheel (``pip install seqmodels[datasets]``).
Parsing all of them takes about a minute, so the token sequences are cached as JSON after the first parse.
"""

from __future__ import annotations

import json
import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from seqmodels.data.conditional import ConditionalDataset
from seqmodels.data.datamodule import SequenceDataset
from seqmodels.data.language import LanguageModelDataModule
from seqmodels.data.text import Vocabulary, WhitespaceTokenizer

log = logging.getLogger(__name__)

CACHE_VERSION = 2
REST = "rest"
MODES = ("major", "minor")
# Pitch classes of the scales on C: major, and minor (natural minor plus the leading tone B).
SCALES = {"major": {0, 2, 4, 5, 7, 9, 11}, "minor": {0, 2, 3, 5, 7, 8, 10, 11}}


def default_cache_dir() -> Path:
    return Path(os.environ.get("SEQMODELS_CACHE_DIR", Path.home() / ".cache" / "seqmodels"))


def note_token(pitch: str, quarter_length: float | Fraction) -> str:
    """``("C#5", 1.5)`` -> ``"C#5_1.5"``; triplets keep exact fractions (``"E4_1/3"``)."""
    value = Fraction(quarter_length).limit_denominator(64)
    duration = (
        str(value.numerator)
        if value.denominator == 1
        else (f"{float(value):g}" if value.denominator in (2, 4, 8, 16) else f"{value.numerator}/{value.denominator}")
    )
    return f"{pitch}_{duration}"


def parse_token(token: str) -> tuple[str, Fraction]:
    """``"C#5_1.5"`` -> ``("C#5", Fraction(3, 2))``; a clear error for anything else."""
    pitch, sep, duration = token.rpartition("_")
    try:
        if not sep or not pitch:
            raise ValueError
        value = Fraction(duration)
    except (ValueError, ZeroDivisionError):
        raise ValueError(
            f"not a note token: {token!r}; expected PITCH_DURATION such as 'C#5_1.5' or 'rest_1'"
        ) from None
    return pitch, value


def transpose_tokens(tokens: list[str], semitones: int) -> list[str]:
    """Moves every note token by ``semitones`` (rests stay)."""
    from music21 import pitch as m21pitch

    if semitones == 0:
        return list(tokens)
    moved = []
    for token in tokens:
        name, length = parse_token(token)
        if name != REST:
            name = m21pitch.Pitch(name).transpose(semitones).nameWithOctave
        moved.append(note_token(name, length))
    return moved


def to_tonic_c(tonic: int) -> int:
    """Semitones that move ``tonic`` (pitch class) to C by the shorter way (-5 .. +6)."""
    shift = (-tonic) % 12
    return shift - 12 if shift > 6 else shift


def melody_tokens(score: Any, part_name: str) -> list[str] | None:
    """The tokens of the part whose name contains ``part_name`` (chords: their top note); None if absent."""
    wanted = part_name.lower()
    for part in score.parts:
        names = [str(n).lower() for n in (part.partName, part.id) if n]
        if any(wanted in name for name in names):
            break
    else:
        return None
    tokens = []
    for element in part.flatten().notesAndRests:
        length = element.duration.quarterLength
        if length == 0:  # grace notes take no time
            continue
        if element.isRest:
            tokens.append(note_token(REST, length))
        elif element.isChord:
            tokens.append(note_token(max(element.pitches).nameWithOctave, length))
        else:
            tokens.append(note_token(element.pitch.nameWithOctave, length))
    return tokens


def parse_chorales(part_name: str = "Soprano", max_chorales: int | None = None) -> list[dict[str, Any]]:
    """One part of every Bach chorale in music21's corpus (in corpus order): ``{"tokens", "tonic", "mode"}``.

    The key (tonic pitch class 0-11 and ``"major"``/``"minor"``) is music21's analysis of the whole chorale.
    """
    try:
        from music21 import corpus
    except ImportError as exc:
        raise ImportError("Bach chorales need music21: pip install 'seqmodels[datasets]'") from exc
    paths = sorted(p for p in corpus.getComposer("bach") if str(p).endswith((".mxl", ".xml", ".krn")))
    melodies: list[dict[str, Any]] = []
    for path in paths:
        if max_chorales is not None and len(melodies) >= max_chorales:
            break
        score = corpus.parse(path)
        tokens = melody_tokens(score, part_name)
        if tokens:
            key = score.analyze("key")
            melodies.append({"tokens": tokens, "tonic": key.tonic.pitchClass, "mode": key.mode})
    if not melodies:
        raise ValueError(f"no Bach chorale has a part named like {part_name!r}; try Soprano, Alto, Tenor or Bass")
    return melodies


class BachChoralesDataModule(LanguageModelDataModule):
    """One voice of Bach's chorales as a melody language model: ``<bos> C5_1 D5_0.5 ... <eos>``.

    Each note is one token, its pitch with octave and its length in quarter notes; rests are ``rest_<len>``.
    Chorales are split (seeded) into train/val/test; the vocabulary is built from the training chorales and
    unseen tokens in val/test read as ``<unk>``.

    Args:
        part: the voice, matched against part names (``"Soprano"``, ``"Alto"``, ``"Tenor"``, ``"Bass"``).
        max_chorales: use only the first n chorales (quick experiments and tests).
        val_fraction, test_fraction: shares of chorales for validation and test.
        cache_dir: where the parsed tokens are cached (default ``$SEQMODELS_CACHE_DIR`` or
            ``~/.cache/seqmodels``); None or "" disables the cache.
        transpose: move every chorale to tonic C (its analysed key's tonic, by the shorter way), so that major
            and minor chorales differ by their scale (E/A/B against E-flat/A-flat/B-flat), not their key.
        condition: ``"mode"`` adds each chorale's mode (0 major, 1 minor) as the batch's ``condition``, for a
            conditional decoder; None for a plain melody language model.
        **base: :class:`SequenceDataModule` arguments (``batch_size``, ``seed``, ...).

    ``dims``: ``vocab_size``, ``padding_idx``, ``char_level`` (0), ``bos_id``, ``eos_id``, ``num_conditions`` (2).
    """

    def __init__(
        self,
        part: str = "Soprano",
        max_chorales: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        cache_dir: str | Path | None = None,
        transpose: bool = False,
        condition: str | None = None,
        **base: Any,
    ) -> None:
        super().__init__(val_fraction=val_fraction, **base)
        if condition not in (None, "mode"):
            raise ValueError(f"condition must be null or 'mode', got {condition!r}")
        self.transpose = transpose
        self.condition = condition
        if not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
            raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
        self.part = part
        self.max_chorales = max_chorales
        self.test_fraction = test_fraction
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.tokenizer = WhitespaceTokenizer(lowercase=False)

    # ----------------------------------------------------------------- data
    def melodies(self) -> list[dict[str, Any]]:
        cache = None
        if self.cache_dir is not None:
            limit = "all" if self.max_chorales is None else str(self.max_chorales)
            cache = self.cache_dir / f"bach_chorales_{self.part.lower()}_{limit}_v{CACHE_VERSION}.json"
            if cache.is_file():
                return json.loads(cache.read_text())
        log.info("Parsing Bach chorales (%s) from music21's corpus; cached afterwards", self.part)
        melodies = parse_chorales(self.part, self.max_chorales)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps(melodies))
            tmp.replace(cache)  # atomic: an interrupted write never leaves a broken cache
        return melodies

    def _tokens(self, melody: dict[str, Any]) -> list[str]:
        return transpose_tokens(melody["tokens"], to_tonic_c(melody["tonic"])) if self.transpose else melody["tokens"]

    def _sequences(self, melodies: list[dict[str, Any]]) -> torch.utils.data.Dataset:
        assert self.vocab is not None
        inputs: list[Tensor] = []
        targets: list[Tensor] = []
        for melody in melodies:
            ids = self.vocab.encode([Vocabulary.BOS, *self._tokens(melody), Vocabulary.EOS])
            inputs.append(torch.tensor(ids[:-1], dtype=torch.long))
            targets.append(torch.tensor(ids[1:], dtype=torch.long))
        if self.condition == "mode":
            modes = [torch.tensor(MODES.index(m["mode"])) for m in melodies]
            return ConditionalDataset(inputs, targets, modes)
        return SequenceDataset(inputs, targets)

    def build(self) -> None:
        melodies = self.melodies()
        order = np.random.default_rng(self.seed).permutation(len(melodies))
        num_test = int(round(self.test_fraction * len(melodies)))
        num_val = int(round(self.val_fraction * len(melodies)))
        test_idx, val_idx, train_idx = (
            order[:num_test],
            order[num_test : num_test + num_val],
            order[num_test + num_val :],
        )
        if len(train_idx) == 0:
            raise ValueError(f"{len(melodies)} chorales leave none for training; raise data.max_chorales")
        train = [melodies[i] for i in sorted(train_idx)]
        if self.vocab is None:
            self.vocab = Vocabulary.build([self._tokens(m) for m in train], specials=(Vocabulary.BOS, Vocabulary.EOS))
        self.train_set = self._sequences(train)
        self.val_set = self._sequences([melodies[i] for i in sorted(val_idx)])
        self.test_set = self._sequences([melodies[i] for i in sorted(test_idx)])

    def _dims(self) -> dict[str, int]:
        vocab = self._require_vocab()
        return {**super()._dims(), "bos_id": vocab.bos_id, "eos_id": vocab.eos_id, "num_conditions": len(MODES)}

    # ----------------------------------------------------------------- generation
    def prompt_prefix(self) -> list[int]:
        return [self._require_vocab().bos_id]

    @property
    def stop_id(self) -> int | None:
        return self._require_vocab().eos_id

    def write_midi(self, ids: list[int], path: str | Path) -> Path:
        """Writes a generated melody (token ids) as a MIDI file; ``<unk>`` and specials are skipped."""
        from music21 import note, stream

        vocab = self._require_vocab()
        melody = stream.Stream()
        for token in vocab.decode(ids):
            if token == Vocabulary.EOS:
                break
            if token.startswith("<"):
                continue
            pitch, length = parse_token(token)
            element = note.Rest(quarterLength=length) if pitch == REST else note.Note(pitch, quarterLength=length)
            melody.append(element)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        melody.write("midi", fp=str(path))
        return path


def in_scale_fraction(tokens: list[str], mode: str) -> float:
    """Share of the note tokens (rests and specials skipped) whose pitch lies in ``mode``'s scale on C."""
    from music21 import pitch as m21pitch

    classes = []
    for token in tokens:
        if token.startswith("<"):
            continue
        name, _ = parse_token(token)
        if name != REST:
            classes.append(m21pitch.Pitch(name).pitchClass)
    return sum(c in SCALES[mode] for c in classes) / len(classes) if classes else 0.0


__all__ = [
    "MODES",
    "BachChoralesDataModule",
    "in_scale_fraction",
    "to_tonic_c",
    "transpose_tokens",
    "melody_tokens",
    "note_token",
    "parse_chorales",
    "parse_token",
]
