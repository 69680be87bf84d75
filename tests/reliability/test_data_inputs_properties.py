"""Property-based checks (hypothesis) of the data plumbing every model sees: padding, tokenizers, vocabularies and
forecasting windows. On random lengths, empty items, any unicode and extreme values each either works, keeping
its invariants, or refuses with a one-line ``ValueError``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from seqmodels.data.collate import pad_collate
from seqmodels.data.forecasting import ForecastingDataModule
from seqmodels.data.text import CharTokenizer, Vocabulary, WhitespaceTokenizer, WordTokenizer
from seqmodels.data.timeseries_sources import MAX_VALUE, Series

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT64 = st.integers(-(2**63), 2**63 - 1)
FLOAT32 = st.floats(width=32)  # every float32 value, inf and NaN included
TEXT = st.text(st.characters(codec="utf-8"), max_size=40)  # any unicode a UTF-8 file can hold


def refused_in_one_line(error: ValueError) -> None:
    assert str(error) and "\n" not in str(error), str(error)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values, NaN equal to NaN."""
    return a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan()) if a.is_floating_point() else a == b).all())


# ------------------------------------------------------------------------------------------------ pad_collate
@FAST
@given(
    sequences=st.lists(st.lists(INT64, max_size=12), min_size=1, max_size=6),
    padding_value=st.integers(-1000, 1000),
)
def test_pad_collate_keeps_every_token_and_pads_with_the_padding_value(sequences, padding_value):
    items = [torch.tensor(s, dtype=torch.int64) for s in sequences]  # empty sequences included
    batch = pad_collate(items, padding_value=padding_value)
    longest = max(len(s) for s in sequences)
    assert batch.inputs.shape == (len(sequences), longest) and batch.inputs.dtype == torch.int64
    assert batch.lengths.tolist() == [len(s) for s in sequences]
    assert batch.targets is None
    for row, s in zip(batch.inputs, sequences, strict=True):
        assert row[: len(s)].tolist() == s
        assert (row[len(s) :] == padding_value).all()


@FAST
@given(
    lengths=st.lists(st.integers(0, 10), min_size=1, max_size=5),
    channels=st.integers(1, 4),
    data=st.data(),
    padding_value=FLOAT32,
)
def test_pad_collate_keeps_extreme_features_and_pads_them(lengths, channels, data, padding_value):
    items = []
    for length in lengths:
        values = data.draw(st.lists(st.floats(), min_size=length * channels, max_size=length * channels))
        features = torch.tensor(values, dtype=torch.float64).reshape(length, channels)  # float64 -> float32
        target = data.draw(st.integers(0, 9))
        items.append((features, target))
    batch = pad_collate(items, padding_value=padding_value)
    assert batch.inputs.dtype == torch.float32 and batch.inputs.shape == (len(lengths), max(lengths), channels)
    assert batch.lengths.tolist() == lengths
    assert batch.targets.tolist() == [target for _, target in items]
    pad = torch.tensor(padding_value, dtype=torch.float32)
    for row, (features, _), length in zip(batch.inputs, items, lengths, strict=True):
        assert same(row[:length], features.to(torch.float32))
        assert same(row[length:], pad.expand(max(lengths) - length, channels))


@FAST
@given(
    targets=st.lists(st.lists(st.integers(0, 50), max_size=8), min_size=1, max_size=6),
    target_padding_value=st.integers(-200, -1),
)
def test_pad_collate_pads_sequence_targets_and_reports_their_lengths(targets, target_padding_value):
    items = [(torch.ones(3, dtype=torch.int64), torch.tensor(t, dtype=torch.int64)) for t in targets]
    batch = pad_collate(items, target_padding_value=target_padding_value, target_mode="pad")
    assert batch.target_lengths.tolist() == [len(t) for t in targets]
    for row, t in zip(batch.targets, targets, strict=True):
        assert row[: len(t)].tolist() == t and (row[len(t) :] == target_padding_value).all()


@FAST
@given(ranks=st.lists(st.sampled_from([0, 1, 2, 3]), min_size=1, max_size=5))
def test_pad_collate_refuses_mixed_or_unusable_shapes_in_one_line(ranks):
    shapes = {0: (), 1: (2,), 2: (2, 3), 3: (2, 3, 1)}
    items = [torch.zeros(shapes[r]) for r in ranks]
    if set(ranks) in ({1}, {2}):
        assert pad_collate(items).inputs.shape[0] == len(items)
        return
    with pytest.raises(ValueError) as info:
        pad_collate(items)
    refused_in_one_line(info.value)


def test_pad_collate_refuses_an_empty_batch():
    with pytest.raises(ValueError, match="empty list of items"):
        pad_collate([])


# ------------------------------------------------------------------------------------------------ tokenizers
@FAST
@given(text=TEXT)
def test_characters_round_trip_exactly(text):
    assert CharTokenizer(lowercase=False).detokenize(CharTokenizer(lowercase=False)(text)) == text
    lowered = CharTokenizer(lowercase=True)(text)
    assert "".join(lowered) == text.lower() and all(len(t) == 1 for t in lowered)


@FAST
@given(text=TEXT, lowercase=st.booleans())
def test_words_cover_every_non_space_character_once(text, lowercase):
    source = text.lower() if lowercase else text
    tokens = WordTokenizer(lowercase=lowercase)(text)
    assert all(token and not any(ch.isspace() for ch in token) for token in tokens)
    assert "".join(tokens) == "".join(ch for ch in source if not ch.isspace())
    assert WhitespaceTokenizer(lowercase=lowercase)(text) == source.split()


# ------------------------------------------------------------------------------------------------ vocabulary
SPECIAL_LIKE = st.sampled_from([Vocabulary.PAD, Vocabulary.UNK, Vocabulary.BOS, Vocabulary.EOS, "", " "])
TOKENS = st.lists(st.one_of(TEXT, SPECIAL_LIKE), max_size=20)


@FAST
@given(
    corpus=st.lists(TOKENS, max_size=6),
    min_freq=st.integers(-1, 3),
    max_size=st.one_of(st.none(), st.integers(-1, 12)),
    specials=st.sampled_from([(), (Vocabulary.BOS, Vocabulary.EOS)]),
)
def test_vocabulary_build_keeps_its_invariants_or_refuses(corpus, min_freq, max_size, specials):
    try:
        vocab = Vocabulary.build(corpus, min_freq=min_freq, max_size=max_size, specials=specials)
    except ValueError as error:
        refused_in_one_line(error)
        assert min_freq < 1 or (max_size is not None and max_size < 2 + len(specials))
        return
    assert vocab.itos[:2] == [Vocabulary.PAD, Vocabulary.UNK] and vocab.itos[2 : 2 + len(specials)] == list(specials)
    assert len(set(vocab.itos)) == len(vocab) and (max_size is None or len(vocab) <= max_size)
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab
    for tokens in corpus:
        ids = vocab.encode(tokens)
        assert len(ids) == len(tokens) and all(0 <= i < len(vocab) for i in ids)
        decoded = vocab.decode(ids, skip_padding=False)
        assert decoded == [t if t in vocab else Vocabulary.UNK for t in tokens]  # known tokens round-trip
        assert vocab.decode(ids) == [t for t in decoded if t != Vocabulary.PAD]


@FAST
@given(corpus=st.lists(TOKENS, min_size=1, max_size=4), bad=st.one_of(st.integers(-(10**6), -1), st.integers(0, 10**6)))
def test_vocabulary_decode_refuses_ids_outside_it(corpus, bad):
    vocab = Vocabulary.build(corpus)
    assume(not 0 <= bad < len(vocab))
    with pytest.raises(ValueError, match=rf"token id {bad} is outside this vocabulary") as info:
        vocab.decode([0, bad])
    refused_in_one_line(info.value)
    with pytest.raises(ValueError):
        vocab.decode(torch.tensor([bad]))


# ------------------------------------------------------------------------------------------------ forecasting
VALUES = st.one_of(
    st.floats(-1e6, 1e6),
    st.floats(-MAX_VALUE, MAX_VALUE),  # as large as the data may be
    st.floats(-1e-300, 1e-300),
)


@st.composite
def windowing(draw):
    n = draw(st.integers(2, 120))
    values = np.array(draw(st.lists(VALUES, min_size=n, max_size=n)), dtype=np.float64)
    options = dict(
        lookback=draw(st.integers(1, 12)),
        horizon=draw(st.integers(1, 8)),
        val_size=draw(st.one_of(st.integers(0, 20), st.floats(0.0, 0.5))),
        test_size=draw(st.one_of(st.integers(0, 20), st.floats(0.0, 0.5))),
        stride=draw(st.integers(1, 4)),
        seasonal_period=draw(st.integers(1, 5)),
    )
    return values, options


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=windowing())
def test_forecast_windows_hold_the_right_steps_or_are_refused(case):
    values, options = case
    dm = ForecastingDataModule(source="sine", calendar=None, batch_size=8, **options)
    series = Series("s", np.arange(len(values), dtype=np.float64), values)
    try:
        dm.build([series])
    except ValueError as error:
        event("refused")
        refused_in_one_line(error)
        return
    event("built")
    L, H = dm.lookback, dm.horizon
    train_end, val_end = dm.split_points[0]
    assert L + H <= train_end <= val_end <= len(values)
    expected = {
        "train": range(L, train_end - H + 1, dm.stride),
        "val": range(train_end, val_end - H + 1),
        "test": range(val_end, len(values) - H + 1),
    }
    scaler = dm.target_scaler()
    scale = max(float(np.abs(values).max()), 1e-30)
    for split, origins in expected.items():
        windows = getattr(dm, f"{split}_set")
        assert len(windows) == len(origins)
        if not len(origins):
            continue
        t = windows.tensors
        assert t["origin"].tolist() == list(origins)
        assert t["inputs"].isfinite().all() and t["targets"].isfinite().all()
        past = np.stack([values[o - L : o] for o in origins])
        ahead = np.stack([values[o : o + H] for o in origins])
        # Back on the original scale, the inputs are the L steps before each origin and the targets the H after.
        np.testing.assert_allclose(
            scaler.inverse(t["inputs"][..., :1]).double()[..., 0], past, rtol=0, atol=1e-5 * scale
        )
        np.testing.assert_allclose(scaler.inverse(t["targets"]).double()[..., 0], ahead, rtol=0, atol=1e-5 * scale)
        if split != "train":
            assert torch.equal(t["actual"][..., 0], torch.from_numpy(ahead).float())
            assert torch.equal(t["naive"][:, 0, 0], torch.from_numpy(values[np.array(origins) - 1]).float())
            assert t["mase_scale"].isfinite().all() and (t["mase_scale"] > 0).all()


@FAST
@given(
    n=st.integers(40, 80),
    at=st.integers(0, 39),
    bad=st.sampled_from([np.inf, -np.inf, np.nan, 1e39, -3.5e38]),
)
def test_a_non_finite_or_out_of_range_value_anywhere_is_refused(n, at, bad):
    values = np.arange(n, dtype=np.float64)
    values[at] = bad
    dm = ForecastingDataModule(source="sine", calendar=None, lookback=4, horizon=2, val_size=5, test_size=5)
    with pytest.raises(ValueError, match=rf"series 's': column 'value' step {at} holds .*not a finite number") as info:
        dm.build([Series("s", np.arange(n, dtype=np.float64), values)])
    refused_in_one_line(info.value)


# ------------------------------------------------------------------------------------------------ file readers
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(st.text(max_size=30), st.text(max_size=8)), max_size=6),
    raw=st.binary(max_size=40),
    suffix=st.sampled_from([".csv", ".tsv", ".txt"]),
)
def test_the_text_reader_reads_any_file_or_refuses_it_in_one_line(tmp_path_factory, rows, raw, suffix):
    """Whatever a file holds (any unicode, quotes, separators, stray bytes), the reader returns rows whose texts
    and labels are strings, or raises a one-line ValueError that names the file."""
    import csv
    import io

    from seqmodels.data.text import read_text_rows

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t" if suffix == ".tsv" else ",")
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    path = tmp_path_factory.mktemp("reader") / f"data{suffix}"
    path.write_bytes(buffer.getvalue().encode("utf-8") + raw)
    try:
        read = read_text_rows(path)
    except ValueError as exc:
        message = str(exc)
        assert str(path) in message and "\n" not in message, message
        return
    assert all(isinstance(row.text, str) and isinstance(row.label, str) and row.label for row in read)
