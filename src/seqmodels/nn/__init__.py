"""Plain torch building blocks for recurrent sequence models: no Lightning, no Hydra.

Shapes follow ``torch.nn.RNN``: N batch, L length, D directions (2 if bidirectional), H hidden size.
"""

from seqmodels.nn.frontends import LinearProjection, TokenEmbedding
from seqmodels.nn.heads import ClassificationHead, RegressionHead
from seqmodels.nn.masking import lengths_to_mask
from seqmodels.nn.networks import ManyToOneNet
from seqmodels.nn.pooling import AttentionPooling, LastStepPooling, MaxPooling, MeanPooling, build_pooling
from seqmodels.nn.recurrent import CELLS, RecurrentEncoder

__all__ = [
    "CELLS",
    "AttentionPooling",
    "ClassificationHead",
    "LastStepPooling",
    "LinearProjection",
    "ManyToOneNet",
    "MaxPooling",
    "MeanPooling",
    "RecurrentEncoder",
    "RegressionHead",
    "TokenEmbedding",
    "build_pooling",
    "lengths_to_mask",
]
