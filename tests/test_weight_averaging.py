"""LastEpochsAveraging: the mean of the weights over the last epochs' steps, validated, checkpointed and kept."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from seqmodels.callbacks import LastEpochsAveraging
from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
from seqmodels.config import config_dir
from seqmodels.train import train

SHORT = [
    "experiment=parity",
    "data.num_train=128",
    "data.num_val=64",
    "data.num_test=64",
    "data.batch_size=32",
    "trainer.max_epochs=3",
    "callbacks=[default,weight_averaging]",
    "callbacks.weight_averaging.epochs=2",
    "~callbacks.early_stopping",
    "test=false",  # testing would load the best checkpoint into the task
]
QUIET = ["~callbacks.rich_progress_bar", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]


class WeightRecorder(L.Callback):
    """The weights after every optimizer step, by epoch, and the weights each validation epoch scored."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, dict[str, torch.Tensor]]] = []
        self.validated: list[dict[str, torch.Tensor]] = []

    @staticmethod
    def _weights(module: L.LightningModule) -> dict[str, torch.Tensor]:
        return {name: p.detach().clone() for name, p in module.named_parameters()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append((trainer.current_epoch, self._weights(pl_module)))

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.validated.append(self._weights(pl_module))


def _mean(weights: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {name: torch.stack([w[name] for w in weights]).mean(0) for name in weights[0]}


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.allclose(a[name], b[name], atol=1e-6) for name in a)


@pytest.fixture(scope="module")
def averaged_run(tmp_path_factory):
    """One run shared by the tests below: 3 epochs of 4 steps, the last 2 epochs averaged."""
    out = tmp_path_factory.mktemp("averaged")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[*SHORT, *QUIET], return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.hydra.runtime.output_dir = str(out)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    recorder = WeightRecorder()
    result = train(cfg, extra_callbacks=[recorder])
    return result, recorder


def test_final_weights_are_the_mean_over_the_last_epochs_steps(averaged_run):
    result, recorder = averaged_run
    tail = [w for epoch, w in recorder.steps if epoch >= 1]
    assert len(tail) == 8  # 2 epochs x 4 batches
    final = {name: p.detach() for name, p in result.task.named_parameters()}
    assert _close(final, _mean(tail))
    assert not _close(final, recorder.steps[-1][1])  # the mean, not the last step's weights


def test_validation_scores_raw_weights_before_the_tail_and_the_mean_within_it(averaged_run):
    _, recorder = averaged_run
    first_epoch = [w for epoch, w in recorder.steps if epoch == 0]
    assert _close(recorder.validated[0], first_epoch[-1])
    assert _close(recorder.validated[1], _mean([w for epoch, w in recorder.steps if epoch == 1]))
    assert _close(recorder.validated[2], _mean([w for epoch, w in recorder.steps if epoch >= 1]))


def test_checkpoints_hold_the_mean_and_the_raw_weights_and_load_weights_only(averaged_run):
    result, recorder = averaged_run
    last = Path(result.best_model_path).parent / "last.ckpt"
    checkpoint = load_checkpoint(last)
    mean = _mean([w for epoch, w in recorder.steps if epoch >= 1])
    assert _close({name: checkpoint["state_dict"][name] for name in mean}, mean)
    raw = recorder.steps[-1][1]
    assert _close({name: checkpoint["current_model_state"][name] for name in raw}, raw)
    model, _ = build_from_checkpoint(checkpoint, setup_data=False)
    assert _close({name: p.detach() for name, p in model.named_parameters()}, mean)


def test_resuming_inside_the_tail_continues_the_mean(compose_train, tmp_path):
    short = [s for s in SHORT if not s.startswith("trainer.max_epochs")]
    first = train(compose_train(*short, "trainer.max_epochs=2", "callbacks.weight_averaging.epochs=1"))
    last = Path(first.best_model_path).parent / "last.ckpt"
    assert int(torch.load(last, weights_only=True)["averaging_state"]["n_averaged"]) == 4
    resumed = train(
        compose_train(*short, "trainer.max_epochs=3", "callbacks.weight_averaging.epochs=2", f"ckpt_path={last}")
    )
    averager = next(c for c in resumed.task.trainer.callbacks if isinstance(c, LastEpochsAveraging))
    assert averager.num_averaged == 8


@pytest.mark.parametrize("kwargs", [{"epochs": 0}, {"epochs": 1.5}, {"every_n_steps": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="LastEpochsAveraging"):
        LastEpochsAveraging(**kwargs)


def test_a_run_without_max_epochs_is_refused_in_one_line(compose_train):
    cfg = compose_train(*SHORT, "trainer.max_epochs=-1", "+trainer.max_steps=2")
    with pytest.raises(ValueError, match="needs trainer.max_epochs"):
        train(cfg)


def test_testing_after_training_scores_the_mean(compose_train):
    """trainer.test on an averaged checkpoint keeps its state_dict (the mean), not the raw weights beside it."""
    recorder = WeightRecorder()
    overrides = [s for s in SHORT if s != "test=false"]
    result = train(compose_train(*overrides, "callbacks.model_checkpoint=null"), extra_callbacks=[recorder])
    assert Path(result.best_model_path).name == "last.ckpt"  # tested through the trainer, loaded from disk
    mean = _mean([w for epoch, w in recorder.steps if epoch >= 1])
    assert _close({name: p.detach() for name, p in result.task.named_parameters()}, mean)
