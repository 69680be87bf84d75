"""RecurrentLanguageModel: embedding -> stacked recurrent layers -> dropout -> output projection.

Shapes: N = batch, L = length, V = vocabulary, E = embedding_dim, H = hidden_size, K = num_layers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from seqmodels.nn.decoding import DecodeStep, decode, decode_steps
from seqmodels.nn.recurrent import RecurrentEncoder, State
from seqmodels.nn.regularization import LockedDropout, WeightDrop, embedding_dropout


def detach_state(state: State | None) -> State | None:
    """Cuts the autograd graph behind a recurrent state (truncated BPTT keeps the values, drops the history)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)  # type: ignore[return-value]
    return state.detach()


def select_state(state: State, index: Tensor) -> State:
    """Rows ``index`` of a state whose batch dimension is 1 (torch's (K, N, H) layout)."""
    if isinstance(state, tuple):
        return tuple(s.index_select(1, index) for s in state)  # type: ignore[return-value]
    return state.index_select(1, index)


class RecurrentLanguageModel(nn.Module):
    """A recurrent language model with the AWD-LSTM regularisers as options (all off by default).

    Args:
        vocab_size: V.
        embedding_dim: E.
        hidden_size: H of every recurrent layer.
        num_layers: K stacked unidirectional layers.
        cell: ``"rnn_tanh"``, ``"rnn_relu"``, ``"lstm"``, ``"gru"`` or one of seqmodels' own cells
            (:data:`~seqmodels.nn.recurrent.MODERN_CELLS`).
        dropout: dropout on the last layer's outputs, before the output projection (locked across time).
        embedding_dropout: drop whole vocabulary rows of the embedding (every occurrence of a token).
        input_dropout: locked dropout on the embedded inputs.
        layer_dropout: locked dropout between recurrent layers.
        weight_drop: DropConnect on the hidden-to-hidden weights of every layer.
        tie_weights: share the embedding matrix with the output projection; when H != E, a linear map
            H -> E comes first.
        padding_idx: embedding row that stays zero (the vocabulary's ``<pad>``).
        init: recurrent weight init, see :class:`RecurrentEncoder` (None: its default for the cell).
        encoder_options: for seqmodels' own cells: ``cell_options``, ``norm`` and ``ffn_expansion`` passed to every
            layer's encoder, and ``residual`` (each layer's input added to its output from the second layer on).

    Inputs: ``tokens, lengths=None, state=None``
        tokens: (N, L) int64.
        lengths: (N,) true lengths for a padded batch; None when every row has length L.
        state: (K, N, H), a tuple (h, c) for LSTM (one (K, N, S_i) tensor per name in :attr:`state_names`), e.g. the
            state returned for the previous window.

    Outputs: ``logits, state``
        logits: (N, L, V) next-token scores at every step.
        state: (K, N, H) (LSTM: (h, c)) at each row's last valid step.

    Step mode (see :mod:`seqmodels.nn.streaming`): :meth:`initial_state`, :meth:`stream` (a chunk (N, T) -> raw
    logits (N, T, V), equal to :meth:`forward`'s) and :meth:`step` ((N,) -> (N, V)). Unlike ``stream``, ``step`` is
    the generation step: it sets the ``<pad>`` logit to -inf so sampling never emits it.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 128,
        hidden_size: int = 256,
        num_layers: int = 2,
        cell: str = "lstm",
        dropout: float = 0.0,
        embedding_dropout: float = 0.0,
        input_dropout: float = 0.0,
        layer_dropout: float = 0.0,
        weight_drop: float = 0.0,
        tie_weights: bool = False,
        padding_idx: int | None = 0,
        init: str | None = None,
        encoder_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be an integer >= 1, got {num_layers!r}")
        if not 0.0 <= embedding_dropout < 1.0:
            raise ValueError(f"embedding_dropout must be in [0, 1), got {embedding_dropout}")
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell = cell
        self.embedding_dropout = float(embedding_dropout)
        self.tie_weights = tie_weights
        options = dict(encoder_options or {})
        self.residual = bool(options.pop("residual", False))  # between this model's one-layer encoders

        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.input_dropout = LockedDropout(input_dropout)
        layers: list[nn.Module] = []
        for index in range(num_layers):
            layer = RecurrentEncoder(
                cell=cell,
                input_size=embedding_dim if index == 0 else hidden_size,
                hidden_size=hidden_size,
                num_layers=1,
                batch_first=True,
                init=init,
                **options,
            )
            layers.append(WeightDrop(layer, weight_drop) if weight_drop > 0 else layer)
        self.layers = nn.ModuleList(layers)
        self.layer_dropout = LockedDropout(layer_dropout)
        self.output_dropout = LockedDropout(dropout)
        self.projection = (
            nn.Linear(hidden_size, embedding_dim) if tie_weights and hidden_size != embedding_dim else None
        )
        self.decoder = nn.Linear(embedding_dim if tie_weights else hidden_size, vocab_size)
        self.reset_parameters()
        if tie_weights:
            self.decoder.weight = self.embedding.weight

    @property
    def is_lstm(self) -> bool:
        return self.cell == "lstm"

    @property
    def state_names(self) -> tuple[str, ...]:
        """The tensors of a state: ``("h",)``, ``("h", "c")`` for LSTM, more for some of seqmodels' own cells."""
        layer = self.layers[0]
        return getattr(layer, "module", layer).state_names  # a WeightDrop wraps its encoder

    def reset_parameters(self) -> None:
        # Small uniform embeddings (AWD-LSTM); the padding row stays zero.
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        if self.embedding.padding_idx is not None:
            with torch.no_grad():
                self.embedding.weight[self.embedding.padding_idx].zero_()
        nn.init.zeros_(self.decoder.bias)
        if not self.tie_weights:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def _layer_state(self, state: State | None, index: int) -> State | None:
        if state is None:
            return None
        if isinstance(state, tuple):  # each tensor cut back to this layer's own width (see _stack_states)
            sizes = self._state_sizes(index)
            return tuple(s[index : index + 1, :, :size] for s, size in zip(state, sizes, strict=True))  # type: ignore[return-value]
        return state[index : index + 1]

    def _state_sizes(self, index: int) -> tuple[int, ...]:
        layer = self.layers[index]
        encoder = getattr(layer, "module", layer)
        if encoder.is_modern:
            return encoder.rnn.state_sizes()
        return (encoder.state_size, encoder.hidden_size) if encoder.is_lstm else (encoder.state_size,)

    @staticmethod
    def _stack_states(finals: list[State]) -> State:
        """The layers' states as one (K, N, S) tensor per state name. A state tensor whose width differs between
        layers (QRNN's window of its layer's inputs: the embedding for the first) is zero-padded to the widest."""
        if not isinstance(finals[0], tuple):
            return torch.cat(finals)  # type: ignore[arg-type]
        stacked = []
        for parts in zip(*finals, strict=True):
            width = max(part.shape[-1] for part in parts)
            stacked.append(torch.cat([torch.nn.functional.pad(part, (0, width - part.shape[-1])) for part in parts]))
        return tuple(stacked)  # type: ignore[return-value]

    def forward(
        self, tokens: Tensor, lengths: Tensor | None = None, state: State | None = None
    ) -> tuple[Tensor, State]:
        if tokens.dim() != 2:
            raise ValueError(f"RecurrentLanguageModel expects token ids (N, L), got shape {tuple(tokens.shape)}")
        names = self.state_names
        if state is not None and (len(names) > 1) != isinstance(state, tuple):
            layout = f"a tuple ({', '.join(names)})" if len(names) > 1 else "a single tensor"
            raise ValueError(f"state must be {layout} for cell={self.cell!r}")
        x = embedding_dropout(self.embedding, tokens, self.embedding_dropout, self.training)
        x = self.input_dropout(x)
        finals: list[State] = []
        for index, layer in enumerate(self.layers):
            if index > 0:
                x = self.layer_dropout(x)
            out, final = layer(x, lengths, self._layer_state(state, index))
            x = out + x if self.residual and index > 0 else out
            finals.append(final)
        x = self.output_dropout(x)
        if self.projection is not None:
            x = self.projection(x)
        logits = self.decoder(x)
        return logits, self._stack_states(finals)

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """Zeros: (K, N, H), a tuple (h, c) for LSTM; ``device``/``dtype`` default to the parameters'."""
        reference = self.embedding.weight
        options = dict(device=device or reference.device, dtype=dtype or reference.dtype)
        finals = [getattr(layer, "module", layer).initial_state(batch_size, **options) for layer in self.layers]
        return self._stack_states(finals)

    def stream(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """A chunk ``tokens`` (N, T) -> raw next-token logits (N, T, V) (as :meth:`forward`) and the new state."""
        return self.forward(tokens, state=state)

    def step(self, tokens: Tensor, state: State | None) -> tuple[Tensor, State]:
        """One step for every row: ``tokens`` (N,) -> next-token logits (N, V) and the new state.

        The generation step: the ``<pad>`` logit is -inf (generated text never contains it); :meth:`stream` returns
        the raw logits.
        """
        logits, state = self.forward(tokens.unsqueeze(1), state=state)
        return self._never_pad(logits.squeeze(1)), state

    def _never_pad(self, logits: Tensor) -> Tensor:
        # Generated text never contains <pad>, however little the model has trained.
        if self.embedding.padding_idx is not None:
            logits[..., self.embedding.padding_idx] = float("-inf")
        return logits

    @contextmanager
    def _evaluating(self) -> Iterator[None]:
        # Generation never drops anything; the caller's mode comes back afterwards (nothing to do in eval mode).
        if not self.training:
            yield
            return
        self.eval()
        try:
            yield
        finally:
            self.train()

    def read_prompt(self, prompt: Tensor, prompt_lengths: Tensor | None = None) -> tuple[Tensor, State]:
        """Runs the prompt once: the next-token logits (N, V) after each row's last prompt token (``<pad>``
        masked, as :meth:`step`'s) and the state, ready for the first generation :meth:`step`."""
        if prompt.dim() != 2 or prompt.shape[1] == 0:
            raise ValueError(f"prompt must be (N, P) token ids with P >= 1, got shape {tuple(prompt.shape)}")
        logits, state = self.forward(prompt, prompt_lengths)
        if prompt_lengths is None:
            last = logits[:, -1]
        else:
            last_index = (prompt_lengths.to(prompt.device) - 1).view(-1, 1, 1).expand(-1, 1, logits.shape[-1])
            last = logits.gather(1, last_index).squeeze(1)
        return self._never_pad(last), state

    @torch.no_grad()
    def generate(
        self,
        prompt: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        eos_id: int | None = None,
        prompt_lengths: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Continues each prompt row: reads the prompt once, then one step per new token.

        Args:
            prompt: (N, P) token ids, P >= 1 (padded on the right when ``prompt_lengths`` is given).
            max_new_tokens: tokens to generate per row (fewer where ``eos_id`` is emitted).
            temperature: 0 is greedy; otherwise logits are divided by it before sampling.
            top_k, top_p: sample only from the ``top_k`` most likely tokens / the nucleus of mass ``top_p``.
            eos_id: a row stops after emitting it.
            generator: a seeded ``torch.Generator`` makes sampling reproducible.

        Returns ``tokens`` (N, T) new tokens and ``lengths`` (N,) of each row.
        """
        with self._evaluating():
            last, state = self.read_prompt(prompt, prompt_lengths)
            return decode(
                self.step,
                last,
                state,
                max_new_tokens,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                eos_id=eos_id,
                pad_id=self.embedding.padding_idx or 0,
                generator=generator,
            )

    @torch.no_grad()
    def generate_steps(
        self,
        prompt: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        eos_id: int | None = None,
        prompt_lengths: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Iterator[DecodeStep]:
        """:meth:`generate` one position at a time, for streaming: yields a :class:`DecodeStep` per new token.

        The prompt is read here; each ``next`` then costs one recurrent step (the same loop as :meth:`generate`,
        so the same ``generator`` seed draws the same tokens). Stop early by no longer asking for tokens.
        """
        with self._evaluating():
            last, state = self.read_prompt(prompt, prompt_lengths)
        return decode_steps(
            self._eval_step,
            last,
            state,
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            eos_id=eos_id,
            pad_id=self.embedding.padding_idx or 0,
            generator=generator,
        )

    def _eval_step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        # The model may be switched back to training between two steps of a stream: each step checks.
        with self._evaluating():
            return self.step(tokens, state)

    def extra_repr(self) -> str:
        return f"tie_weights={self.tie_weights}, embedding_dropout={self.embedding_dropout}"


__all__ = ["RecurrentLanguageModel", "detach_state", "select_state"]
