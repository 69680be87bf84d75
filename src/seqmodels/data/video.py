"""Frame sequences (video clips): generated moving digits, and folders of video files or ``.npy``/``.npz`` arrays.

Every clip is a float tensor (L, C, H, W) with values in [0, 1]; batches are :class:`SequenceBatch` with
``inputs`` (N, L, C, H, W) zero-padded past each clip's length, ``lengths`` (N,) and ``targets`` (N,) class ids.

Moving digits: real handwriting (scikit-learn's bundled 8x8 digit images, ``sklearn.datasets.load_digits``: 1797
digits written by 43 people, UCI) moved across a small black canvas in a straight line at a constant speed, as in
Moving MNIST (Srivastava et al. 2015). The label is digit x direction of motion: a model must read the digit from
any frame and the direction from the order of the frames. The digit images are split between train, validation
and test, so test clips show handwriting never seen in training.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from seqmodels.data.batch import SequenceBatch
from seqmodels.data.datamodule import MissingDataFileError, SequenceDataModule, stratified_split
from seqmodels.data.synthetic import GeneratedDataModule, _rng

# (name, dy, dx) per direction; the first 4 are the axis directions, then the diagonals.
DIRECTIONS: tuple[tuple[str, int, int], ...] = (
    ("right", 0, 1),
    ("left", 0, -1),
    ("down", 1, 0),
    ("up", -1, 0),
    ("down-right", 1, 1),
    ("up-left", -1, -1),
    ("down-left", 1, -1),
    ("up-right", -1, 1),
)
FRAME_SUFFIXES = (".npy", ".npz")
# Containers FFmpeg (through PyAV) decodes; any codec FFmpeg knows inside them.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".gif")
CLIP_SUFFIXES = FRAME_SUFFIXES + VIDEO_SUFFIXES


# --------------------------------------------------------------------------- batches
def video_collate(items: Sequence[Any]) -> SequenceBatch:
    """``(clip (L, C, H, W), label)`` items (or bare clips) -> a :class:`SequenceBatch` with inputs (N, L, C, H, W)."""
    if len(items) == 0:
        raise ValueError("video_collate: got an empty list of items")
    clips, labels = [], []
    for position, item in enumerate(items):
        clip, label = (item, None) if isinstance(item, Tensor) else (item[0], item[1])
        if clip.dim() != 4 or (clips and clip.shape[1:] != clips[0].shape[1:]):
            expected = tuple(clips[0].shape[1:]) if clips else "(C, H, W)"
            raise ValueError(
                f"video_collate: clip {position} has shape {tuple(clip.shape)}; every clip must be (L, C, H, W) "
                f"with frames {expected} like clip 0 (set frame_size to resize)"
            )
        clips.append(clip)
        labels.append(label)
    lengths = torch.tensor([c.shape[0] for c in clips], dtype=torch.int64)
    inputs = torch.stack(clips) if int(lengths.min()) == int(lengths.max()) else pad_sequence(clips, batch_first=True)
    if all(label is None for label in labels):
        targets = None
    elif any(label is None for label in labels):
        raise ValueError("video_collate: some clips have a label and some do not; all or none must")
    elif isinstance(labels[0], Tensor) and labels[0].dim() > 0:
        targets = torch.stack(labels)  # frames to predict: (N, T, C, H, W)
    else:
        targets = torch.as_tensor([int(label) for label in labels], dtype=torch.int64)
    return SequenceBatch(inputs=inputs, lengths=lengths, targets=targets)


class ClipDataset(Dataset):
    """Clips stored compactly as uint8 arrays (L, C, H, W) plus a scale; items are ``(float clip, label)``."""

    def __init__(self, clips: Sequence[np.ndarray], labels: Sequence[int], scale: float = 1.0 / 255.0) -> None:
        if len(clips) != len(labels):
            raise ValueError(f"ClipDataset: {len(clips)} clips but {len(labels)} labels")
        self.clips = list(clips)
        self.targets = torch.as_tensor(list(labels), dtype=torch.int64)
        self.scale = scale
        self.lengths = torch.tensor([c.shape[0] for c in self.clips], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        clip = torch.from_numpy(np.ascontiguousarray(self.clips[index])).float()
        return clip * self.scale if self.clips[index].dtype == np.uint8 else clip, self.targets[index]


class VideoDataModuleMixin:
    """Batches of clips: :func:`video_collate` instead of the (L, C) padding of :func:`pad_collate`."""

    @property
    def collate_fn(self) -> Callable[[Sequence[Any]], Any]:
        return video_collate


# --------------------------------------------------------------------------- moving digits
def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled handwritten digits: images (1797, 8, 8) uint8 in [0, 16] and labels (1797,)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("moving digits need scikit-learn: pip install scikit-learn") from err
    digits = load_digits()
    return digits.images.astype(np.uint8), digits.target.astype(np.int64)


def moving_digit_clips(
    images: np.ndarray,
    digit_labels: np.ndarray,
    n: int,
    rng: np.random.Generator,
    canvas_size: int = 24,
    min_length: int = 6,
    max_length: int = 12,
    num_directions: int = 4,
    max_speed: int = 2,
) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` clips of a digit moving in a straight line: (clips, labels = digit * num_directions + direction).

    Each clip draws a digit image, a length in [min_length, max_length], a direction, an integer speed in
    [1, max_speed] pixels per frame (at most what keeps the digit on the canvas for the whole clip) and a start
    position from which the digit stays entirely on the canvas. Clips are uint8 (L, 1, canvas, canvas) with the
    images' values (0..16 for scikit-learn's digits).
    """
    digit = images.shape[-1]
    travel = canvas_size - digit
    clips: list[np.ndarray] = []
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        k = int(rng.integers(len(images)))
        length = int(rng.integers(min_length, max_length + 1))
        direction = int(rng.integers(num_directions))
        _, dy, dx = DIRECTIONS[direction]
        speed = int(rng.integers(1, max(1, min(max_speed, travel // max(1, length - 1))) + 1))
        span = speed * (length - 1)
        starts = []
        for delta in (dy, dx):
            if delta > 0:
                starts.append(int(rng.integers(0, travel - span + 1)))
            elif delta < 0:
                starts.append(int(rng.integers(span, travel + 1)))
            else:
                starts.append(int(rng.integers(0, travel + 1)))
        clip = np.zeros((length, 1, canvas_size, canvas_size), dtype=np.uint8)
        for t in range(length):
            y, x = starts[0] + dy * speed * t, starts[1] + dx * speed * t
            clip[t, 0, y : y + digit, x : x + digit] = images[k]
        clips.append(clip)
        labels[i] = int(digit_labels[k]) * num_directions + direction
    return clips, labels


class MovingDigitsDataModule(VideoDataModuleMixin, GeneratedDataModule):
    """Moving handwritten digits, classified by digit x direction of motion (many-to-one).

    See :mod:`seqmodels.data.video`. The 1797 digit images are split by ``seed`` into disjoint pools for train,
    validation and test (``image_fractions``), so a test clip's handwriting was never seen in training; the clips'
    motion is drawn from one random stream per split.

    Args:
        canvas_size: frames are canvas_size x canvas_size (the digits are 8 x 8 pixels).
        min_length, max_length: clip lengths, drawn uniformly; max_length - 1 <= canvas_size - 8.
        num_directions: 4 (right, left, down, up) or 8 (plus the diagonals); classes = 10 * num_directions.
        max_speed: pixels per frame, drawn in [1, max_speed].
        image_fractions: shares of the digit images for (validation, test); the rest trains.
        num_train, num_val, num_test: clips per split.
        **base: :class:`SequenceDataModule` arguments (``batch_size``, ``seed``, ...).

    dims: ``in_channels=1``, ``height = width = canvas_size``, ``num_classes = 10 * num_directions``.
    """

    name = "moving digits"

    def __init__(
        self,
        canvas_size: int = 24,
        min_length: int = 6,
        max_length: int = 12,
        num_directions: int = 4,
        max_speed: int = 2,
        image_fractions: Sequence[float] = (0.15, 0.25),
        num_train: int = 3000,
        num_val: int = 500,
        num_test: int = 1000,
        **base: Any,
    ) -> None:
        super().__init__(num_train=num_train, num_val=num_val, num_test=num_test, **base)
        if canvas_size < 8:
            raise ValueError(f"moving digits: canvas_size must be >= 8 (the digits are 8x8), got {canvas_size}")
        if not 1 <= min_length <= max_length:
            raise ValueError(f"moving digits: need 1 <= min_length <= max_length, got {min_length}, {max_length}")
        if max_length - 1 > canvas_size - 8:
            raise ValueError(
                f"moving digits: a clip of {max_length} frames cannot stay on a {canvas_size}px canvas; "
                f"set max_length <= {canvas_size - 7} or a larger canvas_size"
            )
        if num_directions not in (4, 8):
            raise ValueError(f"moving digits: num_directions must be 4 or 8, got {num_directions}")
        if max_speed < 1:
            raise ValueError(f"moving digits: max_speed must be >= 1, got {max_speed}")
        fractions = tuple(float(f) for f in image_fractions)
        if len(fractions) != 2 or min(fractions) <= 0 or sum(fractions) >= 1:
            raise ValueError(f"moving digits: image_fractions must be two shares > 0 summing to < 1, got {fractions}")
        self.canvas_size, self.min_length, self.max_length = canvas_size, min_length, max_length
        self.num_directions, self.max_speed, self.image_fractions = num_directions, max_speed, fractions

    @property
    def class_names(self) -> list[str]:
        return [f"{d}-{DIRECTIONS[k][0]}" for d in range(10) for k in range(self.num_directions)]

    def inputs_from_file(self, path: str | Path) -> Tensor:
        """A clip file (``.npy``/``.npz``, (L, H, W) or (L, 1, H, W)) preprocessed as training clips are -> float
        (L, 1, canvas_size, canvas_size): uint8 arrays hold the generator's levels 0..16 (divided by 16, as
        :class:`ClipDataset` does), float arrays values in [0, 1] (kept). One-line ``ValueError`` naming the file
        otherwise (``seqmodels-predict`` reads clips with it)."""
        clip = read_frame_file(path, uint8_scale=1.0 / 16.0)
        size = self.canvas_size
        if tuple(clip.shape[1:]) != (1, size, size):
            raise ValueError(
                f"{path}: frames are {tuple(clip.shape[1:])} (C, H, W) but this model reads (1, {size}, {size}), "
                f"its training canvas; save the clip as (L, {size}, {size}) grey frames"
            )
        top = float(clip.max())
        if top > 1.0 or float(clip.min()) < 0.0:
            raise ValueError(
                f"{path}: frame values span [{float(clip.min()):g}, {top:g}] after scaling; moving-digits clips hold "
                "uint8 levels 0..16 or floats in [0, 1], so rescale the frames to one of those"
            )
        return clip

    def image_pools(self) -> dict[str, np.ndarray]:
        """Indices of the digit images each split draws from (disjoint, stratified by digit)."""
        images, labels = load_digit_images()
        rest, test = stratified_split(labels.tolist(), self.image_fractions[1], self.seed)
        rest_labels = labels[rest].tolist()
        val_share = self.image_fractions[0] / (1 - self.image_fractions[1])
        train_pos, val_pos = stratified_split(rest_labels, val_share, self.seed + 1)
        rest = np.asarray(rest)
        return {"train": rest[train_pos], "val": rest[val_pos], "test": np.asarray(test)}

    def _generate(self, split: str, n: int, pool: np.ndarray, images: np.ndarray, labels: np.ndarray) -> ClipDataset:
        clips, targets = moving_digit_clips(
            images[pool],
            labels[pool],
            n,
            _rng(self.seed, split),
            self.canvas_size,
            self.min_length,
            self.max_length,
            self.num_directions,
            self.max_speed,
        )
        return ClipDataset(clips, targets.tolist(), scale=1.0 / 16.0)

    def build(self) -> None:
        images, labels = load_digit_images()
        pools = self.image_pools()
        sizes = {"train": self.num_train, "val": self.num_val, "test": self.num_test}
        for split, n in sizes.items():
            setattr(self, f"{split}_set", self._generate(split, n, pools[split], images, labels))

    def _dims(self) -> dict[str, int]:
        return {
            "in_channels": 1,
            "height": self.canvas_size,
            "width": self.canvas_size,
            "num_classes": 10 * self.num_directions,
        }


class FramePredictionDataset(Dataset):
    """Clips split into context and future: items ``(context (L, C, H, W), future (horizon, C, H, W))``."""

    def __init__(self, clips: Sequence[np.ndarray], horizon: int, scale: float) -> None:
        self.clips, self.horizon, self.scale = list(clips), horizon, scale
        self.lengths = torch.tensor([c.shape[0] - horizon for c in self.clips], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        clip = torch.from_numpy(self.clips[index]).float() * self.scale
        return clip[: -self.horizon], clip[-self.horizon :]


class MovingDigitsPredictionDataModule(MovingDigitsDataModule):
    """Moving digits for next-frame prediction (many-to-many): ``min_length``..``max_length`` context frames, then
    ``horizon`` frames to predict (targets (N, horizon, 1, H, W), values in [0, 1]).

    Same generator, image pools and arguments as :class:`MovingDigitsDataModule`; clips have
    ``length + horizon`` frames, so ``max_length + horizon - 1 <= canvas_size - 8``.

    dims: ``in_channels=1``, ``height``, ``width``, ``horizon``.
    """

    name = "moving digits prediction"

    def __init__(self, horizon: int = 4, min_length: int = 4, max_length: int = 8, **kwargs: Any) -> None:
        if horizon < 1:
            raise ValueError(f"moving digits prediction: horizon must be >= 1, got {horizon}")
        super().__init__(min_length=min_length + horizon, max_length=max_length + horizon, **kwargs)
        self.horizon = horizon

    def _generate(self, split: str, n: int, pool: np.ndarray, images: np.ndarray, labels: np.ndarray) -> Dataset:
        clips = super()._generate(split, n, pool, images, labels).clips
        return FramePredictionDataset(clips, self.horizon, scale=1.0 / 16.0)

    def _dims(self) -> dict[str, int]:
        return {"in_channels": 1, "height": self.canvas_size, "width": self.canvas_size, "horizon": self.horizon}


# --------------------------------------------------------------------------- frame arrays on disk
def _load_array(path: Path) -> np.ndarray:
    """The array stored in a ``.npy`` file, or in an ``.npz`` under ``frames`` (or as its only array)."""
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if not magic.startswith(b"\x93NUMPY" if path.suffix == ".npy" else b"PK\x03\x04"):
        raise ValueError(f"{path}: not a readable {path.suffix} array (no {path.suffix} header); re-save it with numpy")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                keys = list(loaded.keys())
                if "frames" in keys:
                    array = loaded["frames"]
                elif len(keys) == 1:
                    array = loaded[keys[0]]
                else:
                    raise ValueError(f"{path}: holds arrays {keys}; name the clip's array 'frames'")
        else:
            array = loaded
    except ValueError as err:
        message = str(err)
        if message.startswith(str(path)):
            raise
        if "allow_pickle" in message or "Object arrays" in message:
            raise ValueError(
                f"{path}: holds a ragged or object array; save the frames as one numeric array (L, H, W) or "
                "(L, C, H, W)"
            ) from err
        raise ValueError(f"{path}: not a readable .npy/.npz array ({message.splitlines()[0]})") from err
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npy/.npz array ({type(err).__name__})") from err
    return array


def decode_video(path: str | Path, fps: float | None = None, grayscale: bool = False) -> np.ndarray:
    """The frames of a video file's first video stream -> uint8 (L, H, W, C), C = 3 (RGB) or 1 (``grayscale``).

    ``fps``: sample the clip at this rate from the frames' timestamps (the frame shown at 0, 1/fps, 2/fps, ...
    seconds; a rate above the file's repeats no frame, it keeps every frame); None keeps every frame. Decoding is
    PyAV's (FFmpeg), so every container and codec FFmpeg reads works. A file FFmpeg cannot read, or one without
    video frames, raises a one-line ``ValueError`` naming it.
    """
    try:
        import av
    except ImportError as err:  # the video extra is optional
        raise ImportError(
            f"{path}: reading video files needs PyAV; pip install 'seqmodels[video]' (or save frames as .npy)"
        ) from err
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be > 0 or null, got {fps!r}")
    frames: list[np.ndarray] = []
    next_time = 0.0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: holds no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate) if stream.average_rate else None
            for index, frame in enumerate(container.decode(stream)):
                if fps is not None:
                    # Timestamps can be missing (raw streams): fall back to the frame's index at the stream's rate.
                    time = frame.time if frame.time is not None else index / (rate or fps)
                    if time + 1e-6 < next_time:
                        continue
                    while next_time <= time + 1e-6:
                        next_time += 1.0 / fps
                frames.append(frame.to_ndarray(format="gray" if grayscale else "rgb24"))
    except av.FFmpegError as err:
        raise ValueError(
            f"{path}: not a readable video ({type(err).__name__}: {err.strerror or err}); "
            "check the file, or convert it with ffmpeg"
        ) from err
    if not frames:
        raise ValueError(f"{path}: holds no video frames")
    array = np.stack(frames)
    return array[..., None] if array.ndim == 3 else array


def read_frame_file(
    path: str | Path,
    frame_step: int = 1,
    max_frames: int | None = None,
    frame_size: Sequence[int] | None = None,
    channels_last: bool = False,
    uint8_scale: float = 1.0 / 255.0,
    fps: float | None = None,
    grayscale: bool = False,
) -> Tensor:
    """One clip from a video file (:data:`VIDEO_SUFFIXES`) or a ``.npy``/``.npz`` array -> float32 (L, C, H, W).

    A video is decoded by :func:`decode_video` (``fps`` sampling, ``grayscale``) into RGB or grey uint8 frames.
    An array is (L, H, W) (one channel), (L, C, H, W), or with ``channels_last`` (L, H, W, C); an ``.npz`` holds
    it under ``frames`` or as its only array (arrays carry no timestamps, so ``fps`` is refused for them: use
    ``frame_step``). uint8 values are multiplied by ``uint8_scale`` (default: divided by 255), others kept as they
    are. Every ``frame_step``-th frame is kept (from frame 0), then at most ``max_frames``; ``frame_size`` (H, W)
    resizes (bilinear). Raises a one-line ``ValueError`` naming the file for anything else.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataFileError(f"{path}: no such clip file")
    suffix = path.suffix.lower()
    if suffix not in CLIP_SUFFIXES:
        raise ValueError(f"{path}: not a clip; expected a video ({', '.join(VIDEO_SUFFIXES)}) or a .npy/.npz array")
    if suffix in VIDEO_SUFFIXES:
        array = decode_video(path, fps=fps, grayscale=grayscale)
        channels_last = True
    elif fps is not None:
        raise ValueError(f"{path}: a frame array has no timestamps, so fps cannot apply; set fps=null, use frame_step")
    else:
        array = _load_array(path)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{path}: frames must be numeric, got dtype {array.dtype}")
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        if channels_last:
            array = array.transpose(0, 3, 1, 2)
    else:
        raise ValueError(
            f"{path}: frames must be (L, H, W) or (L, C, H, W), got shape {array.shape}"
            + ("" if channels_last else "; set channels_last=true for (L, H, W, C)")
        )
    if array.shape[0] == 0 or min(array.shape[1:]) == 0:
        raise ValueError(f"{path}: holds an empty clip of shape {array.shape}")
    if frame_step < 1:
        raise ValueError(f"frame_step must be >= 1, got {frame_step}")
    scale = uint8_scale if array.dtype == np.uint8 else 1.0
    clip = torch.from_numpy(np.ascontiguousarray(array[::frame_step][:max_frames])).float() * scale
    if not torch.isfinite(clip).all():
        raise ValueError(f"{path}: frames contain NaN or infinite values")
    if frame_size is not None and tuple(clip.shape[2:]) != tuple(frame_size):
        clip = F.interpolate(clip, size=tuple(int(s) for s in frame_size), mode="bilinear", align_corners=False)
    return clip


def _is_clip(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in CLIP_SUFFIXES


def list_frame_files(root: str | Path) -> tuple[list[Path], list[str] | None]:
    """``root/<class>/<clip>`` -> (files, class of each file); a flat ``root/<clip>`` -> (files, None); a clip is a
    video file or a ``.npy``/``.npz`` array."""
    root = Path(root)
    if not root.is_dir():
        raise MissingDataFileError(f"{root}: no such folder of clips")
    flat = sorted(p for p in root.iterdir() if _is_clip(p))
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if flat and class_dirs:
        raise ValueError(f"{root}: mixes clip files and class folders; put every clip in a class folder")
    if flat:
        return flat, None
    files, labels = [], []
    for folder in class_dirs:
        for path in sorted(p for p in folder.iterdir() if _is_clip(p)):
            files.append(path)
            labels.append(folder.name)
    if not files:
        raise ValueError(
            f"{root}: no clips (videos or .npy/.npz frame arrays; expected root/<class>/<clip>.mp4 or root/<clip>.npy)"
        )
    return files, labels


class FrameFolderDataModule(VideoDataModuleMixin, SequenceDataModule):
    """Clips from a folder of video files or ``.npy``/``.npz`` frame arrays, one class per sub-folder:
    ``root/<class>/<clip>.mp4`` (any of :data:`VIDEO_SUFFIXES`) or ``root/<class>/<clip>.npz``.

    Every clip is read with :func:`read_frame_file` (frame sampling, resizing; one-line errors naming a bad file);
    all clips must end up with the same channels and frame size (set ``frame_size`` to resize). Validation and
    test are stratified shares of the clips.

    Args:
        root: the folder.
        frame_step: keep every frame_step-th frame (a lower frame rate).
        fps: videos only: sample every clip at this many frames per second from its timestamps (None: every frame).
        grayscale: videos only: decode one grey channel instead of RGB.
        max_frames: keep at most this many frames per clip (None: all).
        frame_size: (H, W) to resize every frame to (None: keep; then all clips must agree).
        channels_last: arrays are (L, H, W, C).
        test_fraction: share of the clips for testing; ``val_fraction`` (base argument) of the rest validates.

    dims: ``in_channels``, ``height``, ``width``, ``num_classes``.
    """

    def __init__(
        self,
        root: str,
        frame_step: int = 1,
        max_frames: int | None = None,
        frame_size: Sequence[int] | None = None,
        channels_last: bool = False,
        test_fraction: float = 0.2,
        fps: float | None = None,
        grayscale: bool = False,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        if frame_step < 1:
            raise ValueError(f"frame_step must be >= 1, got {frame_step}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or null, got {max_frames}")
        if not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
        self.root = Path(root)
        self.read = functools.partial(
            read_frame_file,
            frame_step=frame_step,
            max_frames=max_frames,
            frame_size=None if frame_size is None else tuple(frame_size),
            channels_last=channels_last,
            fps=fps,
            grayscale=grayscale,
        )
        self.test_fraction = test_fraction
        self.class_names: list[str] = []
        self._frame_shape: tuple[int, ...] | None = None

    def read_clips(self, files: Sequence[Path]) -> list[Tensor]:
        """Every file as a clip, checking that all share channels and frame size (errors name the odd file)."""
        clips = []
        for path in files:
            clip = self.read(path)
            if clips and clip.shape[1:] != clips[0].shape[1:]:
                raise ValueError(
                    f"{path}: frames {tuple(clip.shape[1:])} differ from {files[0]}'s {tuple(clips[0].shape[1:])}; "
                    "set frame_size (and use the same channels) for every clip"
                )
            clips.append(clip)
        return clips

    def inputs_from_file(self, path: str | Path) -> Tensor:
        """A clip file read as training clips were (same ``frame_step``, ``max_frames``, ``frame_size``,
        ``channels_last``, uint8 / 255); its frames must match the training frames (C, H, W), else a one-line
        ``ValueError`` naming the file and the fix."""
        clip = self.read(path)
        if self._frame_shape is not None and tuple(clip.shape[1:]) != tuple(self._frame_shape):
            raise ValueError(
                f"{path}: frames are {tuple(clip.shape[1:])} (C, H, W) but this model reads {tuple(self._frame_shape)}"
                " like its training clips; save the clip with that channel count and frame size"
            )
        return clip

    def state_dict(self) -> dict[str, Any]:
        """Class names and frame shape (plain lists: safe for ``torch.load(weights_only=True)``)."""
        return {
            "class_names": list(self.class_names),
            "frame_shape": list(self._frame_shape) if self._frame_shape is not None else None,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Use a checkpoint's class order and frame shape (so a checkpoint reads clips without its folder)."""
        if state_dict.get("class_names"):
            self.class_names = list(state_dict["class_names"])
        if state_dict.get("frame_shape") is not None:
            self._frame_shape = tuple(int(s) for s in state_dict["frame_shape"])

    def build(self) -> None:
        files, names = list_frame_files(self.root)
        if names is None:
            raise ValueError(f"{self.root}: training needs class folders root/<class>/<clip> (a video or .npy)")
        self.class_names = sorted(set(names))
        if len(self.class_names) < 2:
            raise ValueError(f"{self.root}: found one class folder ({self.class_names[0]}); need at least two")
        labels = [self.class_names.index(name) for name in names]
        clips = self.read_clips(files)
        self._frame_shape = tuple(clips[0].shape[1:])
        dataset = _TensorClips(clips, labels)
        rest, test = stratified_split(labels, self.test_fraction, self.seed)
        train, val = stratified_split([labels[i] for i in rest], self.val_fraction, self.seed + 1)
        self.train_set = _TensorClips.subset(dataset, [rest[i] for i in train])
        self.val_set = _TensorClips.subset(dataset, [rest[i] for i in val])
        self.test_set = _TensorClips.subset(dataset, test)

    def _dims(self) -> dict[str, int]:
        assert self._frame_shape is not None
        channels, height, width = self._frame_shape
        return {"in_channels": channels, "height": height, "width": width, "num_classes": len(self.class_names)}


class _TensorClips(Dataset):
    def __init__(self, clips: Sequence[Tensor], labels: Sequence[int]) -> None:
        self.clips = list(clips)
        self.targets = torch.as_tensor(list(labels), dtype=torch.int64)
        self.lengths = torch.tensor([c.shape[0] for c in self.clips], dtype=torch.int64)

    @classmethod
    def subset(cls, dataset: _TensorClips, indices: Sequence[int]) -> _TensorClips:
        return cls([dataset.clips[i] for i in indices], dataset.targets[list(indices)].tolist())

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.clips[index], self.targets[index]


__all__ = [
    "DIRECTIONS",
    "ClipDataset",
    "FrameFolderDataModule",
    "FramePredictionDataset",
    "MovingDigitsDataModule",
    "MovingDigitsPredictionDataModule",
    "list_frame_files",
    "load_digit_images",
    "moving_digit_clips",
    "read_frame_file",
    "video_collate",
]
