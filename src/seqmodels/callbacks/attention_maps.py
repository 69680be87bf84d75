"""Logs attention heat-maps of a few validation examples to TensorBoard (Images tab)."""

from __future__ import annotations

import lightning as L
import torch

from seqmodels.callbacks.tensorboard import epoch_loggers


class AttentionMaps(L.Callback):
    """Draws target x source attention weights for the first ``num_examples`` validation examples.

    Needs a network whose forward returns ``(logits, attention (N, T, S))`` (e.g. :class:`~seqmodels.nn.Seq2Seq`
    with attention) and a datamodule with ``source_vocab`` / ``target_vocab`` to label the axes.
    """

    def __init__(self, num_examples: int = 4, every_n_epochs: int = 1) -> None:
        if num_examples < 1 or every_n_epochs < 1:
            raise ValueError("AttentionMaps: num_examples and every_n_epochs must be >= 1")
        self.num_examples = num_examples
        self.every_n_epochs = every_n_epochs

    @torch.no_grad()
    def figures(self, trainer: L.Trainer, pl_module: L.LightningModule) -> list:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        datamodule = trainer.datamodule
        dataset = datamodule.val_set
        items = [dataset[i] for i in range(min(self.num_examples, len(dataset)))]
        figures = []
        was_training = pl_module.training
        pl_module.eval()
        try:
            for source, target in items:
                src = source.unsqueeze(0).to(pl_module.device)
                tgt = target.unsqueeze(0).to(pl_module.device)
                _, attention = pl_module.net(src, torch.tensor([src.shape[1]]), tgt[:, :-1])
                if attention is None:
                    return []
                weights = attention[0].float().cpu().numpy()  # (T, S)
                fig, ax = plt.subplots(figsize=(0.35 * weights.shape[1] + 2, 0.3 * weights.shape[0] + 1.5))
                ax.imshow(weights, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
                ax.set_xticks(range(weights.shape[1]), datamodule.source_vocab.decode(source), rotation=90)
                ax.set_yticks(range(weights.shape[0]), datamodule.target_vocab.decode(target[1:]))
                ax.set_xlabel("source")
                ax.set_ylabel("output")
                fig.tight_layout()
                figures.append(fig)
        finally:
            pl_module.train(was_training)
        return figures

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = epoch_loggers(trainer, self.every_n_epochs)
        if not loggers:
            return
        for index, figure in enumerate(self.figures(trainer, pl_module)):
            for logger in loggers:
                logger.experiment.add_figure(f"attention/{index}", figure, global_step=trainer.global_step, close=False)
            import matplotlib.pyplot as plt

            plt.close(figure)
