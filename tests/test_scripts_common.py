"""scripts/benchmark_common.py: the training timer, the statistics and table helpers, and the G2P scoring."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import benchmark_common as common  # noqa: E402

# Lightning 2.6 trips torch's LeafSpec deprecation on every fit (seqmodels.config silences it for real runs).
pytestmark = pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated")


class _Sleepy(L.LightningModule):
    """Each training step sleeps ``train_s``, each validation step ``val_s``: known durations to time."""

    def __init__(self, train_s: float, val_s: float) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.train_s, self.val_s = train_s, val_s

    def training_step(self, batch, batch_idx):
        time.sleep(self.train_s)
        return self.layer(batch[0]).sum()

    def validation_step(self, batch, batch_idx):
        time.sleep(self.val_s)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit(module: L.LightningModule, timer: common.TrainingTimer, epochs: int, validate: bool) -> None:
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 1)), batch_size=1)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        num_sanity_val_steps=1 if validate else 0,
        limit_val_batches=1 if validate else 0,
    )
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader if validate else None)


def test_training_timer_counts_training_apart_from_validation_and_the_hook_apart_from_both():
    closed: list[common.EpochTime] = []

    def after_epoch(epoch: common.EpochTime) -> None:
        closed.append(epoch)
        time.sleep(0.6)  # outside every clock

    timer = common.TrainingTimer(after_epoch=after_epoch)
    _fit(_Sleepy(train_s=0.02, val_s=0.2), timer, epochs=2, validate=True)
    assert closed == timer.epochs and len(timer.epochs) == 2 and timer.steps == 8
    for epoch in timer.epochs:
        assert 0.08 <= epoch.training.wall < 0.2, epoch  # four steps, not the validation run
        assert 0.2 <= epoch.validation.wall < 0.4, epoch  # one run a epoch: the sanity check is not counted
        assert epoch.training.wall + epoch.validation.wall <= epoch.total.wall < 0.6, epoch
    assert timer.seconds == pytest.approx(sum(e.training.wall for e in timer.epochs))
    assert timer.summary().startswith("2 epochs, 0.0 min training")


@pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")
def test_training_timer_skips_warmup_steps():
    timer = common.TrainingTimer(warmup_steps=2)
    _fit(_Sleepy(train_s=0.05, val_s=0.0), timer, epochs=1, validate=False)
    assert timer.steps == 4 and timer.validation_seconds == 0.0
    assert 0.1 <= timer.seconds < 0.19  # the last two steps only


def test_spread_paired_ratios_and_time_calls():
    values = common.spread([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (values.median, values.low, values.high, values.count) == (3.0, 1.0, 5.0, 5)
    assert (values.q1, values.q3) == (1.5, 4.5) and values.quartiles(".1f") == "1.5-4.5"
    one = common.spread([2.0])
    assert one.median == one.q1 == one.q3 == one.low == one.high == 2.0
    ratios = common.paired_ratios([2.0, 3.0, 8.0], [1.0, 3.0, 2.0])
    assert ratios.median == 2.0 and ratios.range(".0f") == "1-4"
    with pytest.raises(ValueError):
        common.paired_ratios([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="no values"):
        common.spread([])
    assert len(common.time_calls(lambda: None, 3)) == 3


def test_print_table_aligns_columns(capsys):
    common.print_table([("lstm", "0.1", "12.50"), ("gru", "10.25", "3")], header=["cell", "a", "b"], indent=2)
    assert capsys.readouterr().out.splitlines() == [
        "  cell      a      b",
        "  lstm    0.1  12.50",
        "  gru   10.25      3",
    ]
    common.print_table([("name", "value", "[target x]")], align="<<<")
    assert capsys.readouterr().out == "name  value  [target x]\n"


def test_train_result_accessors_take_either_form():
    old = {"test/acc": 0.9, "_best_model_path": "best.ckpt"}
    new = SimpleNamespace(metrics={"test/acc": 0.9}, best_model_path="best.ckpt")
    assert common.run_metrics(old)["test/acc"] == common.run_metrics(new)["test/acc"] == 0.9
    assert common.best_model_path(old) == common.best_model_path(new) == "best.ckpt"
    assert common.decoding_label(1) == "greedy" and common.decoding_label(5) == "beam 5"


def test_g2p_scoring_takes_the_closest_pronunciation():
    from benchmark_g2p import phoneme_errors, score

    assert phoneme_errors(["K", "AE1", "T"], ["K", "AE1", "T"]) == 0
    assert phoneme_errors([], ["K", "AE1", "T"]) == 3
    assert phoneme_errors(["K", "AH0", "T", "S"], ["K", "AE1", "T"]) == 2  # a substitution and an insertion
    cat = [["K", "AE1", "T"], ["K", "AH0", "T"]]
    # Right (any pronunciation matches); one substitution from the closer of two; two edits from a single one.
    wer, per = score([["K", "AH0", "T"], ["K", "AH0", "D"], ["T", "UW1"]], [cat, cat, [["T", "UW1", "Z", "D"]]])
    assert wer == pytest.approx(2 / 3)
    assert per == pytest.approx((0 + 1 + 2) / (3 + 3 + 4))


@pytest.mark.parametrize("keep", [False, True])
def test_a_script_s_run_folders_are_removed_when_it_exits_unless_kept(tmp_path, keep):
    import os
    import shutil
    import subprocess

    shutil.copy(Path(common.__file__), tmp_path / "benchmark_common.py")
    (tmp_path / "probe.py").write_text(
        "import tempfile\nimport benchmark_common\n"
        "run = tempfile.mkdtemp(prefix='seqmodels_')\nopen(run + '/last.ckpt', 'w').write('weights')\n"
        "print(benchmark_common.SCRATCH, run)\n"
    )
    env = {**os.environ, "SEQMODELS_KEEP_RUNS": "1" if keep else "0"}
    done = subprocess.run(
        [sys.executable, "probe.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    scratch, run = done.stdout.split()
    assert Path(run).parent == Path(scratch)  # the run landed in the script's folder
    assert Path(run, "last.ckpt").exists() is keep
    if keep:
        assert scratch in done.stderr
        shutil.rmtree(scratch)
    assert common.SCRATCH is None  # importing it (a test, a notebook) changes nothing
