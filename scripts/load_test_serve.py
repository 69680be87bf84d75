"""A bounded load test of ``seqmodels-serve`` on 127.0.0.1: throughput and latency, dynamic batching on and off.

    python scripts/load_test_serve.py                      # writes benchmarks/serve_load.json, prints a table
    python scripts/load_test_serve.py --requests 64 --time-limit 300

Two checkpoints are trained here for two batches each (their answers do not matter, their sizes do): the
``text_classification`` experiment's classifier (embedding 64, bidirectional GRU 64, attention pooling) on its
bundled demo reviews, and the ``char_lm`` experiment's language model (embedding 64, 2-layer LSTM 256) on a small
text. Each is served by the real CLI (``python -m seqmodels.cli.serve``, one process, one torch thread) with
``max_batch_size=32`` (batching on) and ``max_batch_size=1`` (off); httpx async clients then send a fixed number of
requests at concurrency 1, 8 and 32: /predict with one review each, /generate with ``max_new_tokens`` new tokens each
(``stream: false``, sampled, a seed per request). Every request must be answered with 200, none lost; the whole run
stops with an error past ``--time-limit`` seconds. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import torch

ROOT = Path(__file__).resolve().parents[1]
REVIEWS = [
    "works well, great value",
    "broke after two days, would not buy again",
    "the battery lasts forever and it charges fast",
    "ok for the price",
    "terrible customer service and the box was damaged",
    "exactly as described, arrived early",
    "the screen scratches too easily",
    "my kids love it",
]
PROMPTS = ["the ", "a dog ", "def main(", "import ", "class ", "return "]
COMMON = [
    "test=false",
    "logger=none",
    "~callbacks.rich_progress_bar",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
]


def train_checkpoints(root: Path) -> dict[str, tuple[Path, int]]:
    """The two checkpoints and their parameter counts."""
    from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
    from seqmodels.config import compose_run_config
    from seqmodels.train import train

    corpus = root / "corpus.txt"
    corpus.write_text(Path(asyncio.__file__).with_name("tasks.py").read_text(encoding="utf-8"), encoding="utf-8")
    specs = {
        "classifier": ["experiment=text_classification", "~callbacks.early_stopping"],
        "language_model": [
            "experiment=char_lm",
            f"data.path={corpus}",
            "data.pattern=*.txt",
            "~callbacks.early_stopping",
            "~callbacks.generation_samples",
        ],
    }
    out = {}
    for name, overrides in specs.items():
        result = train(compose_run_config([*overrides, *COMMON], output_dir=root / name))
        path = Path(str(result.best_model_path))
        model, _ = build_from_checkpoint(load_checkpoint(path), setup_data=False)
        out[name] = (path, sum(p.numel() for p in model.parameters()))
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CliServer:
    """``python -m seqmodels.cli.serve`` on 127.0.0.1 and a free port; terminated on leaving."""

    def __init__(self, ckpt: Path, max_batch_size: int, max_wait_ms: float, deadline: float) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            sys.executable,
            "-m",
            "seqmodels.cli.serve",
            f"ckpt_path={ckpt}",
            "host=127.0.0.1",
            f"port={self.port}",
            f"max_batch_size={max_batch_size}",
            f"max_wait_ms={max_wait_ms}",
        ]
        self.deadline = deadline
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> CliServer:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
        self.process = subprocess.Popen(self.args, env=env, stderr=subprocess.PIPE, text=True)
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"seqmodels-serve exited: {self.process.communicate()[1]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > self.deadline:
                self.__exit__()
                raise SystemExit("time limit reached while starting seqmodels-serve")
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def run_load(url: str, path: str, payloads: list[dict[str, Any]], concurrency: int, deadline: float) -> dict:
    """Sends every payload once, ``concurrency`` at a time; latencies per request and the wall time."""
    latencies: list[float] = []
    failures: list[str] = []
    next_index = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < len(payloads):
            payload = payloads[next_index]
            next_index += 1
            start = time.perf_counter()
            response = await client.post(path, json=payload)
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                failures.append(f"{response.status_code}: {response.text[:200]}")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = max(deadline - time.monotonic(), 1.0)
    name = path.strip("/")
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        before = (await client.get("/stats")).json()["batches"].get(name, {}).get("sizes", {})
        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker(client) for _ in range(concurrency))), timeout)
        wall = time.perf_counter() - start
        after = (await client.get("/stats")).json()["batches"].get(name, {}).get("sizes", {})
    # /stats counts since the server started: this run's batches are the difference.
    sizes = {int(size): count - before.get(size, 0) for size, count in after.items() if count > before.get(size, 0)}
    batches = sum(sizes.values())
    if failures or len(latencies) != len(payloads):
        raise SystemExit(f"{len(failures)} failed, {len(payloads) - len(latencies)} lost: {failures[:3]}")
    latencies.sort()
    return {
        "requests": len(payloads),
        "wall_s": wall,
        "throughput_rps": len(payloads) / wall,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "batches": batches,
        "mean_batch_size": sum(size * count for size, count in sizes.items()) / max(batches, 1),
        "max_batch_size_seen": max(sizes, default=0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=256, help="classifier requests per setting")
    parser.add_argument("--generate-requests", type=int, default=64, help="generation requests per setting")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--time-limit", type=float, default=900.0, help="seconds for the whole run")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "serve_load.json"))
    args = parser.parse_args()
    deadline = time.monotonic() + args.time_limit

    with tempfile.TemporaryDirectory(prefix="serve_load_") as folder:
        checkpoints = train_checkpoints(Path(folder))
        rows = []
        for model, (ckpt, params) in checkpoints.items():
            generating = model == "language_model"
            count = args.generate_requests if generating else args.requests
            if generating:
                endpoint = "/generate"
                payloads = [
                    {"prompt": PROMPTS[i % len(PROMPTS)], "max_new_tokens": args.max_new_tokens, "seed": i}
                    | {"temperature": 0.8, "stream": False}
                    for i in range(count)
                ]
            else:
                endpoint = "/predict"
                payloads = [{"text": REVIEWS[i % len(REVIEWS)]} for i in range(count)]
            for batching, max_batch_size in (("on", 32), ("off", 1)):
                with CliServer(ckpt, max_batch_size, args.max_wait_ms, deadline) as server:
                    for concurrency in (1, 8, 32):
                        result = asyncio.run(run_load(server.url, endpoint, payloads, concurrency, deadline))
                        row = {
                            "model": model,
                            "parameters": params,
                            "endpoint": endpoint,
                            "batching": batching,
                            "max_batch_size": max_batch_size,
                            "concurrency": concurrency,
                            **result,
                        }
                        rows.append(row)
                        print(
                            f"{model} {endpoint} batching={batching} c={concurrency}: "
                            f"{result['throughput_rps']:.1f} req/s, p50 {result['p50_ms']:.1f} ms, "
                            f"p99 {result['p99_ms']:.1f} ms",
                            file=sys.stderr,
                            flush=True,
                        )
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "server_threads": 1,
        },
        "settings": {
            "max_wait_ms": args.max_wait_ms,
            "max_new_tokens": args.max_new_tokens,
            "classifier_requests": args.requests,
            "generate_requests": args.generate_requests,
        },
        "results": rows,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(markdown_table(rows))
    print(f"\nwrote {args.output}", file=sys.stderr)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | endpoint | batching | concurrency | requests | req/s | p50 ms | p99 ms | mean batch (per step) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['endpoint']} | {row['batching']} | {row['concurrency']} | {row['requests']} | "
            f"{row['throughput_rps']:.1f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
            f"{row['mean_batch_size']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
