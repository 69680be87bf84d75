"""Connectionist temporal classification (CTC): subsampling, the acoustic network, greedy and prefix beam search.

Label convention: index ``blank`` (0 by default, and in every seqmodels config) is the CTC blank; labels
``1 .. num_classes - 1`` are the output symbols (characters). A label sequence is read from per-step scores by
merging repeats and then removing blanks, so ``a a _ a b _`` reads ``a a b``.

Shapes: N batch, L input frames, L' frames after subsampling, C features, K = num_classes (blank included).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from seqmodels.nn.audio import LogMelSpectrogram
from seqmodels.nn.masking import as_lengths, check_lengths, lengths_to_mask
from seqmodels.nn.networks import check_frontend
from seqmodels.nn.recurrent import RecurrentEncoder

NEG_INF = float("-inf")


def _zero_padding(inputs: Tensor, lengths: Tensor) -> Tensor:
    return inputs * lengths_to_mask(lengths.to(inputs.device), inputs.shape[1]).unsqueeze(-1).to(inputs.dtype)


class FrameStacking(nn.Module):
    """Concatenates ``factor`` consecutive frames into one: (N, L, C) -> (N, ceil(L / factor), factor * C).

    The last group of a sequence is completed with zero frames, so a sequence of ``L`` frames gives exactly
    ``ceil(L / factor)`` steps (:meth:`output_lengths`). With ``output_size`` a linear layer then maps the stacked
    frames to that size.

    Inputs: ``inputs`` (N, L, C), ``lengths`` (N,). Outputs: (N, L', output_size), ``lengths`` (N,).
    """

    def __init__(self, input_size: int, factor: int = 2, output_size: int | None = None) -> None:
        super().__init__()
        if input_size < 1 or factor < 1:
            raise ValueError(f"input_size and factor must be >= 1, got {input_size}, {factor}")
        if output_size is not None and output_size < 1:
            raise ValueError(f"output_size must be >= 1 or null, got {output_size}")
        self.input_size, self.factor = input_size, factor
        self.projection = nn.Linear(factor * input_size, output_size) if output_size else nn.Identity()
        self.output_size = output_size or factor * input_size

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return (as_lengths(lengths) + self.factor - 1) // self.factor

    def forward(self, inputs: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if inputs.dim() != 3 or inputs.shape[-1] != self.input_size:
            raise ValueError(f"FrameStacking expects (N, L, {self.input_size}) inputs, got {tuple(inputs.shape)}")
        lengths = as_lengths(lengths)
        n, length, channels = inputs.shape
        x = _zero_padding(inputs, lengths)
        steps = (length + self.factor - 1) // self.factor  # integer ceil: ONNX export traces it symbolically
        x = nn.functional.pad(x, (0, 0, 0, steps * self.factor - length))
        x = self.projection(x.reshape(n, steps, self.factor * channels))
        out_lengths = self.output_lengths(lengths)
        return _zero_padding(x, out_lengths), out_lengths

    # Streaming: new methods, so forward stays as it is.
    def initial_state(
        self, batch_size: int = 1, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> dict[str, Tensor]:
        """No frames waiting: the state holds the frames (fewer than ``factor``) of an incomplete group."""
        return {"frames": torch.zeros(batch_size, 0, self.input_size, device=device, dtype=dtype)}

    def stream(self, inputs: Tensor, state: dict[str, Tensor], final: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        """The stacked steps (N, l', output_size) of the groups ``inputs`` (N, l, C) completes; ``final=True``
        completes the last group with zero frames, as :meth:`forward` does at the end of a sequence."""
        x = torch.cat([state["frames"].to(inputs.dtype), inputs], dim=1)
        n, length, channels = x.shape
        if final and length % self.factor:
            x = nn.functional.pad(x, (0, 0, 0, self.factor - length % self.factor))
        steps = x.shape[1] // self.factor
        out = self.projection(x[:, : steps * self.factor].reshape(n, steps, self.factor * channels))
        return out, {"frames": x[:, steps * self.factor :] if not final else x[:, :0]}


class ConvSubsampling(nn.Module):
    """Strided 1-D convolutions over time (each followed by ReLU): (N, L, C) -> (N, L', output_size).

    Each layer has ``kernel_size``, ``stride`` and ``padding = kernel_size // 2``, so it maps ``L`` frames to
    ``(L + 2 * padding - kernel_size) // stride + 1`` (:meth:`output_lengths`; ``ceil(L / 2)`` for the default
    3 / 2). Frames past each length are zeroed before every layer, so a padded batch gives each sequence the same
    outputs as the sequence alone.

    Inputs: ``inputs`` (N, L, C), ``lengths`` (N,). Outputs: (N, L', output_size), ``lengths`` (N,).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int = 128,
        num_layers: int = 2,
        kernel_size: int = 3,
        stride: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("input_size", input_size),
            ("output_size", output_size),
            ("num_layers", num_layers),
            ("kernel_size", kernel_size),
            ("stride", stride),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.input_size, self.output_size = input_size, output_size
        self.kernel_size, self.stride, self.padding = kernel_size, stride, kernel_size // 2
        self.convs = nn.ModuleList(
            nn.Conv1d(input_size if i == 0 else output_size, output_size, kernel_size, stride, self.padding)
            for i in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        lengths = as_lengths(lengths)
        for _ in self.convs:
            lengths = (lengths + 2 * self.padding - self.kernel_size) // self.stride + 1
        return lengths

    def forward(self, inputs: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if inputs.dim() != 3 or inputs.shape[-1] != self.input_size:
            raise ValueError(f"ConvSubsampling expects (N, L, {self.input_size}) inputs, got {tuple(inputs.shape)}")
        lengths = as_lengths(lengths)
        x = inputs
        for conv in self.convs:
            x = _zero_padding(x, lengths)
            x = torch.relu(conv(x.transpose(1, 2))).transpose(1, 2)
            lengths = (lengths + 2 * self.padding - self.kernel_size) // self.stride + 1
        return _zero_padding(self.dropout(x), lengths), lengths

    def initial_state(
        self, batch_size: int = 1, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> dict[str, list[Tensor]]:
        """Per layer, the input frames its next output still reads: at first, its ``padding`` zero frames."""
        sizes = [self.input_size] + [self.output_size] * (len(self.convs) - 1)
        return {"frames": [torch.zeros(batch_size, self.padding, size, device=device, dtype=dtype) for size in sizes]}

    def stream(
        self, inputs: Tensor, state: dict[str, list[Tensor]], final: bool = False
    ) -> tuple[Tensor, dict[str, list[Tensor]]]:
        """The outputs (N, l', output_size) whose receptive field ``inputs`` (N, l, C) completes, layer by layer;
        ``final=True`` appends each layer's right padding, as :meth:`forward` does at the end of a sequence."""
        x, buffers = inputs, []
        for conv, frames in zip(self.convs, state["frames"], strict=True):
            x = torch.cat([frames.to(x.dtype), x], dim=1)
            if final:
                x = nn.functional.pad(x, (0, 0, 0, self.padding))
            count = (x.shape[1] - self.kernel_size) // self.stride + 1 if x.shape[1] >= self.kernel_size else 0
            used = x[:, : (count - 1) * self.stride + self.kernel_size] if count else x[:, :0]
            buffers.append(x[:, count * self.stride :] if not final else x[:, :0])
            if count:
                y = nn.functional.conv1d(used.transpose(1, 2), conv.weight, conv.bias, self.stride)
                x = torch.relu(y).transpose(1, 2)
            else:
                x = x.new_zeros(x.shape[0], 0, conv.out_channels)
        return self.dropout(x), {"frames": buffers}


class CTCNet(nn.Module):
    """[SpecAugment] -> [subsampling] -> RecurrentEncoder -> dropout -> linear -> log-softmax over K labels.

    Args:
        encoder: a ``batch_first=True`` :class:`RecurrentEncoder`, usually bidirectional.
        num_classes: K, the blank included.
        subsampling: :class:`FrameStacking`, :class:`ConvSubsampling` or None; anything with
            ``forward(inputs, lengths) -> (outputs, lengths)``, ``output_lengths`` and ``output_size``.
        spec_augment: a :class:`~seqmodels.nn.SpecAugment` applied to the features while training, or None.
        dropout: on the encoder outputs.
        blank: the blank's index.

    Inputs: ``inputs`` (N, L, C) features, ``lengths`` (N,) frames.
    Outputs: ``log_probs`` (N, L', K) float32 (0 rows past each length), ``lengths`` (N,) = :meth:`output_lengths`.
    """

    def __init__(
        self,
        encoder: RecurrentEncoder,
        num_classes: int,
        subsampling: nn.Module | None = None,
        spec_augment: nn.Module | None = None,
        dropout: float = 0.0,
        blank: int = 0,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (the blank and at least one label), got {num_classes}")
        if not 0 <= blank < num_classes:
            raise ValueError(f"blank must be in [0, num_classes={num_classes}), got {blank}")
        check_frontend(encoder, subsampling, "CTCNet")
        self.spec_augment = spec_augment
        self.subsampling = subsampling
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(encoder.output_size, num_classes)
        self.num_classes, self.blank = num_classes, blank

    @property
    def input_size(self) -> int:
        return self.subsampling.input_size if self.subsampling is not None else self.encoder.input_size

    def output_lengths(self, lengths: Tensor | Sequence[int]) -> Tensor:
        """Steps of ``log_probs`` for inputs of ``lengths`` frames (exact)."""
        lengths = as_lengths(lengths)
        return self.subsampling.output_lengths(lengths) if self.subsampling is not None else lengths

    def forward(self, inputs: Tensor, lengths: Tensor | Sequence[int]) -> tuple[Tensor, Tensor]:
        if inputs.dim() != 3 or inputs.shape[-1] != self.input_size:
            raise ValueError(f"CTCNet expects features (N, L, {self.input_size}), got shape {tuple(inputs.shape)}")
        lengths = as_lengths(lengths)
        check_lengths(lengths.cpu(), inputs.shape[1], inputs.shape[0])
        x = inputs
        if self.spec_augment is not None:
            x = self.spec_augment(x, lengths)
        if self.subsampling is not None:
            x, lengths = self.subsampling(x, lengths)
        outputs, _ = self.encoder(x, lengths)
        log_probs = self.output(self.dropout(outputs)).float().log_softmax(-1)
        return _zero_padding(log_probs, lengths), lengths

    # ------------------------------------------------------------------ streaming
    def check_streamable(self) -> None:
        """A one-line ``ValueError`` unless the network is causal (a unidirectional encoder), so it can stream."""
        if self.encoder.bidirectional:
            raise ValueError(
                "a bidirectional encoder reads the whole utterance, so CTCNet cannot stream; train a unidirectional "
                "one (model.net.encoder.bidirectional=false, e.g. experiment=spoken_digits_streaming)"
            )
        if self.subsampling is not None and not hasattr(self.subsampling, "stream"):
            raise ValueError(f"{type(self.subsampling).__name__} has no stream method, so CTCNet cannot stream")

    def initial_state(
        self, batch_size: int = 1, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> dict[str, object]:
        """The state before the first frame: the subsampling's buffered frames and the encoder's hidden state,
        plain tensors in dicts and tuples (``torch.save`` / ``torch.load(weights_only=True)`` keep it)."""
        self.check_streamable()
        parameter = next(self.parameters())
        device = parameter.device if device is None else device
        dtype = parameter.dtype if dtype is None else dtype
        state: dict[str, object] = {"encoder": self.encoder.initial_state(batch_size, device=device, dtype=dtype)}
        if self.subsampling is not None:
            state["subsampling"] = self.subsampling.initial_state(batch_size, device=device, dtype=dtype)
        return state

    def stream(
        self, inputs: Tensor, state: dict[str, object] | None = None, final: bool = False
    ) -> tuple[Tensor, dict[str, object]]:
        """Log-probabilities (N, l', K) of the output steps that the feature frames ``inputs`` (N, l, C) complete,
        and the new state. Frame stacking and strided convolutions buffer the frames of an incomplete step in the
        state, so any chunking gives :meth:`forward`'s outputs for the whole sequence; ``final=True`` ends it (the
        last, zero-padded step). SpecAugment is not applied (it only acts while training).
        """
        if inputs.dim() != 3 or inputs.shape[-1] != self.input_size:
            raise ValueError(f"CTCNet expects features (N, l, {self.input_size}), got shape {tuple(inputs.shape)}")
        if state is None:
            state = self.initial_state(inputs.shape[0], inputs.device, inputs.dtype)
        else:
            self.check_streamable()
        new_state = dict(state)
        x = inputs
        if self.subsampling is not None:
            x, new_state["subsampling"] = self.subsampling.stream(x, state["subsampling"], final=final)
        if x.shape[1] == 0:
            return x.new_zeros(x.shape[0], 0, self.num_classes, dtype=torch.float32), new_state
        if hasattr(self.encoder, "stream") and hasattr(self.encoder, "initial_state"):
            outputs, new_state["encoder"] = self.encoder.stream(x, state["encoder"])
        else:
            outputs, new_state["encoder"] = self.encoder(x, None, state["encoder"])
        return self.output(self.dropout(outputs)).float().log_softmax(-1), new_state

    def step(self, frame: Tensor, state: dict[str, object] | None = None) -> tuple[Tensor, dict[str, object]]:
        """One feature frame (N, C) -> (N, 0 or 1, K): a log-probability step once it completes one (with
        subsampling, every ``factor``-th frame or so), and the new state."""
        if frame.dim() != 2:
            raise ValueError(f"CTCNet.step expects one frame (N, C), got shape {tuple(frame.shape)}")
        return self.stream(frame.unsqueeze(1), state)

    @torch.no_grad()
    def decode(self, inputs: Tensor, lengths: Tensor | Sequence[int], beam_size: int = 1) -> list[list[int]]:
        """Label ids per sequence: greedy (``beam_size`` 1) or :func:`ctc_prefix_beam_search`."""
        log_probs, out_lengths = self(inputs, lengths)
        if beam_size == 1:
            return ctc_greedy_decode(log_probs, out_lengths, self.blank)
        return [hyps[0][0] for hyps in ctc_prefix_beam_search(log_probs, out_lengths, beam_size, self.blank)]


# ------------------------------------------------------------------------------------------------ decoding
def _as_batch(log_probs: Tensor, lengths: Tensor | Sequence[int] | None) -> tuple[Tensor, Tensor]:
    if log_probs.dim() == 2:
        log_probs = log_probs.unsqueeze(0)
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (N, L, K) or (L, K), got shape {tuple(log_probs.shape)}")
    n, length, _ = log_probs.shape
    lengths = torch.full((n,), length, dtype=torch.long) if lengths is None else as_lengths(lengths).cpu()
    if lengths.shape[0] != n or (n and (int(lengths.min()) < 0 or int(lengths.max()) > length)):
        raise ValueError(f"need one length in [0, {length}] per sequence, got {lengths.tolist()}")
    return log_probs, lengths


def ctc_greedy_decode(
    log_probs: Tensor, lengths: Tensor | Sequence[int] | None = None, blank: int = 0
) -> list[list[int]]:
    """Best-path decoding: the most likely label at every step, repeats merged, blanks removed.

    ``log_probs`` (N, L, K) or (L, K) scores (log-probabilities or logits), ``lengths`` (N,) valid steps.
    Returns one list of label ids per sequence.
    """
    log_probs, lengths = _as_batch(log_probs, lengths)
    best = log_probs.argmax(-1).cpu()  # (N, L)
    previous = torch.cat([torch.full_like(best[:, :1], -1), best[:, :-1]], dim=1)
    keep = (best != blank) & (best != previous)
    return [row[:n][k[:n]].tolist() for row, k, n in zip(best, keep, lengths.tolist(), strict=True)]


class GreedyCTCStreamDecoder:
    """Greedy CTC decoding step by step: the best label of each step, repeats merged (across chunk boundaries
    too) and blanks removed; after the last chunk, the labels equal :func:`ctc_greedy_decode` of all the steps.

    State: ``{"previous": (N,) long}``, the best label of the last step seen (-1 before any). :meth:`stream`
    returns the labels each chunk adds, per sequence.
    """

    def __init__(self, blank: int = 0) -> None:
        self.blank = blank

    def initial_state(
        self, batch_size: int = 1, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> dict[str, Tensor]:
        """No step seen yet (``dtype`` is accepted for the common protocol; the state holds label ids)."""
        return {"previous": torch.full((batch_size,), -1, dtype=torch.long, device=device)}

    def stream(self, log_probs: Tensor, state: dict[str, Tensor]) -> tuple[list[list[int]], dict[str, Tensor]]:
        """``log_probs`` (N, l, K) of the next steps -> the label ids they add per sequence, and the new state."""
        if log_probs.dim() != 3:
            raise ValueError(f"log_probs must be (N, l, K), got shape {tuple(log_probs.shape)}")
        if log_probs.shape[1] == 0:
            return [[] for _ in range(log_probs.shape[0])], state
        best = log_probs.argmax(-1)  # (N, l)
        previous = torch.cat([state["previous"].to(best.device)[:, None], best[:, :-1]], dim=1)
        keep = (best != self.blank) & (best != previous)
        added = [row[k].tolist() for row, k in zip(best.cpu(), keep.cpu(), strict=True)]
        return added, {"previous": best[:, -1]}


class StreamingRecognizer:
    """Streaming speech recognition: samples in, chunk by chunk -> the transcript so far.

    Chains :meth:`LogMelSpectrogram.stream` (normalisation must be causal: ``normalize="cumulative"`` or none),
    :meth:`CTCNet.stream` (a unidirectional encoder) and :class:`GreedyCTCStreamDecoder`. The state is one dict
    of the three parts' states, the label ids so far and the best path's log-probability (``score``): plain
    data, so ``torch.save`` keeps it and a stream can be resumed. After ``final=True`` the transcript equals
    offline greedy decoding of the whole signal's features, whatever the chunk sizes.

    Args:
        featurizer: the log-mel front-end the network was trained on.
        net: a :class:`CTCNet` with a unidirectional encoder (in eval mode while streaming).
        labels: the text of each label id (``labels[blank]`` is never printed).
        blank: the blank's label id.
    """

    def __init__(self, featurizer: LogMelSpectrogram, net: CTCNet, labels: Sequence[str], blank: int = 0) -> None:
        net.check_streamable()
        if featurizer.normalize is True:
            raise ValueError(
                "this model's features use per-utterance normalisation, which needs the whole utterance, so it "
                "cannot stream; train with data.features.normalize=cumulative (experiment=spoken_digits_streaming)"
            )
        if featurizer.output_size != net.input_size:
            raise ValueError(
                f"the front-end gives {featurizer.output_size} features, the network reads {net.input_size}"
            )
        self.featurizer, self.net, self.labels, self.blank = featurizer, net, list(labels), blank
        self.decoder = GreedyCTCStreamDecoder(blank)

    @property
    def sample_rate(self) -> int:
        return self.featurizer.sample_rate

    def initial_state(
        self, batch_size: int = 1, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> dict[str, object]:
        """The state before the first sample of ``batch_size`` streams (``dtype``: the network's by default)."""
        dtype = dtype or next(self.net.parameters()).dtype
        return {
            "features": self.featurizer.initial_state(batch_size, device=device, dtype=dtype),
            "net": self.net.initial_state(batch_size, device=device, dtype=dtype),
            "decoder": self.decoder.initial_state(batch_size, device=device),
            "ids": [[] for _ in range(batch_size)],
            "score": torch.zeros(batch_size, dtype=torch.float64),  # log-probability of the best path so far
        }

    def text(self, ids: Sequence[int]) -> str:
        return "".join(self.labels[i] for i in ids if i != self.blank)

    @torch.no_grad()
    def stream(
        self, samples: Tensor, state: dict[str, object] | None = None, final: bool = False
    ) -> tuple[str | list[str], dict[str, object]]:
        """``samples`` (t,) or (N, t) at :attr:`sample_rate` -> the transcript(s) so far and the new state;
        ``final=True`` ends the utterance (its last frames and steps)."""
        single = samples.dim() == 1
        batch = samples.unsqueeze(0) if single else samples
        if state is None:
            state = self.initial_state(batch.shape[0], batch.device)
        dtype = next(self.net.parameters()).dtype
        features, feature_state = self.featurizer.stream(batch.to(dtype), state["features"], final=final)
        log_probs, net_state = self.net.stream(features, state["net"], final=final)
        added, decoder_state = self.decoder.stream(log_probs, state["decoder"])
        ids = [old + new for old, new in zip(state["ids"], added, strict=True)]
        score = state["score"] + log_probs.max(-1).values.sum(1).double().cpu()
        new_state = {"features": feature_state, "net": net_state, "decoder": decoder_state}
        new_state.update(ids=ids, score=score)
        texts = [self.text(row) for row in ids]
        return (texts[0] if single else texts), new_state


def _logsumexp(*values: float) -> float:
    top = max(values)
    if top == NEG_INF:
        return NEG_INF
    return top + math.log(sum(math.exp(v - top) for v in values))


def ctc_prefix_beam_search(
    log_probs: Tensor,
    lengths: Tensor | Sequence[int] | None = None,
    beam_size: int = 5,
    blank: int = 0,
    n_best: int = 1,
) -> list[list[tuple[list[int], float]]]:
    """CTC prefix beam search: the label sequences with the highest probability summed over their alignments.

    Each prefix carries two log-probabilities, of its alignments so far that end in a blank and that end in
    its last label, so a repeated label is merged unless a blank separates it (Hannun et al., 2014). At every
    step only the ``beam_size`` most likely labels of that step extend the prefixes, and the ``beam_size`` most
    likely prefixes survive. ``beam_size=1`` therefore follows the single best label of every step: it returns
    exactly :func:`ctc_greedy_decode`'s output. A beam at least as wide as the vocabulary and the number of
    prefixes gives the exact most probable labelling and its probability.

    Args:
        log_probs: (N, L, K) or (L, K) log-probabilities (log-softmax outputs).
        lengths: (N,) valid steps per sequence (default: all L).
        beam_size: prefixes (and labels per step) kept.
        blank: the blank's index.
        n_best: hypotheses returned per sequence, <= beam_size.

    Returns: per sequence, up to ``n_best`` ``(label ids, log-probability)`` pairs, best first; the
    log-probability sums the alignments the search kept (exact when nothing was pruned).
    """
    if beam_size < 1 or not 1 <= n_best <= beam_size:
        raise ValueError(f"need beam_size >= 1 and 1 <= n_best <= beam_size, got {beam_size}, {n_best}")
    log_probs, lengths = _as_batch(log_probs, lengths)
    k = min(beam_size, log_probs.shape[-1])
    top_values, top_labels = log_probs.detach().float().cpu().topk(k, dim=-1)
    results: list[list[tuple[list[int], float]]] = []
    for values, labels, length in zip(top_values.tolist(), top_labels.tolist(), lengths.tolist(), strict=True):
        # prefix -> [log P(alignments ending in blank), log P(alignments ending in the prefix's last label)]
        beams: dict[tuple[int, ...], list[float]] = {(): [0.0, NEG_INF]}
        for step in range(length):
            candidates: dict[tuple[int, ...], list[float]] = {}
            for prefix, (p_blank, p_label) in beams.items():
                last = prefix[-1] if prefix else None
                for label, p in zip(labels[step], values[step], strict=True):
                    if label == blank:
                        entry = candidates.setdefault(prefix, [NEG_INF, NEG_INF])
                        entry[0] = _logsumexp(entry[0], p_blank + p, p_label + p)
                        continue
                    extended = candidates.setdefault(prefix + (label,), [NEG_INF, NEG_INF])
                    if label == last:
                        # Only a blank in between makes a second label; otherwise the repeat merges.
                        extended[1] = _logsumexp(extended[1], p_blank + p)
                        same = candidates.setdefault(prefix, [NEG_INF, NEG_INF])
                        same[1] = _logsumexp(same[1], p_label + p)
                    else:
                        extended[1] = _logsumexp(extended[1], p_blank + p, p_label + p)
            ranked = sorted(candidates.items(), key=lambda item: _logsumexp(*item[1]), reverse=True)
            beams = dict(ranked[:beam_size])
        final = sorted(
            ((list(prefix), _logsumexp(*scores)) for prefix, scores in beams.items()),
            key=lambda item: item[1],
            reverse=True,
        )
        results.append(final[:n_best])
    return results


__all__ = [
    "CTCNet",
    "ConvSubsampling",
    "FrameStacking",
    "GreedyCTCStreamDecoder",
    "StreamingRecognizer",
    "ctc_greedy_decode",
    "ctc_prefix_beam_search",
]
