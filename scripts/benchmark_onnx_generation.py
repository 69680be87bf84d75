"""Benchmark: token-by-token generation from an exported char language model, onnxruntime vs PyTorch.

    .venv/bin/python scripts/benchmark_onnx_generation.py [--tokens 200] [--rounds 10]

The model has the size of ``experiment=char_lm``: embedding 64, a 2 x 256 LSTM, a vocabulary of 100 characters,
random weights (speed does not depend on them). It is exported with ``seqmodels.export.export_language_model``
and run by ``seqmodels.runtime`` (numpy + onnxruntime); PyTorch runs ``RecurrentLanguageModel.step`` under
``torch.inference_mode``. Both sides run the same greedy loop (one step, then the argmax) and must produce the
same tokens.

For 1 and 2 threads (``torch.set_num_threads`` / onnxruntime's intra-op threads) and batches of 1 and 16 rows:
per-token latency (median and 95th percentile of every timed step) and throughput (tokens/s, all rows counted).
Each round generates ``--tokens`` tokens with PyTorch and with onnxruntime back to back, the order alternating
from round to round, so that a machine whose speed drifts slows both sides alike; the ratio of each round's
medians is reported as its spread. Writes ``benchmarks/onnx_generation.json`` and prints a markdown table.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: both engines live in one process and take turns, and a spinning
# pool would take a core from the other (onnxruntime's pool is set alike, spinning=False). Before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import statistics
import string
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from benchmark_common import spread

from seqmodels import runtime
from seqmodels.export import export_language_model
from seqmodels.nn import RecurrentLanguageModel

VOCAB = 100
ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def torch_loop(net: RecurrentLanguageModel, prompt: torch.Tensor, tokens: int) -> tuple[list[float], list[int]]:
    """Step seconds of each new token, and the first row's tokens."""
    seconds, out = [], []
    with torch.inference_mode():
        state = None
        for index in range(prompt.shape[1]):
            logits, state = net.step(prompt[:, index], state)
        for _ in range(tokens):
            start = time.perf_counter()
            token = logits.argmax(-1)
            logits, state = net.step(token, state)
            seconds.append(time.perf_counter() - start)
            out.append(int(token[0]))
    return seconds, out


def onnx_loop(model: runtime.LanguageModelRuntime, prompt: np.ndarray, tokens: int) -> tuple[list[float], list[int]]:
    seconds, out = [], []
    logits, state = model.read(prompt)
    for _ in range(tokens):
        start = time.perf_counter()
        token = logits.argmax(-1)
        logits, state = model.step(token, state)
        seconds.append(time.perf_counter() - start)
        out.append(int(token[0]))
    return seconds, out


def summary(seconds: list[float], batch: int) -> dict[str, float]:
    return {
        "median_ms": statistics.median(seconds) * 1e3,
        "p95_ms": percentile(seconds, 95) * 1e3,
        "tokens_per_s": batch * len(seconds) / sum(seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=200, help="new tokens per round")
    parser.add_argument("--rounds", type=int, default=10, help="paired rounds per setting")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "onnx_generation.json")
    args = parser.parse_args()
    import onnxruntime

    torch.manual_seed(0)
    net = RecurrentLanguageModel(VOCAB, embedding_dim=64, hidden_size=256, num_layers=2, cell="lstm").eval()
    characters = list((string.printable + "äöüßéèàçñ")[: VOCAB - 2])
    vocabulary = {
        "tokens": ["<pad>", "<unk>", *characters],
        "tokenizer": {"type": "char", "lowercase": False},
        "special_ids": {"pad": 0, "unk": 1, "bos": None, "eos": None},
        "prompt_prefix": [],
        "stop_id": None,
    }
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "char_lm.onnx"
        start = time.perf_counter()
        report = export_language_model(net, path, vocabulary)
        export_seconds = time.perf_counter() - start
        for threads in (1, 2):
            torch.set_num_threads(threads)
            model = runtime.load(path, threads=threads, spinning=False)
            for batch in (1, 16):
                g = torch.Generator().manual_seed(batch)
                prompt = torch.randint(2, VOCAB, (batch, 20), generator=g)
                torch_loop(net, prompt, 20), onnx_loop(model, prompt.numpy(), 20)  # warm-up
                times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
                ratios = []
                for round_index in range(args.rounds):
                    order = ["torch", "onnxruntime"] if round_index % 2 == 0 else ["onnxruntime", "torch"]
                    got: dict[str, tuple[list[float], list[int]]] = {}
                    for engine in order:
                        if engine == "torch":
                            got[engine] = torch_loop(net, prompt, args.tokens)
                        else:
                            got[engine] = onnx_loop(model, prompt.numpy(), args.tokens)
                        times[engine] += got[engine][0]
                    if got["torch"][1] != got["onnxruntime"][1]:
                        raise SystemExit("onnxruntime and PyTorch generated different greedy tokens")
                    ratios.append(statistics.median(got["torch"][0]) / statistics.median(got["onnxruntime"][0]))
                for engine in ("torch", "onnxruntime"):
                    rows.append({"threads": threads, "batch": batch, "engine": engine, **summary(times[engine], batch)})
                ratio = spread(ratios)
                rows[-1]["speedup_vs_torch"] = {"median": ratio.median, "min": ratio.low, "max": ratio.high}

    result = {
        "environment": f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {os.cpu_count()} CPUs "
        "(threads per row below)",
        "model": f"char LM, random weights: vocabulary {VOCAB}, embedding 64, LSTM 2 x 256 (experiment=char_lm size)",
        "tokens_per_round": args.tokens,
        "rounds": args.rounds,
        "export_seconds": round(export_seconds, 1),
        "max_abs_diff": report.max_abs_diff,
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{result['environment']}; {result['model']}")
    print(f"export {export_seconds:.1f} s; onnxruntime vs PyTorch max |diff| {report.max_abs_diff:.1e}")
    print()
    print("| threads | batch | engine | median ms/token | p95 ms/token | tokens/s | speed-up (paired rounds) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        speed = row.get("speedup_vs_torch")
        note = f"{speed['median']:.2f}x ({speed['min']:.2f}-{speed['max']:.2f})" if speed else ""
        print(
            f"| {row['threads']} | {row['batch']} | {row['engine']} | {row['median_ms']:.3f} | {row['p95_ms']:.3f} "
            f"| {row['tokens_per_s']:,.0f} | {note} |"
        )
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
