"""Topic classification on Debian's fortune files: the reader, the splits, the experiment and prediction."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from seqmodels.data.fortunes import (
    FORTUNES_DIR,
    FortunesDataModule,
    FortunesNotFoundError,
    fortune_files,
    fortunes_available,
    normalize_quotation,
    read_fortune_file,
    read_fortunes,
)

needs_fortunes = pytest.mark.skipif(
    not fortunes_available(), reason="the fortunes package is not installed (make system-data)"
)


def write(path: Path, quotations: list[str]) -> Path:
    path.write_text("\n%\n".join(quotations) + "\n%\n", encoding="utf-8")
    return path


def fake_fortunes(folder: Path, per_category: int = 12) -> Path:
    """Three small categories whose words tell them apart, plus a strfile index and a UTF-8 alias to ignore."""
    folder.mkdir(exist_ok=True)
    topics = {"computers": "compiler kernel bug", "food": "bread cheese soup", "law": "judge court lawyer"}
    for name, words in topics.items():
        write(folder / name, [f"The {words} number {i}.\n\t\t-- Someone {i}" for i in range(per_category)])
        (folder / f"{name}.dat").write_bytes(b"\x00\x00\x00\x02binary index")
        (folder / f"{name}.u8").symlink_to(folder / name)
    return folder


# ------------------------------------------------------------------------------------------------ reader
def test_reader_splits_on_percent_lines_and_keeps_line_numbers(tmp_path):
    path = tmp_path / "science"
    path.write_text("First line\nsecond line\n%\n\n%\n  %  \nAnother\n\n%\nLast, unterminated", encoding="utf-8")
    assert read_fortune_file(path) == [(1, "First line\nsecond line"), (7, "Another"), (10, "Last, unterminated")]


def test_reader_reads_overstruck_characters_and_crlf(tmp_path):
    path = tmp_path / "art"
    path.write_bytes(b"_\x08B_\x08o_\x08l_\x08d text\r\n%\r\nplain\r\n%\r\n")
    assert [text for _, text in read_fortune_file(path)] == ["Bold text", "plain"]


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "file is empty"),
        (b"  \n\n", "file is empty"),
        (b"%\n%\n\n%\n", "no quotations, only % separator lines"),
        (b"A README, not quotations.\nSecond line.\n", "no line holding only %"),
        (b"\x00\x00\x00\x02\x00\x00\x01", "binary data .*NUL byte at byte offset 0"),
        (b"caf\xe9\n%\n", "not UTF-8 text: byte 0xe9 at byte offset 3"),
    ],
)
def test_bad_fortune_files_are_one_line_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        read_fortune_file(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_folder_names_the_install_command(tmp_path):
    with pytest.raises(FortunesNotFoundError, match=r"no folder .*make system-data.*apt-get install fortunes") as info:
        fortune_files(tmp_path / "nowhere")
    assert isinstance(info.value, FileNotFoundError) and "\n" not in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FortunesNotFoundError, match="holds no category files"):
        read_fortunes(tmp_path / "empty")
    assert not fortunes_available(tmp_path / "nowhere")


def test_category_files_skip_indexes_aliases_and_hidden_files(tmp_path):
    folder = fake_fortunes(tmp_path / "f")
    (folder / ".hidden").write_text("x\n%\n")
    (folder / "sub").mkdir()
    assert list(fortune_files(folder)) == ["computers", "food", "law"]


def test_duplicates_are_dropped_up_to_whitespace_and_case(tmp_path):
    folder = fake_fortunes(tmp_path / "f", per_category=3)
    write(folder / "food", ["Bread  and\ncheese.", "bread and CHEESE.", "Soup.", "Shared wisdom here."])
    write(folder / "law", ["Judge.", "Court.", "shared   WISDOM here.", "Lawyer."])
    rows = read_fortunes(folder, ["food", "law"], min_count=2)
    assert [r.text for r in rows if r.label == "food"] == ["Bread  and\ncheese.", "Soup."]  # the first copy kept
    assert [r.text for r in rows if r.label == "law"] == ["Judge.", "Court.", "Lawyer."]  # in two categories: gone
    assert normalize_quotation(" Bread and\n\tCHEESE. ") == "bread and cheese."
    assert rows[0].where.endswith("food: line 1") and rows[1].line == 6


def test_category_selection_by_list_and_by_minimum_count(tmp_path):
    folder = fake_fortunes(tmp_path / "f", per_category=5)
    write(folder / "tiny", ["Only one.", "And two."])
    assert {r.label for r in read_fortunes(folder, None, min_count=3)} == {"computers", "food", "law"}
    assert {r.label for r in read_fortunes(folder, ["law", "tiny"], min_count=2)} == {"law", "tiny"}
    with pytest.raises(ValueError, match=r"category 'tiny' has 2 distinct quotations, fewer than min_count=3"):
        read_fortunes(folder, ["law", "tiny"], min_count=3)
    with pytest.raises(ValueError, match=r"no fortune category 'sport'.*categories found: computers, food, law, tiny"):
        read_fortunes(folder, ["law", "sport"])
    with pytest.raises(ValueError, match="1 fortune categories with at least min_count=4"):
        read_fortunes(folder, ["law"], min_count=4)
    with pytest.raises(ValueError, match="must be a list of category names"):
        FortunesDataModule(fortunes_dir=folder, categories="law")


def test_only_the_chosen_files_are_read(tmp_path):
    folder = fake_fortunes(tmp_path / "f", per_category=4)
    (folder / "broken").write_bytes(b"\xff\xfe not text")
    assert len(read_fortunes(folder, ["computers", "food"], min_count=4)) == 8
    with pytest.raises(ValueError, match="broken: not UTF-8"):
        read_fortunes(folder, None, min_count=4)


# ------------------------------------------------------------------------------------------------ datamodule
def test_splits_are_stratified_and_share_no_quotation(tmp_path):
    folder = fake_fortunes(tmp_path / "f", per_category=20)
    dm = FortunesDataModule(fortunes_dir=folder, categories=None, min_count=5, seed=3, val_fraction=0.2)
    dm.setup()
    keys = {split: {normalize_quotation(r.text) for r in rows} for split, rows in dm._raw.items()}
    assert sum(len(k) for k in keys.values()) == 60
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"] and not keys["val"] & keys["test"]
    # 60 -> test 12 (4 per category); 48 -> val round(9.6) = 10 (3.2 per category: 4, 3, 3)
    for split, sizes in (("test", [4, 4, 4]), ("val", [4, 3, 3])):
        labels = [r.label for r in dm._raw[split]]
        assert sorted((labels.count(c) for c in ("computers", "food", "law")), reverse=True) == sizes, (split, labels)
    assert dm.dims()["num_classes"] == 3 and dm.class_names == ["computers", "food", "law"]
    again = FortunesDataModule(fortunes_dir=folder, categories=None, min_count=5, seed=3, val_fraction=0.2)
    again.setup()
    assert [r.text for r in again._raw["test"]] == [r.text for r in dm._raw["test"]]  # the seed fixes the split


def test_state_dict_lets_a_datamodule_encode_without_the_files(tmp_path):
    folder = fake_fortunes(tmp_path / "f", per_category=10)
    dm = FortunesDataModule(fortunes_dir=folder, categories=["computers", "law"], min_count=5)
    dm.setup()
    state = dm.state_dict()
    fresh = FortunesDataModule(fortunes_dir=tmp_path / "gone", categories=["computers", "law"])
    fresh.load_state_dict(state)
    assert fresh.class_names == ["computers", "law"]
    assert torch.equal(fresh.inputs_from_text("the compiler bug"), dm.inputs_from_text("the compiler bug"))
    assert "train_path" not in dm.hparams and dm.hparams["fortunes_dir"] == str(folder)
    with pytest.raises(FortunesNotFoundError, match="make system-data"):
        FortunesDataModule(fortunes_dir=tmp_path / "gone").setup()


# ------------------------------------------------------------------------------------------------ runs
@pytest.mark.learns
def test_experiment_trains_and_predicts_from_its_checkpoint(compose_train, tmp_path):
    """A short run on fake fortune files; its checkpoint alone labels new text (without the files).

    Catches: labels or vocabulary lost between the fortune reader and the classifier (each category has its own
    words, so three epochs take test accuracy far above chance, 1/3), or a checkpoint that needs the files.
    """
    from seqmodels.predict import label_texts
    from seqmodels.train import train

    folder = fake_fortunes(tmp_path / "f", per_category=30)
    result = train(
        compose_train(
            "experiment=topic_classification",
            f"data.fortunes_dir={folder}",
            "data.categories=null",
            "data.min_count=5",
            "data.min_freq=1",
            "trainer.max_epochs=3",
            "model.net.frontend.embedding_dim=16",
            "model.net.encoder.hidden_size=16",
        )
    )
    assert math.isfinite(result.metrics["test/loss"]) and result.metrics["test/acc"] > 0.5, result.metrics
    for path in folder.iterdir():
        path.unlink()
    options = {"ckpt_path": result.best_model_path, "input_file": None, "n_best": 3, "batch_size": 4}
    cfg = OmegaConf.create({**options, "device": "cpu", "weights_only": True, "input": "a judge in court"})
    ((text, best),) = label_texts(cfg)
    assert text == "a judge in court" and {label for label, _ in best} == {"computers", "food", "law"}
    assert sum(p for _, p in best) == pytest.approx(1.0, abs=1e-5)


@needs_fortunes
def test_fast_dev_run_on_the_installed_package(compose_train):
    from seqmodels.train import train

    result = train(compose_train("experiment=topic_classification", "debug=fdr"))
    assert math.isfinite(result.metrics["test/loss"]), result.metrics


@needs_fortunes
def test_default_categories_on_the_installed_package():
    rows = read_fortunes(FORTUNES_DIR)
    counts = {label: sum(r.label == label for r in rows) for label in {r.label for r in rows}}
    assert len(counts) == 14 and min(counts.values()) >= 100, counts
    assert len({normalize_quotation(r.text) for r in rows}) == len(rows)


@needs_fortunes
def test_installed_package_splits_share_no_quotation():
    dm = FortunesDataModule(seed=12345)
    dm.setup()
    keys = {split: {normalize_quotation(r.text) for r in rows} for split, rows in dm._raw.items()}
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"] and not keys["val"] & keys["test"]
    assert len(dm._raw["test"]) == round(0.2 * sum(len(k) for k in keys.values()))
    assert {r.label for r in dm._raw["test"]} == set(dm.class_names) and len(dm.class_names) == 14
