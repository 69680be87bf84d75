"""What a task can do from a checkpoint, declared by the task: the entrypoints ask, they never test class names.

Every task class carries ``capabilities: ClassVar[Capabilities]``. ``seqmodels-predict`` picks its reader and writer
from ``capabilities.predict``, ``seqmodels-export`` its graph from ``capabilities.export``, ``seqmodels-generate``
runs only where ``capabilities.generate`` is true. A task that cannot do something is refused in one line that
says what it can do instead (:meth:`Capabilities.refusal`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Prediction(Enum):
    """What ``seqmodels-predict`` reads and writes for a task."""

    TEXT_TO_TEXT = "text in, decoded text out (beam search, n-best with log-probabilities)"
    TEXT_TO_LABEL = "text (or a clip file the datamodule reads) in, its label out (n-best with probabilities)"
    TEXT_TO_TAGS = "a sentence in, one tag per word out"
    SERIES_TO_FORECAST = "series (CSV) in, forecasts (CSV) out; backtests"
    AUDIO_TO_TEXT = "WAV files in, transcripts out"


class Export(Enum):
    """The ONNX graph ``seqmodels-export`` writes for a task: its network, then what it outputs."""

    CLASS_PROBABILITIES = "probs"  # (N, num_classes)
    VALUES = "values"  # (N, num_outputs)
    TAG_PROBABILITIES = "tag probs"  # (N, L, num_tags): one distribution per step
    FORECAST = "forecast"  # point forecast (and interval) on the original scale
    LANGUAGE_MODEL = "language model"  # step graph: tokens (N,), state -> logits (N, V), new state
    ENCODER_DECODER = "encoder-decoder"  # encoder graph (source -> memory, initial state) + decoder-step graph
    CTC = "ctc"  # features, lengths -> log-probs (N, L', K), output lengths


@dataclass(frozen=True)
class Capabilities:
    """What a task does from a checkpoint besides training and evaluation (which every task does)."""

    predict: Prediction | None = None
    export: Export | None = None
    generate: bool = False

    def offers(self) -> str:
        """The commands that take such a checkpoint, for a refusal's advice."""
        commands = ["seqmodels-eval"]
        commands += ["seqmodels-predict"] if self.predict else []
        commands += ["seqmodels-generate"] if self.generate else []
        commands += ["seqmodels-export"] if self.export else []
        return ", ".join(commands)

    def refusal(self, task: type, command: str, path: object) -> ValueError:
        """One line: ``path`` holds a ``task``, which ``command`` does not take, and what does."""
        return ValueError(
            f"{path} holds a {task.__name__} checkpoint, which {command} does not take; use {self.offers()}"
        )
