"""``seqmodels-eval ckpt_path=...``: evaluate a checkpoint on the test split of the data it was trained on.

seqmodels-eval ckpt_path=logs/japanese_vowels/runs/<date>/checkpoints/epoch_012.ckpt
seqmodels-eval ckpt_path=... data.num_workers=2
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from seqmodels.cli.errors import run
from seqmodels.config import config_dir
from seqmodels.eval import evaluate


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="eval")
def main(cfg: DictConfig) -> None:
    metrics = run("seqmodels-eval", lambda: evaluate(cfg))
    print("\n".join(f"{k}: {v:.4f}" for k, v in sorted(metrics.items())), flush=True)


if __name__ == "__main__":
    main()
