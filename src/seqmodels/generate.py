"""Generation from a checkpoint (the library behind ``seqmodels-generate ckpt_path=... prompt="..."``).

    seqmodels-generate ckpt_path=run/checkpoints/epoch_009.ckpt prompt="async def " max_new_tokens=300
    seqmodels-generate ckpt_path=... temperature=0        # greedy
    seqmodels-generate ckpt_path=... top_p=0.9 num_samples=3 seed=1

The prompt is read once; every new token then costs one recurrent step (the state is carried, the prefix is
never re-run).

Output streams: each token's text is printed (and flushed) as soon as it is drawn, the prompt first. Samples are
drawn one after another, each printed as it is produced, separated by blank lines. Sample ``i`` (from 0) is drawn
with its own generator seeded ``seed + i``: the same seed gives the same text, sample ``i`` does not depend on
``num_samples``, and ``seed=s+i num_samples=1`` prints sample ``i`` of ``seed=s`` alone. (Versions that drew
all samples in one batch printed other text for ``num_samples > 1``; ``num_samples=1`` is unchanged.)

Ctrl-C stops generation: what was printed stays, ``midi_path`` gets the samples so far, one line on stderr says
how many tokens were generated, and the exit status is 130. A reader that closes the pipe (``| head``) stops it
quietly too (status 141, as for other tools).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from omegaconf import DictConfig

from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint, task_capabilities
from seqmodels.config import requested_device


class GenerationInterrupted(KeyboardInterrupt):
    """Ctrl-C during generation, after ``tokens`` new tokens (all of them already passed to ``write``)."""

    def __init__(self, tokens: int) -> None:
        super().__init__(f"interrupted after {tokens} token{'' if tokens == 1 else 's'}")
        self.tokens = tokens


class SamplingOptions(NamedTuple):
    max_new_tokens: int
    temperature: float
    top_k: int | None
    top_p: float | None
    num_samples: int
    seed: int


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None. Strings count (``${oc.env:...}`` gives strings); booleans do not."""
    if isinstance(value, bool):
        return None
    if not isinstance(value, str | int | float):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):  # "abc"; an int beyond any float
        return None
    return number if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    """``value`` as an int, or None; ``1e5`` (a float to Hydra) counts, ``2.5`` does not."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # exact, however large
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


def check_options(cfg: DictConfig) -> SamplingOptions:
    """The sampling settings of ``cfg``, checked and converted; a bad one is refused in one line naming it."""
    max_new_tokens = _integer(cfg.get("max_new_tokens"))
    if max_new_tokens is None or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {cfg.get('max_new_tokens')!r}")
    temperature = _number(cfg.get("temperature"))
    if temperature is None or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 is greedy), got {cfg.get('temperature')!r}")
    top_k = None if cfg.get("top_k") is None else _integer(cfg.top_k)
    if cfg.get("top_k") is not None and (top_k is None or top_k < 0):
        raise ValueError(f"top_k must be an integer >= 0 or null (0 or null: no top-k cut), got {cfg.top_k!r}")
    top_p = None if cfg.get("top_p") is None else _number(cfg.top_p)
    if cfg.get("top_p") is not None and (top_p is None or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be a number in (0, 1] or null (null: no nucleus cut), got {cfg.top_p!r}")
    num_samples = _integer(cfg.get("num_samples"))
    if num_samples is None or num_samples < 1:
        raise ValueError(f"num_samples must be an integer >= 1, got {cfg.get('num_samples')!r}")
    seed = _integer(cfg.get("seed"))
    if seed is None:
        raise ValueError(f"seed must be an integer, got {cfg.get('seed')!r}")
    return SamplingOptions(max_new_tokens, temperature, top_k or None, top_p, num_samples, seed)


class TextPieces:
    """The text each new token adds to ``decode(ids)``, at O(1) per token: a stream never re-decodes a sample.

    Language-model text joins the token strings (with nothing between characters, a space between words and a
    line break for ``<eos>``) and leaves out tokens such as ``<bos>`` that show no text. What a token adds thus
    depends only on the last token that shows text, the anchor: a piece is ``decode(anchor + [token])`` less
    ``decode(anchor)``. The pieces of a sample joined are ``decode`` of the whole sample (a test checks this).
    """

    def __init__(self, decode: Callable[[Sequence[int]], str], ids: Sequence[int] = ()) -> None:
        self.decode = decode
        self.anchor: list[int] = []
        self.shows: dict[int, bool] = {}
        for token in ids:
            self._move_anchor(token)

    def _move_anchor(self, token: int) -> None:
        if token not in self.shows:
            self.shows[token] = bool(self.decode([token]))
        if self.shows[token]:
            self.anchor = [token]

    def add(self, token: int) -> str:
        """The text ``token`` adds after the tokens seen so far."""
        before = self.decode(self.anchor)
        piece = self.decode([*self.anchor, token])[len(before) :]
        self._move_anchor(token)
        return piece


def generate(cfg: DictConfig, write: Callable[[str], None] | None = None) -> list[str]:
    """Samples ``cfg.num_samples`` continuations of ``cfg.prompt``, one after another; returns them as text.

    ``write`` gets the output as it is produced, what ``seqmodels-generate`` prints: each sample's text piece by
    piece (its prompt first), a blank line between samples and a final line break. Sample ``i`` is seeded
    ``cfg.seed + i``. On Ctrl-C the samples so far are kept (written as MIDI when ``midi_path`` asks), ``write``
    gets a final line break and :class:`GenerationInterrupted` is raised.
    """
    options = check_options(cfg)
    checkpoint = load_checkpoint(cfg.ckpt_path, weights_only=cfg.get("weights_only", True))
    task, capabilities = task_capabilities(checkpoint)
    if not capabilities.generate:
        raise capabilities.refusal(task, "seqmodels-generate", cfg.ckpt_path)
    model, datamodule = build_from_checkpoint(checkpoint, setup_data=False)  # the vocabulary is in the checkpoint
    net = model.net
    if cfg.get("midi_path") and not hasattr(datamodule, "write_midi"):  # refused before minutes of sampling
        raise ValueError(f"midi_path is for music models; {type(datamodule).__name__} does not write MIDI")
    device = requested_device(cfg)
    net.to(device).eval()

    ids = datamodule.encode_prompt(str(cfg.prompt))
    if not ids:
        raise ValueError('an empty prompt has nothing to continue for this model; pass prompt="..."')
    prompt = torch.tensor([ids], device=device)
    skip = len(datamodule.prompt_prefix())  # the start token is not part of the text
    write = write or (lambda piece: None)
    samples: list[list[int]] = []
    generated = 0
    try:
        for index in range(options.num_samples):
            sample = list(ids)
            samples.append(sample)
            write(("\n\n" if index else "") + datamodule.decode(ids[skip:]))
            pieces = TextPieces(datamodule.decode, ids[skip:])
            # One generator per sample: sample i is the same whatever num_samples is (torch wraps seeds mod 2**64).
            generator = torch.Generator(device=device).manual_seed((options.seed + index) % 2**64)
            steps = net.generate_steps(
                prompt,
                options.max_new_tokens,
                temperature=options.temperature,
                top_k=options.top_k,
                top_p=options.top_p,
                eos_id=datamodule.stop_id,
                generator=generator,
            )
            for step in steps:
                token = int(step.tokens[0])
                write(pieces.add(token))
                sample.append(token)
                generated += 1
        write("\n")
    except KeyboardInterrupt:
        if samples:  # end the text printed so far with its line break, as a finished run does
            write("\n")
        _write_midi(cfg, datamodule, [sample for sample in samples if len(sample) > len(ids)], options.num_samples)
        raise GenerationInterrupted(generated) from None
    _write_midi(cfg, datamodule, samples, options.num_samples)
    return [datamodule.decode(sample[skip:]) for sample in samples]


def _write_midi(cfg: DictConfig, datamodule: Any, samples: list[list[int]], num_samples: int) -> None:
    if not cfg.get("midi_path"):
        return
    path = Path(cfg.midi_path)
    for index, sample in enumerate(samples):
        target = path if num_samples == 1 else path.with_name(f"{path.stem}_{index}{path.suffix or '.mid'}")
        datamodule.write_midi(sample, target)
        print(f"wrote {target}", file=sys.stderr, flush=True)
