"""seqmodels-export: checkpoints of sequence classifiers and taggers as ONNX graphs with a lengths input
(forecasters: tests/test_forecasting_runs.py)."""

from __future__ import annotations

import pytest
import torch

from seqmodels.callbacks import CHECKPOINT_KEY
from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
from seqmodels.train import train

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from seqmodels.export import export_onnx  # noqa: E402  (after the skips: needs the export extra)


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment,output",
    [("text_classification", "probs"), ("ner", "probs"), ("parity", "probs")],
    ids=["tokens-classifier", "tokens-tagger", "features-classifier"],
)
def test_exported_graph_takes_any_batch_and_length_and_matches_the_packed_model(
    compose_train, tmp_path, experiment, output
):
    result = train(compose_train(f"experiment={experiment}", "trainer.max_epochs=1"))
    checkpoint = load_checkpoint(result.best_model_path)
    report = export_onnx(checkpoint, tmp_path / "model.onnx")
    assert report.path.is_file() and report.max_abs_diff is not None and report.max_abs_diff < 1e-5
    assert report.output.startswith(output)

    model, _ = build_from_checkpoint(checkpoint, setup_data=False)
    model.eval()
    session = onnxruntime.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["inputs", "lengths"]
    g = torch.Generator().manual_seed(3)
    for batch, length in [(1, 1), (2, 30), (9, 4)]:
        lengths = torch.randint(1, length + 1, (batch,), generator=g)
        lengths[-1] = length
        if experiment == "parity":
            inputs = torch.randn(batch, length, model.net.encoder.input_size, generator=g)
        else:
            inputs = torch.randint(1, model.net.frontend.num_embeddings, (batch, length), generator=g)
        (got,) = session.run(None, {"inputs": inputs.numpy(), "lengths": lengths.numpy()})
        with torch.no_grad():
            expected = torch.softmax(model.net(inputs, lengths), dim=-1)  # packed PyTorch
        if experiment == "ner":
            expected = expected * (torch.arange(length) < lengths.unsqueeze(1)).unsqueeze(-1)
        torch.testing.assert_close(torch.from_numpy(got), expected, atol=1e-5, rtol=1e-4)


def test_export_names_what_it_cannot_do(tmp_path, monkeypatch):
    import seqmodels.export as export

    conditional = {
        CHECKPOINT_KEY: {"config": {"model": {"_target_": "seqmodels.tasks.ConditionalGenerationTask"}}},
        "state_dict": {},
    }
    with pytest.raises(ValueError, match="ConditionalGenerationTask checkpoints do not export yet"):
        export_onnx(conditional, tmp_path / "t.onnx")
    classifier = {
        CHECKPOINT_KEY: {"config": {"model": {"_target_": "seqmodels.tasks.SequenceClassificationTask"}}},
        "state_dict": {},
    }
    monkeypatch.setattr(export, "_importable", lambda name: name != "onnxscript")
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'seqmodels\[export\]'"):
        export_onnx(classifier, tmp_path / "c.onnx")


def test_custom_cells_are_refused_before_tracing():
    from seqmodels.export import unpacked
    from seqmodels.nn import ManyToOneNet, RecurrentEncoder

    net = ManyToOneNet(RecurrentEncoder("lstm", 3, 8, batch_first=True, impl="custom", layer_norm=True), 2)
    with pytest.raises(ValueError, match="impl=fused"), unpacked(net):
        pass
