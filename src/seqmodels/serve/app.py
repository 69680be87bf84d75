"""The FastAPI app over a backend, and :func:`serve`, which runs it with uvicorn."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as exc:  # pragma: no cover - the serve extra is missing
    raise ImportError(
        f"seqmodels-serve needs FastAPI and uvicorn ({exc}); install them with pip install 'seqmodels[serve]'"
    ) from None

from seqmodels.generate import TextPieces
from seqmodels.serve.backends import Backend, load_backend
from seqmodels.serve.batching import DynamicBatcher, GenerationScheduler, ModelError, Stats, Stream
from seqmodels.serve.requests import Limits, RequestError, _field, _int_in, _one_line, check_host


class _Server:
    """The state behind one app: the backend, its batchers (started with the app), the stats, the handlers."""

    def __init__(self, backend: Backend, limits: Limits) -> None:
        self.backend, self.limits, self.stats = backend, limits, Stats()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqmodels-model")
        self.offered = backend.endpoints()
        self.workers: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        backend, args = self.backend, (self.executor, self.limits, self.stats)
        if "/predict" in self.offered:
            self.workers["predict"] = DynamicBatcher("predict", backend.run_predict, *args)
        if "/forecast" in self.offered:
            self.workers["forecast"] = DynamicBatcher("forecast", backend.run_forecast, *args)
        if "/generate" in self.offered:
            self.workers["generate"] = GenerationScheduler(backend, *args)  # type: ignore[arg-type]
        for worker in self.workers.values():
            worker.start()
        try:
            yield
        finally:
            for worker in self.workers.values():
                if worker.task is not None:
                    worker.task.cancel()
            self.executor.shutdown(wait=False, cancel_futures=True)

    def routes(self) -> list[str]:
        return ["/health", "/metadata", "/stats", *self.offered]

    async def http_error(self, request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error(404, f"no endpoint {request.url.path}; this server offers {', '.join(self.routes())}")
        if exc.status_code == 405:
            return _error(405, f"{request.method} is not allowed on {request.url.path}; see GET /metadata")
        return _error(exc.status_code, _one_line(exc.detail if isinstance(exc.detail, str) else exc))

    async def unexpected(self, request: Any, exc: Exception) -> Any:
        return _error(500, f"internal error: {type(exc).__name__}: {_one_line(exc)}")

    def _not_offered(self, path: str) -> Any:
        others = ", ".join(self.offered) or "none"
        return _error(
            404, f"this {self.backend.name} checkpoint does not offer {path}; it offers {others} (see /metadata)"
        )

    async def health(self) -> dict[str, Any]:
        return {"status": "ok", "task": self.backend.name}

    async def metadata(self) -> dict[str, Any]:
        limits = self.limits
        meta = self.backend.metadata()
        meta["endpoints"] = self.routes()
        meta["limits"] = {
            "max_batch_size": limits.max_batch_size,
            "max_wait_ms": limits.max_wait_ms,
            "max_input_length": limits.max_input_length,
            "max_items": limits.max_items,
            "max_request_bytes": limits.max_request_bytes,
            "max_new_tokens": limits.max_new_tokens,
        }
        return meta

    async def get_stats(self) -> dict[str, Any]:
        return self.stats.to_dict()

    async def predict(self, request: Any) -> Any:
        if "/predict" not in self.offered:
            return self._not_offered("/predict")

        async def body() -> Any:
            items = self.backend.prepare_predict(await _read_json(request, self.limits), self.limits)
            return {"results": await self.workers["predict"].submit(items)}

        return await _guarded(self.stats, "predict", body)

    async def forecast(self, request: Any) -> Any:
        if "/forecast" not in self.offered:
            return self._not_offered("/forecast")

        async def body() -> Any:
            items = self.backend.prepare_forecast(await _read_json(request, self.limits), self.limits)
            return (await self.workers["forecast"].submit(items))[0]

        return await _guarded(self.stats, "forecast", body)

    async def generate(self, request: Any) -> Any:
        if "/generate" not in self.offered:
            return self._not_offered("/generate")

        async def body() -> Any:
            payload = await _read_json(request, self.limits)
            stream = _new_stream(self.backend, payload, self.limits)  # type: ignore[arg-type]
            self.workers["generate"].submit(stream)
            if not _field(payload, "stream", bool, True):
                return await _collect(stream)
            return StreamingResponse(_sse(stream), media_type="text/event-stream")

        return await _guarded(self.stats, "generate", body)


def create_app(backend: Backend, limits: Limits | None = None) -> Any:
    """The FastAPI app serving ``backend``; its batchers start with the app (lifespan) and stop with it.

    ``app.state.stats`` holds the :class:`Stats` that ``GET /stats`` reports.
    """
    server = _Server(backend, (limits or Limits()).check())
    app = FastAPI(title=f"seqmodels-serve: {backend.name}", lifespan=server.lifespan)
    app.state.stats = server.stats
    app.add_exception_handler(StarletteHTTPException, server.http_error)
    app.add_exception_handler(Exception, server.unexpected)

    async def predict(request: Request) -> Any:
        return await server.predict(request)

    async def forecast(request: Request) -> Any:
        return await server.forecast(request)

    async def generate(request: Request) -> Any:
        return await server.generate(request)

    app.get("/health")(server.health)
    app.get("/metadata")(server.metadata)
    app.get("/stats")(server.get_stats)
    app.post("/predict")(predict)
    app.post("/forecast")(forecast)
    app.post("/generate")(generate)
    return app


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_json(request: Any, limits: Limits) -> dict[str, Any]:
    """The request body as a JSON object, at most ``max_request_bytes`` long (413 beyond, 400 if not JSON)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_request_bytes:
        raise RequestError(
            f"the request body has {declared} bytes, more than max_request_bytes={limits.max_request_bytes}; "
            "send less per request",
            413,
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limits.max_request_bytes:
            raise RequestError(
                f"the request body is over max_request_bytes={limits.max_request_bytes}; send less per request", 413
            )
    if not body.strip():
        raise RequestError("the request body is empty; send a JSON object (Content-Type: application/json)")
    try:
        payload = json.loads(bytes(body))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"the request body is not valid JSON ({exc}); send a JSON object") from None
    if not isinstance(payload, dict):
        raise RequestError(f"the request body must be a JSON object, got {type(payload).__name__}")
    return payload


async def _guarded(stats: Stats, endpoint: str, body: Callable[[], Any]) -> Any:
    """Runs a handler's ``body``; a refused request becomes its 4xx, a model failure a 500, both one JSON line."""
    stats.requests[endpoint] += 1
    try:
        return await body()
    except RequestError as exc:
        stats.errors[endpoint] += 1
        return _error(exc.status, _one_line(exc))
    except ModelError as exc:
        stats.errors[endpoint] += 1
        return _error(500, str(exc))
    except (ValueError, TypeError, KeyError, FileNotFoundError) as exc:  # the data layer refused the input
        stats.errors[endpoint] += 1
        return _error(400, _one_line(exc))


async def _collect(stream: Stream) -> Any:
    """A /generate answer with ``stream: false``: the final event, with the ids of the new tokens."""
    tokens = []
    try:
        while True:
            event = await stream.events.get()
            if "error" in event:
                return _error(event["status"], event["error"])
            if event.get("done"):
                return {**event, "token_ids": tokens}
            tokens.append(event["id"])
    finally:
        stream.cancelled = True  # a client that left stops its stream at the next step


def _new_stream(backend: Any, payload: dict[str, Any], limits: Limits) -> Stream:
    prompt = _field(payload, "prompt", str, what='"prompt": the text to continue')
    if not prompt.strip():
        raise RequestError('"prompt" is empty; send some text to continue')
    if len(prompt) > limits.max_input_length:
        raise RequestError(
            f'"prompt" has {len(prompt)} characters, more than max_input_length={limits.max_input_length}; shorten it'
        )
    max_new_tokens = _int_in(payload, "max_new_tokens", min(200, limits.max_new_tokens), 1, limits.max_new_tokens)
    temperature = _field(payload, "temperature", float, 1.0)
    if not math.isfinite(temperature) or temperature < 0:
        raise RequestError(f'"temperature" must be a finite number >= 0 (0 is greedy), got {temperature}')
    top_k = _field(payload, "top_k", int, None)
    if top_k is not None and top_k < 0:
        raise RequestError(f'"top_k" must be an integer >= 0 or null (0 or null: no cut), got {top_k}')
    top_p = _field(payload, "top_p", float, None)
    if top_p is not None and not 0 < top_p <= 1:
        raise RequestError(f'"top_p" must be a number in (0, 1] or null, got {top_p}')
    seed = _field(payload, "seed", int, 0)
    ids = backend.encode_prompt(prompt)
    pieces = TextPieces(backend.decode, ids[backend.skip :])
    return Stream(
        ids=list(ids),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k or None,
        top_p=top_p,
        generator=backend.new_generator(seed),
        events=asyncio.Queue(),
        pieces=pieces,
        prompt_length=len(ids) - backend.skip,
    )


async def _sse(stream: Stream) -> AsyncIterator[bytes]:
    """One ``data:`` JSON event per token, then a final event with the full text (or an error event)."""
    try:
        while True:
            event = await stream.events.get()
            yield f"data: {json.dumps(event)}\n\n".encode()
            if event.get("done") or "error" in event:
                return
    finally:
        stream.cancelled = True  # the client left (or the stream ended): the scheduler drops it


def serve(
    ckpt_path: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    allow_remote: bool = False,
    device: str = "cpu",
    limits: Limits | None = None,
    log_level: str = "warning",
    ready: Callable[[str], None] | None = None,
) -> None:
    """Loads ``ckpt_path`` and serves it until interrupted (uvicorn, one process)."""
    import uvicorn

    host = check_host(host, allow_remote)
    limits = (limits or Limits()).check()
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer in [0, 65535], got {port!r}")
    backend = load_backend(ckpt_path, device)
    app = create_app(backend, limits)
    if ready is not None:
        ready(f"serving {ckpt_path} ({backend.name}: {', '.join(backend.endpoints())}) on http://{host}:{port}")
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
