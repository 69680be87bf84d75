"""Plain torch building blocks for recurrent sequence models: no Lightning, no Hydra.

Shapes follow ``torch.nn.RNN``: N batch, L length, D directions (2 if bidirectional), H hidden size.
"""

from seqmodels.nn.attention import Attention
from seqmodels.nn.audio import (
    FeatureConfig,
    LogMelSpectrogram,
    SpecAugment,
    compute_deltas,
    mel_filterbank,
    resample,
)
from seqmodels.nn.cells import CustomRNN, GRUCell, LayerNormLSTMCell, LSTMCell, RNNCell
from seqmodels.nn.conditional import ClassCondition, ConditionalDecoder, ImageCondition, VectorCondition
from seqmodels.nn.conv_branch import ConvBranch, MaskedBatchNorm1d
from seqmodels.nn.conv_recurrent import ConvGRU, ConvLSTM
from seqmodels.nn.ctc import (
    ConvSubsampling,
    CTCNet,
    FrameStacking,
    GreedyCTCStreamDecoder,
    StreamingRecognizer,
    ctc_greedy_decode,
    ctc_prefix_beam_search,
)
from seqmodels.nn.decoding import beam_search, decode, filter_logits, sample_next
from seqmodels.nn.forecasting import DirectForecaster, GaussianOutput, PointOutput, QuantileOutput, Seq2SeqForecaster
from seqmodels.nn.frontends import LinearProjection, TokenEmbedding
from seqmodels.nn.heads import ClassificationHead, RegressionHead
from seqmodels.nn.indrnn import IndRNN
from seqmodels.nn.language_model import RecurrentLanguageModel, detach_state
from seqmodels.nn.lru import LRU
from seqmodels.nn.masking import lengths_to_mask
from seqmodels.nn.mlstm import MLSTM
from seqmodels.nn.networks import ManyToOneNet, SequenceTaggerNet
from seqmodels.nn.pooling import (
    AttentionPooling,
    ConcatPooling,
    LastStepPooling,
    MaxPooling,
    MeanPooling,
    build_pooling,
)
from seqmodels.nn.qrnn import QRNN
from seqmodels.nn.recurrent import CELLS, MODERN_CELLS, RecurrentEncoder
from seqmodels.nn.regularization import LockedDropout, WeightDrop, embedding_dropout
from seqmodels.nn.scan_cells import SCAN_CELLS, ScanRNN, linear_scan, min_rnn_layer
from seqmodels.nn.seq2seq import AttentionDecoder, Seq2Seq
from seqmodels.nn.slstm import SLSTM
from seqmodels.nn.stacked import StackedRecurrence
from seqmodels.nn.streaming import State, load_state, map_state, save_state
from seqmodels.nn.video import LRCN, ConvLSTMFramePredictor, FrameEncoder, FramePoolingNet, SmallFrameCNN, ssim

__all__ = [
    "ConvBranch",
    "ConvGRU",
    "ConvLSTM",
    "ConvLSTMFramePredictor",
    "FrameEncoder",
    "FramePoolingNet",
    "LRCN",
    "SmallFrameCNN",
    "ssim",
    "CTCNet",
    "ConvSubsampling",
    "FeatureConfig",
    "FrameStacking",
    "GreedyCTCStreamDecoder",
    "StreamingRecognizer",
    "LogMelSpectrogram",
    "SpecAugment",
    "compute_deltas",
    "ctc_greedy_decode",
    "ctc_prefix_beam_search",
    "mel_filterbank",
    "resample",
    "DirectForecaster",
    "GaussianOutput",
    "PointOutput",
    "QuantileOutput",
    "Seq2SeqForecaster",
    "CELLS",
    "SCAN_CELLS",
    "ScanRNN",
    "StackedRecurrence",
    "MODERN_CELLS",
    "IndRNN",
    "LRU",
    "MLSTM",
    "QRNN",
    "SLSTM",
    "linear_scan",
    "min_rnn_layer",
    "Attention",
    "AttentionDecoder",
    "AttentionPooling",
    "ConcatPooling",
    "ClassCondition",
    "ClassificationHead",
    "ConditionalDecoder",
    "ImageCondition",
    "VectorCondition",
    "LastStepPooling",
    "LinearProjection",
    "LockedDropout",
    "ManyToOneNet",
    "MaskedBatchNorm1d",
    "MaxPooling",
    "MeanPooling",
    "RecurrentEncoder",
    "CustomRNN",
    "GRUCell",
    "LSTMCell",
    "LayerNormLSTMCell",
    "RNNCell",
    "RecurrentLanguageModel",
    "RegressionHead",
    "Seq2Seq",
    "SequenceTaggerNet",
    "beam_search",
    "TokenEmbedding",
    "WeightDrop",
    "build_pooling",
    "decode",
    "detach_state",
    "embedding_dropout",
    "filter_logits",
    "sample_next",
    "lengths_to_mask",
    "State",
    "load_state",
    "map_state",
    "save_state",
]
