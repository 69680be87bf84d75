"""Complete networks assembled from the building blocks."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqmodels.nn import regularization
from seqmodels.nn.conv_branch import ConvBranch
from seqmodels.nn.heads import RegressionHead
from seqmodels.nn.masking import as_lengths, lengths_to_mask
from seqmodels.nn.pooling import build_pooling, pooled_size
from seqmodels.nn.recurrent import RecurrentEncoder
from seqmodels.nn.streaming import State, check_causal


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
        pooling: ``"last"``, ``"mean"``, ``"max"`` or ``"attention"``, or several joined by ``+`` (``"mean+max"``:
            both, side by side).
        head_hidden_size: optional hidden layer in the head.
        dropout: dropout on the pooled vector (and the head's hidden layer).
        input_noise: standard deviation of Gaussian noise added to the encoder's inputs while training, a
            regulariser for small real-valued data sets (0 disables it).
        conv_branch: optional :class:`ConvBranch` reading the same (front-end) features as the encoder, whose
            pooled output is concatenated with the recurrent one before the head (LSTM-FCN, Karim et al. 2018).
        time_stretch: while training, each sequence is resampled along time by a factor drawn uniformly from
            [1 - time_stretch, 1 + time_stretch] (:func:`~seqmodels.nn.regularization.time_stretch`), a time-warp
            augmentation; 0 disables it. Must be in [0, 1).

    Inputs: ``inputs`` (N, L) token ids or (N, L, C) features, ``lengths`` (N,). Output: (N, num_outputs).

    Step mode (causal encoder; see :mod:`seqmodels.nn.streaming`): a prediction after every step, for early
    classification. :meth:`stream` (N, T[, C]) -> (N, T, num_outputs) and :meth:`step` (N[, C]) -> (N, num_outputs)
    return at step t what ``forward(inputs[:, : t + 1])`` returns: the pooling runs online (last: the current
    output; mean: running sum and count; max: running max; attention: online softmax). The state is a dict
    ``{"encoder": encoder state, "pooling": pooling state}``.
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
        conv_branch: ConvBranch | None = None,
        time_stretch: float = 0.0,
    ) -> None:
        super().__init__()
        if input_noise < 0:
            raise ValueError(f"input_noise must be >= 0, got {input_noise}")
        if not 0 <= time_stretch < 1:
            raise ValueError(f"time_stretch must be in [0, 1), got {time_stretch}")
        self.frontend = check_frontend(encoder, frontend, "ManyToOneNet")
        if conv_branch is not None and conv_branch.input_size != encoder.input_size:
            raise ValueError(
                f"conv_branch.input_size={conv_branch.input_size} but the encoder reads {encoder.input_size} "
                "features per step; make them equal"
            )
        self.encoder = encoder
        self.conv_branch = conv_branch
        self.pooling_name = pooling
        self.pooling = build_pooling(pooling, encoder.output_size, encoder.num_directions)
        features = pooled_size(pooling, encoder.output_size)
        features += conv_branch.output_size if conv_branch is not None else 0
        self.head = RegressionHead(features, num_outputs, head_hidden_size, dropout)
        self.num_outputs = num_outputs
        self.input_noise = input_noise
        self.time_stretch = time_stretch

    def encode(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """The pooled sequence representation, (N, k * D * H_out) for k poolings joined by ``+``."""
        lengths = as_lengths(lengths)
        features = self.frontend(inputs)
        if self.training and self.input_noise > 0:
            features = features + self.input_noise * torch.randn_like(features)
        if self.training and self.time_stretch > 0:
            factors = 1 + self.time_stretch * (2 * torch.rand(lengths.shape[0], device=features.device) - 1)
            features, lengths = regularization.time_stretch(features, lengths, factors)
        outputs, _ = self.encoder(features, lengths)
        pooled = self.pooling(outputs, lengths)
        if self.conv_branch is None:
            return pooled
        return torch.cat([pooled, self.conv_branch(features, lengths)], dim=-1)

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        return self.head(self.encode(inputs, lengths))

    # ---------------------------------------------------------------- step mode
    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> dict[str, State]:
        """``{"encoder": ..., "pooling": ...}`` of a fresh sequence (see :meth:`RecurrentEncoder.initial_state`)."""
        self._check_streamable()
        reference = next(self.encoder.parameters())
        device, dtype = device or reference.device, dtype or reference.dtype
        return {
            "encoder": self.encoder.initial_state(batch_size, device, dtype),
            "pooling": self.pooling.initial_state(batch_size, self.encoder.output_size, device, dtype),
        }

    def stream(self, chunk: Tensor, state: dict[str, State] | None = None) -> tuple[Tensor, dict[str, State]]:
        """T steps at once: ``chunk`` (N, T) token ids or (N, T, C) features, T >= 1 -> ``(outputs, state)``.

        outputs (N, T, num_outputs): at step t the prediction for the whole sequence seen so far, equal to
        ``forward`` over that prefix. ``state=None`` starts a fresh sequence.
        """
        self._check_streamable()
        if state is None:
            state = self.initial_state(chunk.shape[0], chunk.device)
        features = self.frontend(chunk)
        if self.training and self.input_noise > 0:
            features = features + self.input_noise * torch.randn_like(features)
        outputs, encoder_state = self.encoder.stream(features, state["encoder"])
        pooled, pooling_state = self.pooling.stream(outputs, state["pooling"])
        return self.head(pooled), {"encoder": encoder_state, "pooling": pooling_state}

    def step(self, x_t: Tensor, state: dict[str, State] | None = None) -> tuple[Tensor, dict[str, State]]:
        """One step: ``x_t`` (N,) token ids or (N, C) features -> the prediction so far (N, num_outputs), state."""
        outputs, state = self.stream(x_t.unsqueeze(1), state)
        return outputs[:, 0], state

    def _check_streamable(self) -> None:
        if self.conv_branch is not None:
            raise ValueError(
                "ManyToOneNet with a conv_branch has no step mode: its convolutions look ahead and its average "
                "needs the whole sequence; classify whole sequences with forward, or drop the conv_branch"
            )
        check_causal(self.encoder, "ManyToOneNet's encoder")


class SequenceTaggerNet(nn.Module):
    """[frontend] -> RecurrentEncoder -> dropout -> linear: one score vector per step (tagging, per-step labels).

    Args:
        encoder: a ``batch_first=True`` :class:`RecurrentEncoder`, usually bidirectional.
        num_tags: scores per step.
        frontend: optional module applied to the inputs first (e.g. :class:`TokenEmbedding`).
        dropout: dropout on the encoder outputs.

    Inputs: ``inputs`` (N, L) token ids or (N, L, C) features, ``lengths`` (N,).
    Output: (N, L, num_tags); rows are 0 beyond each length (padded steps carry no score).

    Step mode (causal encoder; see :mod:`seqmodels.nn.streaming`): a score vector per token as it arrives.
    :meth:`stream` (N, T[, C]) -> (N, T, num_tags), :meth:`step` (N[, C]) -> (N, num_tags); the state is the
    encoder's.
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

    # ---------------------------------------------------------------- step mode
    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """The encoder's zero state (see :meth:`RecurrentEncoder.initial_state`)."""
        check_causal(self.encoder, "SequenceTaggerNet's encoder")
        return self.encoder.initial_state(batch_size, device, dtype)

    def stream(self, chunk: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """``chunk`` (N, T) token ids or (N, T, C) features -> scores (N, T, num_tags), equal to ``forward``'s."""
        check_causal(self.encoder, "SequenceTaggerNet's encoder")
        outputs, state = self.encoder.stream(self.frontend(chunk), state)
        return self.output(self.dropout(outputs)), state

    def step(self, x_t: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """One token: ``x_t`` (N,) token ids or (N, C) features -> scores (N, num_tags) and the new state."""
        scores, state = self.stream(x_t.unsqueeze(1), state)
        return scores[:, 0], state
