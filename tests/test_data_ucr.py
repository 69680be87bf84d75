import importlib.util
from pathlib import Path

import pytest
import torch

from seqmodels.data import JapaneseVowelsDataModule, SequenceBatch, UEADataModule, read_ts, ucr
from seqmodels.data.datamodule import MissingDataFileError

SKTIME_DATA = Path(importlib.util.find_spec("sktime").origin).parent / "datasets" / "data"
JV = SKTIME_DATA / "JapaneseVowels"

HEADER = (
    "#comment\n@problemName Toy\n@timeStamps false\n@missing false\n@univariate false\n@dimensions 2\n"
    "@equalLength false\n@classLabel true a b\n@data\n"
)


def _write(tmp_path, body, header=HEADER, name="toy.ts"):
    path = tmp_path / name
    path.write_text(header + body)
    return path


@pytest.fixture(scope="module")
def vowels():
    dm = JapaneseVowelsDataModule(seed=0)
    dm.setup()
    return dm


def test_read_ts_japanese_vowels():
    series, labels, meta = read_ts(JV / "JapaneseVowels_TRAIN.ts")
    assert len(series) == len(labels) == 270
    assert all(s.dtype == torch.float32 and s.shape[1] == 12 for s in series)
    assert meta["class_labels"] == [str(i) for i in range(1, 10)]
    assert meta["dimensions"] == 12 and meta["equal_length"] is False and meta["problem_name"] == "JapaneseVowels"


def test_read_ts_small_file(tmp_path):
    path = _write(tmp_path, "1,2,3:4,5,6:a\n\n# a comment\n7,8:9,10:b\n")
    series, labels, meta = read_ts(path)
    assert [s.shape for s in series] == [(3, 2), (2, 2)]
    assert series[0][:, 1].tolist() == [4, 5, 6]
    assert labels == ["a", "b"]
    univariate = _write(
        tmp_path, "1,2,3:x\n4,5:y\n", header="@univariate true\n@classLabel true x y\n@data\n", name="uni.ts"
    )
    series, labels, meta = read_ts(univariate)
    assert meta["dimensions"] == 1 and series[1].shape == (2, 1) and labels == ["x", "y"]


@pytest.mark.parametrize(
    ("body", "header", "message"),
    [
        ("", "", "is empty"),
        ("1,2:3,4:a\n", "@problemName Toy\n", "line 2: no @data line"),
        ("", "@problemName Toy\n", "no @data line"),
        ("", HEADER, "no series after @data"),
        ("1,2,3:4,5:a\n", HEADER, "line 10: ragged series"),
        ("1,2:3,4:5,6:a\n", HEADER, "line 10: expected 2 dimensions, found 3"),
        ("1,2:3,4\n", HEADER, "line 10: missing class label"),
        ("1,2:3,4:\n", HEADER, "line 10: missing class label"),
        ("1,2:3,4:c\n", HEADER, "line 10: class label 'c' is not declared"),
        ("1,2:3,4:a\n1,x:3,4:b\n", HEADER, "line 11: non-numeric value 'x'"),
        ("1,2:3,4:a\n1,2:3,?:b\n", HEADER, "contains NaN .* at line 11; impute or drop missing values first"),
        ("1,NaN:3,4:a\n", HEADER, "contains NaN at line 10; impute or drop missing values first"),
        ("1,2:a\n", "@timeStamps true\n@classLabel true a\n@data\n", "not supported"),
        ("1,,2:3,4,5:a\n", HEADER, "line 10: empty value"),
    ],
)
def test_read_ts_errors_are_one_line_and_name_file(tmp_path, body, header, message):
    path = _write(tmp_path, body, header=header)
    with pytest.raises(ValueError, match=message) as info:
        read_ts(path)
    text = str(info.value)
    assert "\n" not in text and str(path) in text


def test_read_ts_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ts"):
        read_ts(tmp_path / "nope.ts")


def test_japanese_vowels_shapes(vowels):
    assert len(vowels.train_set) + len(vowels.val_set) == 270 and len(vowels.test_set) == 370
    assert len(vowels.val_set) == 27
    assert vowels.dims() == {"input_size": 12, "num_classes": 9}
    assert vowels.class_names == [str(i) for i in range(1, 10)]
    lengths = torch.cat([d.lengths for d in (vowels.train_set, vowels.val_set, vowels.test_set)])
    assert lengths.min() == 7 and lengths.max() == 29
    # stratified validation split: 30 per speaker in TRAIN -> 3 each
    assert torch.bincount(vowels.val_set.targets).tolist() == [3] * 9
    targets = torch.cat([vowels.train_set.targets, vowels.val_set.targets, vowels.test_set.targets])
    assert targets.min() == 0 and targets.max() == 8


def test_standardization_uses_train_part_only(vowels):
    train = torch.cat(vowels.train_set.inputs)
    assert train.mean(0).abs().max() < 1e-4
    assert (train.std(0, unbiased=False) - 1).abs().max() < 1e-4
    for dataset in (vowels.val_set, vowels.test_set):
        other = torch.cat(dataset.inputs)
        assert other.mean(0).abs().max() > 1e-2
    # the statistics are those of the raw train part (not of all of TRAIN, not of TEST)
    raw, labels, _ = read_ts(JV / "JapaneseVowels_TRAIN.ts")
    val_rows = {tuple(x[0].tolist()) for x in vowels.val_set.inputs}
    raw_train = torch.cat([x for x in raw if tuple(((x[0] - vowels.mean) / vowels.std).tolist()) not in val_rows])
    assert raw_train.shape[0] == train.shape[0]
    assert torch.allclose(vowels.mean, raw_train.mean(0), atol=1e-5)
    assert not torch.allclose(vowels.mean, torch.cat(raw).mean(0), atol=1e-5)


def test_seeded_splits_reproducible():
    def val_first_steps(seed):
        dm = JapaneseVowelsDataModule(seed=seed, standardize=False)
        dm.setup()
        return torch.stack([x[0] for x in dm.val_set.inputs])

    assert torch.equal(val_first_steps(1), val_first_steps(1))
    assert not torch.equal(val_first_steps(1), val_first_steps(2))


def test_state_dict_round_trip_applies_training_statistics(vowels):
    state = vowels.state_dict()
    assert state["class_names"] == vowels.class_names and len(state["mean"]) == 12
    # survives a weights_only checkpoint load
    loaded = torch.load(_save(state), weights_only=True)
    # before setup: a datamodule with another split seed uses the checkpoint's statistics
    before = JapaneseVowelsDataModule(seed=99)
    before.load_state_dict(loaded)
    before.setup()
    assert torch.equal(before.mean, vowels.mean)
    assert torch.allclose(before.test_set.inputs[0], vowels.test_set.inputs[0])
    # after setup (the order Lightning uses when restoring a checkpoint): data is re-standardised
    after = JapaneseVowelsDataModule(seed=99)
    after.setup()
    assert not torch.allclose(after.test_set.inputs[0], vowels.test_set.inputs[0])
    after.load_state_dict(loaded)
    assert torch.allclose(after.test_set.inputs[0], vowels.test_set.inputs[0])


def _save(obj):
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


def test_data_dir_root_or_folder_and_missing(tmp_path):
    for data_dir in (SKTIME_DATA, JV):
        dm = UEADataModule(name="JapaneseVowels", data_dir=data_dir)
        assert dm.files()[0].name == "JapaneseVowels_TRAIN.ts"
    with pytest.raises(MissingDataFileError, match="Nope_TRAIN.ts"):
        UEADataModule(name="Nope", data_dir=tmp_path).setup()


def test_missing_sktime_message(monkeypatch):
    monkeypatch.setattr(ucr.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'seqmodels\[datasets\]'.*data.data_dir"):
        JapaneseVowelsDataModule().setup()


def test_dataloader_batches(vowels):
    batch = next(iter(vowels.train_dataloader()))
    assert isinstance(batch, SequenceBatch)
    assert batch.inputs.dtype == torch.float32 and batch.inputs.shape[0] == 32 and batch.inputs.shape[2] == 12
    assert batch.targets.dtype == torch.int64 and batch.lengths.dtype == torch.int64
    assert batch.inputs.shape[1] == batch.lengths.max()


def test_deltas_are_step_differences_of_each_order_and_a_prefix_gets_the_same_features():
    series = torch.tensor([[1.0, 10.0], [4.0, 10.0], [2.0, 13.0], [2.0, 19.0]])
    first = torch.tensor([[0.0, 0.0], [3.0, 0.0], [-2.0, 3.0], [0.0, 6.0]])
    second = torch.tensor([[0.0, 0.0], [3.0, 0.0], [-5.0, 3.0], [2.0, 3.0]])
    torch.testing.assert_close(ucr.with_deltas(series, 1), torch.cat([series, first], 1))
    torch.testing.assert_close(ucr.with_deltas(series, 2), torch.cat([series, first, second], 1))
    assert torch.equal(ucr.with_deltas(series, 0), series)
    for t in range(1, 5):  # causal: streaming and early classification see what the full series gives
        assert torch.equal(ucr.with_deltas(series[:t], 2), ucr.with_deltas(series, 2)[:t])


def test_a_datamodule_with_deltas_standardises_every_channel_on_the_training_part(vowels):
    dm = JapaneseVowelsDataModule(seed=0, deltas=1)
    dm.setup()
    assert dm.dims()["input_size"] == 24 and dm.mean.numel() == 24
    train = torch.cat(dm.train_set.inputs)
    assert train.mean(0).abs().max() < 1e-4 and (train.std(0, unbiased=False) - 1).abs().max() < 1e-4
    # the first 12 channels are the plain datamodule's; the other 12 their standardised step differences
    for with_deltas, plain in zip(dm.test_set.inputs[:5], vowels.test_set.inputs[:5], strict=True):
        torch.testing.assert_close(with_deltas[:, :12], plain)
        raw = plain * vowels.std + vowels.mean
        torch.testing.assert_close(with_deltas[:, 12:], (ucr.with_deltas(raw, 1)[:, 12:] - dm.mean[12:]) / dm.std[12:])
    restored = JapaneseVowelsDataModule(seed=5, deltas=1)
    restored.load_state_dict(torch.load(_save(dm.state_dict()), weights_only=True))
    restored.setup()
    torch.testing.assert_close(restored.test_set.inputs[0], dm.test_set.inputs[0])
    plain_model = JapaneseVowelsDataModule(seed=5)
    plain_model.load_state_dict(torch.load(_save(vowels.state_dict()), weights_only=True))
    mismatched = JapaneseVowelsDataModule(seed=5, deltas=1)  # a checkpoint read otherwise is refused with the fix
    with pytest.raises(ValueError, match=r"data.deltas=0, this datamodule with data.deltas=1; pass data.deltas=0"):
        mismatched.load_state_dict(torch.load(_save(vowels.state_dict()), weights_only=True))
    old_state = {k: v for k, v in vowels.state_dict().items() if k != "deltas"}  # saved before deltas existed
    mismatched = JapaneseVowelsDataModule(seed=5, deltas=1)
    with pytest.raises(ValueError, match="pass data.deltas=0"):
        mismatched.load_state_dict(old_state)
    state = mismatched.state_dict()
    state["mean"], state["std"] = vowels.state_dict()["mean"], vowels.state_dict()["std"]  # 12 statistics for 24
    mismatched.load_state_dict(state)
    with pytest.raises(ValueError, match="checkpoint scaler has 12 channels but JapaneseVowels has 24"):
        mismatched.setup()


def test_deltas_outside_0_1_2_are_refused():
    with pytest.raises(ValueError, match="deltas must be 0, 1 or 2"):
        JapaneseVowelsDataModule(deltas=3)
