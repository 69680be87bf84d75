"""LightningModules: losses, metrics and logging over the plain networks in :mod:`seqmodels.nn`."""

from seqmodels.tasks.base import SequenceTask
from seqmodels.tasks.conditional import ConditionalGenerationTask
from seqmodels.tasks.ctc import CTCTask
from seqmodels.tasks.forecasting import ForecastingTask
from seqmodels.tasks.language_model import LanguageModelTask
from seqmodels.tasks.many_to_one import SequenceClassificationTask, SequenceRegressionTask
from seqmodels.tasks.piano_roll import PianoRollTask
from seqmodels.tasks.seq2seq import Seq2SeqTask
from seqmodels.tasks.tagging import SequenceTaggingTask

__all__ = [
    "CTCTask",
    "ForecastingTask",
    "ConditionalGenerationTask",
    "LanguageModelTask",
    "PianoRollTask",
    "SequenceTask",
    "SequenceClassificationTask",
    "SequenceRegressionTask",
    "SequenceTaggingTask",
    "Seq2SeqTask",
]
