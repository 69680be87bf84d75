"""``seqmodels-generate ckpt_path=... prompt="..."``: continue a prompt with a trained generative model.

    seqmodels-generate ckpt_path=run/checkpoints/epoch_009.ckpt prompt="async def " max_new_tokens=300
    seqmodels-generate ckpt_path=... temperature=0        # greedy
    seqmodels-generate ckpt_path=... top_p=0.9 num_samples=3 seed=1
    seqmodels-generate ckpt_path=... prompt="Once" save_state=story.pt      # later:
    seqmodels-generate ckpt_path=... resume_state=story.pt save_state=story.pt

Each token is printed as it is drawn. Ctrl-C keeps what was printed and exits with status 130; a reader that
closes the pipe (``| head``) stops it quietly (status 141). ``save_state`` is written on Ctrl-C too, so a stopped
generation can be resumed.
"""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from seqmodels.cli.errors import run
from seqmodels.config import config_dir
from seqmodels.generate import GenerationInterrupted, generate


def _print(piece: str) -> None:
    if piece:
        sys.stdout.write(piece)
        sys.stdout.flush()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="generate")
def main(cfg: DictConfig) -> None:
    try:
        run("seqmodels-generate", lambda: generate(cfg, write=_print))
    except KeyboardInterrupt as exc:  # Ctrl-C: the text so far is printed already
        said = exc if isinstance(exc, GenerationInterrupted) else "interrupted"
        print(f"seqmodels-generate: {said}", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    except BrokenPipeError:
        # The reader is gone (``| head``): stop quietly. Python would report the unflushable stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(141) from None


if __name__ == "__main__":
    main()
