"""Turn a list of ``(inputs, target)`` items into one padded :class:`SequenceBatch`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from seqmodels.data.batch import SequenceBatch

TargetMode = Literal["auto", "stack", "pad"]


def _as_tensor(value: Any, what: str, position: int) -> Tensor:
    if isinstance(value, Tensor):
        tensor = value
    else:
        try:
            tensor = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"pad_collate: {what} of item {position} is not tensor-like ({type(value).__name__})"
            ) from err
    # Models run in float32: float64 (numpy's default) would clash with the weights' dtype.
    if tensor.dtype == torch.float64:
        tensor = tensor.to(torch.float32)
    return tensor


def _split_item(item: Any, position: int) -> tuple[Any, Any, Any]:
    """``(inputs, target[, condition])`` tuple, or a bare input sequence (unlabelled prediction data)."""
    if isinstance(item, Tensor):
        return item, None, None
    if isinstance(item, (tuple, list)) and 1 <= len(item) <= 3:
        inputs, target, condition = (*item, None, None)[:3]
        return inputs, target, condition
    raise TypeError(
        f"pad_collate: item {position} must be an (inputs, target) tuple or an input tensor, got {type(item).__name__}"
    )


def _check_inputs(inputs: list[Tensor]) -> None:
    """Raise for the first item whose inputs are not (L,) / (L, C) or differ from item 0's rank, channels, dtype."""
    first = inputs[0]
    for position, x in enumerate(inputs):
        if x.dim() not in (1, 2):
            raise ValueError(
                f"pad_collate: inputs of item {position} must be (L,) token ids or (L, C) features, "
                f"got shape {tuple(x.shape)}"
            )
        if x.dim() != first.dim() or x.shape[1:] != first.shape[1:] or x.dtype != first.dtype:
            raise ValueError(
                f"pad_collate: item {position} has inputs {tuple(x.shape)} {x.dtype}, but item 0 has "
                f"{tuple(first.shape)} {first.dtype}; all items must share rank, channels and dtype"
            )


def _collate_targets(
    targets: list[Tensor], target_padding_value: float, target_mode: TargetMode
) -> tuple[Tensor, Tensor | None]:
    ndims = {t.dim() for t in targets}
    if len(ndims) > 1:
        raise ValueError(f"pad_collate: targets mix ranks {sorted(ndims)} within one batch")
    ndim = ndims.pop()
    if ndim == 0:
        if target_mode == "pad":
            raise ValueError("pad_collate: target_mode='pad' needs sequence targets, got scalars")
        return torch.stack(targets), None
    same_shape = len({tuple(t.shape) for t in targets}) == 1
    if target_mode == "stack" or (target_mode == "auto" and same_shape):
        if not same_shape:
            raise ValueError(
                "pad_collate: target_mode='stack' needs equal-size targets, got shapes "
                f"{sorted({tuple(t.shape) for t in targets})}"
            )
        return torch.stack(targets), None
    target_lengths = torch.tensor([t.shape[0] for t in targets], dtype=torch.int64)
    padded = pad_sequence(targets, batch_first=True, padding_value=target_padding_value)
    return padded, target_lengths


def pad_collate(
    items: Sequence[Any],
    padding_value: float = 0.0,
    target_padding_value: float = -100,
    target_mode: TargetMode = "auto",
) -> SequenceBatch:
    """Pad variable-length sequences into a :class:`SequenceBatch`.

    Use with ``DataLoader(collate_fn=functools.partial(pad_collate, padding_value=pad_id))``.

    Args:
        items: ``(inputs, target)`` tuples (optionally ``(inputs, target, condition)``, or a bare ``inputs``
            tensor for unlabelled data). ``inputs`` is a ``(L,)`` int64 token sequence or a ``(L, C)`` float
            feature sequence; all items of a batch must agree on rank, dtype and ``C``.
        padding_value: fills ``inputs`` beyond each length (token inputs: the vocabulary's padding index).
        target_padding_value: fills variable-length targets beyond their length (``-100`` is what
            ``F.cross_entropy(ignore_index=-100)`` skips).
        target_mode: how 1-D (or higher) targets are combined. ``"auto"``: stack when every target in the
            batch has the same shape (fixed-size vectors -> ``(N, T)``), pad otherwise. ``"pad"``: always pad
            and return ``target_lengths`` (use for per-step/sequence targets, so batches that happen to be
            equal-length still carry ``target_lengths``). ``"stack"``: always stack. Scalar targets are always
            stacked to ``(N,)``.

    Returns:
        ``SequenceBatch`` with ``inputs`` ``(N, L)`` / ``(N, L, C)``, ``lengths`` ``(N,)`` int64, ``targets``
        ``(N,)`` / ``(N, T)`` / ``(N, L')`` (``None`` if items carry no target), ``target_lengths`` ``(N,)``
        int64 for padded targets, ``condition`` stacked ``(N, ...)`` when items provide one.
    """
    if target_mode not in ("auto", "stack", "pad"):
        raise ValueError(f"pad_collate: target_mode must be 'auto', 'stack' or 'pad', got {target_mode!r}")
    if len(items) == 0:
        raise ValueError("pad_collate: got an empty list of items")

    # This runs for every batch in the training loop's own thread: one cheap pass over the items, and the
    # item-by-item checks (for the error message) only once something is wrong.
    split = [_split_item(item, position) for position, item in enumerate(items)]
    inputs = [
        x if isinstance(x, Tensor) and x.dtype != torch.float64 else _as_tensor(x, "inputs", position)
        for position, (x, _, _) in enumerate(split)
    ]
    first = inputs[0]
    if len({(x.dim(), x.shape[1:], x.dtype) for x in inputs}) > 1 or first.dim() not in (1, 2):
        _check_inputs(inputs)
    targets = [_as_tensor(y, "target", position) for position, (_, y, _) in enumerate(split) if y is not None]
    conditions = [_as_tensor(c, "condition", position) for position, (_, _, c) in enumerate(split) if c is not None]
    if len(targets) not in (0, len(items)):
        raise ValueError(f"pad_collate: {len(targets)} of {len(items)} items have a target; all or none must")
    if len(conditions) not in (0, len(items)):
        raise ValueError(f"pad_collate: {len(conditions)} of {len(items)} items have a condition; all or none must")

    sizes = [x.shape[0] for x in inputs]
    lengths = torch.tensor(sizes, dtype=torch.int64)
    if min(sizes) == max(sizes):
        padded = torch.stack(inputs)  # nothing to pad: stacking is several times cheaper
    else:
        padded = pad_sequence(inputs, batch_first=True, padding_value=padding_value)

    batch_targets: Tensor | None = None
    target_lengths: Tensor | None = None
    if targets:
        batch_targets, target_lengths = _collate_targets(targets, target_padding_value, target_mode)

    condition = torch.stack(conditions) if conditions else None
    return SequenceBatch(
        inputs=padded,
        lengths=lengths,
        targets=batch_targets,
        target_lengths=target_lengths,
        condition=condition,
    )
