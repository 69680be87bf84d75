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

Resuming later: ``save_state=story.pt`` writes, once generation has finished or been stopped with Ctrl-C, what is
needed to go on (the recurrent state, the next-token scores, the sampling generator's state, the token count and
a fingerprint of the model): about 12 KB for the char_lm recipe. ``resume_state=story.pt`` (and no prompt) then
continues where it stopped, as if the first run had never paused: 40 tokens, then 60 resumed, are the 100
tokens of one run with the same seed and sampling settings. The seed is not used when resuming (the generator's
state is in the file), and a resumed run prints (and returns) the continuation alone. Both options are for text
models and one sample (``num_samples=1``); models whose samples end at ``<eos>`` (music) refuse them. The file is
written to a temporary name and renamed, so a stopped run never leaves half a state behind; the same path may be
given to both options to keep extending one text.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from omegaconf import DictConfig

from seqmodels.callbacks import CHECKPOINT_KEY
from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint, task_capabilities
from seqmodels.config import requested_device
from seqmodels.nn.decoding import decode_steps
from seqmodels.nn.streaming import map_state


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

    ``cfg.save_state`` writes a :func:`resumable <save_generation_state>` state after generating (or on Ctrl-C);
    ``cfg.resume_state`` continues from one instead of reading a prompt: the text returned and written is then
    the continuation alone.
    """
    options = check_options(cfg)
    save_path, resume_path = _state_paths(cfg, options)
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
    if save_path or resume_path:
        return _generate_resumable(cfg, options, checkpoint, net, datamodule, device, save_path, resume_path, write)

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


# ----------------------------------------------------------------------------------------- saved generation states
STATE_FORMAT = "seqmodels-generation-state"
STATE_VERSION = 1


def _state_paths(cfg: DictConfig, options: SamplingOptions) -> tuple[Path | None, Path | None]:
    """``save_state`` and ``resume_state`` as paths (None when not given), checked before anything is loaded."""
    save = Path(str(cfg.save_state)) if cfg.get("save_state") else None
    resume = Path(str(cfg.resume_state)) if cfg.get("resume_state") else None
    if not (save or resume):
        return None, None
    names = " and ".join(name for name, path in (("save_state", save), ("resume_state", resume)) if path)
    if options.num_samples != 1:
        raise ValueError(f"{names} continue a single sample; pass num_samples=1 (got {options.num_samples})")
    if resume and str(cfg.get("prompt") or ""):
        raise ValueError(
            "prompt and resume_state are both given: a resumed generation continues the saved text; "
            "drop prompt=... (or drop resume_state=... to start from the prompt)"
        )
    if save is not None:
        if save.is_dir():
            raise ValueError(f"save_state={save} is a folder; pass a file path such as save_state={save / 'state.pt'}")
        if not save.parent.is_dir():
            raise ValueError(f"save_state={save}: the folder {save.parent} does not exist; create it first")
    if resume is not None:
        if resume.is_dir():
            raise ValueError(f"resume_state={resume} is a folder; pass a file written by save_state=...")
        if not resume.is_file():
            raise FileNotFoundError(f"generation state not found: {resume}; write one with save_state={resume}")
    return save, resume


def model_fingerprint(checkpoint: dict[str, Any], datamodule: Any) -> str:
    """A hash of the checkpoint's vocabulary and model config: a saved state only fits the model that wrote it."""
    vocab = getattr(datamodule, "vocab", None)
    tokens = list(vocab.to_dict()["tokens"]) if vocab is not None else None
    model_config = checkpoint[CHECKPOINT_KEY]["config"]["model"]
    blob = json.dumps({"vocab": tokens, "model": model_config}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _check_resumable(net: Any, datamodule: Any) -> None:
    if datamodule.stop_id is not None or hasattr(datamodule, "write_midi") or not hasattr(net, "step"):
        raise ValueError(
            f"save_state/resume_state continue an open-ended text model; this {type(datamodule).__name__} model's "
            "samples are whole sequences (they end at <eos>): generate them anew instead"
        )


def save_generation_state(path: str | os.PathLike, contents: dict[str, Any]) -> int:
    """Writes ``contents`` to ``path`` atomically (a temporary file, then a rename); returns its size in bytes.

    ``path`` keeps its previous contents until the new file is complete: a failed or stopped write loses nothing.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            torch.save(contents, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path.stat().st_size


def load_generation_state(path: str | os.PathLike, fingerprint: str | None = None) -> dict[str, Any]:
    """Reads a state written by ``save_state=`` (``torch.load(weights_only=True)``: it never runs pickled code).

    One-line ``ValueError`` for a file that is not such a state, or (given ``fingerprint``) one from another model.
    """
    path = Path(path)
    fix = "pass a file written by seqmodels-generate save_state=..."
    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"generation state not found: {path}; write one with save_state={path}") from None
    except Exception as exc:  # torch raises several types for unreadable or unsafe files
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ValueError(f"{path} is not a generation state ({reason}); {fix}") from exc
    if isinstance(contents, dict) and CHECKPOINT_KEY in contents:
        raise ValueError(f"{path} is a checkpoint, not a generation state: pass it as ckpt_path=; {fix}")
    if not isinstance(contents, dict) or contents.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not a generation state; {fix}")
    if contents.get("version") != STATE_VERSION:
        raise ValueError(f"{path} is a generation state of version {contents.get('version')!r}, not {STATE_VERSION}")
    logits, rng = contents.get("logits"), contents.get("rng_state")
    tokens, anchor = contents.get("tokens"), contents.get("text_anchor")
    try:
        map_state(lambda t: t, contents.get("state"))
        valid = (
            isinstance(logits, torch.Tensor)
            and logits.dim() == 2
            and isinstance(rng, torch.Tensor)
            and rng.dtype == torch.uint8
            and isinstance(tokens, int)
            and isinstance(anchor, list)
            and all(isinstance(token, int) for token in anchor)
        )
    except TypeError:
        valid = False
    if not valid:
        raise ValueError(f"{path} is a damaged generation state (a field is missing or of the wrong type); {fix}")
    if fingerprint is not None and contents.get("model") != fingerprint:
        raise ValueError(
            f"{path} was saved from another model (its vocabulary or model config differ from this checkpoint's); "
            "resume it with the checkpoint that wrote it"
        )
    return contents


def _generate_resumable(
    cfg: DictConfig,
    options: SamplingOptions,
    checkpoint: dict[str, Any],
    net: Any,
    datamodule: Any,
    device: torch.device,
    save_path: Path | None,
    resume_path: Path | None,
    write: Callable[[str], None] | None,
) -> list[str]:
    """One sample with its recurrent state in hand: read from the prompt or from ``resume_path``, saved at the end.

    The loop is :func:`~seqmodels.nn.decoding.decode_steps` over ``net.step``, as ``generate_steps`` runs it; the
    step is wrapped to remember the newest state and the generator's state before the next draw. A token counts
    once written; when Ctrl-C lands after that but before its step, the step runs at saving time.
    """
    _check_resumable(net, datamodule)
    fingerprint = model_fingerprint(checkpoint, datamodule)
    write = write or (lambda piece: None)
    generator = torch.Generator(device=device)
    with torch.no_grad():
        if resume_path is not None:
            saved = load_generation_state(resume_path, fingerprint)
            if saved["device"] != device.type:
                raise ValueError(
                    f"{resume_path} was saved with device={saved['device']} (its random generator state is for that "
                    f"device); pass device={saved['device']}"
                )
            generator.set_state(saved["rng_state"])
            state = map_state(lambda t: t.to(device), saved["state"])
            logits = saved["logits"].to(device)
            before, anchor, skip = saved["tokens"], list(saved["text_anchor"]), 0
            sample: list[int] = []
        else:
            ids = datamodule.encode_prompt(str(cfg.prompt))
            if not ids:
                raise ValueError('an empty prompt has nothing to continue for this model; pass prompt="..."')
            generator.manual_seed(options.seed % 2**64)
            logits, state = net.read_prompt(torch.tensor([ids], device=device))
            before, skip, sample = 0, len(datamodule.prompt_prefix()), list(ids)
            anchor = ids[skip:]
    first = len(sample)
    # (state, logits, generator state before the next draw, tokens stepped through): always consistent.
    latest = (state, logits, generator.get_state(), 0)

    def step(tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        nonlocal latest
        logits, state = net.step(tokens, state)
        latest = (state, logits, generator.get_state(), latest[3] + 1)
        return logits, state

    def save() -> None:
        new = sample[first:]
        text_anchor = _text_anchor(datamodule.decode, anchor + new)
        assert save_path is not None
        _save(save_path, latest, new, before, text_anchor, fingerprint, net, generator, device)

    pieces = TextPieces(datamodule.decode, anchor)
    try:
        write(datamodule.decode(sample[skip:]))
        steps = decode_steps(
            step,
            logits,
            state,
            options.max_new_tokens,
            temperature=options.temperature,
            top_k=options.top_k,
            top_p=options.top_p,
            eos_id=datamodule.stop_id,
            pad_id=net.embedding.padding_idx or 0,
            generator=generator,
        )
        for drawn in steps:
            token = int(drawn.tokens[0])
            write(pieces.add(token))
            sample.append(token)  # the token counts once written
        write("\n")
    except KeyboardInterrupt:
        if save_path is not None:
            save()
        write("\n")
        raise GenerationInterrupted(len(sample) - first) from None
    if save_path is not None:
        save()
    if resume_path is None:
        return [datamodule.decode(sample[skip:])]
    return ["".join(_replay(datamodule, anchor, sample))]


def _text_anchor(decode: Callable[[Sequence[int]], str], ids: list[int]) -> list[int]:
    """The last of ``ids`` that shows text, as :class:`TextPieces` keeps it (none: ``[]``)."""
    shown: dict[int, bool] = {}
    for token in reversed(ids):
        if shown.setdefault(token, bool(decode([token]))):
            return [token]
    return []


def _replay(datamodule: Any, anchor: list[int], tokens: list[int]) -> list[str]:
    """The text pieces ``tokens`` add after ``anchor``: what a resumed run printed."""
    pieces = TextPieces(datamodule.decode, anchor)
    return [pieces.add(token) for token in tokens]


def _save(
    path: Path,
    latest: tuple[Any, torch.Tensor, torch.Tensor, int],
    new_tokens: list[int],
    before: int,
    text_anchor: list[int],
    fingerprint: str,
    net: Any,
    generator: torch.Generator,
    device: torch.device,
) -> None:
    """Writes the state after ``new_tokens``, the tokens written so far (``before`` more came from earlier runs)."""
    state, logits, rng, stepped = latest
    generated = len(new_tokens)
    if stepped < generated:  # the last written token has not been read yet (always so after the final token)
        with torch.no_grad():
            logits, state = net.step(torch.tensor([new_tokens[-1]], device=device), state)
        rng = generator.get_state()  # no draw has happened since that token's
    contents = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "model": fingerprint,
        "vocab_size": int(logits.shape[-1]),
        "tokens": before + generated,
        "text_anchor": text_anchor,
        "device": device.type,
        # clone(): a view (the last position of the prompt's scores) would save its whole storage.
        "state": map_state(lambda t: t.detach().cpu().clone(), state),
        "logits": logits.detach().cpu().clone(),
        "rng_state": rng.cpu().clone(),
    }
    size = save_generation_state(path, contents)
    total = before + generated
    print(f"wrote {path} ({size} bytes, {total} tokens); resume_state={path} continues it", file=sys.stderr, flush=True)


def _write_midi(cfg: DictConfig, datamodule: Any, samples: list[list[int]], num_samples: int) -> None:
    if not cfg.get("midi_path"):
        return
    path = Path(cfg.midi_path)
    for index, sample in enumerate(samples):
        target = path if num_samples == 1 else path.with_name(f"{path.stem}_{index}{path.suffix or '.mid'}")
        datamodule.write_midi(sample, target)
        print(f"wrote {target}", file=sys.stderr, flush=True)
