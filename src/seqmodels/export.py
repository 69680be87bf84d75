"""ONNX export (the library behind ``seqmodels-export ckpt_path=... [output_file=model.onnx]``): a network as a graph.

    seqmodels-export ckpt_path=logs/text_classification/runs/<date>/checkpoints/last.ckpt
    seqmodels-export ckpt_path=<tagger>.ckpt output_file=tagger.onnx verify=false

Sequence classifiers, regressors and taggers export with two inputs, ``inputs`` (N, L) token ids (int64) or
(N, L, C) features (float32) and ``lengths`` (N,) int64, and dynamic N and L. Padded batches run without
packing (:func:`seqmodels.nn.recurrent.unpacked_forward`), with the same results as the packed PyTorch model.
Outputs: ``probs`` (N, K) for a classifier, ``values`` (N, K) for a regressor, ``probs`` (N, L, T) for a tagger
(rows beyond each length are 0). Forecasters take ``inputs`` (N, lookback, C_in), the channels the
datamodule builds (scaled targets and covariates, then calendar features; the scaler is in the file's
metadata), and ``future`` (N, H, F) when they use known-future features, and give ``point`` (and ``lower``,
``upper`` for probabilistic outputs), (N, H, C) on the original scale. With onnxruntime installed, the file
is checked against PyTorch on a fresh batch of another size (``verify=true``, the default). Needs the
``export`` extra:
``pip install 'seqmodels[export]'`` (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seqmodels.checkpoint import build_from_checkpoint, task_capabilities
from seqmodels.nn.recurrent import RecurrentEncoder
from seqmodels.tasks.capabilities import Export

TRACED_LENGTH = 13
# The graph's output name for each kind of export of a sequence network.
OUTPUT_NAMES = {Export.CLASS_PROBABILITIES: "probs", Export.VALUES: "values", Export.TAG_PROBABILITIES: "probs"}


class ExportedModel(nn.Module):
    """What the ONNX graph computes: the task's network, then its prediction (softmax for classes and tags)."""

    def __init__(self, net: nn.Module, output: str, per_step: bool) -> None:
        super().__init__()
        self.net, self.output, self.per_step = net, output, per_step

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        scores = self.net(inputs, lengths)
        if self.output == "values":
            return scores
        probs = torch.softmax(scores, dim=-1)
        if self.per_step:  # padded steps carry no prediction
            steps = torch.arange(probs.shape[1], device=probs.device)
            probs = probs * (steps.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1).to(probs.dtype)
        return probs


@dataclass
class ExportReport:
    path: Path
    inputs: str
    output: str
    max_abs_diff: float | None  # onnxruntime vs PyTorch on the verification batch; None: not verified


@contextlib.contextmanager
def unpacked(module: nn.Module) -> Iterator[None]:
    """Every :class:`RecurrentEncoder` in ``module`` runs without packing inside the block."""
    encoders = [m for m in module.modules() if isinstance(m, RecurrentEncoder)]
    for encoder in encoders:
        if encoder.impl != "fused":
            raise ValueError(
                "export needs impl=fused encoders (the custom cells' TorchScript loops do not trace); "
                "retrain with model.net.encoder.impl=fused"
            )
    previous = [encoder.pack_sequences for encoder in encoders]
    try:
        for encoder in encoders:
            encoder.pack_sequences = False
        yield
    finally:
        for encoder, value in zip(encoders, previous, strict=True):
            encoder.pack_sequences = value


def example_batch(net: nn.Module, batch_size: int, length: int, seed: int) -> tuple[Tensor, Tensor]:
    """A random ragged batch ``net`` accepts: token ids for an embedding front-end, features otherwise."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (batch_size,), generator=g)
    lengths[0] = length  # the longest sequence fills the padded length
    embedding = next((m for m in net.modules() if isinstance(m, nn.Embedding)), None)
    if embedding is not None:
        padding = embedding.padding_idx if embedding.padding_idx is not None else 0
        inputs = torch.randint(0, embedding.num_embeddings, (batch_size, length), generator=g)
        inputs[torch.arange(length).unsqueeze(0) >= lengths.unsqueeze(1)] = padding
    else:
        encoder = next(m for m in net.modules() if isinstance(m, RecurrentEncoder))
        inputs = torch.randn(batch_size, length, encoder.input_size, generator=g)
    return inputs, lengths


def _require_onnx() -> None:
    missing = [name for name in ("onnx", "onnxscript") if not _importable(name)]
    if missing:
        raise ModuleNotFoundError(
            f"ONNX export needs {' and '.join(missing)}; install them with: pip install 'seqmodels[export]'"
        )


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def export_onnx(
    checkpoint: dict[str, Any], path: str | os.PathLike, verify: bool = True, opset: int | None = None
) -> ExportReport:
    """Writes the checkpoint's network to ``path`` as ONNX; returns what was written and how well it matches."""
    task, capabilities = task_capabilities(checkpoint)
    if capabilities.export is None:
        raise ValueError(
            f"{task.__name__} checkpoints do not export yet; seqmodels-export takes sequence classifiers, regressors, "
            "taggers and forecasters (decoding loops stay in PyTorch: use seqmodels-predict or seqmodels-generate)"
        )
    _require_onnx()
    model, datamodule = build_from_checkpoint(checkpoint, setup_data=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if capabilities.export is Export.FORECAST:
        return _export_forecaster(model, datamodule, path, verify, opset)
    per_step = capabilities.export is Export.TAG_PROBABILITIES
    return export_sequence_net(model.net, OUTPUT_NAMES[capabilities.export], per_step, path, verify, opset)


def export_sequence_net(
    net: nn.Module, output: str, per_step: bool, path: str | os.PathLike, verify: bool = True, opset: int | None = None
) -> ExportReport:
    """A ``net(inputs, lengths)`` (a :class:`~seqmodels.nn.ManyToOneNet`, :class:`~seqmodels.nn.SequenceTaggerNet`
    or alike) to ONNX: ``output`` is ``"probs"`` (softmax) or ``"values"``; ``per_step`` for (N, L, T) outputs."""
    path = Path(path)
    exported = ExportedModel(net, output, per_step).eval()
    # Tracing lstm/gru specializes the traced length in some shape annotations (the computation stays dynamic):
    # an odd length no tag or class count is likely to equal makes those annotations easy to find and relax.
    inputs, lengths = example_batch(net, batch_size=3, length=TRACED_LENGTH, seed=0)
    batch, steps = torch.export.Dim("N"), torch.export.Dim("L")
    with unpacked(exported):
        trace_to_onnx(
            exported,
            (inputs, lengths),
            ({0: batch, 1: steps}, {0: batch}),
            ["inputs", "lengths"],
            [output],
            path,
            opset,
        )
    _relax_length_annotations(path)
    kind = "token ids (N, L) int64" if inputs.dim() == 2 else f"features (N, L, {inputs.shape[-1]}) float32"
    shape = "(N, L, T)" if per_step else "(N, K)"
    report = ExportReport(path, f"inputs: {kind}, lengths: (N,) int64", f"{output}: {shape}", None)
    if verify and _importable("onnxruntime"):
        # A fresh ragged batch of another size than the one traced, against the packed PyTorch model.
        inputs, lengths = example_batch(exported.net, batch_size=5, length=19, seed=1)
        report.max_abs_diff = verify_onnx(path, exported, {"inputs": inputs, "lengths": lengths})
    return report


class ExportedForecaster(nn.Module):
    """A forecaster's network and its output on the original scale: ``point`` and, for probabilistic outputs,
    the interval's ``lower`` and ``upper`` bounds, each (N, H, C)."""

    def __init__(self, task: nn.Module) -> None:
        super().__init__()
        self.net = task.net
        # Read once, here: the task's own scaler property branches on a buffer, which a traced graph cannot do.
        self.scaler = task.scaler

    def forward(self, inputs: Tensor, future: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        params = self.net(inputs, future)
        point = self.scaler.inverse(self.net.output.point(params))
        interval = self.net.output.interval(params)
        if interval is None:
            return point
        return point, self.scaler.inverse(interval[0]), self.scaler.inverse(interval[1])


def _export_forecaster(model: nn.Module, datamodule: Any, path: Path, verify: bool, opset: int | None) -> ExportReport:
    """Inputs ``inputs`` (N, lookback, C_in) as the datamodule builds them (scaled channels, then calendar
    features) and, with known-future features, ``future`` (N, H, F); the scaler and channel layout go into the
    file's metadata."""
    exported = ExportedForecaster(model).eval()
    net = model.net
    lookback, horizon = datamodule.lookback, net.horizon
    g = torch.Generator().manual_seed(0)

    def batch(n: int) -> dict[str, Tensor]:
        feeds = {"inputs": torch.randn(n, lookback, net.encoder.input_size, generator=g)}
        if net.future_size:
            feeds["future"] = torch.randn(n, horizon, net.future_size, generator=g)
        return feeds

    example = batch(3)
    with torch.no_grad():
        probabilistic = isinstance(exported(*example.values()), tuple)
    outputs = ["point", "lower", "upper"] if probabilistic else ["point"]
    dim = torch.export.Dim("N")
    trace_to_onnx(
        exported, tuple(example.values()), tuple({0: dim} for _ in example), list(example), outputs, path, opset
    )
    state = datamodule.state_dict()
    _write_metadata(
        path,
        {
            "seqmodels.lookback": lookback,
            "seqmodels.horizon": horizon,
            "seqmodels.target_names": datamodule.target_names,
            "seqmodels.input_channels": "targets, past covariates, future covariates (scaled: (x - mean) / std), "
            "then sin/cos calendar features",
            "seqmodels.channel_mean": state["mean"],
            "seqmodels.channel_std": state["std"],
            "seqmodels.transform": state["transform"],
            "seqmodels.calendar": state["calendar_names"],
        },
    )
    future = f", future: (N, {horizon}, {net.future_size}) float32" if net.future_size else ""
    report = ExportReport(
        path,
        f"inputs: (N, {lookback}, {net.encoder.input_size}) float32{future}",
        f"{', '.join(outputs)}: (N, {horizon}, {net.num_targets})",
        None,
    )
    if verify and _importable("onnxruntime"):
        report.max_abs_diff = verify_onnx(path, exported, batch(5))
    return report


def trace_to_onnx(
    module: nn.Module,
    args: tuple[Tensor, ...],
    dynamic: tuple[dict[int, Any], ...],
    input_names: list[str],
    output_names: list[str],
    path: Path,
    opset: int | None = None,
) -> None:
    """``torch.onnx.export`` (dynamo) of ``module`` on ``args`` with the ``dynamic`` dimensions of each input, into
    one file; a failure becomes a one-line ValueError."""
    # The exporter logs a warning per torchvision operator it cannot register; seqmodels uses none of them.
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=True,
                dynamic_shapes=dynamic,
                input_names=input_names,
                output_names=output_names,
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
        except Exception as exc:  # the exporter raises many types; its trace is long and internal
            if os.environ.get("SEQMODELS_DEBUG"):
                raise
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise ValueError(
                f"the ONNX exporter could not trace this network ({first[:200]}); set SEQMODELS_DEBUG=1 for its trace"
            ) from exc
        finally:
            registration.setLevel(level)


def _write_metadata(path: Path, values: dict[str, Any]) -> None:
    import json

    import onnx

    model = onnx.load(str(path))
    for key, value in values.items():
        model.metadata_props.add(key=key, value=value if isinstance(value, str) else json.dumps(value))
    onnx.save_model(model, str(path))


def _relax_length_annotations(path: Path) -> None:
    """Outputs declare a symbolic length ``L`` where the trace wrote the traced one; intermediate shape
    annotations are dropped (onnxruntime infers them)."""
    import onnx

    model = onnx.load(str(path))
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if len(dims) >= 2 and dims[1].dim_value == TRACED_LENGTH:
            dims[1].dim_param = "L"
    del model.graph.value_info[:]
    onnx.save_model(model, str(path))


def verify_onnx(path: Path, module: nn.Module, feeds: dict[str, Tensor]) -> float:
    """Largest absolute difference between onnxruntime's outputs and ``module``'s (PyTorch) on ``feeds``."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: value.numpy() for name, value in feeds.items()})
    with torch.no_grad():
        expected = module(*feeds.values())
    expected = expected if isinstance(expected, tuple) else (expected,)
    return max(float((torch.from_numpy(g) - e).abs().max()) for g, e in zip(got, expected, strict=True))
