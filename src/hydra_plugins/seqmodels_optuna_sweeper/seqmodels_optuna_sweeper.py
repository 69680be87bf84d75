"""The ``hydra/sweeper=seqmodels_optuna`` config and plugin class (Hydra imports this module to discover it).

Kept light: Hydra imports every plugin module on each start, so Optuna is imported only when a sweep runs. No
``from __future__ import annotations``: Hydra runs this module before registering it in ``sys.modules``, where
``dataclasses`` would look up string annotations.
"""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

try:
    from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
except ImportError:  # seqmodels[sweeps] not installed: nothing to register, and no warning on every start
    OptunaSweeperConf = None


# hydra/sweeper/pruner=<name>: Optuna's pruners with their arguments (the epoch is the step). median and
# percentile stop a run whose best value so far is worse than the median (percentile) of earlier trials' values at
# that epoch, once n_startup_trials trials have ended and from epoch n_warmup_steps on.
PRUNER_OPTIONS: dict[str, dict[str, Any]] = {
    "median": {"n_startup_trials": 5, "n_warmup_steps": 2, "interval_steps": 1},
    "percentile": {"percentile": 25.0, "n_startup_trials": 5, "n_warmup_steps": 2, "interval_steps": 1},
    "successive_halving": {"min_resource": "auto", "reduction_factor": 4, "min_early_stopping_rate": 0},
    "hyperband": {"min_resource": 1, "max_resource": "auto", "reduction_factor": 3},
    "threshold": {"lower": None, "upper": None, "n_warmup_steps": 0, "interval_steps": 1},
    "none": {},
}

if OptunaSweeperConf is not None:

    @dataclass
    class SeqmodelsOptunaSweeperConf(OptunaSweeperConf):
        _target_: str = "hydra_plugins.seqmodels_optuna_sweeper.seqmodels_optuna_sweeper.SeqmodelsOptunaSweeper"
        # SQLAlchemy URL of the study's storage (relative sqlite paths are made absolute); null: in memory, so
        # no resuming, no parallel processes and no pruning.
        storage: Any = None
        # null: the run's task_name.
        study_name: Any = None
        # Trials given to the launcher at once: in parallel with hydra/launcher=submitit_local or a cluster launcher.
        n_jobs: int = 1
        # {name: <one of PRUNER_OPTIONS>, <its arguments>}, chosen with hydra/sweeper/pruner=<name>; null: never prune.
        pruner: Any = None

    ConfigStore.instance().store(
        group="hydra/sweeper", name="seqmodels_optuna", node=SeqmodelsOptunaSweeperConf, provider="seqmodels"
    )
    for _name, _arguments in PRUNER_OPTIONS.items():
        ConfigStore.instance().store(
            group="hydra/sweeper/pruner", name=_name, node={"name": _name, **_arguments}, provider="seqmodels"
        )


class SeqmodelsOptunaSweeper(Sweeper):
    """Hydra's interface; the work is in ``_impl.SeqmodelsOptunaSweeperImpl``."""

    def __init__(self, pruner: Any = None, **kwargs: Any) -> None:
        from seqmodels.cli.errors import run

        from ._impl import SeqmodelsOptunaSweeperImpl

        spec = OmegaConf.to_container(pruner, resolve=True) if isinstance(pruner, DictConfig) else pruner
        self.sweeper = run("seqmodels-train", lambda: SeqmodelsOptunaSweeperImpl(pruner=spec, **kwargs))

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        from seqmodels.cli.errors import run

        return run("seqmodels-train", lambda: self.sweeper.sweep(arguments))
