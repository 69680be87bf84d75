"""Batching: :class:`DynamicBatcher` for /predict and /forecast, :class:`GenerationScheduler` (one batched step for
all active /generate streams), and the :class:`Stats` that show it."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from seqmodels.generate import TextPieces
from seqmodels.serve.backends import Item
from seqmodels.serve.requests import Limits, _one_line


class Stats:
    """Sizes of the batches each endpoint ran (``GET /stats``): proof that batching batches."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
        self.requests: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()

    def batch(self, endpoint: str, size: int) -> None:
        with self.lock:
            self.batches[endpoint][size] += 1

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            out: dict[str, Any] = {"requests": dict(self.requests), "errors": dict(self.errors), "batches": {}}
            for endpoint, sizes in self.batches.items():
                total = sum(sizes.values())
                out["batches"][endpoint] = {
                    "count": total,
                    "max_size": max(sizes),
                    "mean_size": sum(s * n for s, n in sizes.items()) / total,
                    "sizes": {str(s): n for s, n in sorted(sizes.items())},
                }
            return out


class ModelError(RuntimeError):
    """The model failed on a batch: every request in it gets a 500 with this line."""


class DynamicBatcher:
    """Queues items; runs ``run`` on up to ``max_batch_size`` of them when that many wait or ``max_wait_ms`` has
    passed since the oldest arrived. ``run`` goes to ``executor`` (one thread): the event loop stays free."""

    def __init__(
        self,
        name: str,
        run: Callable[[list[Item]], list[Any]],
        executor: ThreadPoolExecutor,
        limits: Limits,
        stats: Stats,
    ) -> None:
        self.name, self.run, self.executor, self.limits, self.stats = name, run, executor, limits, stats
        self.queue: collections.deque[tuple[Item, asyncio.Future[Any], float]] = collections.deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def submit(self, items: list[Item]) -> list[Any]:
        loop = asyncio.get_running_loop()
        futures = []
        for item in items:
            future: asyncio.Future[Any] = loop.create_future()
            self.queue.append((item, future, time.monotonic()))
            futures.append(future)
        self.wake.set()
        return list(await asyncio.gather(*futures))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.wake.clear()
                await self.wake.wait()
            deadline = self.queue[0][2] + self.limits.max_wait_ms / 1000.0
            while len(self.queue) < self.limits.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), remaining)
                except TimeoutError:
                    break
            taken = [self.queue.popleft() for _ in range(min(len(self.queue), self.limits.max_batch_size))]
            taken = [entry for entry in taken if not entry[1].done()]  # a client that gave up is not computed
            if not taken:
                continue
            self.stats.batch(self.name, len(taken))
            try:
                results = await loop.run_in_executor(self.executor, self.run, [item for item, _, _ in taken])
            except Exception as exc:  # the model failed: every request of the batch hears it
                error = ModelError(f"the model failed on this batch: {type(exc).__name__}: {_one_line(exc)}")
                for _, future, _ in taken:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future, _), result in zip(taken, results, strict=True):
                if not future.done():
                    future.set_result(result)


@dataclass
class Stream:
    """One /generate request: its ids, own state, own generator and sampling settings."""

    ids: list[int]
    max_new_tokens: int
    temperature: float
    top_k: int | None
    top_p: float | None
    generator: Any  # the backend's own: a torch.Generator, or numpy's for an exported graph
    events: asyncio.Queue[dict[str, Any]]
    pieces: TextPieces
    prompt_length: int
    logits: Tensor | None = None
    state: Any = None
    generated: int = 0
    finished: bool = False
    cancelled: bool = False
    pending: list[dict[str, Any]] = field(default_factory=list)  # events of the round that just ran


class GenerationScheduler:
    """Continuous batching of /generate streams: one batched recurrent step per round for every active stream.

    A new stream's prompt is read (alone) before the round it joins; each round samples one token per stream
    (each with its own generator, from its own row of logits), sends it as an event, retires the streams that are
    done, then concatenates the states of the rest along the batch dimension and steps them together.
    """

    def __init__(self, backend: Any, executor: ThreadPoolExecutor, limits: Limits, stats: Stats) -> None:
        self.backend, self.executor, self.limits, self.stats = backend, executor, limits, stats
        self.waiting: collections.deque[Stream] = collections.deque()
        self.active: list[Stream] = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    def submit(self, stream: Stream) -> None:
        self.waiting.append(stream)
        self.wake.set()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.active and not self.waiting:
                self.wake.clear()
                await self.wake.wait()
            joining = []
            while self.waiting and len(self.active) + len(joining) < self.limits.max_batch_size:
                stream = self.waiting.popleft()
                if not stream.cancelled:
                    joining.append(stream)
            try:
                touched = await loop.run_in_executor(self.executor, self._round, joining)
            except Exception as exc:  # the batched step failed: every stream in it hears it, then ends
                message = f"the model failed during generation: {type(exc).__name__}: {_one_line(exc)}"
                for stream in {id(s): s for s in [*self.active, *joining]}.values():
                    stream.finished = True
                    stream.events.put_nowait({"error": message, "status": 500})
                self.active = []
                continue
            for stream in touched:
                for event in stream.pending:
                    stream.events.put_nowait(event)
                stream.pending = []
            self.active = [s for s in self.active if not s.finished and not s.cancelled]
            await asyncio.sleep(0)  # let handlers read their events and new requests arrive

    def _round(self, joining: list[Stream]) -> list[Stream]:
        """On the worker thread: read new prompts, draw one token per stream, step the ones that go on.

        Returns the streams with events to send. A prompt the model fails on ends its own stream only.
        """
        backend = self.backend
        failed = []
        for stream in joining:
            try:
                stream.logits, stream.state = backend.start(stream.ids)
            except Exception as exc:
                message = f"the model failed on this prompt: {type(exc).__name__}: {_one_line(exc)}"
                stream.finished = True
                stream.pending = [{"error": message, "status": 500}]
                failed.append(stream)
                continue
            self.active.append(stream)
        going_on = []
        for stream in self.active:
            stream.pending = []
            if stream.cancelled:
                continue
            token = backend.sample(stream)
            stream.ids.append(token)
            stream.generated += 1
            eos = backend.stop_id is not None and token == backend.stop_id
            stream.pending.append({"token": stream.pieces.add(token), "id": token, "index": stream.generated - 1})
            if eos or stream.generated >= stream.max_new_tokens:
                stream.finished = True
                ids = stream.ids[backend.skip :]
                stream.pending.append(
                    {
                        "done": True,
                        "text": backend.decode(ids),
                        "completion": backend.decode(ids)[len(backend.decode(ids[: stream.prompt_length])) :],
                        "tokens": stream.generated,
                        "finish_reason": "eos" if eos else "length",
                    }
                )
            else:
                going_on.append(stream)
        touched = [*failed, *self.active]
        if not going_on:
            return touched
        self.stats.batch("generate", len(going_on))
        tokens = [stream.ids[-1] for stream in going_on]
        logits, state = backend.step(tokens, backend.cat_states([stream.state for stream in going_on]))
        for row, (stream, part) in enumerate(zip(going_on, backend.split_state(state, len(going_on)), strict=True)):
            stream.logits, stream.state = logits[row : row + 1], part
        return touched
