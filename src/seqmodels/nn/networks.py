"""Complete networks assembled from the building blocks."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqmodels.nn.heads import RegressionHead
from seqmodels.nn.masking import as_lengths
from seqmodels.nn.pooling import build_pooling
from seqmodels.nn.recurrent import RecurrentEncoder


class ManyToOneNet(nn.Module):
    """[frontend] -> RecurrentEncoder -> masked pooling -> linear head: one output vector per sequence.

    Serves classification (``num_outputs`` = classes, returns logits) and regression (``num_outputs`` = targets).

    Args:
        encoder: a ``batch_first=True`` :class:`RecurrentEncoder`.
        num_outputs: size of the output vector.
        frontend: optional module applied to the inputs first (e.g. :class:`TokenEmbedding`).
        pooling: ``"last"``, ``"mean"``, ``"max"`` or ``"attention"``.
        head_hidden_size: optional hidden layer in the head.
        dropout: dropout on the pooled vector (and the head's hidden layer).
        input_noise: standard deviation of Gaussian noise added to the encoder's inputs while training, a
            regulariser for small real-valued data sets (0 disables it).

    Inputs: ``inputs`` (N, L) token ids or (N, L, C) features, ``lengths`` (N,). Output: (N, num_outputs).
    """

    def __init__(
        self,
        encoder: RecurrentEncoder,
        num_outputs: int,
        frontend: nn.Module | None = None,
        pooling: str = "last",
        head_hidden_size: int | None = None,
        dropout: float = 0.0,
        input_noise: float = 0.0,
    ) -> None:
        super().__init__()
        if input_noise < 0:
            raise ValueError(f"input_noise must be >= 0, got {input_noise}")
        if not encoder.batch_first:
            raise ValueError("ManyToOneNet needs a batch_first=True encoder; set batch_first=True")
        frontend_size = getattr(frontend, "output_size", None)
        if frontend_size is not None and frontend_size != encoder.input_size:
            raise ValueError(
                f"the frontend outputs {frontend_size} features but encoder.input_size={encoder.input_size}; "
                "make them equal"
            )
        self.frontend = frontend if frontend is not None else nn.Identity()
        self.encoder = encoder
        self.pooling_name = pooling
        self.pooling = build_pooling(pooling, encoder.output_size, encoder.num_directions)
        self.head = RegressionHead(encoder.output_size, num_outputs, head_hidden_size, dropout)
        self.num_outputs = num_outputs
        self.input_noise = input_noise

    def encode(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """The pooled sequence representation, (N, D * H_out)."""
        lengths = as_lengths(lengths)
        features = self.frontend(inputs)
        if self.training and self.input_noise > 0:
            features = features + self.input_noise * torch.randn_like(features)
        outputs, _ = self.encoder(features, lengths)
        return self.pooling(outputs, lengths)

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        return self.head(self.encode(inputs, lengths))
