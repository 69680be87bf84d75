"""Frame sequences: the moving-digits generator, the .npy/.npz folder reader, LRCN, and the experiment end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from seqmodels.data.video import (
    FrameFolderDataModule,
    MovingDigitsDataModule,
    list_frame_files,
    load_digit_images,
    moving_digit_clips,
    read_frame_file,
    video_collate,
)
from seqmodels.nn.recurrent import RecurrentEncoder
from seqmodels.nn.video import LRCN, FrameEncoder


def _small(**kwargs):
    options = dict(num_train=40, num_val=10, num_test=20, batch_size=8, seed=3)
    options.update(kwargs)
    dm = MovingDigitsDataModule(**options)
    dm.setup()
    return dm


# --------------------------------------------------------------------------- moving digits
def test_moving_digits_shapes_lengths_and_dims():
    dm = _small(canvas_size=20, min_length=4, max_length=9)
    assert dm.dims() == {"in_channels": 1, "height": 20, "width": 20, "num_classes": 40}
    lengths = dm.train_set.lengths
    assert int(lengths.min()) >= 4 and int(lengths.max()) <= 9 and len(set(lengths.tolist())) > 1
    batch = next(iter(dm.train_dataloader()))
    L = int(batch.lengths.max())
    assert batch.inputs.shape == (8, L, 1, 20, 20) and batch.inputs.dtype == torch.float32
    assert batch.targets.shape == (8,) and batch.targets.dtype == torch.int64
    for i, n in enumerate(batch.lengths.tolist()):
        assert not batch.inputs[i, n:].any()  # zero-padded
        assert float(batch.inputs[i, :n].amax(dim=(1, 2, 3)).min()) > 0  # the digit is in every frame
    assert float(batch.inputs.min()) >= 0.0 and float(batch.inputs.max()) <= 1.0


def _centroid(frame: torch.Tensor) -> tuple[float, float]:
    ys, xs = torch.nonzero(frame[0] > 0, as_tuple=True)
    weights = frame[0][ys, xs]
    return float((ys * weights).sum() / weights.sum()), float((xs * weights).sum() / weights.sum())


@pytest.mark.parametrize("num_directions", [4, 8])
def test_labels_are_digit_and_direction_of_motion(num_directions):
    images, digits = load_digit_images()
    clips, labels = moving_digit_clips(
        images, digits, 60, np.random.default_rng(0), canvas_size=24, num_directions=num_directions
    )
    assert set(labels.tolist()) <= set(range(10 * num_directions))
    steps = {0: (0, 1), 1: (0, -1), 2: (1, 0), 3: (-1, 0), 4: (1, 1), 5: (-1, -1), 6: (1, -1), 7: (-1, 1)}
    for clip, label in zip(clips, labels.tolist(), strict=True):
        frames = torch.from_numpy(clip).float()
        (y0, x0), (y1, x1) = _centroid(frames[0]), _centroid(frames[1])
        dy, dx = steps[label % num_directions]
        # the same digit image, shifted by speed * (dy, dx) pixels between frames
        assert math.copysign(1, y1 - y0) == dy or (dy == 0 and abs(y1 - y0) < 1e-6)
        assert math.copysign(1, x1 - x0) == dx or (dx == 0 and abs(x1 - x0) < 1e-6)
        assert frames[0].sum() == frames[-1].sum()  # never clipped by the canvas edge
        digit = label // num_directions
        windows = np.lib.stride_tricks.sliding_window_view(clip[0, 0], (8, 8)).reshape(-1, 1, 8, 8)
        own = images[digits == digit]
        assert (windows == own[None]).all(axis=(2, 3)).any()  # an image of the labelled digit, unchanged


def test_moving_digits_are_deterministic_by_seed_and_splits_use_disjoint_handwriting():
    a, b, c = _small(), _small(), _small(seed=4)
    for split in ("train_set", "test_set"):
        assert all(np.array_equal(x, y) for x, y in zip(getattr(a, split).clips, getattr(b, split).clips, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a.train_set.clips, c.train_set.clips, strict=False))
    pools = a.image_pools()
    assert not set(pools["train"]) & set(pools["test"]) and not set(pools["train"]) & set(pools["val"])
    assert len(pools["train"]) + len(pools["val"]) + len(pools["test"]) == 1797
    # the test set depends on its own size only, not on how much is generated for training
    d = _small(num_train=15)
    assert all(np.array_equal(x, y) for x, y in zip(a.test_set.clips, d.test_set.clips, strict=True))


def test_moving_digits_refuses_clips_that_cannot_stay_on_the_canvas():
    with pytest.raises(ValueError, match="max_length <= 17"):
        MovingDigitsDataModule(canvas_size=24, max_length=20)


# --------------------------------------------------------------------------- frame files
def _write_folder(root, shapes_by_class, dtype=np.uint8):
    rng = np.random.default_rng(0)
    for name, shapes in shapes_by_class.items():
        (root / name).mkdir(parents=True)
        for i, shape in enumerate(shapes):
            array = rng.integers(0, 255, size=shape).astype(dtype)
            if i % 2:
                np.savez(root / name / f"clip{i}.npz", frames=array)
            else:
                np.save(root / name / f"clip{i}.npy", array)


def test_read_frame_file_layouts_sampling_and_resize(tmp_path):
    frames = np.arange(10 * 4 * 6, dtype=np.uint8).reshape(10, 4, 6)
    np.save(tmp_path / "a.npy", frames)
    clip = read_frame_file(tmp_path / "a.npy")
    assert clip.shape == (10, 1, 4, 6) and torch.allclose(clip[3, 0], torch.from_numpy(frames[3]).float() / 255)
    sampled = read_frame_file(tmp_path / "a.npy", frame_step=3, max_frames=3)
    assert torch.equal(sampled, clip[[0, 3, 6]])
    assert read_frame_file(tmp_path / "a.npy", frame_size=(8, 12)).shape == (10, 1, 8, 12)
    np.savez(tmp_path / "b.npz", np.zeros((5, 4, 6, 3), dtype=np.float32))  # the only array, channels last
    assert read_frame_file(tmp_path / "b.npz", channels_last=True).shape == (5, 3, 4, 6)


def _truncated(path):
    np.save(path, np.zeros((8, 16, 16), dtype=np.float32))
    path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize(
    "write,match",
    [
        (lambda p: np.save(p / "bad.npy", np.array([np.zeros((2, 3)), np.zeros(4)], dtype=object)), "ragged"),
        (lambda p: (p / "bad.npy").write_bytes(b"not an array"), "not a readable"),
        (lambda p: np.save(p / "bad.npy", np.zeros((4, 5))), r"\(L, H, W\) or \(L, C, H, W\)"),
        (lambda p: _truncated(p / "bad.npy"), "not a readable"),
        (lambda p: np.save(p / "bad.npy", np.zeros((0, 4, 4))), "empty clip"),
        (lambda p: np.savez(p / "bad.npz", a=np.zeros((2, 4, 4)), b=np.zeros(2)), "'frames'"),
        (lambda p: np.save(p / "bad.npy", np.full((2, 4, 4), np.nan)), "NaN"),
        (lambda p: np.save(p / "bad.npy", np.array(["ab", "cd"])), "numeric"),
    ],
)
def test_bad_frame_files_are_refused_in_one_line_naming_the_file(tmp_path, write, match):
    write(tmp_path)
    path = next(tmp_path.iterdir())
    with pytest.raises(ValueError, match=match) as info:
        read_frame_file(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_frame_folder_datamodule(tmp_path):
    _write_folder(tmp_path, {"left": [(5, 6, 6)] * 5 + [(7, 6, 6)] * 5, "right": [(4, 6, 6)] * 10})
    dm = FrameFolderDataModule(str(tmp_path), test_fraction=0.2, val_fraction=0.25, batch_size=4, seed=0)
    assert dm.dims() == {"in_channels": 1, "height": 6, "width": 6, "num_classes": 2}
    assert dm.class_names == ["left", "right"]
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (12, 4, 4)
    assert sorted(dm.test_set.targets.tolist()) == [0, 0, 1, 1]  # stratified
    batch = next(iter(dm.train_dataloader()))
    assert batch.inputs.shape[0] == 4 and batch.inputs.shape[2:] == (1, 6, 6)
    assert set(batch.lengths.tolist()) <= {4, 5, 7}


def test_frame_folder_refuses_mixed_frame_sizes_naming_the_file(tmp_path):
    _write_folder(tmp_path, {"a": [(3, 6, 6), (3, 6, 6)], "b": [(3, 6, 6), (3, 5, 6)]})
    with pytest.raises(ValueError, match=r"clip1\.npz: frames .* set frame_size"):
        FrameFolderDataModule(str(tmp_path)).setup()
    dm = FrameFolderDataModule(str(tmp_path), frame_size=[6, 6], test_fraction=0.0, val_fraction=0.0)
    dm.setup()
    assert dm.dims()["height"] == 6 and len(dm.train_set) == 4


def test_frame_folder_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        list_frame_files(tmp_path / "missing")
    with pytest.raises(ValueError, match="no clips"):
        list_frame_files(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 3)))
    files, labels = list_frame_files(tmp_path)
    assert [f.name for f in files] == ["x.npy"] and labels is None
    (tmp_path / "cls").mkdir()
    with pytest.raises(ValueError, match="mixes"):
        list_frame_files(tmp_path)


def test_video_collate_refuses_mismatched_frames():
    with pytest.raises(ValueError, match="clip 1"):
        video_collate([(torch.zeros(3, 1, 4, 4), 0), (torch.zeros(3, 1, 5, 4), 1)])


# --------------------------------------------------------------------------- networks
def test_lrcn_padding_step_mode_and_any_frame_encoder():
    torch.manual_seed(0)
    encoder = RecurrentEncoder("gru", input_size=16, hidden_size=8, batch_first=True)
    net = LRCN(encoder, num_outputs=5, in_channels=1).eval()
    frames = torch.randn(3, 6, 1, 12, 12)
    lengths = torch.tensor([6, 3, 4])
    frames[1, 3:] = 100.0
    out = net(frames, lengths)
    assert out.shape == (3, 5)
    torch.testing.assert_close(out[1:2], net(frames[1:2, :3], lengths[1:2]), atol=1e-6, rtol=0)
    streamed, _ = net.stream(frames[:1])
    torch.testing.assert_close(streamed[:, -1], out[:1], atol=1e-6, rtol=0)
    # any image module as frame encoder; its output size is found by running it once
    custom = FrameEncoder(
        in_channels=1, output_size=16, encoder=nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()), frame_size=(12, 12)
    )
    assert custom(frames).shape == (3, 6, 16)
    net2 = LRCN(RecurrentEncoder("lstm", input_size=16, hidden_size=8, batch_first=True), 5, frame_encoder=custom)
    assert net2(frames, lengths).shape == (3, 5)
    with pytest.raises(ValueError, match="encoder.input_size"):
        LRCN(RecurrentEncoder("lstm", input_size=7, hidden_size=8, batch_first=True), 5, frame_encoder=custom)


def test_video_classification_fast_dev_run(compose_train):
    from seqmodels.train import train

    cfg = compose_train(
        "experiment=video_classification", "debug=fdr", "data.num_train=16", "data.num_val=8", "data.num_test=8"
    )
    result = train(cfg)
    assert "test/loss" in result.metrics and "test/early_acc@50%" in result.metrics
    assert all(math.isfinite(v) for k, v in result.metrics.items() if k.startswith(("train/", "test/")))


# --------------------------------------------------------------------------- frame prediction
def test_prediction_datamodule_splits_clips_into_context_and_future():
    from seqmodels.data.video import MovingDigitsPredictionDataModule

    dm = MovingDigitsPredictionDataModule(horizon=3, min_length=4, max_length=6, num_train=12, num_val=4, num_test=4)
    dm.setup()
    assert dm.dims() == {"in_channels": 1, "height": 24, "width": 24, "horizon": 3}
    context, future = dm.train_set[0]
    whole = torch.from_numpy(dm.train_set.clips[0]).float() / 16
    assert torch.equal(torch.cat([context, future]), whole) and future.shape[0] == 3 and 4 <= len(context) <= 6
    batch = next(iter(dm.train_dataloader()))
    assert batch.targets.shape == (len(batch), 3, 1, 24, 24) and batch.inputs.shape[2:] == (1, 24, 24)


def test_frame_predictor_shapes_and_padding():
    from seqmodels.nn.video import ConvLSTMFramePredictor

    torch.manual_seed(0)
    frames = torch.rand(2, 5, 1, 8, 8)
    frames[1, 2:] = 7.0  # padding garbage
    lengths = torch.tensor([5, 2])
    # untrained, the residual predictor copies the last context frame
    copy = ConvLSTMFramePredictor(in_channels=1, hidden_size=4, horizon=3)(frames, lengths)
    torch.testing.assert_close(copy, torch.stack([frames[0, 4], frames[1, 1]]).unsqueeze(1).expand(-1, 3, -1, -1, -1))
    for residual in (True, False):
        net = ConvLSTMFramePredictor(in_channels=1, hidden_size=4, num_layers=2, horizon=3, residual=residual).eval()
        nn.init.normal_(net.to_frame.weight)
        out = net(frames, lengths)
        assert out.shape == (2, 3, 1, 8, 8) and float(out.detach().min()) >= 0 and float(out.detach().max()) <= 1
        torch.testing.assert_close(out[1:], net(frames[1:, :2], torch.tensor([2])), atol=1e-6, rtol=0)
        out.sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_ssim():
    from seqmodels.nn.video import ssim

    x = torch.rand(3, 2, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    assert abs(float(ssim(x, x)) - 1.0) < 1e-6
    noisy = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert 0.0 < float(ssim(noisy, x)) < 0.9
    assert float(ssim(x.roll(3, dims=-1), x)) < float(ssim(x, x))
    with pytest.raises(ValueError, match="one shape"):
        ssim(x, x[:1])


def test_frame_prediction_fast_dev_run(compose_train):
    from seqmodels.train import train

    cfg = compose_train(
        "experiment=frame_prediction",
        "debug=fdr",
        "data.num_train=8",
        "data.num_val=4",
        "data.num_test=4",
        "data.batch_size=4",
    )
    result = train(cfg)
    assert math.isfinite(result.metrics["test/mse"]) and 0 < result.metrics["test/mse"] < 1


def test_frame_strip_lays_out_context_truth_and_prediction():
    from seqmodels.callbacks import frame_strip

    context, target, prediction = torch.full((3, 1, 2, 2), 0.25), torch.full((2, 1, 2, 2), 0.5), torch.ones(2, 1, 2, 2)
    strip = frame_strip(context, target, 2 * prediction)
    assert strip.shape == (1, 4, 10)  # two rows of (3 + 2) frames of 2 x 2
    assert torch.all(strip[:, :2, :6] == 0.25) and torch.all(strip[:, :2, 6:] == 0.5)
    assert torch.all(strip[:, 2:, :6] == 0) and torch.all(strip[:, 2:, 6:] == 1)  # predictions clamped to [0, 1]
    with pytest.raises(ValueError, match="frames of one size"):
        frame_strip(context, target, torch.ones(2, 1, 3, 3))


def test_frame_prediction_logs_frame_strips_to_tensorboard(compose_train, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from seqmodels.train import train

    cfg = compose_train(
        "experiment=frame_prediction",
        "data.num_train=8",
        "data.num_val=4",
        "data.num_test=4",
        "data.batch_size=4",
        "trainer.max_epochs=1",
        "logger=tensorboard",
        "callbacks.frame_samples.num_examples=2",
    )
    train(cfg)
    events = sorted(tmp_path.rglob("events.out.tfevents.*"))
    assert events, list(tmp_path.rglob("*"))
    tags = set()
    for path in events:
        accumulator = EventAccumulator(str(path), size_guidance={"images": 0})
        accumulator.Reload()
        tags |= set(accumulator.Tags()["images"])
    assert {"frames/0", "frames/1"} <= tags, tags
