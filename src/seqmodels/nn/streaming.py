"""Step mode: run a causal network one step (or one chunk) at a time, carrying a small, saveable state.

Every causal network in :mod:`seqmodels.nn` has the same three methods:

* ``initial_state(batch_size, device=None, dtype=None) -> state``: the all-zeros state of a fresh sequence.
* ``step(x_t, state) -> (y_t, state)``: one time step; ``x_t`` has no L dimension ((N,) token ids or (N, C)
  features) and ``y_t`` is the output for that step.
* ``stream(chunk, state) -> (y, state)``: T steps at once with the fused kernels: ``chunk`` (N, T, ...) ->
  ``y`` (N, T, ...).

``state=None`` means the initial state. The contract is equality: for any split of a sequence into chunks, the
concatenated ``stream``/``step`` outputs equal the network's full-sequence ``forward`` at every step (within
float rounding, in eval mode), so a prediction can be updated as each step arrives without re-running the prefix.
Only causal networks stream: a bidirectional encoder's output at step t depends on steps after t.

A state is a plain tensor structure (a Tensor, a tuple of Tensors, or a dict of those), so it moves with
:func:`map_state` and survives :func:`save_state` / :func:`load_state` (``torch.load(weights_only=True)``): a
stream can stop in one process and resume in another with identical outputs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import IO, Any, TypeAlias

import torch
from torch import Tensor

State: TypeAlias = Tensor | tuple[Tensor, ...] | dict[str, Any]
"""A recurrent state: a Tensor, a tuple of Tensors, or a dict whose values are States."""


def map_state(fn: Callable[[Tensor], Tensor], state: State) -> State:
    """``fn`` applied to every tensor of ``state``, keeping its structure (e.g. ``lambda t: t.to("cuda")``)."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, tuple):
        return tuple(map_state(fn, s) for s in state)
    if isinstance(state, dict):
        return {key: map_state(fn, value) for key, value in state.items()}
    raise TypeError(f"a state holds Tensors, tuples and dicts only, got {type(state).__name__}")


def save_state(state: State, f: str | os.PathLike | IO[bytes]) -> None:
    """Writes ``state`` to a path or a binary buffer (tensors are saved on their devices; load with map_location)."""
    map_state(lambda t: t, state)  # refuses anything but tensors, tuples and dicts before writing
    torch.save(state, f)


def load_state(f: str | os.PathLike | IO[bytes], map_location: str | torch.device | None = None) -> State:
    """Reads a state written by :func:`save_state`; ``weights_only=True``, so it never runs pickled code."""
    return torch.load(f, map_location=map_location, weights_only=True)


def check_causal(encoder: Any, network: str) -> None:
    """One-line refusal when ``encoder`` is bidirectional: step/stream outputs would depend on future steps."""
    if getattr(encoder, "bidirectional", False):
        raise ValueError(
            f"step/stream need a causal network: this {network} is bidirectional; train with bidirectional=false"
        )


__all__ = ["State", "check_causal", "load_state", "map_state", "save_state"]
