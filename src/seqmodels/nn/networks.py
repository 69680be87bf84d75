"""Complete networks assembled from the building blocks."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqmodels.nn.heads import RegressionHead
from seqmodels.nn.masking import as_lengths, lengths_to_mask
from seqmodels.nn.pooling import build_pooling
from seqmodels.nn.recurrent import RecurrentEncoder


def check_frontend(encoder: RecurrentEncoder, frontend: nn.Module | None, network: str) -> nn.Module:
    """The front-end (identity if None), after checking that it feeds a ``batch_first`` encoder the right size."""
    if not encoder.batch_first:
        raise ValueError(f"{network} needs a batch_first=True encoder; set batch_first=True")
    frontend_size = getattr(frontend, "output_size", None)
    if frontend_size is not None and frontend_size != encoder.input_size:
        raise ValueError(
            f"the frontend outputs {frontend_size} features but encoder.input_size={encoder.input_size}; "
            "make them equal"
        )
    return frontend if frontend is not None else nn.Identity()


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
        self.frontend = check_frontend(encoder, frontend, "ManyToOneNet")
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


class SequenceTaggerNet(nn.Module):
    """[frontend] -> RecurrentEncoder -> dropout -> linear: one score vector per step (tagging, per-step labels).

    Args:
        encoder: a ``batch_first=True`` :class:`RecurrentEncoder`, usually bidirectional.
        num_tags: scores per step.
        frontend: optional module applied to the inputs first (e.g. :class:`TokenEmbedding`).
        dropout: dropout on the encoder outputs.

    Inputs: ``inputs`` (N, L) token ids or (N, L, C) features, ``lengths`` (N,).
    Output: (N, L, num_tags); rows are 0 beyond each length (padded steps carry no score).
    """

    def __init__(
        self, encoder: RecurrentEncoder, num_tags: int, frontend: nn.Module | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        self.frontend = check_frontend(encoder, frontend, "SequenceTaggerNet")
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(encoder.output_size, num_tags)
        self.num_tags = num_tags

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        lengths = as_lengths(lengths)
        outputs, _ = self.encoder(self.frontend(inputs), lengths)
        scores = self.output(self.dropout(outputs))
        mask = lengths_to_mask(lengths.to(scores.device), scores.shape[1])
        return scores * mask.unsqueeze(-1)
