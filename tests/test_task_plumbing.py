"""SequenceTask's plumbing: per-split metrics declared once, scheduler options read in one place, weight decay
groups, the config groups of optimizers and encoders, and the guard on the Lightning internals of the fast path."""

from __future__ import annotations

import csv
import functools
import inspect
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn
from torchmetrics import MeanMetric, MetricCollection

from seqmodels.config import instantiate_datamodule, resolve_with_datamodule
from seqmodels.data import SequenceDataset, pad_collate
from seqmodels.nn import MODERN_CELLS, ManyToOneNet, RecurrentEncoder
from seqmodels.tasks import (
    ConditionalGenerationTask,
    CTCTask,
    ForecastingTask,
    LanguageModelTask,
    Seq2SeqTask,
    SequenceClassificationTask,
    SequenceRegressionTask,
    SequenceTaggingTask,
    SequenceTask,
)
from seqmodels.tasks import _lightning_fastpath as fastpath
from seqmodels.tasks.base import WeightedMean

SPLITS = ("train", "val", "test")
TASKS = [
    SequenceClassificationTask,
    SequenceRegressionTask,
    SequenceTaggingTask,
    LanguageModelTask,
    Seq2SeqTask,
    ConditionalGenerationTask,
    CTCTask,
    ForecastingTask,
]


def _classifier(optimizer=None, **options) -> SequenceClassificationTask:
    net = ManyToOneNet(RecurrentEncoder("gru", input_size=4, hidden_size=8, batch_first=True), num_outputs=2)
    optimizer = optimizer or functools.partial(torch.optim.AdamW, lr=0.01, fused=True)
    return SequenceClassificationTask(net, num_classes=2, optimizer=optimizer, **options)


# ------------------------------------------------------------------------------------------ per-split metrics
def test_sequence_task_builds_the_loss_of_every_split_and_each_declared_metric_once_per_split():
    task = _classifier()
    assert set(task.split_metrics) == {f"{split}/{name}" for split in SPLITS for name in ("loss", "scores")}
    for split in SPLITS:
        assert isinstance(task.metric(split, "loss"), WeightedMean)
        scores = task.metric(split, "scores")
        assert isinstance(scores, MetricCollection) and scores.prefix == f"{split}/"
    # One object per split: states never mix between train, val and test.
    objects = [task.metric(split, name) for split in SPLITS for name in ("loss", "scores")]
    assert len({id(metric) for metric in objects}) == len(objects)
    # Metric states are not persistent: a checkpoint holds the weights only, under their old names.
    assert all(key.startswith("net.") for key in task.state_dict())


def test_tasks_declare_only_the_metrics_they_track():
    from seqmodels.nn import CTCNet, Seq2Seq

    ctc = CTCTask(
        CTCNet(RecurrentEncoder("gru", input_size=4, hidden_size=8, batch_first=True), num_classes=3),
        labels=["_", "a", "b"],
        optimizer=torch.optim.Adam,
    )
    assert set(ctc.split_metrics) == {f"{s}/{n}" for s in SPLITS for n in ("loss", "cer", "wer")}
    net = Seq2Seq(5, 6, bos_id=1, eos_id=2, embedding_dim=4, hidden_size=8)
    plain, with_bleu = (
        Seq2SeqTask(net, optimizer=torch.optim.Adam),
        Seq2SeqTask(net, optimizer=torch.optim.Adam, bleu=True),
    )
    decoded = {f"{s}/{n}" for s in ("val", "test") for n in ("exact", "ter")}
    assert set(plain.split_metrics) == {f"{s}/{n}" for s in SPLITS for n in ("loss", "acc")} | decoded
    assert set(with_bleu.split_metrics) - set(plain.split_metrics) == {"val/bleu", "test/bleu"}
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        plain.add_metrics(("dev",), bleu=MeanMetric())


def test_the_loss_metric_is_the_weighted_mean_and_skips_batches_of_no_weight():
    metric = WeightedMean()
    metric.update(torch.tensor(1.0), 3)
    metric.update(torch.tensor(5.0), torch.tensor(1))
    metric.update(torch.tensor(float("nan")), 0)  # e.g. a batch without a real target token
    assert metric.compute().item() == pytest.approx(2.0)
    assert metric.state_dict() == {}  # not persistent


def test_track_logs_a_dict_valued_metric_under_its_split_with_chosen_entries_on_the_progress_bar():
    class Pair(MeanMetric):
        def compute(self):
            value = super().compute()
            return {"a": value, "b": 2 * value}

    task = _classifier()
    task.add_metrics(("val",), pair=Pair())
    logged = {}
    task.log_epoch_value = lambda name, value, prog_bar=False: logged.update({name: (float(value), prog_bar)})
    task.trainer = SimpleNamespace(sanity_checking=False)
    task.track("val", "pair", torch.tensor(3.0), prog_bar=("b",))
    task.track_loss("val", torch.tensor(1.5), batch_size=4)
    values = task.epoch_end("val")
    assert logged == {"val/a": (3.0, False), "val/b": (6.0, True), "val/loss": (1.5, True)}
    assert set(values) == set(logged) and not task._tracked["val"]


# ------------------------------------------------------------------------------------------ scheduler options
def test_scheduler_options_pass_through_no_task_constructor_and_still_reach_the_scheduler():
    for cls in TASKS:
        parameters = inspect.signature(cls.__init__).parameters
        assert not {"scheduler_monitor", "scheduler_interval"} & set(parameters), cls.__name__
        assert any(p.kind is p.VAR_KEYWORD for p in parameters.values()), cls.__name__
    scheduler = functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau, patience=1)
    task = _classifier(scheduler=scheduler, scheduler_monitor="val/acc", scheduler_interval="step")
    config = task.configure_optimizers()["lr_scheduler"]
    assert (config["monitor"], config["interval"]) == ("val/acc", "step")
    default = _classifier(scheduler=scheduler).configure_optimizers()["lr_scheduler"]
    assert (default["monitor"], default["interval"]) == ("val/loss", "epoch")
    with pytest.raises(ValueError, match="scheduler_interval must be 'epoch' or 'step'"):
        _classifier(scheduler_interval="batch")


# ------------------------------------------------------------------------------------------ weight decay groups
class _Net(nn.Module):
    """An embedding (tied to an output layer), a LayerNorm-LSTM, a LayerNorm with a 2-D gain, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(10, 4)
        self.encoder = RecurrentEncoder("lstm", 4, 6, batch_first=True, impl="custom", layer_norm=True)
        self.norm = nn.LayerNorm((2, 6))
        self.head = nn.Linear(6, 3)
        self.output = nn.Linear(4, 10, bias=False)
        self.output.weight = self.embedding.weight


DECAYED = {"net.encoder.rnn.weight_ih_l0", "net.encoder.rnn.weight_hh_l0", "net.head.weight"}


def _groups(optimizer: torch.optim.Optimizer, task: SequenceTask) -> list[tuple[set[str], float]]:
    names = {id(p): name for name, p in task.named_parameters()}
    return [({names[id(p)] for p in group["params"]}, group["weight_decay"]) for group in optimizer.param_groups]


def test_decay_exempt_puts_biases_norms_and_embeddings_in_a_group_without_weight_decay():
    factory = functools.partial(torch.optim.AdamW, lr=0.01, weight_decay=0.1, fused=True)
    task = SequenceTask(_Net(), optimizer=factory, decay_exempt=True)
    optimizer = task.configure_optimizers()
    everything = {name for name, _ in task.named_parameters()}
    assert _groups(optimizer, task) == [(DECAYED, 0.1), (everything - DECAYED, 0.0)]
    assert [group["name"] for group in optimizer.param_groups] == ["decay", "no_decay"]  # lr-AdamW/decay, ...
    exempt = _groups(optimizer, task)[1][0]
    assert {"net.embedding.weight", "net.norm.weight", "net.norm.bias", "net.head.bias"} <= exempt
    assert {"net.encoder.rnn.bias_ih_l0", "net.encoder.rnn.ln_c_weight_l0"} <= exempt
    # Fused still: every group, and it still steps.
    assert optimizer.defaults["fused"] is True and all(group["fused"] for group in optimizer.param_groups)
    for p in task.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    # Off (the default), or nothing to decay: one group, as before.
    assert len(SequenceTask(_Net(), optimizer=factory).configure_optimizers().param_groups) == 1
    no_decay = functools.partial(torch.optim.AdamW, lr=0.01, weight_decay=0.0, fused=True)
    assert len(SequenceTask(_Net(), optimizer=no_decay, decay_exempt=True).configure_optimizers().param_groups) == 1
    # AdamW's default weight decay (0.01) counts; an optimizer given as any callable gets the two groups as well.
    adamw = SequenceTask(_Net(), optimizer=functools.partial(torch.optim.AdamW, lr=0.01), decay_exempt=True)
    assert [wd for _, wd in _groups(adamw.configure_optimizers(), adamw)] == [0.01, 0.0]
    lam = SequenceTask(_Net(), optimizer=lambda params: torch.optim.SGD(params, lr=0.1, weight_decay=0.5))
    lam.decay_exempt = True
    assert _groups(lam.configure_optimizers(), lam) == [(DECAYED, 0.5), (everything - DECAYED, 0.0)]


def test_the_fused_choice_still_holds_for_the_decay_groups():
    # Under a gradient scaler the optimizer runs unfused, in both groups; an optimizer class without the option too.
    factory = functools.partial(torch.optim.AdamW, lr=0.01, fused=True)
    scaled = SequenceTask(_Net(), optimizer=factory, decay_exempt=True)
    scaled._trainer = SimpleNamespace(precision_plugin=SimpleNamespace(scaler=object()))
    optimizer = scaled.configure_optimizers()
    assert len(optimizer.param_groups) == 2 and not any(group["fused"] for group in optimizer.param_groups)
    rmsprop = functools.partial(torch.optim.RMSprop, lr=0.01, weight_decay=0.1, fused=True)
    assert len(SequenceTask(_Net(), optimizer=rmsprop, decay_exempt=True).configure_optimizers().param_groups) == 2
    # Fused and unfused train alike with the two groups.
    results = []
    for fused in (None, True):
        torch.manual_seed(0)
        task = _classifier(
            functools.partial(torch.optim.AdamW, lr=0.02, weight_decay=0.1, fused=fused), decay_exempt=True
        )
        optimizer = task.configure_optimizers()
        assert len(optimizer.param_groups) == 2
        g = torch.Generator().manual_seed(1)
        inputs, lengths = torch.randn(16, 6, 4, generator=g), torch.randint(2, 7, (16,), generator=g)
        for _ in range(5):
            optimizer.zero_grad()
            F.cross_entropy(task.net(inputs, lengths), (inputs[:, 0, 0] > 0).long()).backward()
            optimizer.step()
        results.append(torch.cat([p.detach().flatten() for p in task.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-5)


def test_a_resumed_one_group_checkpoint_keeps_one_group():
    task = SequenceTask(_Net(), optimizer=functools.partial(torch.optim.AdamW, lr=0.01), decay_exempt=True)
    saved = SequenceTask(_Net(), optimizer=functools.partial(torch.optim.AdamW, lr=0.01)).configure_optimizers()
    task.on_load_checkpoint({"optimizer_states": [saved.state_dict()]})
    with pytest.warns(UserWarning, match="one parameter group"):
        optimizer = task.configure_optimizers()
    optimizer.load_state_dict(saved.state_dict())
    assert len(optimizer.param_groups) == 1


# ------------------------------------------------------------------------------------------ configs
def test_adamw_configs_turn_decay_exempt_on_and_other_optimizers_leave_it_off(compose_train):
    cfg = compose_train("experiment=parity")
    assert cfg.model.decay_exempt is True and cfg.model.optimizer._target_ == "torch.optim.AdamW"
    assert "scheduler_monitor" not in cfg.model  # the default, read by SequenceTask
    for name, target in (("adam", "torch.optim.Adam"), ("sgd", "torch.optim.SGD")):
        cfg = compose_train("experiment=parity", f"model/optimizer={name}")
        assert cfg.model.optimizer._target_ == target and "decay_exempt" not in cfg.model
        assert cfg.model.optimizer.lr == 0.01  # the experiment's setting survives the swap
        optimizer = instantiate(cfg.model.optimizer)(params=[nn.Parameter(torch.zeros(2))])
        assert isinstance(optimizer, getattr(torch.optim, target.rsplit(".", 1)[1]))


@pytest.mark.parametrize(
    "experiment,net_cls,overrides",
    [
        ("char_lm", "RecurrentLanguageModel", ["data.path=${python_lib:}/json", "model.net.hidden_size=16"]),
        ("reverse", "Seq2Seq", ["model.net.hidden_size=16"]),
        ("waveform_generation", "ConditionalDecoder", ["model.net.hidden_size=16"]),
    ],
)
def test_the_encoder_group_picks_the_cell_of_every_model(compose_train, experiment, net_cls, overrides):
    import seqmodels.nn

    cfg = compose_train(f"experiment={experiment}", "model/encoder=gru", *overrides)
    resolve_with_datamodule(cfg, instantiate_datamodule(cfg.data))
    task = instantiate(cfg.model)
    assert isinstance(task.net, getattr(seqmodels.nn, net_cls)) and task.net.cell == "gru"
    assert {m.cell for m in task.net.modules() if isinstance(m, RecurrentEncoder)} == {"gru"}
    # The encoder node mirrors the network's sizes; set apart, the error names the key to set.
    cfg = compose_train(f"experiment={experiment}", *overrides, "model.net.encoder.hidden_size=7")
    resolve_with_datamodule(cfg, instantiate_datamodule(cfg.data))
    with pytest.raises(Exception, match="set model.net.hidden_size"):
        instantiate(cfg.model)
    cfg = compose_train(f"experiment={experiment}", *overrides, "model.net.encoder.impl=custom")
    resolve_with_datamodule(cfg, instantiate_datamodule(cfg.data))
    with pytest.raises(Exception, match="impl='fused' only"):
        instantiate(cfg.model)


def test_a_model_config_stored_before_the_config_groups_still_builds_the_same_weights():
    # Checkpoints keep their run's config: the task options and flat cell of earlier configs must still build.
    old = {
        "_target_": "seqmodels.tasks.LanguageModelTask",
        "char_level": True,
        "scheduler_monitor": "val/loss",
        "scheduler_interval": "epoch",
        "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 0.002, "weight_decay": 0.01},
        "net": {
            "_target_": "seqmodels.nn.RecurrentLanguageModel",
            "vocab_size": 7,
            "cell": "gru",
            "init": "orthogonal",
        },
    }
    new = {
        **old,
        "decay_exempt": True,
        "net": {
            "_target_": "seqmodels.tasks.nets.LanguageModelNet",
            "vocab_size": 7,
            "encoder": {
                "_target_": "seqmodels.nn.RecurrentEncoder",
                "_partial_": True,
                "cell": "gru",
                "init": "orthogonal",
            },
        },
    }
    torch.manual_seed(0)
    before = instantiate(old)
    torch.manual_seed(0)
    after = instantiate(new)
    assert type(before.net).__name__ == "RecurrentLanguageModel" and before.net.cell == after.net.cell == "gru"
    assert before.state_dict().keys() == after.state_dict().keys()
    assert all(torch.equal(before.state_dict()[k], after.state_dict()[k]) for k in before.state_dict())
    after.load_state_dict(before.state_dict())


# ------------------------------------------------------------------------------------------ Lightning internals
def test_the_lightning_internals_of_the_fast_path_are_still_there():
    gone = fastpath.missing()
    assert not gone, (
        "Lightning no longer has what seqmodels/tasks/_lightning_fastpath.py relies on: "
        + ", ".join(gone)
        + ". Forecasting now takes Lightning's public (slower) step; update the fast path or drop it."
    )


def test_every_task_answers_lightnings_per_batch_signature_check_from_its_cached_signature():
    from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature

    from seqmodels import tasks

    task_classes = [c for c in vars(tasks).values() if isinstance(c, type) and issubclass(c, SequenceTask)]
    assert len(task_classes) >= 6
    for cls in task_classes:
        for name in fastpath.STEP_METHODS:
            function = getattr(cls, name)
            if name in vars(cls):
                assert "__signature__" in vars(function), f"{cls.__name__}.{name}"
            code = function.__code__  # the cached signature still says what the code takes
            names = [*code.co_varnames[: code.co_argcount]]
            assert [*inspect.signature(function).parameters][: len(names)] == names, f"{cls.__name__}.{name}"
        step = cls.training_step
        assert is_param_in_hook_signature(step, "batch_idx", min_args=2)
        assert not is_param_in_hook_signature(step, "dataloader_iter", explicit=True)
    assert inspect.getfullargspec(tasks.ForecastingTask.training_step).args == ["self", "batch", "batch_idx"]


def test_the_guard_names_a_changed_internal_and_the_task_falls_back(monkeypatch):
    from lightning.pytorch.loops.optimization import manual

    monkeypatch.delattr(manual._ManualOptimization, "_on_after_step")
    fastpath.missing.cache_clear()
    try:
        assert fastpath.missing() == ("lightning.pytorch.loops.optimization.manual._ManualOptimization._on_after_step",)
        module = SimpleNamespace(automatic_optimization=False, trainer=None)
        assert fastpath.can_step_directly(module) is False  # refused before it looks at the trainer
    finally:
        monkeypatch.undo()
        fastpath.missing.cache_clear()
    assert fastpath.missing() == ()


def test_a_logged_result_already_on_the_device_is_not_walked_and_one_elsewhere_still_moves(monkeypatch):
    from lightning.pytorch.trainer.connectors.logger_connector import result

    fastpath.skip_moves_to_the_same_device()
    assert result._ResultMetric.to.skips_same_device
    collection = result._ResultCollection(training=False)
    for value, batch_size in ((1.0, 2), (4.0, 6)):
        collection.log("validation_step", "val/mae", torch.tensor(value), batch_size=batch_size)
    stored = collection["validation_step.val/mae"]

    def walked(*args, **kwargs):
        raise AssertionError("moved a result that is already on the device")

    monkeypatch.setattr(result, "apply_to_collection", walked)
    collection.log("validation_step", "val/mae", torch.tensor(7.0), batch_size=2)
    monkeypatch.undo()
    assert collection["validation_step.val/mae"].compute().item() == pytest.approx((2 + 24 + 14) / 10)
    assert stored.to(torch.device("meta")) is stored  # another device: Lightning's own move
    assert stored.value.device.type == "meta" and stored.cumulated_batch_size.device.type == "meta"


class _DirectStep(L.LightningModule):
    """Manual optimization stepping through :func:`step_directly`, like ForecastingTask's fast path."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.layer = nn.Linear(2, 1)
        self.direct: bool | None = None

    def on_train_start(self) -> None:
        self.direct = fastpath.can_step_directly(self)

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers()
        optimizer.zero_grad()
        loss = self.layer(batch[0]).pow(2).mean()
        loss.backward()
        fastpath.step_directly(optimizer)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_the_direct_step_is_counted_by_lightning_s_loop(tmp_path):
    # The loop's step counters wrap the direct step: global_step counts it, as it counts LightningOptimizer.step.
    data = torch.utils.data.TensorDataset(torch.randn(10, 2))
    module = _DirectStep()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    before = module.layer.weight.detach().clone()
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=2))
    assert module.direct is True
    assert trainer.global_step == 10, "Lightning's manual loop no longer counts steps through _on_before/after_step"
    assert not torch.equal(before, module.layer.weight)


class _Probe(SequenceClassificationTask):
    """Also logs a value every step, to see on which steps loggers write."""

    def training_step(self, batch, batch_idx):
        self.log("probe", float(batch_idx), on_step=True, on_epoch=False)
        return super().training_step(batch, batch_idx)


def test_the_step_loss_reaches_the_logger_on_the_steps_it_writes(tmp_path):
    # Without Lightning's logger connector, the task must still hand train/loss_step over on every step loggers
    # write (log_every_n_steps, counted over epochs), and not on the others.
    from lightning.pytorch.loggers import CSVLogger

    g = torch.Generator().manual_seed(0)
    inputs = [torch.randn(int(k), 4, generator=g) for k in torch.randint(2, 6, (40,), generator=g)]
    data = SequenceDataset(inputs, torch.tensor([int(x[0, 0] > 0) for x in inputs]))
    net = ManyToOneNet(RecurrentEncoder("gru", input_size=4, hidden_size=4, batch_first=True), num_outputs=2)
    task = _Probe(net, num_classes=2, optimizer=functools.partial(torch.optim.Adam, lr=0.01))
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=CSVLogger(tmp_path),
        log_every_n_steps=3,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, torch.utils.data.DataLoader(data, batch_size=4, collate_fn=pad_collate))
    with open(next(tmp_path.rglob("metrics.csv"))) as file:
        rows = list(csv.DictReader(file))
    probe = {row["step"] for row in rows if row.get("probe")}
    loss_step = {row["step"] for row in rows if row.get("train/loss_step")}
    assert 5 <= len(probe) < 20 and loss_step == probe  # 20 steps, loggers write every third


@pytest.mark.parametrize("cell", MODERN_CELLS)
@pytest.mark.parametrize(
    "experiment,overrides",
    [
        ("char_lm", ["data.path=${python_lib:}/json", "model.net.hidden_size=16", "model.net.num_layers=2"]),
        ("reverse", ["model.net.hidden_size=16"]),
        ("waveform_generation", ["model.net.hidden_size=16"]),
    ],
)
def test_every_model_builds_and_trains_on_seqmodels_own_cells(compose_train, experiment, overrides, cell):
    """model/encoder=<cell> for the networks that build their own layers: the cell's config (init, cell_options,
    block options) reaches every recurrent layer, and a loss from a real batch back-propagates to every weight."""
    cfg = compose_train(f"experiment={experiment}", f"model/encoder={cell}", *overrides)
    datamodule = instantiate_datamodule(cfg.data)
    resolve_with_datamodule(cfg, datamodule)
    task = instantiate(cfg.model)
    layers = [m for m in task.net.modules() if isinstance(m, RecurrentEncoder)]
    assert layers and {m.cell for m in layers} == {cell}
    options = cfg.model.net.encoder.get("cell_options") or {}
    for layer in layers:
        for key, value in options.items():
            assert value is None or getattr(layer.rnn, key) == value, (key, layer)
        assert layer.rnn.norm == bool(cfg.model.net.encoder.get("norm", False))
    datamodule.setup()
    batch = next(iter(datamodule.train_dataloader()))
    loss = task.training_step(batch, 0)
    loss = loss["loss"] if isinstance(loss, dict) else loss
    loss.backward()
    assert torch.isfinite(loss)
    assert [n for n, p in task.net.named_parameters() if p.requires_grad and p.grad is None] == []
