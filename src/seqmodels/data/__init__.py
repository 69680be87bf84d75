"""Datamodules, collation and sampling: every loader yields a padded :class:`SequenceBatch`."""

from seqmodels.data.audio import read_wav, write_wav
from seqmodels.data.batch import SequenceBatch
from seqmodels.data.collate import pad_collate
from seqmodels.data.conditional import DigitsCaptionDataModule, WaveformDataModule
from seqmodels.data.datamodule import (
    MissingDataFileError,
    SequenceDataModule,
    SequenceDataset,
    seeded_split,
    sequence_lengths,
    stratified_split,
)
from seqmodels.data.forecasting import Forecast, ForecastBatch, ForecastingDataModule, TargetScaler
from seqmodels.data.fortunes import FortunesDataModule, read_fortunes
from seqmodels.data.genomic import (
    GeneTaggingDataModule,
    GenomicCorpusDataModule,
    LocusClassificationDataModule,
    MarkovModel,
    NucleotideTokenizer,
    read_sequences,
    reverse_complement,
)
from seqmodels.data.language import LanguageModelDataModule, StreamWindows, TextCorpusDataModule
from seqmodels.data.music import BachChoralesDataModule
from seqmodels.data.parallel import (
    CMUDictDataModule,
    ParallelTextDataModule,
    SyntheticTransductionDataModule,
    read_tsv_pairs,
)
from seqmodels.data.polyphonic import JSBChoralesDataModule
from seqmodels.data.samplers import BucketBatchSampler
from seqmodels.data.sequential_digits import SequentialDigitsDataModule
from seqmodels.data.speech import DTMFDataModule, EspeakNotFoundError, SpeechDataModule, SpokenDigitsDataModule
from seqmodels.data.synthetic import AddingProblemDataModule, CopyMemoryDataModule, ParityDataModule
from seqmodels.data.tagging import CoNLLTaggingDataModule, demo_ner_path, read_conll
from seqmodels.data.text import (
    CharTokenizer,
    TextClassificationDataModule,
    Vocabulary,
    WhitespaceTokenizer,
    WordTokenizer,
    demo_reviews_path,
)
from seqmodels.data.token_corpus import TokenCorpusDataModule, tokenize_corpus
from seqmodels.data.ucr import JapaneseVowelsDataModule, UEADataModule, read_ts
from seqmodels.data.video import (
    FrameFolderDataModule,
    MovingDigitsDataModule,
    MovingDigitsPredictionDataModule,
    read_frame_file,
    video_collate,
)

__all__ = [
    "GeneTaggingDataModule",
    "GenomicCorpusDataModule",
    "LocusClassificationDataModule",
    "MarkovModel",
    "NucleotideTokenizer",
    "read_sequences",
    "reverse_complement",
    "FortunesDataModule",
    "read_fortunes",
    "FrameFolderDataModule",
    "MovingDigitsDataModule",
    "MovingDigitsPredictionDataModule",
    "read_frame_file",
    "video_collate",
    "DTMFDataModule",
    "EspeakNotFoundError",
    "SpeechDataModule",
    "SpokenDigitsDataModule",
    "read_wav",
    "write_wav",
    "Forecast",
    "ForecastBatch",
    "ForecastingDataModule",
    "TargetScaler",
    "SequenceBatch",
    "pad_collate",
    "BachChoralesDataModule",
    "CoNLLTaggingDataModule",
    "demo_ner_path",
    "read_conll",
    "BucketBatchSampler",
    "DigitsCaptionDataModule",
    "WaveformDataModule",
    "CMUDictDataModule",
    "ParallelTextDataModule",
    "SyntheticTransductionDataModule",
    "read_tsv_pairs",
    "LanguageModelDataModule",
    "StreamWindows",
    "TextCorpusDataModule",
    "TokenCorpusDataModule",
    "tokenize_corpus",
    "SequenceDataModule",
    "MissingDataFileError",
    "SequenceDataset",
    "seeded_split",
    "sequence_lengths",
    "stratified_split",
    "AddingProblemDataModule",
    "ParityDataModule",
    "CopyMemoryDataModule",
    "SequentialDigitsDataModule",
    "JSBChoralesDataModule",
    "read_ts",
    "UEADataModule",
    "JapaneseVowelsDataModule",
    "CharTokenizer",
    "WhitespaceTokenizer",
    "WordTokenizer",
    "Vocabulary",
    "TextClassificationDataModule",
    "demo_reviews_path",
]
