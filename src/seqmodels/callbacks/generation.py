"""Writes a few generated samples to TensorBoard (Text tab) at the end of validation epochs."""

from __future__ import annotations

import lightning as L
import torch

from seqmodels.callbacks.tensorboard import epoch_loggers


class GenerationSamples(L.Callback):
    """Samples continuations of ``prompt`` from the model being trained and logs them as ``samples`` text.

    Needs a datamodule with ``encode_prompt(text)`` / ``decode(ids)`` (every language-model datamodule) and
    a network with ``generate`` (e.g. :class:`~seqmodels.nn.RecurrentLanguageModel`).

    Args:
        prompt: text to continue ("" starts from the datamodule's start token).
        num_samples: continuations per epoch.
        max_new_tokens: tokens per continuation.
        temperature, top_k, top_p: sampling settings (temperature 0 is greedy).
        every_n_epochs: log every n-th validation epoch.
        seed: the samples of each epoch are drawn with this seed, so epochs differ only by the model.
    """

    def __init__(
        self,
        prompt: str = "",
        num_samples: int = 3,
        max_new_tokens: int = 200,
        temperature: float = 0.8,
        top_k: int | None = None,
        top_p: float | None = None,
        every_n_epochs: int = 1,
        seed: int = 0,
    ) -> None:
        if num_samples < 1 or every_n_epochs < 1:
            raise ValueError("GenerationSamples: num_samples and every_n_epochs must be >= 1")
        self.prompt = prompt
        self.num_samples = num_samples
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.every_n_epochs = every_n_epochs
        self.seed = seed

    def samples(self, trainer: L.Trainer, pl_module: L.LightningModule) -> list[str]:
        datamodule = trainer.datamodule
        ids = datamodule.encode_prompt(self.prompt)
        if not ids:
            raise ValueError("GenerationSamples: an empty prompt needs a start token; set the callback's prompt")
        prompt = torch.tensor([ids] * self.num_samples, device=pl_module.device)
        generator = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        tokens, lengths = pl_module.net.generate(
            prompt,
            self.max_new_tokens,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            eos_id=getattr(datamodule, "stop_id", None),
            generator=generator,
        )
        skip = len(datamodule.prompt_prefix())  # the start token is not part of the text
        return [
            datamodule.decode((ids + row[: int(n)].tolist())[skip:])
            for row, n in zip(tokens.cpu(), lengths.cpu(), strict=True)
        ]

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = epoch_loggers(trainer, self.every_n_epochs)
        if not loggers:
            return
        texts = self.samples(trainer, pl_module)
        # Indented lines: TensorBoard renders text as Markdown, and a code block keeps spacing and newlines.
        body = "\n\n".join("    " + text.replace("\n", "\n    ") for text in texts)
        for logger in loggers:
            logger.experiment.add_text("samples", body, global_step=trainer.global_step)
