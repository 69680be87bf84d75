"""A resumed run is the run it continues: same weights, logged metrics, best checkpoint and test result, bit for bit.

Each case trains the same seeded run twice: 4 epochs straight, and 2 epochs then ``ckpt_path=<run>/checkpoints/
last.ckpt`` to 4. Dropout (two layers, 0.3) makes the comparison cover the training randomness as well as the order
of the batches.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seqmodels.train import train

PARITY = [
    "experiment=parity",
    "data.num_train=192",
    "data.num_val=64",
    "data.num_test=64",
    "model.net.encoder.num_layers=2",
    "model.net.encoder.dropout=0.3",
    "callbacks.early_stopping=null",
]


def _scalars(run_dir: Path) -> dict[tuple[str, int], float]:
    """Every logged train/val/test scalar of a run folder, over all its event files, by (tag, step)."""
    values: dict[tuple[str, int], float] = {}
    for event_file in sorted((run_dir / "tensorboard").rglob("events.out.tfevents.*")):
        events = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            if tag.split("/")[0] in ("train", "val", "test"):
                for event in events.Scalars(tag):
                    values[(tag, event.step)] = event.value
    return values


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _straight_and_resumed(compose_train_at, tmp_path: Path, overrides: list[str]):
    """(metrics, run folder) of the uninterrupted and of the interrupted-then-resumed run."""
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    straight = train(compose_train_at(straight_dir, *overrides, "trainer.max_epochs=4"))
    train(compose_train_at(resumed_dir, *overrides, "trainer.max_epochs=2", "test=false"))
    last = resumed_dir / "checkpoints" / "last.ckpt"
    # The resume gets a new run folder, as a user's second command does: the run continues in its own all the same.
    resumed = train(compose_train_at(tmp_path / "new", *overrides, "trainer.max_epochs=4", f"ckpt_path={last}"))
    return straight, straight_dir, resumed, resumed_dir


@pytest.mark.parametrize(
    "sampler",
    [
        pytest.param([], id="shuffled"),
        pytest.param(["data.bucket_by_length=true"], id="bucketed"),
        pytest.param(["data.num_workers=1"], id="worker"),
    ],
)
def test_a_resumed_run_equals_the_uninterrupted_run(compose_train_at, tmp_path, sampler):
    straight, straight_dir, resumed, resumed_dir = _straight_and_resumed(
        compose_train_at, tmp_path, [*PARITY, *sampler]
    )

    sa, sb = _scalars(straight_dir), _scalars(resumed_dir)
    diffs = sorted((k[1], k[0], sa.get(k), sb.get(k)) for k in set(sa) | set(sb) if sa.get(k) != sb.get(k))
    assert not diffs, diffs[:8]
    a, b = _weights(straight_dir / "checkpoints" / "last.ckpt"), _weights(resumed_dir / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert Path(straight.best_model_path).name == Path(resumed.best_model_path).name
    assert Path(resumed.best_model_path).parent == resumed_dir / "checkpoints"
    assert straight.metrics == resumed.metrics
    assert not (tmp_path / "new" / "checkpoints").exists()  # nothing was written to the folder the resume was given


def test_a_resumed_language_model_reads_the_same_streams_and_carries_the_same_state(compose_train_at, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"line {i % 17} says {'ab' * (i % 5)} and ends.\n" for i in range(400)))
    overrides = [
        "experiment=char_lm",
        f"data.path={corpus}",
        "data.bptt=16",
        "data.batch_size=8",
        "data.variable_bptt=true",
        "model.net.embedding_dim=16",
        "model.net.hidden_size=32",
        "model.net.num_layers=2",
        "callbacks.early_stopping=null",
        "~callbacks.generation_samples",
    ]
    straight, straight_dir, resumed, resumed_dir = _straight_and_resumed(compose_train_at, tmp_path, overrides)
    sa, sb = _scalars(straight_dir), _scalars(resumed_dir)
    diffs = sorted((k[1], k[0], sa.get(k), sb.get(k)) for k in set(sa) | set(sb) if sa.get(k) != sb.get(k))
    assert not diffs, diffs[:8]
    a, b = _weights(straight_dir / "checkpoints" / "last.ckpt"), _weights(resumed_dir / "checkpoints" / "last.ckpt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight.metrics["test/loss"] == resumed.metrics["test/loss"]
