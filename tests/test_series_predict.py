"""seqmodels-predict for a classifier of feature series (the default JapaneseVowels recipe): raw series files in
(.npy, or text with one step per row), labels out, read as the datamodule prepared its training series (delta
features, the training scaler); bad files get one line naming the fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from tiny_runs import train_tiny

from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
from seqmodels.data import read_ts
from seqmodels.predict import label_texts


@pytest.fixture(scope="module")
def vowels(tmp_path_factory):
    ckpt = train_tiny(
        tmp_path_factory.mktemp("vowels"),
        "experiment=japanese_vowels",  # its recipe reads delta features beside the 12 channels
        "++callbacks.early_stopping={}",  # the recipe has none; the tiny run removes one
        "model.net.encoder.hidden_size=8",
    )
    model, datamodule = build_from_checkpoint(load_checkpoint(ckpt), setup_data=False)
    return ckpt, model.eval(), datamodule


def _options(ckpt, input_file, n_best: int = 1) -> dict:
    return {
        "ckpt_path": str(ckpt),
        "input": None,
        "input_file": str(input_file),
        "n_best": n_best,
        "batch_size": 2,
        "device": "cpu",
        "weights_only": True,
    }


def test_series_files_and_folders_get_the_labels_of_their_prepared_series(vowels, tmp_path):
    ckpt, model, datamodule = vowels
    raw, _, _ = read_ts(datamodule.files()[1])  # test series as a user holds them: 12 channels, no deltas
    series = [x.numpy() for x in raw[:3]]
    folder = tmp_path / "series"
    folder.mkdir()
    np.save(folder / "a.npy", series[0])
    np.savetxt(folder / "b.csv", series[1], delimiter=",", header=",".join(f"c{i}" for i in range(12)), comments="")
    np.savetxt(folder / "c.txt", series[2])
    (folder / "notes.md").write_text("not a series")  # other files in the folder are not read
    results = label_texts(OmegaConf.create(_options(ckpt, folder, n_best=3)))
    assert [name.rsplit("/", 1)[1] for name, _ in results] == ["a.npy", "b.csv", "c.txt"]
    with torch.no_grad():
        for x, (_, outputs) in zip(series, results, strict=True):
            inputs = datamodule.inputs_from_series(torch.tensor(x, dtype=torch.float32))
            assert inputs.shape == (len(x), 24)  # the deltas and the training scaler, as in training
            probs = model(inputs[None], torch.tensor([len(x)])).softmax(-1)[0]
            top = probs.topk(3)
            assert [label for label, _ in outputs] == [datamodule.class_names[i] for i in top.indices.tolist()]
            assert [p for _, p in outputs] == pytest.approx(top.values.tolist(), abs=1e-5)
    one = label_texts(OmegaConf.create(_options(ckpt, folder / "a.npy", n_best=3)))
    assert [label for label, _ in one[0][1]] == [label for label, _ in results[0][1]]
    assert [p for _, p in one[0][1]] == pytest.approx([p for _, p in results[0][1]], abs=1e-6)  # batched alone


def test_bad_series_files_are_refused_in_one_line(vowels, tmp_path):
    ckpt = vowels[0]

    def fails(error: type, match: str, content: str | np.ndarray | None = None, name: str = "s.csv", **changes):
        path = tmp_path / name
        if isinstance(content, np.ndarray):
            np.save(path, content)
        elif content is not None:
            path.write_text(content)
        with pytest.raises(error, match=match) as info:
            label_texts(OmegaConf.create({**_options(ckpt, path), **changes}))
        assert "\n" not in str(info.value)

    row = ",".join(["0.5"] * 12)
    fails(ValueError, r"step 1 holds NaN or infinity; fill or drop", f"{row}\n{row.replace('0.5', 'nan', 1)}\n")
    fails(ValueError, r"rows hold \[11, 12\] values; every step needs one value per channel", f"{row}\n{row[4:]}\n")
    fails(ValueError, r"5 channels per step, but this model reads 12", np.zeros((4, 5)), name="s.npy")
    fails(ValueError, r"at least one step", "c0,c1\n")
    fails(ValueError, r"could not convert string to float.*every value must be a number", f"{row}\n{row}x\n")
    fails(FileNotFoundError, r"no such file or folder; pass a series file \(.npy", name="none.npy")
    fails(ValueError, r"reads series, not text: pass input_file=<path>, a series file", input="0.5 0.5")
    (tmp_path / "empty").mkdir()
    fails(ValueError, r"no series files \(.npy, .csv or .txt", name="empty")
