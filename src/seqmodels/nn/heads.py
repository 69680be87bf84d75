"""Output heads: a pooled (N, F) vector -> class logits or regression values."""

from __future__ import annotations

from torch import Tensor, nn


def _mlp(in_features: int, out_features: int, hidden_size: int | None, dropout: float) -> nn.Sequential:
    for name, value in (("in_features", in_features), ("out_features", out_features)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if hidden_size is not None and hidden_size < 1:
        raise ValueError(f"hidden_size must be >= 1 or None, got {hidden_size}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")

    def drop() -> nn.Module:  # Identity keeps the layers' indices (checkpoint keys) and skips a no-op dropout call
        return nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    if hidden_size is None:
        return nn.Sequential(drop(), nn.Linear(in_features, out_features))
    return nn.Sequential(
        drop(), nn.Linear(in_features, hidden_size), nn.ReLU(), drop(), nn.Linear(hidden_size, out_features)
    )


class _MLPHead(nn.Module):
    def __init__(self, in_features: int, out_features: int, hidden_size: int | None, dropout: float) -> None:
        super().__init__()
        self.layers = _mlp(in_features, out_features, hidden_size, dropout)

    def forward(self, features: Tensor) -> Tensor:
        return self.layers(features)


class ClassificationHead(_MLPHead):
    """(N, F) -> logits (N, num_classes); an optional hidden ReLU layer."""

    def __init__(self, in_features: int, num_classes: int, hidden_size: int | None = None, dropout: float = 0.0):
        super().__init__(in_features, num_classes, hidden_size, dropout)
        self.num_classes = num_classes


class RegressionHead(_MLPHead):
    """(N, F) -> values (N, out_features); an optional hidden ReLU layer."""

    def __init__(self, in_features: int, out_features: int = 1, hidden_size: int | None = None, dropout: float = 0.0):
        super().__init__(in_features, out_features, hidden_size, dropout)
        self.out_features = out_features
