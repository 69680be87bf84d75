"""ONNX export (the library behind ``seqmodels-export ckpt_path=... [output_file=model.onnx]``): a network as a graph.

    seqmodels-export ckpt_path=logs/text_classification/runs/<date>/checkpoints/last.ckpt
    seqmodels-export ckpt_path=<tagger>.ckpt output_file=tagger.onnx verify=false

Sequence classifiers, regressors and taggers export with two inputs, ``inputs`` (N, L) token ids (int64) or
(N, L, C) features (float32) and ``lengths`` (N,) int64, and dynamic N and L. Padded batches run without
packing (:func:`seqmodels.nn.recurrent.unpacked_forward`), with the same results as the packed PyTorch model.
The cells of seqmodels' own engines (:data:`~seqmodels.nn.recurrent.MODERN_CELLS`) export in these graphs (and in a
CTC model's) through their traceable forms (:func:`traceable_engines`: torch's scan operator, an ONNX ``Scan`` over
the dynamic length); the step graphs of language models and encoder-decoders refuse them.
Outputs: ``probs`` (N, K) for a classifier, ``values`` (N, K) for a regressor, ``probs`` (N, L, T) for a tagger
(rows beyond each length are 0). Forecasters take ``inputs`` (N, lookback, C_in), the channels the
datamodule builds (scaled targets and covariates, then calendar features; the scaler is in the file's
metadata), and ``future`` (N, H, F) when they use known-future features, and give ``point`` (and ``lower``,
``upper`` for probabilistic outputs), (N, H, C) on the original scale. With onnxruntime installed, the file
is checked against PyTorch on a fresh batch of another size (``verify=true``, the default).

Decoding models export the graphs that :mod:`seqmodels.runtime` (numpy + onnxruntime, no torch) drives its
decoding loops with: a language model its step (``tokens`` (N,), ``h`` [``c``] (K, N, H) -> ``logits`` (N, V) and
the new state); an encoder-decoder its encoder (``source``, ``source_lengths`` -> ``memory``, ``mask``, ``keys``,
initial ``h`` [``c``], ``feed``) and, in ``<stem>.decoder.onnx``, its decoder step; a CTC model ``inputs``
(N, L, C) and ``lengths`` -> ``log_probs`` (N, L', K) and ``output_lengths`` (with frame stacking, L a multiple of
its factor). Each file holds the model's description (vocabularies, special ids, tokenizer, state layout; a CTC
model's log-mel ``FeatureConfig``, a tagger's word tokenizer) as JSON under the metadata key ``seqmodels.runtime``.
Needs the ``export`` extra: ``pip install 'seqmodels[export]'`` (onnx, onnxscript, onnxruntime).
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
from seqmodels.nn.stacked import StackedRecurrence, reverse_within
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
def unpacked(module: nn.Module, modern_cells: bool = False) -> Iterator[None]:
    """Every :class:`RecurrentEncoder` in ``module`` runs without packing inside the block, and every engine of
    seqmodels' own (:data:`~seqmodels.nn.recurrent.MODERN_CELLS`) in its traceable form (:func:`traceable_engines`).

    ``modern_cells``: whether the graph may hold those engines; True for the whole-sequence graphs (classifiers,
    regressors, taggers, CTC models) and language models' step graphs, False for encoder-decoders' step graphs,
    which refuse them.
    """
    encoders = [m for m in module.modules() if isinstance(m, RecurrentEncoder)]
    for encoder in encoders:
        if encoder.is_modern and not modern_cells:
            raise ValueError(
                f"export does not trace cell={encoder.cell!r} in an encoder-decoder's step graph (it exports in "
                "whole-sequence graphs and language models' step graphs: classifiers, regressors, taggers, CTC "
                "models, language models); translate from the checkpoint, or retrain with a classic cell (lstm, gru, "
                "rnn_tanh, rnn_relu)"
            )
        if encoder.impl != "fused":
            raise ValueError(
                "export needs impl=fused encoders (the custom cells' TorchScript loops do not trace); "
                "retrain with model.net.encoder.impl=fused"
            )
    previous = [encoder.pack_sequences for encoder in encoders]
    try:
        for encoder in encoders:
            encoder.pack_sequences = False
        with traceable_engines(module):
            yield
    finally:
        for encoder, value in zip(encoders, previous, strict=True):
            encoder.pack_sequences = value


@contextlib.contextmanager
def traceable_engines(module: nn.Module) -> Iterator[None]:
    """Every engine of seqmodels' own in ``module`` (a :class:`~seqmodels.nn.stacked.StackedRecurrence`) runs its
    traceable form inside the block: plain torch ops and torch's scan operator, which ``torch.export`` traces with a
    dynamic batch and length (ONNX ``Scan``), in place of the fused autograd Functions, in-place chunked scans and
    TorchScript loops. Same results up to rounding; for inference (no fused backward)."""
    engines = [m for m in module.modules() if isinstance(m, StackedRecurrence)]
    try:
        for engine in engines:
            engine.traceable = True
        yield
    finally:
        for engine in engines:
            engine.__dict__.pop("traceable", None)


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
            "taggers, forecasters, language models, encoder-decoders and CTC models (use seqmodels-predict or "
            "seqmodels-generate for this one)"
        )
    _require_onnx()
    model, datamodule = build_from_checkpoint(checkpoint, setup_data=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if capabilities.export is Export.FORECAST:
        return _export_forecaster(model, datamodule, path, verify, opset)
    if capabilities.export is Export.LANGUAGE_MODEL:
        return _export_language_model(model, datamodule, path, verify, opset)
    if capabilities.export is Export.ENCODER_DECODER:
        return _export_seq2seq(model, datamodule, path, verify, opset)
    if capabilities.export is Export.CTC:
        return _export_ctc(model, datamodule, path, verify, opset)
    per_step = capabilities.export is Export.TAG_PROBABILITIES
    report = export_sequence_net(model.net, OUTPUT_NAMES[capabilities.export], per_step, path, verify, opset)
    _write_metadata(path, {RUNTIME_KEY: _sequence_metadata(capabilities.export, path, datamodule)})
    return report


def _sequence_metadata(export: Export, path: Path, datamodule: Any) -> dict[str, Any]:
    """A classifier's, regressor's or tagger's description for the runtime: the datamodule's JSON-safe state
    (tokenizer, vocabulary, class names) when it has one."""
    import json

    kinds = {Export.CLASS_PROBABILITIES: "classifier", Export.VALUES: "regressor", Export.TAG_PROBABILITIES: "tagger"}
    meta: dict[str, Any] = {"format": FORMAT_VERSION, "kind": kinds[export], "graphs": {"net": path.name}}
    try:
        state = datamodule.state_dict() if datamodule is not None else None
        json.dumps(state)
    except (TypeError, ValueError, AttributeError, RuntimeError):
        state = None  # numeric data (features) needs no vocabulary
    if isinstance(state, dict):
        if export is Export.TAG_PROBABILITIES and "tokenizer" not in state and hasattr(datamodule, "lowercase"):
            # A tagger reads whitespace-separated words (lowercased when it was trained so), one tag per word.
            state["tokenizer"] = {"type": "whitespace", "lowercase": bool(datamodule.lowercase)}
        meta["data"] = state
    return meta


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
    with unpacked(exported, modern_cells=True):
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
    the interval's ``lower`` and ``upper`` bounds, each (N, H, C). The target transform is undone in the graph as
    the task undoes it (``exp`` for ``log``, ``clamp(min=0) ** 2`` for ``sqrt``)."""

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
            "seqmodels.input_channels": "targets (first through seqmodels.transform: log, sqrt or none), past "
            "covariates, future covariates (scaled: (x - mean) / std), then the calendar features of "
            "seqmodels.calendar (seqmodels.data.calendar_features)",
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
    _forget_rnn_dispatch()
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
                verbose=os.environ.get("SEQMODELS_DEBUG") is not None,
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
            _forget_rnn_dispatch()


def _forget_rnn_dispatch() -> None:
    """Drops the dispatch choices torch caches on its recurrent operators. An export that decomposes one (an LSTM
    step of fixed length 1) leaves its Python decomposition cached, and every later trace in the process then
    unrolls that operator over the traced length, fixing a dynamic length to it."""
    for name in ("lstm", "gru", "rnn_tanh", "rnn_relu"):
        getattr(torch.ops.aten, name).input._dispatch_cache.clear()


def _write_metadata(path: Path, values: dict[str, Any]) -> None:
    import json

    import onnx

    model = onnx.load(str(path))
    for key, value in values.items():
        model.metadata_props.add(key=key, value=value if isinstance(value, str) else json.dumps(value))
    onnx.save_model(model, str(path))


def _relax_length_annotations(path: Path, name: str = "L") -> None:
    """Outputs declare a symbolic length ``name`` where the trace wrote the traced one; intermediate shape
    annotations are dropped (onnxruntime infers them)."""
    import onnx

    model = onnx.load(str(path))
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if len(dims) >= 2 and dims[1].dim_value == TRACED_LENGTH:
            dims[1].dim_param = name
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
    return max(_max_diff(torch.from_numpy(g), e) for g, e in zip(got, expected, strict=True))


def _max_diff(got: Tensor, expected: Tensor) -> float:
    """Largest absolute difference; equal values (masked -inf logits, booleans) count 0."""
    if got.shape != expected.shape:
        return float("inf")
    got, expected = got.double(), expected.double()
    diff = torch.where(got == expected, torch.zeros_like(got), (got - expected).abs())
    return float(diff.max()) if diff.numel() else 0.0


# ------------------------------------------------------------------------------------------------ decoding models
# Language models, encoder-decoders and CTC models export as graphs the torch-free runtime (seqmodels.runtime)
# drives: the decoding loops (greedy, sampling, beam search) run in numpy around the step graphs. Every file holds
# the model's description under the metadata key RUNTIME_KEY (JSON): task kind, vocabularies, special ids, sizes,
# tokenizer, state layout and the names of its sibling graph files.
RUNTIME_KEY = "seqmodels.runtime"
FORMAT_VERSION = 1


def sibling(path: Path, part: str) -> Path:
    """``model.onnx`` -> ``model.<part>.onnx``: the other graphs of a model exported as several."""
    return path.with_name(f"{path.stem}.{part}{path.suffix or '.onnx'}")


def _state_names(lstm: bool) -> list[str]:
    return ["h", "c"] if lstm else ["h"]


def _vocabulary_metadata(datamodule: Any) -> dict[str, Any]:
    """A language model's vocabulary and text handling, as the runtime needs them to tokenize and detokenize."""
    vocab = datamodule.vocab
    if vocab is None:
        raise ValueError("this checkpoint stores no vocabulary; retrain it with this version of seqmodels")
    tokenizer = datamodule.tokenizer.to_dict() if datamodule.tokenizer is not None else None
    specials = {name: vocab.stoi.get(token) for name, token in (("bos", vocab.BOS), ("eos", vocab.EOS))}
    return {
        "tokens": list(vocab.itos),
        "tokenizer": tokenizer,
        "special_ids": {"pad": vocab.pad_id, "unk": vocab.unk_id, **specials},
        "prompt_prefix": list(datamodule.prompt_prefix()),
        "stop_id": datamodule.stop_id,
    }


class ExportedLanguageModelStep(nn.Module):
    """One step of a :class:`~seqmodels.nn.RecurrentLanguageModel`: ``tokens`` (N,) and the state, one (K, N, S)
    tensor per name in ``net.state_names`` (``h``; ``h, c`` for LSTM; more for some of seqmodels' own cells) ->
    next-token ``logits`` (N, V) (``<pad>`` at -inf, as in ``step``) and the new state."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, tokens: Tensor, s0: Tensor, s1: Tensor | None = None, s2: Tensor | None = None, s3: Tensor | None = None
    ) -> tuple[Tensor, ...]:
        # Named positions, not *state: torch.export takes each state tensor as its own input (at most 4: xLSTM's).
        state = tuple(t for t in (s0, s1, s2, s3) if t is not None)
        logits, new_state = _run_full(self.net, tokens.unsqueeze(1), state if len(state) > 1 else state[0])
        logits = self.net._never_pad(logits.squeeze(1))
        return (logits, *new_state) if len(state) > 1 else (logits, new_state)


def _run_full(net: nn.Module, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
    """``net(tokens, lengths, state)`` with every row of full length: the unpacked path, which traces with a
    dynamic length (lengths=None would call the fused module, whose trace fixes the length)."""
    lengths = torch.ones_like(tokens).sum(dim=1)
    return net(tokens, lengths, state)


def _export_language_model(model: nn.Module, datamodule: Any, path: Path, verify: bool, opset: int | None):
    return export_language_model(model.net, path, _vocabulary_metadata(datamodule), verify, opset)


def export_language_model(
    net: nn.Module, path: str | os.PathLike, vocabulary: dict[str, Any], verify: bool = True, opset: int | None = None
) -> ExportReport:
    """A :class:`~seqmodels.nn.RecurrentLanguageModel`'s step as one graph: ``tokens`` (N,), ``h`` [``c``]
    (K, N, H) -> ``logits`` (N, V), ``h_out`` [``c_out``]. A prompt is read one token per call (a chunk graph with
    a dynamic length does not trace: torch's export unrolls the LSTM over the traced length).

    ``vocabulary``: ``tokens`` (id order), ``tokenizer`` (``{"type": "char"|"word"|"whitespace", "lowercase"}`` or
    None), ``special_ids``, ``prompt_prefix`` and ``stop_id``, as the language-model data modules define them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = net.eval()
    if not hasattr(net, "layers") or not hasattr(net, "_never_pad"):
        raise ValueError(f"seqmodels-export takes a RecurrentLanguageModel network, not {type(net).__name__}")
    states = list(net.state_names)
    initial = net.initial_state(1)
    sizes = [int(t.shape[-1]) for t in (initial if isinstance(initial, tuple) else (initial,))]
    g = torch.Generator().manual_seed(0)
    n, k, h = 3, net.num_layers, net.hidden_size

    def state(batch: int) -> list[Tensor]:
        return [torch.randn(k, batch, size, generator=g) * 0.5 for size in sizes]

    step = ExportedLanguageModelStep(net).eval()
    batch = torch.export.Dim("N")
    outputs = ["logits", *[f"{name}_out" for name in states]]
    tokens = torch.randint(1, net.vocab_size, (n,), generator=g)
    dims = ({0: batch}, *({1: batch} for _ in states))
    with unpacked(net, modern_cells=True):
        trace_to_onnx(step, (tokens, *state(n)), dims, ["tokens", *states], outputs, path, opset)
    meta = {
        "format": FORMAT_VERSION,
        "kind": "language_model",
        "graphs": {"step": path.name},
        "cell": net.cell,
        "num_layers": k,
        "hidden_size": h,
        "vocab_size": net.vocab_size,
        "state": {"names": states, "sizes": sizes, "shape": "(num_layers, N, size) float32, zeros at the start"},
        **vocabulary,
    }
    _write_metadata(path, {RUNTIME_KEY: meta})
    report = ExportReport(
        path,
        "tokens: (N,) int64, "
        + ", ".join(f"{n}: ({k}, N, {w})" for n, w in zip(states, sizes, strict=True))
        + " float32",
        f"logits: (N, {net.vocab_size}), {', '.join(outputs[1:])}",
        None,
    )
    if verify and _importable("onnxruntime"):
        values = (torch.randint(1, net.vocab_size, (5,), generator=g), *state(5))
        feeds = dict(zip(["tokens", *states], values, strict=True))
        report.max_abs_diff = verify_onnx(path, step, feeds)
    return report


class ExportedEncoder(nn.Module):
    """:meth:`Seq2Seq.encode`: ``source`` (N, S), ``source_lengths`` (N,) -> ``memory`` (N, S, M), ``mask``
    (N, S) bool, ``keys`` (N, S, A) (the attention's projected keys; the memory itself without attention),
    and the decoder's initial state ``h`` (K, N, H) [``c``] and ``feed`` (N, H)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, source: Tensor, source_lengths: Tensor) -> tuple[Tensor, ...]:
        from seqmodels.nn.masking import lengths_to_mask

        net = self.net
        embedded = net.dropout(net.source_embedding(source))
        outputs, final = net.encoder(embedded, source_lengths)
        if isinstance(final, tuple):  # unpacked c_n ran over the padding: the exact top-layer cells instead
            d = net.encoder.num_directions
            final = (final[0], torch.cat([final[1][:-d], _exact_top_cells(net.encoder.rnn, embedded, outputs,
                                                                             source_lengths)]))  # fmt: skip
        mask = lengths_to_mask(source_lengths, source.shape[1])
        attention = net.decoder.attention
        keys = attention.precompute_keys(outputs) if attention is not None else outputs
        state = net.initial_state(final, outputs.shape[0])
        rnn = state.rnn if isinstance(state.rnn, tuple) else (state.rnn,)
        return (outputs, mask, keys, *rnn, state.feed)


def _exact_top_cells(rnn: nn.Module, inputs: Tensor, outputs: Tensor, lengths: Tensor) -> Tensor:
    """The top LSTM layer's cell state at each sequence's last valid step, (D, N, H), from its inputs and outputs.

    Every gate depends only on the step's input and the previous output, so the gates come in parallel; the cell
    ``c_t = f_t c_{t-1} + i_t g_t`` is then a weighted sum, ``c_n = sum_t exp(sum_{t<s<=n} log f_s) i_t g_t``, with
    exponents <= 0 (stable). One layer only: the inputs are the embeddings.
    """

    hidden = rnn.hidden_size
    valid = (torch.arange(inputs.shape[1], device=inputs.device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
    last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, hidden)
    cells = []
    for direction in range(2 if rnn.bidirectional else 1):
        suffix = f"_l{rnn.num_layers - 1}" + ("_reverse" if direction else "")
        h = outputs[..., direction * hidden : (direction + 1) * hidden]
        x = inputs
        if direction:
            x, h = reverse_within(inputs, lengths), reverse_within(h, lengths)
        previous = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)
        gates = nn.functional.linear(x, getattr(rnn, f"weight_ih{suffix}"), getattr(rnn, f"bias_ih{suffix}", None))
        gates = gates + nn.functional.linear(
            previous, getattr(rnn, f"weight_hh{suffix}"), getattr(rnn, f"bias_hh{suffix}", None)
        )
        i, f, g, _ = gates.chunk(4, dim=-1)
        log_f = nn.functional.logsigmoid(f).cumsum(dim=1)
        exponent = torch.where(valid, log_f.gather(1, last) - log_f, torch.full_like(log_f, float("-inf")))
        cells.append((exponent.exp() * torch.sigmoid(i) * torch.tanh(g)).sum(dim=1))
    return torch.stack(cells)


class ExportedDecoderStep(nn.Module):
    """One decoder step: ``tokens`` (N,), ``feed``, ``memory``, ``mask``, ``keys`` and the recurrent state ``h``
    [``c``] -> ``logits`` (N, V) with ``<pad>`` and ``<bos>`` at -inf (as in beam search), ``feed_out``, ``h_out``
    [``c_out``]."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(
        self,
        tokens: Tensor,
        feed: Tensor,
        memory: Tensor,
        mask: Tensor,
        keys: Tensor,
        h: Tensor,
        c: Tensor | None = None,
    ) -> tuple[Tensor, ...]:
        from seqmodels.nn.seq2seq import DecoderState, Memory

        rnn = (h, c) if self.net.cell == "lstm" else h
        projected = keys if self.net.decoder.attention is not None else None
        logits, state, _ = self.net.decoder.step(tokens, DecoderState(rnn, feed), Memory(memory, mask, projected))
        logits = logits.masked_fill(self._never(logits), float("-inf"))
        rnn = state.rnn if isinstance(state.rnn, tuple) else (state.rnn,)
        return (logits, state.feed, *rnn)

    def _never(self, logits: Tensor) -> Tensor:
        ids = torch.arange(logits.shape[-1], device=logits.device)
        return ((ids == self.net.padding_idx) | (ids == self.net.bos_id)).unsqueeze(0)


def _export_seq2seq(model: nn.Module, datamodule: Any, path: Path, verify: bool, opset: int | None):
    """``path``: the encoder graph; ``<stem>.decoder.onnx``: the decoder step."""
    net = model.net.eval()
    if net.cell == "lstm" and net.encoder.num_layers > 1:
        raise ValueError(
            "LSTM encoder-decoders export with one encoder layer only (the bridge reads the top layer's cell "
            "state); retrain with model.net.encoder_layers=1 or model/encoder=gru"
        )
    states = _state_names(net.cell == "lstm")
    encoder, decoder = ExportedEncoder(net).eval(), ExportedDecoderStep(net).eval()
    g = torch.Generator().manual_seed(0)

    def sources(n: int, length: int) -> tuple[Tensor, Tensor]:
        lengths = torch.randint(1, length + 1, (n,), generator=g)
        lengths[0] = length
        ids = torch.randint(2, net.source_embedding.num_embeddings, (n, length), generator=g)
        ids[torch.arange(length).unsqueeze(0) >= lengths.unsqueeze(1)] = net.padding_idx
        return ids, lengths

    batch, steps = torch.export.Dim("N"), torch.export.Dim("S")
    encoder_outputs = ["memory", "mask", "keys", *states, "feed"]
    decoder_inputs = ["tokens", "feed", "memory", "mask", "keys", *states]
    decoder_outputs = ["logits", "feed_out", *[f"{name}_out" for name in states]]
    source, lengths = sources(3, TRACED_LENGTH)
    with unpacked(net), torch.no_grad():
        trace_to_onnx(
            encoder, (source, lengths), ({0: batch, 1: steps}, {0: batch}), ["source", "source_lengths"],
            encoder_outputs, path, opset,
        )  # fmt: skip
        encoded = encoder(source, lengths)
        tokens = torch.randint(2, net.decoder.output.out_features, (3,), generator=g)
        memory_dims = ({0: batch, 1: steps},) * 3
        dims = ({0: batch}, {0: batch}, *memory_dims, *[{1: batch} for _ in states])
        decoder_path = sibling(path, "decoder")
        trace_to_onnx(
            decoder, _decoder_args(tokens, encoded), dims, decoder_inputs, decoder_outputs, decoder_path, opset
        )
    _relax_length_annotations(path, "S")
    _relax_length_annotations(decoder_path, "S")
    source_vocab, target_vocab = datamodule.source_vocab, datamodule.target_vocab
    meta = {
        "format": FORMAT_VERSION,
        "kind": "seq2seq",
        "graphs": {"encoder": path.name, "decoder": decoder_path.name},
        "cell": net.cell,
        "decoder_layers": net.decoder_layers,
        "hidden_size": net.decoder.hidden_size,
        "state": {"names": [*states, "feed"], "shape": "h/c: (decoder_layers, N, hidden_size); feed: (N, hidden_size)"},
        "source_tokens": list(source_vocab.itos),
        "target_tokens": list(target_vocab.itos),
        "source_tokenizer": datamodule.source_tokenizer.to_dict(),
        "target_tokenizer": datamodule.target_tokenizer.to_dict(),
        "special_ids": {"pad": net.padding_idx, "unk": source_vocab.unk_id, "bos": net.bos_id, "eos": net.eos_id},
        "max_length_ratio": float(model.max_length_ratio),
        "max_length_offset": int(model.max_length_offset),
        "length_penalty": float(model.length_penalty),
    }
    for file in (path, decoder_path):
        _write_metadata(file, {RUNTIME_KEY: meta})
    report = ExportReport(
        path,
        f"source: (N, S) int64, source_lengths: (N,) int64 (decoder step graph {decoder_path.name})",
        f"{', '.join(encoder_outputs)}; decoder: {', '.join(decoder_outputs)}",
        None,
    )
    if verify and _importable("onnxruntime"):
        source, lengths = sources(5, 19)
        diff = verify_onnx(path, encoder, {"source": source, "source_lengths": lengths})
        with torch.no_grad():
            encoded = encoder(source, lengths)
        tokens = torch.randint(2, net.decoder.output.out_features, (5,), generator=g)
        feeds = dict(zip(decoder_inputs, _decoder_args(tokens, encoded), strict=True))
        report.max_abs_diff = max(diff, verify_onnx(decoder_path, decoder, feeds))
    return report


def _decoder_args(tokens: Tensor, encoded: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The decoder graph's inputs from the encoder graph's outputs (memory, mask, keys, h, [c], feed)."""
    memory, mask, keys, *rnn, feed = encoded
    return (tokens, feed, memory, mask, keys, *rnn)


class ExportedCTC(nn.Module):
    """:class:`~seqmodels.nn.CTCNet` in evaluation: ``inputs`` (N, L, C) features, ``lengths`` (N,) ->
    ``log_probs`` (N, L', K) (0 rows past each length) and ``output_lengths`` (N,).

    The same modules as ``CTCNet.forward`` without its eager length check (a data-dependent branch that does not
    trace) and without SpecAugment and dropout (training only)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, inputs: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        from seqmodels.nn.ctc import _zero_padding

        x = inputs
        if self.net.subsampling is not None:
            x, lengths = self.net.subsampling(x, lengths)
        outputs, _ = self.net.encoder(x, lengths)
        log_probs = self.net.output(outputs).float().log_softmax(-1)
        return _zero_padding(log_probs, lengths), lengths


def frame_multiple(net: nn.Module) -> int:
    """The frame count the exported CTC graph needs a multiple of: frame stacking's factor (the runtime pads with
    zero frames, which stacking adds anyway), 1 otherwise."""
    from seqmodels.nn.ctc import FrameStacking

    return net.subsampling.factor if isinstance(net.subsampling, FrameStacking) else 1


def _export_ctc(model: nn.Module, datamodule: Any, path: Path, verify: bool, opset: int | None) -> ExportReport:
    """Frames are declared a multiple of the stacking factor, so the stacked length is a plain symbol: torch's
    exporter cannot propagate shapes through a GRU whose length is a ceil-division of the input's."""
    net = model.net.eval()
    exported = ExportedCTC(net).eval()
    multiple = frame_multiple(net)
    g = torch.Generator().manual_seed(0)

    def batch(n: int, length: int) -> tuple[Tensor, Tensor]:
        lengths = torch.randint(1, length + 1, (n,), generator=g)
        lengths[0] = length
        padded = -(-length // multiple) * multiple
        features = torch.randn(n, padded, net.input_size, generator=g)
        return features * (torch.arange(padded).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1), lengths

    n, frames = torch.export.Dim("N"), torch.export.Dim("F")
    length_dim = frames * multiple if multiple > 1 else frames
    inputs, lengths = batch(3, TRACED_LENGTH * multiple)
    with unpacked(net, modern_cells=True):
        trace_to_onnx(
            exported,
            (inputs, lengths),
            ({0: n, 1: length_dim}, {0: n}),
            ["inputs", "lengths"],
            ["log_probs", "output_lengths"],
            path,
            opset,
        )
    _relax_length_annotations(path, "F")
    meta = {
        "format": FORMAT_VERSION,
        "kind": "ctc",
        "graphs": {"ctc": path.name},
        "labels": list(model.labels),
        "special_ids": {"blank": int(model.blank)},
        "input_size": int(net.input_size),
        "frame_multiple": multiple,
        "num_classes": int(net.num_classes),
    }
    features = getattr(datamodule, "features", None)
    if features is not None:  # the log-mel front-end: the runtime reads WAV files with it
        meta["features"] = features.to_dict()
        meta["sample_rate"] = int(features.sample_rate)
        meta["log_floor"] = float(datamodule.featurizer.log_floor)
    _write_metadata(path, {RUNTIME_KEY: meta})
    pad_note = f" (L a multiple of {multiple}: pad with zero frames)" if multiple > 1 else ""
    report = ExportReport(
        path,
        f"inputs: (N, L, {net.input_size}) float32{pad_note}, lengths: (N,) int64",
        f"log_probs: (N, L', {net.num_classes}), output_lengths: (N,)",
        None,
    )
    if verify and _importable("onnxruntime"):
        inputs, lengths = batch(5, 19 * multiple + 1)
        # Against the original network on the unpadded frames: the padding is the runtime's, not the model's.
        report.max_abs_diff = _verify_ctc(path, net, inputs, lengths)
    return report


def _verify_ctc(path: Path, net: nn.Module, inputs: Tensor, lengths: Tensor) -> float:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    log_probs, out_lengths = session.run(None, {"inputs": inputs.numpy(), "lengths": lengths.numpy()})
    with torch.no_grad():
        expected, expected_lengths = net(inputs[:, : int(lengths.max())], lengths)
    if not (torch.from_numpy(out_lengths) == expected_lengths).all():
        return float("inf")
    steps = expected.shape[1]
    return float((torch.from_numpy(log_probs[:, :steps]) - expected).abs().max())
