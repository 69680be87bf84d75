"""``seqmodels-serve ckpt_path=...``: serve a trained checkpoint over HTTP on 127.0.0.1 (FastAPI + uvicorn).

    seqmodels-serve ckpt_path=run/checkpoints/epoch_009.ckpt                        # http://127.0.0.1:8000
    seqmodels-serve ckpt_path=... port=8080 max_batch_size=64 max_wait_ms=2
    seqmodels-serve ckpt_path=... host=0.0.0.0 allow_remote=true                     # beyond this machine

The endpoints are those the checkpoint's task offers; see :mod:`seqmodels.serve` and ``GET /metadata``.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from seqmodels.cli.errors import run
from seqmodels.config import config_dir, requested_device


def _serve(cfg: DictConfig) -> None:
    from seqmodels.serve import Limits, serve

    limits = Limits(
        max_batch_size=cfg.max_batch_size,
        max_wait_ms=cfg.max_wait_ms,
        max_input_length=cfg.max_input_length,
        max_items=cfg.max_items,
        max_request_bytes=cfg.max_request_bytes,
        max_new_tokens=cfg.max_new_tokens,
    )
    serve(
        str(cfg.ckpt_path),
        host=str(cfg.host),
        port=cfg.port,
        allow_remote=bool(cfg.allow_remote),
        device=str(requested_device(cfg)),
        limits=limits,
        log_level=str(cfg.log_level),
        ready=lambda line: print(f"seqmodels-serve: {line}", file=sys.stderr, flush=True),
    )


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="serve")
def main(cfg: DictConfig) -> None:
    run("seqmodels-serve", lambda: _serve(cfg))


if __name__ == "__main__":
    main()
