import importlib.util
import json
from pathlib import Path

import pytest
import torch

from seqmodels.data import (
    CharTokenizer,
    SequenceBatch,
    TextClassificationDataModule,
    Vocabulary,
    WordTokenizer,
    demo_reviews_path,
)

REPO = Path(__file__).resolve().parents[1]


def _csv(tmp_path, name, rows, header="text,label"):
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def files(tmp_path):
    train = _csv(
        tmp_path,
        "train.csv",
        [
            "good movie,pos",
            "bad movie,neg",
            "great film,pos",
            "awful film,neg",
            "good good film,pos",
            "bad awful movie,neg",
        ],
    )
    val = _csv(tmp_path, "val.csv", ["good film,pos", "bad film,neg"])
    test = _csv(tmp_path, "test.csv", ["zebra movie,pos", "terrible film,neg"])
    return train, val, test


def test_tokenizers():
    assert CharTokenizer()("Hi there") == list("hi there")
    assert CharTokenizer(lowercase=False)("Hi") == ["H", "i"]
    assert WordTokenizer()("Don't stop, OK!") == ["don", "'", "t", "stop", ",", "ok", "!"]
    assert WordTokenizer(lowercase=False)("OK go") == ["OK", "go"]


def test_vocabulary_build_encode_decode_and_serialise():
    vocab = Vocabulary.build([["b", "a", "c"], ["a", "b"], ["a", "d"]])
    assert vocab.itos == ["<pad>", "<unk>", "a", "b", "c", "d"]  # frequency desc, then token
    assert len(vocab) == 6 and vocab.pad_id == 0 and vocab.unk_id == 1
    assert vocab.encode(["a", "zzz", "d"]) == [2, 1, 5]
    assert vocab.decode([2, 5, 0, 0]) == ["a", "d"]
    assert Vocabulary.build([["b", "a", "c"], ["a", "b"]], min_freq=2).itos == ["<pad>", "<unk>", "a", "b"]
    assert Vocabulary.build([["b", "a", "c"], ["a", "b"]], max_size=3).itos == ["<pad>", "<unk>", "a"]
    restored = Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored == vocab and restored.encode(["c"]) == [4]


def test_vocabulary_from_train_only_and_unknown_test_words(files):
    train, val, test = files
    dm = TextClassificationDataModule(train, val, test, tokenizer="word", batch_size=2)
    dm.setup()
    assert "zebra" not in dm.vocab and "terrible" not in dm.vocab and "good" in dm.vocab
    zebra_movie = dm.test_set[0][0]
    assert zebra_movie.tolist() == [dm.vocab.unk_id, dm.vocab.encode(["movie"])[0]]
    assert dm.class_names == ["neg", "pos"]
    assert dm.test_set.targets.tolist() == [1, 0]
    assert dm.dims() == {"vocab_size": len(dm.vocab), "padding_idx": 0, "num_classes": 2}
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, SequenceBatch) and batch.inputs.dtype == torch.int64 and batch.inputs.dim() == 2
    short = int(batch.lengths.argmin())
    assert (batch.inputs[short, batch.lengths[short] :] == 0).all()


def test_unseen_label_in_test_is_an_error(files, tmp_path):
    train, val, _ = files
    test = _csv(tmp_path, "bad_test.csv", ["good movie,pos", "meh film,neutral"])
    with pytest.raises(ValueError, match=r"bad_test.csv: line 3: label 'neutral' \(test split\)"):
        TextClassificationDataModule(train, val, test).setup()


def test_delimiters_tsv_and_sniffed(tmp_path):
    tsv = _csv(tmp_path, "d.tsv", ["a, b\tx", "c\ty"], header="text\tlabel")
    dm = TextClassificationDataModule(tsv, tsv, tsv, tokenizer="char")
    dm.setup()
    assert len(dm.train_set) == 2 and dm.class_names == ["x", "y"]
    semi = _csv(tmp_path, "d.txt", ["hello there;x", "good bye;y", "more text;x"], header="text;label")
    dm = TextClassificationDataModule(semi, semi, semi)
    dm.setup()
    assert dm.class_names == ["x", "y"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "file is empty"),
        ("  \n\n", "file is empty"),
        ("text,target\nhello,x\n", r"no column 'label' in the header; columns found: \['text', 'target'\]"),
        ("hello world,pos\nbad,neg\n", r"no column 'text'.*columns found: \['hello world', 'pos'\]"),
        ("text,label\nhello,x\nworld,\n", "line 3: empty label in column 'label'"),
        ("text,label\n", "no data rows"),
        ("text,label\n,x\n,y\n", "no usable rows"),
    ],
)
def test_csv_errors_are_one_line_and_name_file(tmp_path, content, message):
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        TextClassificationDataModule(path).setup()
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(ValueError, match="nope.csv"):
        TextClassificationDataModule(missing).setup()
    with pytest.raises(FileNotFoundError):
        TextClassificationDataModule(missing).setup()


def test_state_dict_round_trip_reproduces_encodings(files, tmp_path):
    train, val, test = files
    dm = TextClassificationDataModule(train, val, test, tokenizer="word", max_length=2)
    assert dm.hparams["train_path"] == str(train)  # Path -> str: checkpoints load with weights_only=True
    dm.setup()
    state = json.loads(json.dumps(dm.state_dict()))  # JSON-safe
    other_train = _csv(tmp_path, "other.csv", ["zebra zebra,pos", "terrible thing,neg", "another,pos"])
    expected = dm.encode_text("Good zebra film")
    assert expected.tolist() == dm.vocab.encode(["good", "zebra"])  # truncated to max_length
    # loaded before setup: reused, not rebuilt from the (different) training file
    before = TextClassificationDataModule(other_train, val, test, tokenizer="char")
    before.load_state_dict(state)
    before.setup()
    assert before.vocab == dm.vocab and before.class_names == dm.class_names
    assert torch.equal(before.encode_text("Good zebra film"), expected)
    assert torch.equal(before.test_set[0][0], dm.test_set[0][0])
    # loaded after setup (Lightning's order when restoring): splits are re-encoded
    after = TextClassificationDataModule(other_train, val, test, tokenizer="word")
    after.setup()
    assert after.vocab != dm.vocab
    after.load_state_dict(state)
    assert all(torch.equal(after.test_set[i][0], dm.test_set[i][0]) for i in range(len(dm.test_set)))
    assert after.dims() == dm.dims()


def test_bundled_demo_set_and_seeded_carving():
    dm = TextClassificationDataModule(tokenizer="word", seed=0)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (432, 48, 120)
    assert dm.class_names == ["negative", "positive"]
    assert torch.bincount(dm.test_set.targets).tolist() == [60, 60]
    again = TextClassificationDataModule(tokenizer="word", seed=0)
    again.setup()
    assert all(torch.equal(a[0], b[0]) for a, b in zip(dm.test_set, again.test_set, strict=True))
    different = TextClassificationDataModule(tokenizer="word", seed=1)
    different.setup()
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(dm.test_set, different.test_set, strict=True))


def test_bundled_csv_is_regenerated_byte_for_byte(tmp_path):
    spec = importlib.util.spec_from_file_location("make_reviews_csv", REPO / "scripts" / "make_reviews_csv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--out", str(tmp_path / "reviews.csv")])
    shipped = demo_reviews_path()
    assert shipped.read_bytes() == out.read_bytes()
    assert shipped.stat().st_size < 60_000
    assert shipped.is_relative_to(REPO / "src" / "seqmodels")  # inside the package: goes into the wheel
