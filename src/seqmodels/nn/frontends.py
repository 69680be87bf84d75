"""Front-ends: turn raw inputs (token ids or real-valued channels) into encoder features."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TokenEmbedding(nn.Module):
    """Token ids (N, L) int64 -> embeddings (N, L, E). The padding index embeds to a zero vector, never trained."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = 0, dropout: float = 0.0):
        super().__init__()
        if num_embeddings < 1 or embedding_dim < 1:
            raise ValueError(f"num_embeddings and embedding_dim must be >= 1, got {num_embeddings}, {embedding_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.embedding = nn.Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx)
        self.dropout = nn.Dropout(dropout)
        self.output_size = embedding_dim

    @property
    def num_embeddings(self) -> int:
        return self.embedding.num_embeddings

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.dtype.is_floating_point:
            raise ValueError(f"TokenEmbedding expects integer token ids, got {tokens.dtype}; use LinearProjection")
        if tokens.numel() and not torch.compiler.is_exporting():  # an exported graph cannot branch on values
            low, high = int(tokens.min()), int(tokens.max())
            if low < 0 or high >= self.num_embeddings:
                bad = high if high >= self.num_embeddings else low
                raise ValueError(
                    f"token id {bad} is out of range for a vocabulary of {self.num_embeddings}; "
                    "check the tokenizer and num_embeddings"
                )
        return self.dropout(self.embedding(tokens))


class LinearProjection(nn.Module):
    """Real-valued channels (N, L, C) -> (N, L, out_features), optionally through tanh/relu."""

    _activations = {None: nn.Identity, "tanh": nn.Tanh, "relu": nn.ReLU}

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0, activation: str | None = None):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"in_features and out_features must be >= 1, got {in_features}, {out_features}")
        if activation not in self._activations:
            raise ValueError(f"unknown activation {activation!r}; choose None, 'tanh' or 'relu'")
        self.linear = nn.Linear(in_features, out_features)
        self.activation = self._activations[activation]()
        self.dropout = nn.Dropout(dropout)
        self.in_features = in_features
        self.output_size = out_features

    def forward(self, inputs: Tensor) -> Tensor:
        if inputs.shape[-1] != self.in_features:
            raise ValueError(f"expected {self.in_features} input channels, got {inputs.shape[-1]}")
        return self.dropout(self.activation(self.linear(inputs)))
