"""Video files (PyAV/FFmpeg) as clips: decoding, frame-rate sampling, grey and resized frames, one-line errors for
bad files, a folder of videos trained from the CLI config and labelled by seqmodels-predict."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from seqmodels.data.video import FrameFolderDataModule, decode_video, list_frame_files, read_frame_file

av = pytest.importorskip("av")


def write_video(path: Path, levels: list[int], fps: int = 10, size: tuple[int, int] = (24, 32), codec: str = "mpeg4"):
    """A clip whose frame i is a flat grey of ``levels[i]`` with a bright square (so motion codecs keep it exact
    enough): RGB, ``size`` (H, W), at ``fps`` frames per second."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        for level in levels:
            frame = np.full((*size, 3), level, np.uint8)
            frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_decodes_every_frame_in_order_as_rgb(tmp_path):
    levels = [10 * i for i in range(20)]
    clip = read_frame_file(write_video(tmp_path / "ramp.mp4", levels))
    assert clip.shape == (20, 3, 24, 32) and clip.dtype == torch.float32
    means = clip.mean(dim=(1, 2, 3)) * 255
    assert torch.allclose(means, torch.tensor(levels, dtype=torch.float32), atol=6)  # lossy codec, right order
    raw = decode_video(tmp_path / "ramp.mp4")
    assert raw.dtype == np.uint8 and raw.shape == (20, 24, 32, 3)


def test_fps_sampling_grayscale_resizing_and_caps(tmp_path):
    path = write_video(tmp_path / "ramp.mp4", [10 * i for i in range(20)], fps=10)  # 2 seconds
    half = read_frame_file(path, fps=5)
    assert half.shape[0] == 10
    # The frames shown at 0, 0.2, 0.4, ... s: every second frame of the file, from the first.
    full = read_frame_file(path)
    torch.testing.assert_close(half, full[::2])
    assert read_frame_file(path, fps=30).shape[0] == 20  # above the file's rate: every frame once
    assert read_frame_file(path, fps=2.5).shape[0] == 5
    grey = read_frame_file(path, grayscale=True, frame_size=(12, 16), frame_step=3, max_frames=4)
    assert grey.shape == (4, 1, 12, 16)
    assert torch.allclose(grey.mean(dim=(1, 2, 3)) * 255, torch.tensor([0.0, 30.0, 60.0, 90.0]), atol=6)


def test_bad_video_files_fail_in_one_line_naming_the_file(tmp_path, monkeypatch):
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"\x00not a video" * 50)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    for path in (garbage, empty):
        with pytest.raises(ValueError, match=rf"{path.name}: not a readable video") as error:
            read_frame_file(path)
        assert "\n" not in str(error.value)
    np.save(tmp_path / "clip.npy", np.zeros((3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="clip.npy: a frame array has no timestamps.*frame_step"):
        read_frame_file(tmp_path / "clip.npy", fps=5)
    with pytest.raises(ValueError, match="fps must be > 0"):
        read_frame_file(write_video(tmp_path / "ok.mp4", [0, 50]), fps=0)
    with pytest.raises(ValueError, match=r"notes.txt: not a clip; expected a video \(.mp4"):
        (tmp_path / "notes.txt").write_text("x")
        read_frame_file(tmp_path / "notes.txt")
    monkeypatch.setitem(sys.modules, "av", None)  # PyAV not installed
    with pytest.raises(ImportError, match=r"needs PyAV; pip install 'seqmodels\[video\]'") as error:
        read_frame_file(tmp_path / "ok.mp4")
    assert "\n" not in str(error.value)


def brightening_and_darkening(root: Path, per_class: int = 6) -> Path:
    """Two classes a per-frame model cannot tell apart (the same set of grey levels), only the order of frames:
    ``up`` brightens over time, ``down`` darkens. Lengths vary (5..8 frames), one video each."""
    rng = np.random.default_rng(0)
    for name in ("up", "down"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            length = int(rng.integers(5, 9))
            levels = [int(v) for v in np.linspace(40, 220, length)]
            write_video(root / name / f"clip{i}.mp4", levels if name == "up" else levels[::-1], size=(16, 16))
    return root


def test_a_folder_of_videos_is_a_datamodule(tmp_path):
    root = brightening_and_darkening(tmp_path / "clips")
    files, labels = list_frame_files(root)
    assert len(files) == 12 and sorted(set(labels)) == ["down", "up"]
    dm = FrameFolderDataModule(str(root), fps=None, frame_size=[8, 8], grayscale=True, batch_size=4, seed=0)
    assert dm.dims() == {"in_channels": 1, "height": 8, "width": 8, "num_classes": 2}
    batch = next(iter(dm.train_dataloader()))
    assert batch.inputs.shape[2:] == (1, 8, 8) and set(batch.lengths.tolist()) <= set(range(5, 9))


def test_train_on_a_video_folder_from_the_cli_config_and_predict_a_video(compose_train, tmp_path):
    from seqmodels.predict import label_texts
    from seqmodels.train import train

    root = brightening_and_darkening(tmp_path / "clips")
    cfg = compose_train(
        "experiment=video_classification",
        "data=frame_folder",
        f"data.root={root}",
        "data.frame_size=[8,8]",
        "data.grayscale=true",
        "data.batch_size=4",
        "trainer.max_epochs=1",
        "logger=none",
        "test=false",
    )
    result = train(cfg)
    assert result.best_model_path
    video = root / "up" / "clip0.mp4"
    options = {
        "ckpt_path": result.best_model_path,
        "input": None,
        "input_file": str(video),
        "n_best": 2,
        "beam_size": 5,
        "batch_size": 8,
        "device": "cpu",
        "weights_only": True,
    }
    ((path, outputs),) = label_texts(OmegaConf.create(options))
    assert path == str(video) and sorted(label for label, _ in outputs) == ["down", "up"]
    assert sum(p for _, p in outputs) == pytest.approx(1.0, abs=1e-5)
