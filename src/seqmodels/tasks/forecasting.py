"""Multi-horizon forecasting: the network's loss in the scaled space, metrics and plots on the original scale.

Logged per evaluation split (``val``/``test``), all on the original scale over every forecast value of every
window: ``loss``, ``mae``, ``rmse``, ``smape`` (%, symmetric), ``mase`` (MAE over the in-sample MAE of the
seasonal-naive forecast on the training part, Hyndman & Koehler 2006), ``coverage`` (probabilistic outputs:
share of actual values inside the prediction interval), and the same four numbers for the naive
(``naive_mae``, ...) and seasonal-naive (``seasonal_naive_mae``, ...) forecasts of the same windows (on
validation once per fit: they do not change). Training
logs ``train/loss`` (epoch mean) and ``train/loss_step`` only: per-step metric work would slow training for numbers
nobody reads.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from seqmodels.data.forecasting import TRANSFORMS, ForecastBatch, TargetScaler
from seqmodels.tasks import _lightning_fastpath as fastpath
from seqmodels.tasks.base import OptimizerFactory, SchedulerFactory, SequenceTask
from seqmodels.tasks.capabilities import Capabilities, Export, Prediction

_FORECASTERS = ("model", "naive", "seasonal_naive")
_ERRORS = ("mae", "rmse", "smape", "mase")


class ForecastMetrics(Metric):
    """MAE, RMSE, sMAPE, MASE of the model and two baselines, and interval coverage, from running sums.

    ``update`` takes (N, H, C) tensors on the original scale and the (N, C) MASE scale of each window.
    ``compute`` returns ``{"mae": ..., "naive_mae": ..., "seasonal_naive_mase": ..., "coverage": ...}``.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        sums = torch.zeros(len(_FORECASTERS), len(_ERRORS), dtype=torch.float64)
        self.add_state("sums", sums, dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("covered", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("interval_count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("loss_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("windows", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(  # type: ignore[override]
        self,
        point: Tensor,
        actual: Tensor,
        scale: Tensor,
        naive: Tensor,
        seasonal_naive: Tensor,
        lower: Tensor | None = None,
        upper: Tensor | None = None,
        loss: Tensor | None = None,
    ) -> None:
        if loss is not None:  # the batch's mean loss, weighted by its windows
            self.loss_sum += loss.detach().double() * point.shape[0]
            self.windows += point.shape[0]
        forecasts = torch.stack([point, naive, seasonal_naive]).double()  # (3, N, H, C)
        actual = actual.double()
        error = (forecasts - actual).abs()
        denominator = forecasts.abs() + actual.abs()
        smape = torch.where(denominator > 0, 200.0 * error / denominator.clamp_min(1e-12), torch.zeros_like(error))
        scaled = error / scale.double()[None, :, None, :]
        per = torch.stack([error, error**2, smape, scaled], dim=1)  # (3, 4, N, H, C)
        self.sums += per.flatten(2).sum(-1)
        self.count += actual.numel()
        if lower is not None and upper is not None:
            self.covered += ((actual >= lower.double()) & (actual <= upper.double())).sum()
            self.interval_count += actual.numel()

    def compute(self) -> dict[str, Tensor]:
        means = self.sums / self.count.clamp_min(1)
        out: dict[str, Tensor] = {}
        for i, name in enumerate(_FORECASTERS):
            prefix = "" if name == "model" else f"{name}_"
            for j, error in enumerate(_ERRORS):
                value = means[i, j].sqrt() if error == "rmse" else means[i, j]
                out[prefix + error] = value.float()
        if self.interval_count > 0:
            out["coverage"] = (self.covered / self.interval_count).float()
        if self.windows > 0:
            out["loss"] = (self.loss_sum / self.windows).float()
        return out


class ForecastingTask(SequenceTask):
    """Trains a forecaster (:class:`~seqmodels.nn.DirectForecaster` or :class:`~seqmodels.nn.Seq2SeqForecaster`)
    with its output's loss (L1/MSE, Gaussian NLL or pinball) on scaled values; evaluates on the original scale.

    The datamodule's target scaler is copied into buffers when a trainer sets the task up, so a checkpoint alone
    turns forecasts back into the data's units. With ``data.scaling=per_series`` the buffers only record that
    mode: each window's own statistics (``ForecastBatch.target_loc``/``target_scale``, which the datamodule keeps
    per series name) bring its forecast back, so forecasts need them (pass the batch, or forecast through the
    datamodule). Static covariates (``ForecastBatch.static_categoricals``/``static_reals``) go to the network.

    Args:
        net: the forecaster.
        optimizer, scheduler: as :class:`SequenceTask`.
        num_plots: validation windows drawn (history, truth, forecast, interval) to TensorBoard's Images tab.
        plot_every_n_epochs: how often; 0 disables plots.
        teacher_forcing_end: scheduled sampling for a :class:`Seq2SeqForecaster`: its ``teacher_forcing``
            decays linearly from its initial value to this one over ``teacher_forcing_epochs`` epochs (None: fixed).
        teacher_forcing_epochs: length of that decay.
        gradient_clip_val: clip the global gradient norm to this (None/0: no clipping) in the task's own
            optimizer step. ``seqmodels-train`` hands it ``trainer.gradient_clip_val`` (the one setting; see
            :attr:`clips_own_gradients`); a Trainer that clips itself makes the task use Lightning's automatic step
            (see :attr:`automatic_optimization`).
        **options: ``scheduler_monitor``, ``scheduler_interval``, ``decay_exempt`` (see :class:`SequenceTask`).
    """

    capabilities: ClassVar[Capabilities] = Capabilities(predict=Prediction.SERIES_TO_FORECAST, export=Export.FORECAST)
    # Its own optimizer step clips faster than Lightning's: the trainer's clipping setting is handed to the task.
    clips_own_gradients: ClassVar[bool] = True

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_plots: int = 3,
        plot_every_n_epochs: int = 5,
        teacher_forcing_end: float | None = None,
        teacher_forcing_epochs: int = 10,
        gradient_clip_val: float | None = 1.0,
        **options: Any,
    ) -> None:
        super().__init__(net, optimizer, scheduler, **options)
        if not hasattr(net, "output") or not hasattr(net, "num_targets"):
            raise TypeError("ForecastingTask needs a forecaster net (DirectForecaster or Seq2SeqForecaster)")
        if teacher_forcing_end is not None:
            if not hasattr(net, "teacher_forcing"):
                raise ValueError("teacher_forcing_end needs a Seq2SeqForecaster; set it to null for this net")
            if not 0.0 <= teacher_forcing_end <= 1.0 or teacher_forcing_epochs < 1:
                raise ValueError("need teacher_forcing_end in [0, 1] and teacher_forcing_epochs >= 1")
        if num_plots < 0 or plot_every_n_epochs < 0:
            raise ValueError("num_plots and plot_every_n_epochs must be >= 0")
        self.num_plots, self.plot_every_n_epochs = num_plots, plot_every_n_epochs
        if gradient_clip_val is not None and gradient_clip_val < 0:
            raise ValueError(f"gradient_clip_val must be >= 0 or null, got {gradient_clip_val}")
        self.gradient_clip_val = gradient_clip_val
        self.teacher_forcing_start = float(getattr(net, "teacher_forcing", 1.0))
        self.teacher_forcing_end, self.teacher_forcing_epochs = teacher_forcing_end, teacher_forcing_epochs
        C = net.num_targets
        self.register_buffer("target_mean", torch.zeros(C))
        self.register_buffer("target_std", torch.ones(C))
        # target_log stays for checkpoints' readers; target_transform (an index into TRANSFORMS) is what is read.
        self.register_buffer("target_log", torch.tensor(False))
        self.register_buffer("target_transform", torch.tensor(0, dtype=torch.long))
        self.register_buffer("target_per_series", torch.tensor(False))
        # Checkpoints from before per-series scaling or the sqrt transform lack those buffers: filled from the rest.
        self.register_load_state_dict_pre_hook(_default_per_series)
        self.register_load_state_dict_pre_hook(_default_transform)
        # {split}/loss is the base class's (scaled space, weighted by windows); the rest on the original scale.
        self.add_metrics(("val", "test"), forecast=ForecastMetrics())
        self.track_best("mae", higher_is_better=False)
        self._plot_rows: dict[str, dict[str, Tensor]] = {}
        self._val_baselines_logged = False
        self._direct_step = False  # set per fit in on_train_start

    # ------------------------------------------------------------------ scaling
    def setup(self, stage: str) -> None:
        datamodule = getattr(self._attached_trainer(), "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "target_scaler"):
            self.set_scaler(datamodule.target_scaler())

    def set_scaler(self, scaler: TargetScaler) -> None:
        if scaler.mean.shape != self.target_mean.shape:
            raise ValueError(
                f"the data has {scaler.mean.numel()} target channels but the model forecasts "
                f"{self.target_mean.numel()}; "
                "set model.net.num_targets=${datamodule:num_targets}"
            )
        self.target_mean.copy_(scaler.mean)
        self.target_std.copy_(scaler.std)
        self.target_log.fill_(scaler.transform == "log")
        self.target_transform.fill_(TRANSFORMS.index(scaler.transform))
        self.target_per_series.fill_(scaler.per_series)

    @property
    def scaler(self) -> TargetScaler:
        index = int(self.target_transform)
        if not 0 <= index < len(TRANSFORMS):
            raise ValueError(
                f"the checkpoint's target_transform {index} is not one of {', '.join(TRANSFORMS)}; "
                "load it with the seqmodels version that wrote it"
            )
        transform = TRANSFORMS[index]
        return TargetScaler(self.target_mean, self.target_std, transform, per_series=bool(self.target_per_series))

    def forward(self, inputs: Tensor, future: Tensor | None = None) -> Tensor:  # type: ignore[override]
        return self.net(inputs, future)

    def _net(
        self, inputs: Tensor, future: Tensor | None, extras: dict[str, Any], targets: Tensor | None = None
    ) -> Tensor:
        """The network's params; static covariates passed only when present (plain forecasters take none)."""
        statics = {k: v for k in ("static_categoricals", "static_reals") if (v := extras.get(k)) is not None}
        return self.net(inputs, future, targets, **statics) if statics else self.net(inputs, future, targets)

    @torch.no_grad()
    def forecast(
        self,
        inputs: Tensor | ForecastBatch,
        future: Tensor | None = None,
        *,
        static_categoricals: Tensor | None = None,
        static_reals: Tensor | None = None,
        target_loc: Tensor | None = None,
        target_scale: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """``point`` (N, H, C) and, for probabilistic outputs, ``lower``/``upper`` (N, H, C) and ``quantiles``
        (N, H, C, Q), all on the original scale (the transform is monotone, so quantiles map to quantiles). With
        ``data.transform=sqrt`` each comes back as ``clamp(min=0) ** 2``: the point forecast is the square of the
        model's sqrt-scale point, a median-type forecast, not the mean (as ``exp`` of a log-scale point is).

        ``inputs`` and ``future`` are the datamodule's windows (``ForecastBatch.inputs``/``future``): already scaled
        with the training scaler; or pass the whole :class:`ForecastBatch`, which also carries the static
        covariates and (``data.scaling=per_series``) each window's target statistics, the keyword arguments here.
        For history on your own scale use ``seqmodels.forecast(result, history)`` (or
        ``ForecastingDataModule.forecast(task, history)``), which scales it first.
        """
        if isinstance(inputs, ForecastBatch):
            batch = inputs
            inputs, future, extras = batch.inputs, batch.future, batch.model_inputs()
        else:
            extras = {
                "static_categoricals": static_categoricals,
                "static_reals": static_reals,
                "target_loc": target_loc,
                "target_scale": target_scale,
            }
        params = self._net(inputs, future, extras)
        return self._to_original(params, extras.get("target_loc"), extras.get("target_scale"))

    @torch.no_grad()
    def forecast_stream(
        self,
        inputs: Tensor,
        state: Any = None,
        future: Tensor | None = None,
        *,
        static_categoricals: Tensor | None = None,
        static_reals: Tensor | None = None,
        target_loc: Tensor | None = None,
        target_scale: Tensor | None = None,
    ) -> tuple[dict[str, Tensor], Any]:
        """Streams new observations through the forecaster: ``inputs`` (N, T, C_in), the T steps observed since
        ``state`` (None: nothing observed yet), scaled as :meth:`forecast`'s; ``future`` (N, H, F) the known-future
        features of the H steps after them. Returns the forecast of those H steps as :meth:`forecast` returns it
        (original scale) and the new state (see ``DirectForecaster.stream``), equal to :meth:`forecast` over every
        observation streamed so far. For observations on your own scale use ``seqmodels.api.ForecastStream``.

        Static covariates and the series' target statistics (``data.scaling=per_series``) as in :meth:`forecast`,
        given with the first call: the state keeps them for the later ones."""
        if isinstance(state, dict):
            target_loc = state.get("target_loc") if target_loc is None else target_loc
            target_scale = state.get("target_scale") if target_scale is None else target_scale
        given = (("static_categoricals", static_categoricals), ("static_reals", static_reals))
        params, state = self.net.stream(inputs, state, future, **{k: v for k, v in given if v is not None})
        out = self._to_original(params, target_loc, target_scale)
        if target_loc is not None and target_scale is not None:
            state["target_loc"], state["target_scale"] = target_loc, target_scale
        return out, state

    def _to_original(
        self, params: Tensor, target_loc: Tensor | None = None, target_scale: Tensor | None = None
    ) -> dict[str, Tensor]:
        """The forecast on the data's scale; ``target_loc``/``target_scale`` (N, C): per-series statistics."""
        output, scaler = self.net.output, self.scaler

        def inverse(values: Tensor) -> Tensor:
            return scaler.inverse(values, target_loc, target_scale)

        out = {"point": inverse(output.point(params))}
        interval = output.interval(params)
        if interval is not None:
            out["lower"], out["upper"] = inverse(interval[0]), inverse(interval[1])
        quantiles = output.quantiles(params)
        if quantiles is not None:
            out["quantiles"] = inverse(quantiles.movedim(-1, 0)).movedim(0, -1)
        return out

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # A ForecastBatch moves itself; Lightning's generic walk over its fields costs more than the
        # recurrent step of a small network.
        if isinstance(batch, ForecastBatch):
            return batch if batch.inputs.device == device else batch.to(device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    # ------------------------------------------------------------------ training
    def on_train_start(self) -> None:
        super().on_train_start()
        self._val_baselines_logged = False
        self._direct_step = fastpath.can_step_directly(self)

    def on_train_epoch_start(self) -> None:
        if self.teacher_forcing_end is not None:
            progress = min(1.0, self.current_epoch / self.teacher_forcing_epochs)
            ratio = self.teacher_forcing_start + (self.teacher_forcing_end - self.teacher_forcing_start) * progress
            self.net.teacher_forcing = ratio
            self.log_epoch_value("train/teacher_forcing", ratio)

    @property
    def automatic_optimization(self) -> bool:  # type: ignore[override]
        """False (the task steps its optimizer itself) unless the Trainer must clip or accumulate gradients.

        Lightning's automatic step wraps every batch in a closure and a dozen hooks, which costs about a third
        of a small forecaster's step on a CPU; the manual step below does the same work (zero_grad, backward,
        clip to ``gradient_clip_val``, step, scheduler) with less machinery, and calls torch directly when no
        callback listens to the step's hooks (see :mod:`seqmodels.tasks._lightning_fastpath`). Lightning clips
        or accumulates only in automatic mode, so a Trainer asked to (``trainer.gradient_clip_val``,
        ``accumulate_grad_batches``) gets that mode.
        """
        trainer = self._attached_trainer()
        if trainer is None:
            return True
        return bool(trainer.gradient_clip_val) or trainer.accumulate_grad_batches != 1

    def training_step(self, batch: ForecastBatch, batch_idx: int) -> Tensor:
        manual = not self.automatic_optimization
        if manual:
            optimizer = self.optimizers()
            optimizer.zero_grad(set_to_none=True)  # type: ignore[union-attr]
        if batch.static_categoricals is None and batch.static_reals is None:
            params = self.net(batch.inputs, batch.future, batch.targets)
        else:
            params = self._net(batch.inputs, batch.future, batch.model_inputs(), batch.targets)
        loss = self.net.output.loss(params, batch.targets)
        self.track_loss("train", loss, len(batch))  # before the optimizer step: it counts the steps done
        if manual:
            if self._direct_step:
                loss.backward()
            else:
                self.manual_backward(loss)
            if self.gradient_clip_val:
                self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_val, gradient_clip_algorithm="norm")
            if self._direct_step:
                fastpath.step_directly(optimizer)  # type: ignore[arg-type]
            else:
                optimizer.step()  # type: ignore[union-attr]
            self._step_schedulers("step")
        return loss

    def _step_schedulers(self, interval: str) -> None:
        """What Lightning does for schedulers in automatic mode (a plateau scheduler reads its monitor)."""
        for config in self.trainer.lr_scheduler_configs:
            if config.interval != interval:
                continue
            if isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                value = self.trainer.callback_metrics.get(config.monitor)
                if value is not None:  # no validation this epoch: nothing to react to
                    config.scheduler.step(value)
            else:
                config.scheduler.step()

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if not self.automatic_optimization:
            self._step_schedulers("epoch")  # validation of this epoch has run: its metrics are current

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, split: str, batch: ForecastBatch, batch_idx: int) -> None:
        params = self._net(batch.inputs, batch.future, batch.model_inputs())
        self.track_loss(split, self.net.output.loss(params, batch.targets), len(batch))
        forecast = self._to_original(params, batch.target_loc, batch.target_scale)
        self.track(
            split,
            "forecast",
            forecast["point"],
            batch.actual,
            batch.mase_scale,
            batch.naive,
            batch.seasonal_naive,
            forecast.get("lower"),
            forecast.get("upper"),
            prog_bar=("mae", "mase") if split == "val" else False,
        )
        if batch_idx == 0 and self.num_plots:
            k = self.num_plots
            loc, scale = (None if v is None else v[:k] for v in (batch.target_loc, batch.target_scale))
            history = self.scaler.inverse(batch.inputs[:k, :, : self.net.num_targets], loc, scale)
            self._plot_rows[split] = {
                "history": history,
                "actual": batch.actual[:k],
                **{key: value[:k] for key, value in forecast.items()},
            }

    def logs_epoch_value(self, key: str) -> bool:
        # The baselines' errors on the validation windows are the same every epoch: logged once per fit (each
        # self.log costs about as much as a training step of a small net).
        if key.startswith(("val/naive_", "val/seasonal_naive_")):
            return not (self._val_baselines_logged or self.trainer.sanity_checking)
        return True

    def validation_step(self, batch: ForecastBatch, batch_idx: int) -> None:
        self._eval_step("val", batch, batch_idx)

    def test_step(self, batch: ForecastBatch, batch_idx: int) -> None:
        self._eval_step("test", batch, batch_idx)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()  # val/mae_best too
        if self.trainer.sanity_checking:
            return
        self._val_baselines_logged = True
        if self.plot_every_n_epochs and (self.current_epoch + 1) % self.plot_every_n_epochs == 0:
            self._log_plots("val")

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if self.plot_every_n_epochs:
            self._log_plots("test")

    def predict_step(self, batch: ForecastBatch, batch_idx: int) -> dict[str, Tensor]:
        return self.forecast(batch)

    # ------------------------------------------------------------------ figures
    def _log_plots(self, split: str) -> None:
        from lightning.pytorch.loggers import TensorBoardLogger

        rows = self._plot_rows.pop(split, None)
        loggers = [lg for lg in self.loggers if isinstance(lg, TensorBoardLogger)]
        if rows is None or not loggers or not self.trainer.is_global_zero:
            return
        import matplotlib.pyplot as plt

        for i in range(rows["history"].shape[0]):
            figure = forecast_figure(
                rows["history"][i, :, 0],
                rows["point"][i, :, 0],
                rows["actual"][i, :, 0],
                rows["lower"][i, :, 0] if "lower" in rows else None,
                rows["upper"][i, :, 0] if "upper" in rows else None,
                title=f"{split} window {i}",
            )
            for logger in loggers:
                logger.experiment.add_figure(f"forecast_{split}/{i}", figure, global_step=self.global_step, close=False)
            plt.close(figure)


def _default_per_series(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Fills ``target_per_series`` (False: global scaling) for checkpoints saved before that buffer existed."""
    key = prefix + "target_per_series"
    if key not in state_dict and prefix + "target_mean" in state_dict:
        state_dict[key] = torch.tensor(False)


def _default_transform(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Fills ``target_transform`` from ``target_log`` (log or none) for checkpoints saved before sqrt existed."""
    key = prefix + "target_transform"
    if key not in state_dict and prefix + "target_mean" in state_dict:
        was_log = bool(state_dict.get(prefix + "target_log", torch.tensor(False)))
        state_dict[key] = torch.tensor(TRANSFORMS.index("log" if was_log else "none"), dtype=torch.long)


def forecast_figure(
    history: Tensor,
    point: Tensor,
    actual: Tensor | None = None,
    lower: Tensor | None = None,
    upper: Tensor | None = None,
    title: str = "",
    interval_label: str = "interval",
) -> Any:
    """A matplotlib figure of one window: history (L,), truth and forecast (H,), the interval as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    L, H = history.shape[0], point.shape[0]
    past, ahead = range(-L + 1, 1), range(1, H + 1)
    figure, ax = plt.subplots(figsize=(7, 3))
    ax.plot(past, history.detach().cpu().numpy(), color="black", label="history")
    if actual is not None:
        ax.plot(ahead, actual.detach().cpu().numpy(), color="black", linestyle="--", label="truth")
    ax.plot(ahead, point.detach().cpu().numpy(), color="tab:blue", label="forecast")
    if lower is not None and upper is not None:
        ax.fill_between(
            ahead,
            lower.detach().cpu().numpy(),
            upper.detach().cpu().numpy(),
            color="tab:blue",
            alpha=0.25,
            label=interval_label,
        )
    ax.axvline(0.5, color="grey", linewidth=0.8)
    ax.set_xlabel("steps from the forecast origin")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    return figure


__all__ = ["ForecastMetrics", "ForecastingTask", "forecast_figure"]
