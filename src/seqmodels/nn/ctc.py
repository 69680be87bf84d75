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


__all__ = ["CTCNet", "ConvSubsampling", "FrameStacking", "ctc_greedy_decode", "ctc_prefix_beam_search"]
