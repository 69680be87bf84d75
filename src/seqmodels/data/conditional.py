"""One-to-many data: a condition per example and the sequence to generate from it.

Items are ``(decoder inputs, targets, condition)``: for tokens, inputs ``<bos> w1 .. wn`` and targets
``w1 .. wn <eos>``; for real values, inputs are the targets shifted right by one step (zeros first). Batches
carry the condition in :attr:`SequenceBatch.condition`.

* :class:`DigitsCaptionDataModule`: scikit-learn's bundled 8x8 digit images with generated captions.
* :class:`WaveformDataModule`: a class (shape x frequency) -> a waveform, generated in-process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from seqmodels.data.datamodule import SequenceDataModule
from seqmodels.data.synthetic import GeneratedDataModule
from seqmodels.data.text import Vocabulary

IGNORE_INDEX = -100
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


class ConditionalDataset(torch.utils.data.Dataset):
    """``(inputs, targets, condition)`` items."""

    def __init__(self, inputs: Sequence[Tensor], targets: Sequence[Tensor], conditions: Sequence[Tensor]) -> None:
        self.inputs, self.targets, self.conditions = list(inputs), list(targets), list(conditions)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.inputs[index], self.targets[index], self.conditions[index]


def slant(image: np.ndarray) -> float:
    """Horizontal shift per row upwards of an image's ink (positive: leaning right)."""
    rows, cols = np.indices(image.shape)
    mass = image.sum()
    y = -(rows - (rows * image).sum() / mass)  # up is positive
    x = cols - (cols * image).sum() / mass
    return float((image * x * y).sum() / max((image * y * y).sum(), 1e-6))


class DigitsCaptionDataModule(SequenceDataModule):
    """Captioning of scikit-learn's 1,797 bundled 8x8 handwritten digits with generated captions.

    Each caption names the digit and two attributes measured from the pixels, so the caption is not a lookup of
    the label: "a thick seven leaning right". Thickness: the digit's ink compared with the median of its class
    in training ("thin" / "thick"); slant: the ink's shear, cut at the training tertiles ("leaning left",
    "upright", "leaning right").

    Args:
        val_fraction, test_fraction: held-out shares of the images (seeded split).
        **base: :class:`SequenceDataModule` arguments.

    ``dims``: ``vocab_size``, ``padding_idx``, ``bos_id``, ``eos_id``, ``image_channels`` (1).
    """

    input_padding_value = Vocabulary.PAD_ID
    target_padding_value = IGNORE_INDEX
    target_mode = "pad"

    def __init__(self, val_fraction: float = 0.1, test_fraction: float = 0.2, **base: Any) -> None:
        super().__init__(val_fraction=val_fraction, **base)
        if val_fraction + test_fraction >= 1.0:
            raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
        self.test_fraction = test_fraction
        self.vocab: Vocabulary | None = None
        self.captions: dict[str, list[list[str]]] = {}
        self.images: dict[str, Tensor] = {}

    @property
    def dims_need_data(self) -> bool:  # type: ignore[override]
        return self.vocab is None

    def build(self) -> None:
        try:
            from sklearn.datasets import load_digits
        except ImportError as exc:
            raise ImportError("digit images need scikit-learn: pip install 'seqmodels[datasets]'") from exc
        digits = load_digits()
        images, labels = digits.images.astype(np.float32) / 16.0, digits.target
        order = np.random.default_rng(self.seed).permutation(len(images))
        num_test = int(round(self.test_fraction * len(images)))
        num_val = int(round(self.val_fraction * len(images)))
        parts = {
            "test": order[:num_test],
            "val": order[num_test : num_test + num_val],
            "train": order[num_test + num_val :],
        }
        ink = images.sum(axis=(1, 2))
        slants = np.array([slant(image) for image in images])
        train = parts["train"]
        # Attribute thresholds come from the training images only.
        median_ink = {d: float(np.median(ink[train][labels[train] == d])) for d in range(10)}
        low, high = np.quantile(slants[train], [1 / 3, 2 / 3])

        def caption(i: int) -> list[str]:
            thickness = "thick" if ink[i] > median_ink[int(labels[i])] else "thin"
            lean = ["leaning", "left"] if slants[i] < low else ["leaning", "right"] if slants[i] > high else ["upright"]
            return ["a", thickness, DIGIT_WORDS[int(labels[i])], *lean]

        self.captions = {name: [caption(int(i)) for i in idx] for name, idx in parts.items()}
        self.images = {name: torch.from_numpy(images[idx]).unsqueeze(1) for name, idx in parts.items()}
        if self.vocab is None:
            self.vocab = Vocabulary.build(self.captions["train"], specials=(Vocabulary.BOS, Vocabulary.EOS))
        for name in parts:
            setattr(self, f"{name}_set", self._dataset(name))

    def _dataset(self, name: str) -> ConditionalDataset:
        assert self.vocab is not None
        inputs, targets = [], []
        for words in self.captions[name]:
            ids = [self.vocab.bos_id, *self.vocab.encode(words), self.vocab.eos_id]
            inputs.append(torch.tensor(ids[:-1]))
            targets.append(torch.tensor(ids[1:]))
        return ConditionalDataset(inputs, targets, list(self.images[name]))

    def _dims(self) -> dict[str, int]:
        assert self.vocab is not None
        return {
            "vocab_size": len(self.vocab),
            "padding_idx": self.vocab.pad_id,
            "bos_id": self.vocab.bos_id,
            "eos_id": self.vocab.eos_id,
            "image_channels": 1,
        }

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """Token ids -> caption text, up to ``<eos>``."""
        assert self.vocab is not None
        words = []
        for word in self.vocab.decode(ids):
            if word == Vocabulary.EOS:
                break
            if word != Vocabulary.BOS:
                words.append(word)
        return " ".join(words)

    def state_dict(self) -> dict[str, Any]:
        if self.vocab is None:
            self.setup()
        return {"vocab": self.vocab.to_dict()}  # type: ignore[union-attr]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.vocab = Vocabulary.from_dict(state_dict["vocab"])


WAVE_SHAPES = ("sine", "square", "sawtooth", "triangle")


def waveform(shape: str, cycles: float, length: int) -> np.ndarray:
    """One period pattern repeated ``cycles`` times over ``length`` steps, in [-1, 1]."""
    phase = (np.arange(length) / length * cycles) % 1.0
    if shape == "sine":
        return np.sin(2 * math.pi * phase)
    if shape == "square":
        return np.where(phase < 0.5, 1.0, -1.0)
    if shape == "sawtooth":
        return 2 * phase - 1
    return 1 - 4 * np.abs(phase - 0.5)  # triangle


class WaveformDataModule(GeneratedDataModule):
    """A class id -> a waveform: shape in (sine, square, sawtooth, triangle) x ``cycles`` frequencies.

    Class ``k`` is shape ``k // len(cycles)`` at ``cycles[k % len(cycles)]`` periods per sequence, with amplitude
    jitter and Gaussian noise, so the mean waveform of a class is what a model should generate.

    ``dims``: ``num_conditions`` (classes), ``output_channels`` (1).
    """

    name = "waveforms"

    def __init__(
        self,
        length: int = 48,
        cycles: Sequence[float] = (1, 2, 3),
        noise: float = 0.05,
        num_train: int = 2000,
        num_val: int = 200,
        num_test: int = 200,
        **base: Any,
    ) -> None:
        super().__init__(num_train=num_train, num_val=num_val, num_test=num_test, **base)
        if length < 2:
            raise ValueError(f"length must be >= 2, got {length}")
        self.length = length
        self.cycles = [float(c) for c in cycles]
        self.noise = noise

    @property
    def num_classes(self) -> int:
        return len(WAVE_SHAPES) * len(self.cycles)

    def class_waveform(self, label: int) -> np.ndarray:
        return waveform(WAVE_SHAPES[label // len(self.cycles)], self.cycles[label % len(self.cycles)], self.length)

    def generate(self, n: int, rng: np.random.Generator) -> ConditionalDataset:  # type: ignore[override]
        labels = rng.integers(0, self.num_classes, n)
        inputs, targets, conditions = [], [], []
        for label in labels:
            amplitude = rng.uniform(0.8, 1.2)
            values = amplitude * self.class_waveform(int(label)) + self.noise * rng.standard_normal(self.length)
            target = torch.tensor(values, dtype=torch.float32).unsqueeze(-1)  # (T, 1)
            inputs.append(torch.cat([torch.zeros(1, 1), target[:-1]]))
            targets.append(target)
            conditions.append(torch.tensor(int(label)))
        return ConditionalDataset(inputs, targets, conditions)

    def _dims(self) -> dict[str, int]:
        return {"num_conditions": self.num_classes, "output_channels": 1}


__all__ = ["ConditionalDataset", "DigitsCaptionDataModule", "WaveformDataModule", "slant", "waveform"]
