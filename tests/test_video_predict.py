"""seqmodels-predict with a video classifier's checkpoint: clips (.npy/.npz files or a folder) in, labels out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
from seqmodels.data.video import FrameFolderDataModule, MovingDigitsDataModule, video_collate
from seqmodels.predict import label_texts, predict_from_checkpoint
from seqmodels.tasks.capabilities import Prediction

DATA = ["data.num_train=16", "data.num_val=8", "data.num_test=8", "data.batch_size=8"]
FAST = ["trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1", "logger=none"]


def _options(ckpt_path: str, input_file: object, n_best: int = 1) -> dict:
    return {
        "ckpt_path": ckpt_path,
        "input": None,
        "input_file": str(input_file),
        "n_best": n_best,
        "beam_size": 5,
        "batch_size": 64,
        "device": "cpu",
        "weights_only": True,
    }


def test_predict_labels_clips_as_the_model_itself_does(compose_train, tmp_path):
    """Each clip file is read as training clips are (uint8 levels / 16, floats kept) and labelled as the model's
    own forward labels that clip; a folder gives one answer per file, sorted by name; bad input fails in one line."""
    from seqmodels.train import train

    result = train(compose_train("experiment=video_classification", *DATA, *FAST, "test=false"))
    ckpt = result.best_model_path
    assert ckpt
    model, _ = build_from_checkpoint(load_checkpoint(ckpt), setup_data=False)
    model.eval()
    dm = MovingDigitsDataModule(num_train=16, num_val=8, num_test=8, seed=3)
    dm.setup()
    # Two clips of different lengths (so a folder's batch is padded): float (L, 1, 24, 24) in [0, 1] as trained on.
    first = 0
    second = next(i for i in range(1, len(dm.test_set)) if dm.test_set.lengths[i] != dm.test_set.lengths[first])
    clips = [dm.test_set[first][0], dm.test_set[second][0]]
    folder = tmp_path / "clips"
    folder.mkdir()
    np.save(folder / "b_float.npy", clips[1].numpy())  # float in [0, 1]
    np.save(folder / "a_levels.npy", dm.test_set.clips[first])  # the generator's uint8 levels 0..16, (L, 1, H, W)
    with torch.no_grad():
        expected = [torch.softmax(model(clip[None], torch.tensor([clip.shape[0]])), dim=-1)[0] for clip in clips]
        batch = video_collate(clips)
        batched = torch.softmax(model(batch.inputs, batch.lengths), dim=-1)
    for own, together in zip(expected, batched, strict=True):
        assert torch.allclose(own, together, atol=1e-5)
    names = dm.class_names

    # One file: its best label, as the CLI prints it (path<TAB>label).
    ((path, best),) = label_texts(OmegaConf.create(_options(ckpt, folder / "a_levels.npy")))
    assert path == str(folder / "a_levels.npy") and best == [
        (names[int(expected[0].argmax())], pytest.approx(float(expected[0].max()), abs=1e-5))
    ]

    # A folder, through the capability dispatch: sorted by name, n_best labels with their probabilities.
    kind, results = predict_from_checkpoint(OmegaConf.create(_options(ckpt, folder, n_best=3)))
    assert kind is Prediction.TEXT_TO_LABEL
    assert [p for p, _ in results] == [str(folder / "a_levels.npy"), str(folder / "b_float.npy")]
    for (_, outputs), probs in zip(results, expected, strict=True):
        top = probs.topk(3)
        assert [label for label, _ in outputs] == [names[i] for i in top.indices.tolist()]
        assert [p for _, p in outputs] == pytest.approx(top.values.tolist(), abs=1e-5)

    # Bad input: one line each, naming the fix.
    def fails(error: type, match: str, **changes: object) -> None:
        with pytest.raises(error, match=match) as info:
            label_texts(OmegaConf.create({**_options(ckpt, folder), **changes}))
        assert "\n" not in str(info.value)

    fails(FileNotFoundError, "no such file or folder; pass a clip \\(.mp4, .npy", input_file=str(tmp_path / "none.npy"))
    fails(ValueError, "reads clips, not text: pass input_file=clip.mp4 or clip.npy", input="a clip", input_file=None)
    (tmp_path / "text.npy").write_text("not an array\n")
    fails(ValueError, r"not a readable \.npy array .*re-save it with numpy", input_file=str(tmp_path / "text.npy"))
    (tmp_path / "clip.txt").write_text("0 1\n")
    fails(
        ValueError, r"not a clip; expected a video \(.mp4.* or a .npy/.npz array", input_file=str(tmp_path / "clip.txt")
    )
    np.save(tmp_path / "small.npy", np.zeros((5, 20, 20), dtype=np.uint8))
    fails(
        ValueError,
        r"reads \(1, 24, 24\), its training canvas; save the clip as \(L, 24, 24\)",
        input_file=str(tmp_path / "small.npy"),
    )
    np.save(tmp_path / "bytes.npy", np.full((5, 24, 24), 255, dtype=np.uint8))
    fails(
        ValueError,
        "span \\[15.9375, 15.9375\\].*levels 0..16 or floats in \\[0, 1\\]",
        input_file=str(tmp_path / "bytes.npy"),
    )
    (tmp_path / "empty").mkdir()
    fails(ValueError, "no clips \\(videos or .npy/.npz frame arrays", input_file=str(tmp_path / "empty"))


def test_frame_folder_reads_a_clip_as_in_training_and_keeps_its_frame_shape_in_the_checkpoint(tmp_path):
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(3):
            np.save(tmp_path / label / f"{i}.npy", np.full((6, 8, 8, 3), 51 * (i + 1), dtype=np.uint8))
    options = dict(root=str(tmp_path), frame_step=2, frame_size=(4, 4), channels_last=True, seed=0)
    dm = FrameFolderDataModule(**options)
    dm.setup()
    restored = FrameFolderDataModule(**options)  # as build_from_checkpoint makes it: state only, no data read
    restored.load_state_dict(dm.state_dict())
    assert restored.class_names == ["a", "b"]
    clip = restored.inputs_from_file(tmp_path / "a" / "1.npy")
    assert clip.shape == (3, 3, 4, 4) and torch.allclose(clip, torch.full_like(clip, 102 / 255))
    assert torch.equal(clip, dm.read(tmp_path / "a" / "1.npy"))
    np.save(tmp_path / "grey.npy", np.zeros((4, 8, 8, 1), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"frames are \(1, 4, 4\) \(C, H, W\) but this model reads \(3, 4, 4\)"):
        restored.inputs_from_file(tmp_path / "grey.npy")
