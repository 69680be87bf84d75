"""Logs a few decoded validation utterances to TensorBoard: transcripts (Text tab) and log-mel images (Images tab)."""

from __future__ import annotations

import lightning as L
import torch

from seqmodels.callbacks.tensorboard import epoch_loggers


class SpeechSamples(L.Callback):
    """At each ``every_n_epochs``-th validation epoch, transcribes the first ``num_examples`` validation utterances.

    Writes a ``reference | decoded`` table as ``speech/transcripts`` text and one figure per utterance
    (``speech/{i}``): its log-mel spectrogram (the first ``n_mels`` feature channels; deltas are left out), titled
    with both transcripts. Needs a model with ``transcribe(inputs, lengths)`` (:class:`~seqmodels.tasks.CTCTask`)
    and a speech datamodule (``val_set``, ``texts``, ``collate_fn``). Without a TensorBoard logger it does nothing.
    """

    def __init__(self, num_examples: int = 4, every_n_epochs: int = 1) -> None:
        if num_examples < 1 or every_n_epochs < 1:
            raise ValueError("SpeechSamples: num_examples and every_n_epochs must be >= 1")
        self.num_examples = num_examples
        self.every_n_epochs = every_n_epochs

    @torch.no_grad()
    def samples(self, trainer: L.Trainer, pl_module: L.LightningModule) -> list[tuple[torch.Tensor, str, str]]:
        """``(features (L, C), reference, decoded)`` for the first validation utterances."""
        datamodule = trainer.datamodule
        dataset = datamodule.val_set
        count = min(self.num_examples, len(dataset))
        if count == 0:
            return []
        items = [dataset[i] for i in range(count)]
        batch = datamodule.collate_fn(items).to(pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        try:
            decoded = pl_module.transcribe(batch.inputs, batch.lengths)
        finally:
            pl_module.train(was_training)
        references = datamodule.texts["val"][:count]
        return [(features, ref, hyp) for (features, _), ref, hyp in zip(items, references, decoded, strict=True)]

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = epoch_loggers(trainer, self.every_n_epochs)
        if not loggers:
            return
        samples = self.samples(trainer, pl_module)
        if not samples:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        step = trainer.global_step
        escape = lambda text: text.replace("|", "\\|") or " "  # noqa: E731  (a Markdown table cell)
        rows = ["| reference | decoded |", "|---|---|"]
        rows += [f"| {escape(ref)} | {escape(hyp)} |" for _, ref, hyp in samples]
        n_mels = trainer.datamodule.dims().get("n_mels")
        for logger in loggers:
            logger.experiment.add_text("speech/transcripts", "\n".join(rows), global_step=step)
        for index, (features, ref, hyp) in enumerate(samples):
            image = features[:, :n_mels].T.float().cpu().numpy()  # (mels, frames), low frequencies at the bottom
            fig, ax = plt.subplots(figsize=(max(3.0, 0.03 * image.shape[1] + 1.5), 2.6))
            ax.imshow(image, origin="lower", aspect="auto", cmap="magma")
            ax.set_title(f"ref: {ref}\nhyp: {hyp}", fontsize=8, loc="left")
            ax.set_xlabel("frame")
            ax.set_ylabel("mel bin")
            fig.tight_layout()
            for logger in loggers:
                logger.experiment.add_figure(f"speech/{index}", fig, global_step=step, close=False)
            plt.close(fig)
