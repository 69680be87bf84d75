"""trainer=ddp_sim (2 CPU processes, gloo) is correct, not only running: after N steps a 2-process run with
per-process batch B has the weights of a 1-process run with batch 2B over the same data order, and the validation
metrics (reduced across ranks once) equal the 1-process values; for a many-to-one task and for the language model,
whose parallel streams are sharded across ranks with the state carried per rank."""

from __future__ import annotations

import pytest
import torch

from seqmodels.train import train

pytestmark = pytest.mark.slow

# Float32 sums in another order (the gradient all-reduce averages two half-batch means): a few ulps per step.
TOLERANCE = 1e-5


def assert_same_weights(one, two) -> None:
    a, b = one.task.state_dict(), two.task.state_dict()
    assert a.keys() == b.keys()
    for name in a:
        if a[name].is_floating_point():
            torch.testing.assert_close(b[name], a[name], atol=TOLERANCE, rtol=0, msg=name)
    # The runs did train: the weights moved from their (shared, seeded) initialisation.
    assert any(not torch.equal(one.task.state_dict()[n], p) for n, p in two.task.state_dict().items())


def test_many_to_one_two_processes_equal_one_with_twice_the_batch(compose_train_at, tmp_path):
    common = [
        "experiment=adding_problem",
        "data.num_train=96",
        "data.num_val=32",
        "data.num_test=16",
        "data.length=20",
        "model.net.encoder.hidden_size=8",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=1",
        "logger=none",
        "test=false",
    ]
    one = train(compose_train_at(tmp_path / "one", *common, "data.batch_size=16"))
    two = train(compose_train_at(tmp_path / "two", *common, "data.batch_size=8", "trainer=ddp_sim"))
    assert_same_weights(one, two)
    # Validation: each rank scores half of the same 16 windows; the synced metric is the 1-process one.
    assert two.metrics["val/mse"] == pytest.approx(one.metrics["val/mse"], rel=1e-5)


def test_language_model_streams_are_sharded_and_validation_matches(compose_train_at, tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("".join(f"line {i % 7} of a small corpus, {i * 13 % 97}.\n" for i in range(240)))
    common = [
        "experiment=char_lm",
        f"data.path={text}",
        "data.bptt=16",
        "model.net.embedding_dim=8",
        "model.net.hidden_size=16",
        "model.net.dropout=0",  # dropout masks are drawn per process: off, so the runs can be compared
        "model.net.layer_dropout=0",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=2",
        "logger=none",
        "test=false",
    ]
    one = train(compose_train_at(tmp_path / "one", *common, "data.batch_size=4", "data.eval_batch_size=2"))
    two = train(
        compose_train_at(tmp_path / "two", *common, "data.batch_size=2", "data.eval_batch_size=1", "trainer=ddp_sim")
    )
    assert_same_weights(one, two)  # the state carried across windows per rank, as rows of one batch
    assert two.metrics["val/loss"] == pytest.approx(one.metrics["val/loss"], rel=1e-5)


@pytest.mark.parametrize("spawned", [True, False])
def test_a_spawned_stage_closes_its_process_group_and_others_keep_theirs(tmp_path, monkeypatch, spawned):
    """A stage's spawned process closes its group before exiting (an exit with it open can abort the rank);
    the parent process or a torchrun worker keeps it for the next stage."""
    import multiprocessing

    import torch.distributed as dist

    from seqmodels.tasks import base

    parent = object() if spawned else None
    monkeypatch.setattr(multiprocessing, "parent_process", lambda: parent)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        base.close_spawned_process_group()
        assert dist.is_initialized() is not spawned
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
