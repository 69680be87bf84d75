"""Benchmark: an exported ONNX sequence classifier in onnxruntime vs the same network in PyTorch.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/benchmark_export.py [--hidden 128] [--threads 1]

The network is a text classifier of the ``text_classification`` shape: token embedding (vocabulary 5000, 64),
a two-layer bidirectional LSTM, attention pooling, two classes (random weights; speed does not depend on them).
Exported with ``seqmodels.export.export_sequence_net`` (lengths input, no packing). Printed:

1. export time, file size, and the largest difference from PyTorch on a ragged batch;
2. latency of one sequence of 50 tokens (median of 200 calls);
3. throughput on batches of 64 sequences with lengths drawn from 10-200 (sequences/s, median of 20 batches).

PyTorch runs the packed model under ``torch.inference_mode``; both use ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from benchmark_common import environment, spread, time_calls

from seqmodels.export import ExportedModel, export_sequence_net
from seqmodels.nn import ManyToOneNet, RecurrentEncoder, TokenEmbedding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import onnxruntime

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    encoder = RecurrentEncoder("lstm", 64, args.hidden, num_layers=2, bidirectional=True, batch_first=True)
    net = ManyToOneNet(encoder, 2, frontend=TokenEmbedding(5000, 64), pooling="attention").eval()
    model = ExportedModel(net, "probs", per_step=False).eval()

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "classifier.onnx"
        start = time.perf_counter()
        report = export_sequence_net(net, "probs", False, path)
        export_seconds = time.perf_counter() - start
        size_kb = path.stat().st_size / 1024
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = args.threads
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    print(f"{environment(f'onnxruntime {onnxruntime.__version__}')}; bi-LSTM 2 x {args.hidden}, attention pooling")
    print(
        f"export: {export_seconds:.1f} s, {size_kb:.0f} KiB; onnxruntime vs PyTorch max |diff| "
        f"{report.max_abs_diff:.1e}"
    )

    g = torch.Generator().manual_seed(1)

    def run_both(inputs: torch.Tensor, lengths: torch.Tensor, repeats: int) -> tuple[float, float]:
        feeds = {"inputs": inputs.numpy(), "lengths": lengths.numpy()}
        with torch.inference_mode():
            model(inputs, lengths)  # warm-up
            ours = spread(time_calls(lambda: model(inputs, lengths), repeats)).median
        session.run(None, feeds)
        ort = spread(time_calls(lambda: session.run(None, feeds), repeats)).median
        return ours, ort

    one = torch.randint(1, 5000, (1, 50), generator=g)
    ours, ort = run_both(one, torch.tensor([50]), 200)
    print(f"one sequence of 50 tokens: PyTorch {ours * 1e3:.2f} ms, onnxruntime {ort * 1e3:.2f} ms ({ours / ort:.2f}x)")

    torch_rates, ort_rates = [], []
    for _ in range(20):
        lengths = torch.randint(10, 201, (64,), generator=g)
        inputs = torch.randint(1, 5000, (64, int(lengths.max())), generator=g)
        inputs[torch.arange(inputs.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)] = 0
        ours, ort = run_both(inputs, lengths, 1)
        torch_rates.append(64 / ours)
        ort_rates.append(64 / ort)
    ours, ort = spread(torch_rates).median, spread(ort_rates).median
    print(
        f"batches of 64, lengths 10-200: PyTorch {ours:,.0f} sequences/s, onnxruntime {ort:,.0f} sequences/s "
        f"({ort / ours:.2f}x)"
    )


if __name__ == "__main__":
    main()
