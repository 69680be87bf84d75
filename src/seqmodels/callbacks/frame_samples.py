"""Logs predicted frames beside the true ones to TensorBoard's Images tab (frame prediction)."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from seqmodels.callbacks.tensorboard import epoch_loggers


def frame_strip(context: Tensor, target: Tensor, prediction: Tensor) -> Tensor:
    """One image (C, 2H, (L + T)W) of a clip: the top row shows the L context frames then the T true frames, the
    bottom row the T predicted frames under the true ones (blank under the context). Values clamped to [0, 1].

    context (L, C, H, W), target and prediction (T, C, H, W).
    """
    if target.shape != prediction.shape or context.shape[1:] != target.shape[1:]:
        raise ValueError(
            f"frame_strip needs frames of one size: context {tuple(context.shape)}, target {tuple(target.shape)}, "
            f"prediction {tuple(prediction.shape)}"
        )
    top = torch.cat([context, target]).clamp(0, 1)
    bottom = torch.cat([torch.zeros_like(context), prediction.clamp(0, 1)])
    row = lambda frames: torch.cat(list(frames), dim=-1)  # noqa: E731  (T, C, H, W) -> (C, H, T * W)
    return torch.cat([row(top), row(bottom)], dim=-2)


class FramePredictionSamples(L.Callback):
    """At each ``every_n_epochs``-th validation epoch, predicts the first ``num_examples`` validation clips and logs
    each as a :func:`frame_strip` (``frames/{i}``). Needs a model whose ``net(inputs, lengths)`` returns the
    predicted frames (N, T, C, H, W) and a datamodule with ``val_set`` and ``collate_fn``. Without a TensorBoard
    logger it does nothing.
    """

    def __init__(self, num_examples: int = 4, every_n_epochs: int = 1) -> None:
        if num_examples < 1 or every_n_epochs < 1:
            raise ValueError("FramePredictionSamples: num_examples and every_n_epochs must be >= 1")
        self.num_examples = num_examples
        self.every_n_epochs = every_n_epochs

    @torch.no_grad()
    def strips(self, trainer: L.Trainer, pl_module: L.LightningModule) -> list[Tensor]:
        dataset = trainer.datamodule.val_set
        count = min(self.num_examples, len(dataset))
        if count == 0:
            return []
        batch = trainer.datamodule.collate_fn([dataset[i] for i in range(count)]).to(pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        try:
            predictions = pl_module.net(batch.inputs, batch.lengths)
        finally:
            pl_module.train(was_training)
        return [
            frame_strip(batch.inputs[i, : int(batch.lengths[i])], batch.targets[i], predictions[i]).cpu()
            for i in range(count)
        ]

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = epoch_loggers(trainer, self.every_n_epochs)
        if not loggers:
            return
        for index, strip in enumerate(self.strips(trainer, pl_module)):
            for logger in loggers:
                logger.experiment.add_image(f"frames/{index}", strip, global_step=trainer.global_step)
