"""Encoder-decoder with attention: bidirectional RecurrentEncoder -> bridge -> AttentionDecoder.

Shapes: N = batch, S = source length, T = target length, V = target vocabulary, H = hidden size,
K = decoder layers. Token id conventions: ``<pad>`` = 0 (never attended, never predicted), plus the target
vocabulary's ``<bos>`` (first decoder input) and ``<eos>`` (last target).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from seqmodels.nn.attention import ATTENTIONS, Attention
from seqmodels.nn.decoding import beam_search, decode
from seqmodels.nn.masking import as_lengths, lengths_to_mask
from seqmodels.nn.recurrent import RecurrentEncoder, State


@dataclass
class Memory:
    """What the decoder attends to: encoder outputs (N, S, D*H), their mask (N, S), keys projected once."""

    outputs: Tensor
    mask: Tensor
    projected: Tensor | None

    def repeat_interleave(self, times: int) -> Memory:
        repeat = lambda t: t.repeat_interleave(times, dim=0)  # noqa: E731
        return Memory(
            repeat(self.outputs), repeat(self.mask), None if self.projected is None else repeat(self.projected)
        )


@dataclass
class DecoderState:
    """The recurrent state (K, N, H) (LSTM: (h, c)) and the previous attentional vector (N, H) fed back in."""

    rnn: State
    feed: Tensor

    def select(self, index: Tensor) -> DecoderState:
        rnn = (
            tuple(s.index_select(1, index) for s in self.rnn)
            if isinstance(self.rnn, tuple)
            else self.rnn.index_select(1, index)
        )
        return DecoderState(rnn, self.feed.index_select(0, index))  # type: ignore[arg-type]


class AttentionDecoder(nn.Module):
    """A recurrent decoder that attends over encoder outputs at every step (Luong et al. 2015).

    Each step: embed the previous token, concatenate the previous attentional vector (input feeding), run the
    recurrent layers one step, attend with the top layer's output, and combine both into the attentional vector
    ``tanh(W [h; context])`` that predicts the next token.

    Args:
        vocab_size: V.
        embedding_dim: target embedding size.
        hidden_size: H of the recurrent layers and of the attentional vector.
        memory_size: size of each encoder output.
        num_layers: K.
        cell: ``"lstm"``, ``"gru"``, ``"rnn_tanh"``, ``"rnn_relu"`` or one of seqmodels' own cells.
        attention: ``"additive"``, ``"dot"``, ``"general"`` or ``"none"`` (the decoder sees only the bridged state).
        input_feeding: feed the previous attentional vector into the next step.
        dropout: on embeddings, between layers and on the attentional vector.
        padding_idx: the target ``<pad>`` id.
        init, encoder_options: the recurrent layers' ``init`` and, for seqmodels' own cells, further
            :class:`RecurrentEncoder` options (``cell_options``, ``residual``, ``norm``, ``ffn_expansion``).
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        hidden_size: int,
        memory_size: int,
        num_layers: int = 1,
        cell: str = "lstm",
        attention: str = "additive",
        input_feeding: bool = True,
        dropout: float = 0.0,
        padding_idx: int = 0,
        init: str | None = None,
        encoder_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {attention!r}; choose one of {', '.join(ATTENTIONS)}")
        self.hidden_size = hidden_size
        self.input_feeding = input_feeding and attention != "none"
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.rnn = RecurrentEncoder(
            cell=cell,
            input_size=embedding_dim + (hidden_size if self.input_feeding else 0),
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
            init=init,
            **dict(encoder_options or {}),
        )
        self.attention = Attention(attention, hidden_size, memory_size) if attention != "none" else None
        self.combine = nn.Linear(hidden_size + memory_size, hidden_size) if self.attention is not None else None
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, vocab_size)

    def step(self, tokens: Tensor, state: DecoderState, memory: Memory) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One step for every row: ``tokens`` (N,) -> logits (N, V), the new state, attention weights (N, S)."""
        x = self.dropout(self.embedding(tokens))
        if self.input_feeding:
            x = torch.cat([x, state.feed], dim=-1)
        output, rnn_state = self.rnn(x.unsqueeze(1), hx=state.rnn)
        h = output.squeeze(1)
        weights = None
        if self.attention is not None:
            context, weights = self.attention(h, memory.outputs, memory.mask, memory.projected)
            h = torch.tanh(self.combine(torch.cat([h, context], dim=-1)))  # type: ignore[misc]
        h = self.dropout(h)
        return self.output(h), DecoderState(rnn_state, h), weights


class Seq2Seq(nn.Module):
    """Sequence-to-sequence with attention: source tokens -> target tokens of a different length.

    Args:
        source_vocab_size, target_vocab_size: vocabulary sizes (``<pad>`` = 0 in both).
        bos_id, eos_id: the target vocabulary's ``<bos>`` and ``<eos>``.
        embedding_dim: source and target embedding size.
        hidden_size: encoder hidden size per direction, and decoder hidden size.
        encoder_layers, decoder_layers: stacked layers.
        cell: recurrent cell of both sides.
        bidirectional: bidirectional encoder (its outputs are 2H wide).
        attention: ``"additive"`` (Bahdanau), ``"dot"``, ``"general"`` (Luong) or ``"none"``.
        input_feeding: feed the attentional vector back into the decoder (Luong).
        dropout: dropout in both sides.
        init, encoder_options: the recurrent layers' ``init`` and, for seqmodels' own cells, further
            :class:`RecurrentEncoder` options (``cell_options``, ``residual``, ``norm``, ``ffn_expansion``).

    ``forward(source (N, S), source_lengths (N,), target_inputs (N, T), teacher_forcing=1.0)`` returns logits
    (N, T, V) and attention weights (N, T, S) (None without attention). ``target_inputs`` starts with
    ``<bos>``; with ``teacher_forcing < 1`` each row feeds back its own prediction with that probability.
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        bos_id: int,
        eos_id: int,
        embedding_dim: int = 64,
        hidden_size: int = 128,
        encoder_layers: int = 1,
        decoder_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = True,
        attention: str = "additive",
        input_feeding: bool = True,
        dropout: float = 0.1,
        padding_idx: int = 0,
        init: str | None = None,
        encoder_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.bos_id, self.eos_id, self.padding_idx = bos_id, eos_id, padding_idx
        self.cell = cell
        self.decoder_layers = decoder_layers
        self.source_embedding = nn.Embedding(source_vocab_size, embedding_dim, padding_idx=padding_idx)
        self.encoder = RecurrentEncoder(
            cell=cell,
            input_size=embedding_dim,
            hidden_size=hidden_size,
            num_layers=encoder_layers,
            dropout=dropout if encoder_layers > 1 else 0.0,
            bidirectional=bidirectional,
            batch_first=True,
            init=init,
            **dict(encoder_options or {}),
        )
        self.dropout = nn.Dropout(dropout)
        self.decoder = AttentionDecoder(
            target_vocab_size,
            embedding_dim,
            hidden_size,
            self.encoder.output_size,
            decoder_layers,
            cell,
            attention,
            input_feeding,
            dropout,
            padding_idx,
            init,
            encoder_options,
        )
        # Bridge: the encoder's final states (both directions of the top layer) start the decoder, for cells that
        # read a given h; the others (LRU, mLSTM, QRNN) start empty and read the source through attention only.
        self.bridge: nn.Linear | None = None
        self.bridge_cell = nn.Linear(self.encoder.output_size, hidden_size) if cell == "lstm" else None
        if self.decoder.rnn.reads_hidden_state:
            self.bridge = nn.Linear(self.encoder.output_size, hidden_size)
        elif attention == "none":
            raise ValueError(
                f"cell={cell!r} cannot start from the encoder's final state, so attention='none' would leave the "
                "decoder without the source; use an attention (additive, dot, general)"
            )

    # ------------------------------------------------------------------ encoding
    def encode(self, source: Tensor, source_lengths: Tensor) -> tuple[Memory, DecoderState]:
        lengths = as_lengths(source_lengths)
        outputs, final = self.encoder(self.dropout(self.source_embedding(source)), lengths)
        mask = lengths_to_mask(lengths.to(source.device), source.shape[1])
        attention = self.decoder.attention
        memory = Memory(outputs, mask, attention.precompute_keys(outputs) if attention is not None else None)
        return memory, self.initial_state(final, outputs.shape[0])

    def _top_layer(self, state: Tensor) -> Tensor:
        # (layers * D, N, H) -> the top layer's directions side by side: (N, D * H)
        d = self.encoder.num_directions
        return torch.cat(list(state[-d:]), dim=-1)

    def initial_state(self, final: State, batch_size: int) -> DecoderState:
        h_enc = final[0] if isinstance(final, tuple) else final
        if self.bridge is None:  # the decoder's cell does not read a given h: an empty state
            rnn = self.decoder.rnn.initial_state(batch_size, device=h_enc.device, dtype=h_enc.dtype)
            return DecoderState(rnn, h_enc.new_zeros(batch_size, self.decoder.hidden_size))
        h = torch.tanh(self.bridge(self._top_layer(h_enc)))
        h0 = h.unsqueeze(0).repeat(self.decoder_layers, 1, 1).contiguous()
        if self.bridge_cell is not None:
            c = torch.tanh(self.bridge_cell(self._top_layer(final[1])))  # type: ignore[index]
            rnn: State = (h0, c.unsqueeze(0).repeat(self.decoder_layers, 1, 1).contiguous())
        elif len(self.decoder.rnn.state_names) > 1:  # a cell with more state than h: the rest starts empty
            rest = self.decoder.rnn.initial_state(batch_size, device=h.device, dtype=h.dtype)[1:]
            rnn = (h0, *rest)
        else:
            rnn = h0
        return DecoderState(rnn, h.new_zeros(batch_size, self.decoder.hidden_size))

    # ------------------------------------------------------------------ training
    def forward(
        self, source: Tensor, source_lengths: Tensor, target_inputs: Tensor, teacher_forcing: float = 1.0
    ) -> tuple[Tensor, Tensor | None]:
        memory, state = self.encode(source, source_lengths)
        steps = target_inputs.shape[1]
        logits: list[Tensor] = []
        weights: list[Tensor] = []
        tokens = target_inputs[:, 0]
        for t in range(steps):
            step_logits, state, step_weights = self.decoder.step(tokens, state, memory)
            logits.append(step_logits)
            if step_weights is not None:
                weights.append(step_weights)
            if t + 1 < steps:
                tokens = target_inputs[:, t + 1]
                if teacher_forcing < 1.0:
                    own = step_logits.argmax(-1)
                    use_own = torch.rand(tokens.shape, device=tokens.device) >= teacher_forcing
                    tokens = torch.where(use_own & (tokens != self.padding_idx), own, tokens)
        return torch.stack(logits, 1), (torch.stack(weights, 1) if weights else None)

    # ------------------------------------------------------------------ inference
    def _step_fn(self, memory: Memory):
        def step(tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
            logits, state, _ = self.decoder.step(tokens, state, memory)
            # <pad> and <bos> are never outputs: an untrained model must not emit them either.
            logits[:, [self.padding_idx, self.bos_id]] = float("-inf")
            return logits, state

        return step

    @torch.no_grad()
    def greedy(self, source: Tensor, source_lengths: Tensor, max_len: int) -> tuple[Tensor, Tensor]:
        """Greedy decoding: tokens (N, T <= max_len) ending in ``<eos>`` (then ``<pad>``), and their lengths."""
        memory, state = self.encode(source, source_lengths)
        step = self._step_fn(memory)
        bos = torch.full((source.shape[0],), self.bos_id, dtype=torch.long, device=source.device)
        logits, state = step(bos, state)
        return decode(step, logits, state, max_len, temperature=0, eos_id=self.eos_id, pad_id=self.padding_idx)

    @torch.no_grad()
    def beam_search(
        self,
        source: Tensor,
        source_lengths: Tensor,
        beam_size: int = 5,
        max_len: int = 100,
        length_penalty: float = 1.0,
        n_best: int = 1,
    ) -> list[list[tuple[list[int], float]]]:
        """Batched beam search; per input, ``n_best`` ``(tokens, score)`` pairs, best first.

        The greedy output competes too, so the best hypothesis never scores below greedy decoding (a beam can
        prune the greedy path early; greedy costs one more hypothesis per input).
        """
        memory, state = self.encode(source, source_lengths)
        step = self._step_fn(memory)
        n = source.shape[0]
        bos = torch.full((n,), self.bos_id, dtype=torch.long, device=source.device)
        first_logits, first_state = step(bos, state)
        greedy, greedy_lengths, greedy_scores = decode(
            step,
            first_logits,
            first_state,
            max_len,
            temperature=0,
            eos_id=self.eos_id,
            pad_id=self.padding_idx,
            return_log_probs=True,
        )
        results = beam_search(
            self._step_fn(memory.repeat_interleave(beam_size)),
            state.select(torch.arange(n, device=source.device).repeat_interleave(beam_size)),
            lambda s, index: s.select(index),
            n,
            self.bos_id,
            self.eos_id,
            beam_size=beam_size,
            max_len=max_len,
            length_penalty=length_penalty,
            n_best=n_best,
            device=source.device,
        )
        for i, hypotheses in enumerate(results):
            tokens = greedy[i, : int(greedy_lengths[i])].tolist()
            raw = float(greedy_scores[i])
            score = raw / (len(tokens) ** length_penalty) if length_penalty else raw
            if all(tokens != t for t, _ in hypotheses) and (len(hypotheses) < n_best or score > hypotheses[-1][1]):
                hypotheses.append((tokens, score))
                hypotheses.sort(key=lambda item: item[1], reverse=True)
                del hypotheses[n_best:]
        return results

    @torch.no_grad()
    def sequence_log_prob(self, source: Tensor, source_lengths: Tensor, targets: Tensor) -> Tensor:
        """Sum of log p(target token) under the model for each row; ``targets`` (N, T) end in ``<eos>``,
        padded with ``<pad>``."""
        bos = torch.full_like(targets[:, :1], self.bos_id)
        logits, _ = self(source, source_lengths, torch.cat([bos, targets[:, :-1]], 1))
        log_probs = torch.log_softmax(logits.float(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return (log_probs * (targets != self.padding_idx)).sum(1)


__all__ = ["AttentionDecoder", "DecoderState", "Memory", "Seq2Seq"]
