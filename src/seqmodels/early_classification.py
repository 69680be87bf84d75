"""Early classification: how accurate a many-to-one classifier is after seeing only the start of each sequence.

A causal :class:`~seqmodels.nn.ManyToOneNet` predicts after every step (its step mode), so one ``stream`` pass over
a padded batch gives the prediction for every prefix at once; the prefixes are never re-run. The curve reads those
predictions after 10%, 20%, ..., 100% of *each sequence's own length*: ``ceil(p * length / 100)`` steps (at least
one). At 100% the prediction is the one ``forward`` makes from the whole sequence.

Shapes: N = batch, L = longest sequence, P = number of percentages, K = classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from seqmodels.nn.streaming import check_causal

PERCENTS: tuple[int, ...] = tuple(range(10, 101, 10))


def supports_early_classification(net: nn.Module) -> bool:
    """Whether ``net`` predicts after every step: it has ``stream`` and a unidirectional encoder."""
    encoder = getattr(net, "encoder", None)
    return (
        callable(getattr(net, "stream", None)) and encoder is not None and not getattr(encoder, "bidirectional", True)
    )


def steps_seen(lengths: Tensor, percents: Sequence[int] = PERCENTS) -> Tensor:
    """(N,) lengths -> (N, P) steps seen at each percentage: ``ceil(p * length / 100)``, at least 1 (exact integers)."""
    for p in percents:
        if not isinstance(p, int) or not 0 < p <= 100:
            raise ValueError(f"percents must be integers in (0, 100], got {p!r}")
    percent = torch.tensor(list(percents), dtype=torch.int64, device=lengths.device)
    steps = (lengths.to(torch.int64).unsqueeze(1) * percent + 99) // 100
    return steps.clamp(min=1)


def prefix_predictions(net: nn.Module, inputs: Tensor, lengths: Tensor, percents: Sequence[int] = PERCENTS) -> Tensor:
    """The outputs of ``net`` after each percentage of every sequence, from one ``stream`` pass.

    Args:
        net: a :class:`~seqmodels.nn.ManyToOneNet` (anything with ``stream``) with a unidirectional encoder.
        inputs: (N, L) token ids or (N, L, C) features, padded past each length.
        lengths: (N,) true lengths in [1, L].
        percents: integer percentages in (0, 100].

    Returns (N, P, K): ``out[i, j]`` equals ``net(inputs[i : i + 1, :k], [k])[0]`` with k the steps seen of row i at
    ``percents[j]`` (steps past a row's length are computed but never read: the network is causal).
    """
    if not callable(getattr(net, "stream", None)):
        raise ValueError(
            f"early classification needs a network with a step mode (stream), got {type(net).__name__}; "
            "use a ManyToOneNet"
        )
    check_causal(getattr(net, "encoder", None), f"{type(net).__name__}'s encoder")
    outputs, _ = net.stream(inputs)  # (N, L, K)
    index = steps_seen(lengths.to(outputs.device), percents) - 1  # (N, P)
    return outputs.gather(1, index.unsqueeze(-1).expand(-1, -1, outputs.shape[-1]))


class EarlyAccuracy(Metric):
    """Accuracy after each percentage of every sequence: ``update(prefix_logits (N, P, K), targets (N,))``.

    ``compute`` returns ``{"early_acc@10%": ..., ...}``; the counts are summed across processes.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, percents: Sequence[int] = PERCENTS) -> None:
        super().__init__()
        self.percents = tuple(percents)
        self.add_state("correct", torch.zeros(len(self.percents), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, prefix_logits: Tensor, targets: Tensor) -> None:  # type: ignore[override]
        self.correct += (prefix_logits.argmax(dim=-1) == targets.unsqueeze(1)).sum(dim=0)
        self.total += targets.numel()

    def compute(self) -> dict[str, Tensor]:
        accuracy = self.correct.double() / self.total.clamp(min=1)
        return {f"early_acc@{p}%": accuracy[i].float() for i, p in enumerate(self.percents)}


@torch.no_grad()
def early_accuracy_curve(
    net: nn.Module,
    dataloader: Iterable[Any],
    percents: Sequence[int] = PERCENTS,
    device: torch.device | str | None = None,
) -> dict[int, float]:
    """Accuracy at each percentage of each sequence's length over ``dataloader``: ``{10: 0.41, ..., 100: 0.97}``.

    ``dataloader`` yields batches with ``inputs``, ``lengths`` and class-id ``targets`` (a
    :class:`~seqmodels.data.batch.SequenceBatch`); each batch is streamed once, in eval mode (the network's mode
    comes back afterwards). ``device`` defaults to the network's.
    """
    device = device or next(net.parameters()).device
    metric = EarlyAccuracy(percents).to(device)
    was_training = net.training
    net.eval()
    try:
        for batch in dataloader:
            inputs, lengths, targets = (t.to(device) for t in (batch.inputs, batch.lengths, batch.targets))
            metric.update(prefix_predictions(net, inputs, lengths, percents), targets)
    finally:
        net.train(was_training)
    total = max(int(metric.total), 1)
    return {p: int(correct) / total for p, correct in zip(metric.percents, metric.correct.tolist(), strict=True)}


__all__ = [
    "PERCENTS",
    "EarlyAccuracy",
    "early_accuracy_curve",
    "prefix_predictions",
    "steps_seen",
    "supports_early_classification",
]
