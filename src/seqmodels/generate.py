"""``seqmodels-generate ckpt_path=... prompt="..."``: continue a prompt with a trained generative model.

    seqmodels-generate ckpt_path=run/checkpoints/epoch_009.ckpt prompt="async def " max_new_tokens=300
    seqmodels-generate ckpt_path=... temperature=0        # greedy
    seqmodels-generate ckpt_path=... top_p=0.9 num_samples=3 seed=1

The prompt is read once; every new token then costs one recurrent step (the state is carried, the prefix is
never re-run). Samples go to stdout, separated by blank lines.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
from seqmodels.config import config_dir, describe_error, requested_device, silence_library_noise
from seqmodels.train import USER_ERRORS


def generate(cfg: DictConfig) -> list[str]:
    """Samples ``cfg.num_samples`` continuations of ``cfg.prompt``; returns them as text."""
    checkpoint = load_checkpoint(cfg.ckpt_path, weights_only=cfg.get("weights_only", True))
    model, datamodule = build_from_checkpoint(checkpoint, setup_data=False)  # the vocabulary is in the checkpoint
    net = model.net
    if not hasattr(net, "generate") or not hasattr(datamodule, "encode_prompt"):
        raise ValueError(
            f"{cfg.ckpt_path} holds a {type(net).__name__}, which does not generate; use a language model checkpoint"
        )
    if cfg.num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {cfg.num_samples}")
    device = requested_device(cfg)
    net.to(device).eval()

    ids = datamodule.encode_prompt(str(cfg.prompt))
    if not ids:
        raise ValueError('an empty prompt has nothing to continue for this model; pass prompt="..."')
    prompt = torch.tensor([ids] * cfg.num_samples, device=device)
    generator = torch.Generator(device=device).manual_seed(int(cfg.seed))
    tokens, lengths = net.generate(
        prompt,
        cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        eos_id=datamodule.stop_id,
        generator=generator,
    )
    samples = [ids + row[: int(n)].tolist() for row, n in zip(tokens.cpu(), lengths.cpu(), strict=True)]
    if cfg.get("midi_path"):
        if not hasattr(datamodule, "write_midi"):
            raise ValueError(f"midi_path is for music models; {type(datamodule).__name__} does not write MIDI")
        path = Path(cfg.midi_path)
        for index, sample in enumerate(samples):
            target = path if len(samples) == 1 else path.with_name(f"{path.stem}_{index}{path.suffix or '.mid'}")
            datamodule.write_midi(sample, target)
            print(f"wrote {target}", file=sys.stderr)
    skip = len(datamodule.prompt_prefix())  # the start token is not part of the text
    return [datamodule.decode(sample[skip:]) for sample in samples]


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="generate")
def main(cfg: DictConfig) -> None:
    silence_library_noise()
    try:
        texts = generate(cfg)
    except USER_ERRORS as exc:
        if os.environ.get("SEQMODELS_DEBUG"):
            raise
        print(f"seqmodels-generate: error: {describe_error(exc)}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    print("\n\n".join(texts), flush=True)


if __name__ == "__main__":
    main()
