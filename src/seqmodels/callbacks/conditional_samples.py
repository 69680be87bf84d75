"""Logs what a conditional model generates for a few validation conditions (TensorBoard Text and Images tabs)."""

from __future__ import annotations

import lightning as L

from seqmodels.callbacks.tensorboard import epoch_loggers


class ConditionalSamples(L.Callback):
    """At each validation epoch, generates from the first ``num_examples`` validation conditions.

    Token models: a text table of target vs generated sequence (decoded with the datamodule's ``decode``), and,
    for image conditions, a figure of the images titled with their captions. Real-valued models: a figure of
    target and generated curves.
    """

    def __init__(self, num_examples: int = 8, every_n_epochs: int = 1) -> None:
        if num_examples < 1 or every_n_epochs < 1:
            raise ValueError("ConditionalSamples: num_examples and every_n_epochs must be >= 1")
        self.num_examples = num_examples
        self.every_n_epochs = every_n_epochs

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = epoch_loggers(trainer, self.every_n_epochs)
        if not loggers:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        dataset = trainer.datamodule.val_set
        items = [dataset[i] for i in range(min(self.num_examples, len(dataset)))]
        batch = trainer.datamodule.collate_fn(items).to(pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        try:
            generated = pl_module.generate_batch(batch)
        finally:
            pl_module.train(was_training)
        step = trainer.global_step
        n = len(items)
        fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.6), squeeze=False)
        if pl_module.is_token:
            decode = trainer.datamodule.decode
            rows = ["| target | generated |", "|---|---|"]
            for index, (ids, (_, target, condition)) in enumerate(zip(generated, items, strict=True)):
                text = decode(ids)
                rows.append(f"| {decode([t for t in target.tolist() if t >= 0])} | {text} |")
                ax = axes[0, index]
                if condition.dim() >= 2:
                    ax.imshow(condition.squeeze().cpu().numpy(), cmap="gray_r")
                ax.set_title(text.replace(" ", "\n", 2), fontsize=7)
                ax.axis("off")
            for logger in loggers:
                logger.experiment.add_text("samples", "\n".join(rows), global_step=step)
        else:
            for index, (_, target, _) in enumerate(items):
                ax = axes[0, index]
                ax.plot(target.squeeze(-1).cpu().numpy(), label="target", lw=1)
                ax.plot(generated[index].squeeze(-1).cpu().numpy(), label="generated", lw=1)
                ax.set_xticks([])
            axes[0, 0].legend(fontsize=6)
        fig.tight_layout()
        for logger in loggers:
            logger.experiment.add_figure("samples", fig, global_step=step, close=False)
        plt.close(fig)
