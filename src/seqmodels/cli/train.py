"""``seqmodels-train``: compose configs, then train and test one run (or a sweep of runs with ``-m``).

seqmodels-train experiment=parity model/encoder=gru trainer.max_epochs=5
seqmodels-train -m model/encoder=rnn,lstm,gru
seqmodels-train experiment=parity ckpt_path=logs/parity/runs/<date>/checkpoints/last.ckpt   # resume
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from seqmodels.cli.errors import run
from seqmodels.config import check_experiment_choice, config_dir
from seqmodels.train import TrainResult, train


def _train(cfg: DictConfig) -> TrainResult:
    check_experiment_choice(list(HydraConfig.get().overrides.task))
    return train(cfg)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> float:
    """Returns the optimized metric's best value, which sweepers (Optuna) minimise or maximise."""
    result = run("seqmodels-train", lambda: _train(cfg))
    return result.metrics[f"best/{cfg.optimized_metric}"]


if __name__ == "__main__":
    main()
