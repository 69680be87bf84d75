"""ONNX export of seqmodels' own engines (MODERN_CELLS): accuracy and speed of the exported graph in onnxruntime
against the PyTorch engine.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/benchmark_engine_export.py [--hidden 64] [--layers 1] [--cells ...]

Per cell: a RecurrentEncoder (input 16, ``--hidden``, ``--layers``, unidirectional; mLSTM and sLSTM with 4 heads,
QRNN with window 2) in a graph that returns its outputs and every final state tensor, exported with dynamic batch
and length (traced at N = 3, L = 13). Printed: export time; the largest absolute difference of the outputs and the
largest relative difference of the final states (|diff| / max(1, max |value|)) against the PyTorch engine on a
ragged batch at L = 512 (N = 8); the largest relative difference of all of them at L = 2048 (N = 2, inputs x 1000:
saturated gates) and whether all are finite; and the median time of one (16, 512) ragged batch in onnxruntime and
in PyTorch (torch.inference_mode), both on one thread.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from seqmodels.export import trace_to_onnx, unpacked
from seqmodels.nn import RecurrentEncoder
from seqmodels.nn.recurrent import MODERN_CELLS

OPTIONS = {"mlstm": {"heads": 4}, "slstm": {"heads": 4}, "qrnn": {"window": 2}}


class EncoderGraph(nn.Module):
    def __init__(self, encoder: RecurrentEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, inputs: Tensor, lengths: Tensor) -> tuple[Tensor, ...]:
        output, state = self.encoder(inputs, lengths)
        return (output, *(state if isinstance(state, tuple) else (state,)))


def ragged(batch: int, length: int, features: int, seed: int, scale: float = 1.0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[0] = length
    return scale * torch.randn(batch, length, features, generator=g), lengths


def differences(got: list, expected: tuple[Tensor, ...]) -> list[tuple[float, float]]:
    """Per tensor (outputs, then the state's): (largest |diff|, largest |diff| / max(1, max |value|))."""
    diffs = []
    for g, e in zip(got, expected, strict=True):
        diff = float((torch.from_numpy(g).double() - e.double()).abs().max())
        diffs.append((diff, diff / max(1.0, float(e.abs().max()))))
    return diffs


def median_seconds(run, repeats: int = 5) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    import onnxruntime

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--cells", nargs="+", default=list(MODERN_CELLS), choices=MODERN_CELLS)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    features, folder = 16, Path(tempfile.mkdtemp())
    print(f"input {features}, hidden {args.hidden}, {args.layers} layer(s), float32, 1 thread")
    for cell in args.cells:
        torch.manual_seed(0)
        encoder = RecurrentEncoder(
            cell, features, args.hidden, num_layers=args.layers, batch_first=True, cell_options=OPTIONS.get(cell, {})
        )
        graph = EncoderGraph(encoder).eval()
        names = ["output", *encoder.state_names]
        path = folder / f"{cell}.onnx"
        batch, steps = torch.export.Dim("N"), torch.export.Dim("L")
        start = time.perf_counter()
        with unpacked(graph, modern_cells=True):
            trace_to_onnx(graph, ragged(3, 13, features, 0), ({0: batch, 1: steps}, {0: batch}),
                          ["inputs", "lengths"], [f"{name}_out" for name in names], path)  # fmt: skip
        export_s = time.perf_counter() - start
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        row = [f"{cell:8s} export {export_s:5.1f} s"]
        for n, length, scale in [(8, 512, 1.0), (2, 2048, 1000.0)]:
            inputs, lengths = ragged(n, length, features, seed=length, scale=scale)
            got = session.run(None, {"inputs": inputs.numpy(), "lengths": lengths.numpy()})
            with torch.inference_mode():
                expected = graph(inputs, lengths)
            diffs = differences(got, expected)
            if scale == 1.0:
                row.append(f"L={length}: output abs {diffs[0][0]:.1e}, state rel {max(r for _, r in diffs[1:]):.1e}")
            else:  # values of order 1000 (LRU, IndRNN, minGRU's candidate): relative differences
                finite = all(bool(torch.isfinite(torch.from_numpy(g)).all()) for g in got)
                row.append(f"L={length} saturated: rel {max(r for _, r in diffs):.1e}, finite {finite}")
        inputs, lengths = ragged(16, 512, features, seed=7)
        feeds = {"inputs": inputs.numpy(), "lengths": lengths.numpy()}
        ort_s = median_seconds(lambda feeds=feeds, session=session: session.run(None, feeds))

        def torch_run(inputs=inputs, lengths=lengths, graph=graph) -> None:
            with torch.inference_mode():
                graph(inputs, lengths)

        torch_s = median_seconds(torch_run)
        row.append(f"(16, 512): onnxruntime {1000 * ort_s:.1f} ms, PyTorch {1000 * torch_s:.1f} ms")
        print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
