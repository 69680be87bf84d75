"""One-to-many: a condition (a class, a feature vector, an image) -> a generated sequence.

A condition encoder maps the condition to a vector; :class:`ConditionalDecoder` turns that vector into the
initial state of every decoder layer (h, and c for an LSTM) and optionally feeds it at every step too, then
generates tokens (captions, melodies) or real values (signals).

Shapes: N = batch, T = output length, V = vocabulary, C = real-valued channels, H = hidden, K = layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from seqmodels.nn.decoding import beam_search, decode
from seqmodels.nn.recurrent import RecurrentEncoder, State


class ClassCondition(nn.Module):
    """A class id (N,) -> a learned vector (N, output_size)."""

    def __init__(self, num_classes: int, output_size: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.embedding = nn.Embedding(num_classes, output_size)
        self.output_size = output_size

    def forward(self, condition: Tensor) -> Tensor:
        return self.embedding(condition.long().view(-1))


class VectorCondition(nn.Module):
    """A feature vector (N, in_features) -> an MLP output (N, output_size)."""

    def __init__(self, in_features: int, output_size: int, hidden_size: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden_size), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_size, output_size)
        )
        self.output_size = output_size

    def forward(self, condition: Tensor) -> Tensor:
        return self.net(condition.float().flatten(1))


class ImageCondition(nn.Module):
    """A small CNN: an image (N, channels, height, width) -> (N, output_size)."""

    def __init__(self, output_size: int, channels: int = 1, width: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(8 * width, output_size),
        )
        self.output_size = output_size

    def forward(self, condition: Tensor) -> Tensor:
        if condition.dim() == 3:  # (N, H, W): one channel
            condition = condition.unsqueeze(1)
        return self.net(condition.float())


class ConditionalDecoder(nn.Module):
    """condition encoder -> initial decoder state (+ the condition at every step) -> recurrent decoder.

    Args:
        condition_encoder: maps the condition to (N, condition_encoder.output_size).
        vocab_size: V for token outputs; None for real-valued outputs with ``output_channels``.
        output_channels: C for real-valued outputs.
        embedding_dim: token embedding size (token outputs).
        hidden_size: H.
        num_layers: K.
        cell: ``"lstm"``, ``"gru"``, ``"rnn_tanh"``, ``"rnn_relu"`` or one of seqmodels' own cells.
        feed_condition: concatenate the condition vector to the input of every step.
        dropout: on inputs and outputs of the recurrent layers.
        padding_idx, bos_id, eos_id: token ids (token outputs).
        init, encoder_options: the recurrent layers' ``init`` and, for seqmodels' own cells, further
            :class:`RecurrentEncoder` options (``cell_options``, ``residual``, ``norm``, ``ffn_expansion``).

    ``forward(condition, inputs)`` with teacher forcing: ``inputs`` (N, T) tokens starting with ``<bos>`` or
    (N, T, C) values starting with zeros -> logits (N, T, V) or predicted values (N, T, C).
    """

    def __init__(
        self,
        condition_encoder: nn.Module,
        vocab_size: int | None = None,
        output_channels: int | None = None,
        embedding_dim: int = 64,
        hidden_size: int = 128,
        num_layers: int = 1,
        cell: str = "lstm",
        feed_condition: bool = True,
        dropout: float = 0.0,
        padding_idx: int = 0,
        bos_id: int | None = None,
        eos_id: int | None = None,
        init: str | None = None,
        encoder_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if (vocab_size is None) == (output_channels is None):
            raise ValueError("give exactly one of vocab_size (token outputs) or output_channels (real values)")
        condition_size = getattr(condition_encoder, "output_size", None)
        if condition_size is None:
            raise ValueError("condition_encoder needs an output_size attribute (its vector size)")
        self.condition_encoder = condition_encoder
        self.is_token = vocab_size is not None
        self.cell, self.num_layers, self.hidden_size = cell, num_layers, hidden_size
        self.feed_condition = feed_condition
        self.padding_idx, self.bos_id, self.eos_id = padding_idx, bos_id, eos_id
        if self.is_token:
            self.embedding: nn.Module = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
            step_input = embedding_dim
        else:
            self.embedding = nn.Linear(output_channels, embedding_dim)  # type: ignore[arg-type]
            step_input = embedding_dim
        self.rnn = RecurrentEncoder(
            cell=cell,
            input_size=step_input + (condition_size if feed_condition else 0),
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
            init=init,
            **dict(encoder_options or {}),
        )
        # One linear map per state tensor: the condition sets h (and c) of every layer; a cell with more state
        # than that (seqmodels' own: sLSTM's n and m, ...) starts the rest empty, and one that does not read a
        # given h (LRU, mLSTM, QRNN) starts empty and reads the condition fed to every step.
        n_states = 2 if cell == "lstm" else 1
        self.bridge: nn.Linear | None = None
        if self.rnn.reads_hidden_state:
            self.bridge = nn.Linear(condition_size, n_states * num_layers * hidden_size)
        elif not feed_condition:
            raise ValueError(
                f"cell={cell!r} cannot start from the condition, so feed_condition=false would leave the decoder "
                "without it; set feed_condition=true"
            )
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, vocab_size if self.is_token else output_channels)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ state
    def initial_state(self, vector: Tensor) -> State:
        """Condition vector (N, D) -> decoder state (K, N, H), a tuple (h, c) for an LSTM."""
        n = vector.shape[0]
        if self.bridge is None:  # the cell does not read a given h: an empty state
            return self.rnn.initial_state(n, device=vector.device, dtype=vector.dtype)
        states = torch.tanh(self.bridge(vector)).view(n, -1, self.num_layers, self.hidden_size)
        states = states.permute(1, 2, 0, 3).contiguous()  # (n_states, K, N, H)
        if self.cell == "lstm":
            return states[0], states[1]
        if len(self.rnn.state_names) > 1:
            rest = self.rnn.initial_state(n, device=vector.device, dtype=vector.dtype)[1:]
            return (states[0], *rest)
        return states[0]

    def _step_inputs(self, inputs: Tensor, vector: Tensor) -> Tensor:
        x = self.dropout(self.embedding(inputs))
        if self.feed_condition:
            x = torch.cat([x, vector.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1)
        return x

    def forward(self, condition: Tensor, inputs: Tensor) -> Tensor:
        vector = self.condition_encoder(condition)
        outputs, _ = self.rnn(self._step_inputs(inputs, vector), hx=self.initial_state(vector))
        return self.output(self.dropout(outputs))

    # ------------------------------------------------------------------ generation
    def _token_step(self, vector: Tensor):
        def step(tokens: Tensor, state: State) -> tuple[Tensor, State]:
            output, state = self.rnn(self._step_inputs(tokens.unsqueeze(1), vector), hx=state)
            logits = self.output(output.squeeze(1))
            logits[:, [self.padding_idx, self.bos_id]] = float("-inf")  # never generated
            return logits, state

        return step

    @torch.no_grad()
    def generate(
        self,
        condition: Tensor,
        max_len: int,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Tokens for each condition: ``(tokens (N, T <= max_len), lengths (N,))``, ending at ``<eos>``.

        ``temperature=0`` is greedy; otherwise sampling (with ``top_k`` / ``top_p``), reproducible with a seeded
        ``generator``.
        """
        if not self.is_token or self.bos_id is None or self.eos_id is None:
            raise ValueError("generate() is for token outputs with bos_id and eos_id; use generate_values()")
        vector = self.condition_encoder(condition)
        step = self._token_step(vector)
        bos = torch.full((vector.shape[0],), self.bos_id, dtype=torch.long, device=vector.device)
        logits, state = step(bos, self.initial_state(vector))
        return decode(
            step,
            logits,
            state,
            max_len,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            eos_id=self.eos_id,
            pad_id=self.padding_idx,
            generator=generator,
        )

    @torch.no_grad()
    def beam_search(
        self, condition: Tensor, max_len: int, beam_size: int = 5, length_penalty: float = 1.0, n_best: int = 1
    ) -> list[list[tuple[list[int], float]]]:
        """Per condition, the ``n_best`` ``(tokens, score)`` of a beam search, best first."""
        if not self.is_token or self.bos_id is None or self.eos_id is None:
            raise ValueError("beam_search() is for token outputs with bos_id and eos_id")
        vector = self.condition_encoder(condition).repeat_interleave(beam_size, dim=0)
        state = self.initial_state(vector)

        def select(s: State, index: Tensor) -> State:
            return tuple(t.index_select(1, index) for t in s) if isinstance(s, tuple) else s.index_select(1, index)  # type: ignore[return-value]

        return beam_search(
            self._token_step(vector),
            state,
            select,
            condition.shape[0],
            self.bos_id,
            self.eos_id,
            beam_size=beam_size,
            max_len=max_len,
            length_penalty=length_penalty,
            n_best=n_best,
            device=vector.device,
        )

    @torch.no_grad()
    def generate_values(
        self, condition: Tensor, length: int, noise_std: float = 0.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """Real-valued outputs (N, length, C): each step's prediction (plus optional Gaussian noise) is fed back."""
        if self.is_token:
            raise ValueError("generate_values() is for real-valued outputs; use generate() for tokens")
        vector = self.condition_encoder(condition)
        state = self.initial_state(vector)
        value = vector.new_zeros(vector.shape[0], 1, self.output.out_features)
        outputs = []
        for _ in range(length):
            output, state = self.rnn(self._step_inputs(value, vector), hx=state)
            value = self.output(output)
            if noise_std > 0:
                value = value + noise_std * torch.randn(value.shape, generator=generator, device=value.device)
            outputs.append(value)
        return torch.cat(outputs, dim=1)


__all__ = ["ClassCondition", "ConditionalDecoder", "ImageCondition", "VectorCondition"]
