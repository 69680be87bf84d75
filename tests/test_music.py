"""Bach chorale melodies: tokens, the cached corpus, sequence batches and MIDI output."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from seqmodels.data import BachChoralesDataModule, Vocabulary, music
from seqmodels.data.music import note_token, parse_token


def test_note_tokens_round_trip():
    assert note_token("C#5", 1.5) == "C#5_1.5"
    assert note_token("rest", 2.0) == "rest_2"
    assert note_token("E4", Fraction(1, 3)) == "E4_1/3"
    for token in ("C#5_1.5", "rest_2", "E4_1/3", "B-3_0.25"):
        pitch, length = parse_token(token)
        assert note_token(pitch, length) == token
    with pytest.raises(ValueError, match="not a note token"):
        parse_token("C5")


@pytest.fixture(scope="module")
def chorales(tmp_path_factory):
    dm = BachChoralesDataModule(
        max_chorales=10,
        cache_dir=tmp_path_factory.mktemp("cache"),
        batch_size=4,
        val_fraction=0.2,
        test_fraction=0.2,
        seed=0,
    )
    dm.setup()
    return dm


def test_chorales_become_bos_eos_sequences_with_a_train_only_vocabulary(chorales):
    assert (len(chorales.train_set), len(chorales.val_set), len(chorales.test_set)) == (6, 2, 2)
    vocab = chorales.vocab
    inputs, targets = chorales.train_set[0]
    assert inputs[0] == vocab.bos_id and targets[-1] == vocab.eos_id
    assert torch.equal(inputs[1:], targets[:-1])
    tokens = vocab.decode(inputs[1:])
    assert all(parse_token(t) for t in tokens)
    assert any(t.startswith(("C", "D", "E", "F", "G", "A", "B")) for t in tokens)
    batch = next(iter(chorales.train_dataloader()))
    assert batch.targets.shape == batch.inputs.shape
    short = int(batch.lengths.argmin())
    assert (batch.targets[short, batch.lengths[short] :] == -100).all()
    assert chorales.dims()["char_level"] == 0


def test_parsed_melodies_are_cached(chorales, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("parsed again despite the cache")

    monkeypatch.setattr(music, "parse_chorales", fail)
    again = BachChoralesDataModule(
        max_chorales=10, cache_dir=chorales.cache_dir, val_fraction=0.2, test_fraction=0.2, seed=0
    )
    again.setup()
    assert again.vocab == chorales.vocab


def test_unknown_part_is_a_clear_error(tmp_path, monkeypatch):
    from music21 import corpus

    few = sorted(corpus.getComposer("bach"))[:3]
    monkeypatch.setattr(corpus, "getComposer", lambda name: few)
    dm = BachChoralesDataModule(part="Theremin", max_chorales=2, cache_dir=None)
    with pytest.raises(ValueError, match="no Bach chorale has a part named like 'Theremin'"):
        dm.setup()


def test_midi_output_holds_the_generated_notes(chorales, tmp_path):
    from music21 import converter

    vocab = chorales.vocab
    notes = [t for t in vocab.itos if not t.startswith(("<", "rest"))][:4]
    ids = [vocab.bos_id, *vocab.encode(notes), vocab.eos_id, *vocab.encode(notes)]
    path = chorales.write_midi(ids, tmp_path / "melody.mid")
    written = [n.pitch.nameWithOctave for n in converter.parse(path).flatten().notes]
    expected = [parse_token(t)[0] for t in notes]
    # MIDI spells pitches by their number: compare MIDI pitch numbers, not names (B-4 == A#4).
    from music21 import pitch

    assert [pitch.Pitch(p).midi for p in written] == [pitch.Pitch(p).midi for p in expected]
    assert chorales.decode(ids) == " ".join(notes)  # stops at <eos>
    assert Vocabulary.EOS not in chorales.decode(ids)


def test_transposition_to_c_and_scale_membership():
    assert music.to_tonic_c(7) == 5 and music.to_tonic_c(2) == -2 and music.to_tonic_c(6) == 6
    assert music.transpose_tokens(["G4_1", "rest_0.5", "B4_2"], 5) == ["C5_1", "rest_0.5", "E5_2"]
    assert music.in_scale_fraction(["C5_1", "E5_1", "E-5_1", "rest_1", "<eos>"], "major") == pytest.approx(2 / 3)
    assert music.in_scale_fraction(["C5_1", "E5_1", "E-5_1"], "minor") == pytest.approx(2 / 3)


def test_mode_condition_rides_with_each_chorale(chorales):
    dm = BachChoralesDataModule(
        max_chorales=10,
        cache_dir=chorales.cache_dir,
        val_fraction=0.2,
        test_fraction=0.2,
        seed=0,
        transpose=True,
        condition="mode",
        batch_size=4,
    )
    dm.setup()
    inputs, targets, mode = dm.train_set[0]
    assert mode.item() in (0, 1) and inputs[0] == dm.vocab.bos_id
    batch = next(iter(dm.train_dataloader()))
    assert batch.condition.shape == (batch.inputs.shape[0],)
    # Transposed to C: tonic-C melodies mostly sit in their mode's scale.
    melody = dm.vocab.decode(inputs[1:])
    assert music.in_scale_fraction(melody, music.MODES[mode.item()]) > 0.8
    assert dm.dims()["num_conditions"] == 2
