"""Lightning callbacks: run metadata in checkpoints, diagnostics."""

from seqmodels.callbacks.attention_maps import AttentionMaps
from seqmodels.callbacks.conditional_samples import ConditionalSamples
from seqmodels.callbacks.frame_samples import FramePredictionSamples, frame_strip
from seqmodels.callbacks.generation import GenerationSamples
from seqmodels.callbacks.gradients import GradientFlow, NonFiniteError, NonFiniteGuard
from seqmodels.callbacks.model_summary import ModelSummary
from seqmodels.callbacks.reproducibility import EpochSeed
from seqmodels.callbacks.run_config import CHECKPOINT_KEY, RunConfigCheckpoint
from seqmodels.callbacks.speech_samples import SpeechSamples
from seqmodels.callbacks.weight_averaging import LastEpochsAveraging

__all__ = [
    "AttentionMaps",
    "CHECKPOINT_KEY",
    "ConditionalSamples",
    "EpochSeed",
    "FramePredictionSamples",
    "GenerationSamples",
    "GradientFlow",
    "LastEpochsAveraging",
    "ModelSummary",
    "NonFiniteError",
    "NonFiniteGuard",
    "RunConfigCheckpoint",
    "SpeechSamples",
    "frame_strip",
]
