"""Optuna pruning for runs of a sweep: the run reports its validation metric to its trial and stops when pruned.

``seqmodels-train -m hparams_search=optuna`` runs each trial as an ordinary run; the seqmodels Optuna sweeper
(``hydra/sweeper=seqmodels_optuna``) tells the run which trial it is (``optuna_trial.storage``,
``optuna_trial.study_name``, ``optuna_trial.number``). :class:`OptunaPruning` then reports the monitored metric
after every validation to that trial through the study's storage, asks the study's pruner whether to go on, stops
training when not, and records the trial as pruned. Because everything goes through the storage (a SQLite file or
a database), it works the same whether the run is a thread of the sweep, a local process or a SLURM job.

Optuna 2.10 (the version hydra-optuna-sweeper allows) is used through its storage API only.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import lightning as L

log = logging.getLogger(__name__)

# Study and trial attributes that seqmodels keeps in the storage, for jobs and for later sweeps.
PRUNER_ATTR = "seqmodels.pruner"  # the pruner spec (``{name: median, ...}``): jobs build the same pruner
METRIC_ATTR = "seqmodels.optimized_metric"  # what the study's values are, checked when a sweep resumes
OUTPUT_DIR_ATTR = "seqmodels.output_dir"  # a trial's run folder
CHECKPOINT_ATTR = "seqmodels.best_checkpoint"  # a trial's best checkpoint on the monitored metric

PRUNERS = {
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
    "threshold": "ThresholdPruner",
    "none": "NopPruner",
}


def build_pruner(spec: dict[str, Any] | None, where: str = "hydra.sweeper.pruner") -> Any:
    """An Optuna pruner from ``{name: median, n_startup_trials: 5, ...}`` (the other keys are its arguments);
    ``None`` or ``name: none`` never prunes."""
    import optuna

    spec = dict(spec or {"name": "none"})
    name = str(spec.pop("name", None))
    if name not in PRUNERS:
        raise ValueError(
            f"{where}.name={name} is not a pruner; use one of {', '.join(PRUNERS)} ({where}=null disables pruning)"
        )
    cls = getattr(optuna.pruners, PRUNERS[name])
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(spec) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) or "no arguments"
        raise ValueError(f"{where}: the {name} pruner takes {takes}; remove {', '.join(unknown)}")
    try:
        return cls(**spec)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {name} pruner: {exc}") from None


def _stamp_schema_version_in_a_transaction() -> None:
    """Optuna 2.10 stamps a new database's schema version on a connection it never commits, which SQLAlchemy 2
    rolls back (SQLAlchemy 1.x autocommitted): every later open then fails on the missing version. Stamping inside
    ``engine.begin()`` commits it under both."""
    # Alembic announces each of its plugins at INFO when imported: noise in every sweep's log.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import alembic.migration
    from optuna.storages._rdb import storage as rdb

    manager = rdb._VersionManager
    if getattr(manager, "_seqmodels_commits_stamp", False):
        return

    def _set_alembic_revision(self: Any, revision: str) -> None:
        with self.engine.begin() as connection:
            context = alembic.migration.MigrationContext.configure(connection)
            context.stamp(self._create_alembic_script(), revision)

    manager._set_alembic_revision = _set_alembic_revision
    manager._seqmodels_commits_stamp = True


def absolute_storage_url(url: str) -> str:
    """``sqlite:///relative/file.db`` made absolute (jobs may start elsewhere: another folder, a cluster node), its
    folder created; other URLs unchanged."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix + ":memory:":
        return url
    path = Path(url[len(prefix) :]).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return prefix + str(path)


def open_storage(url: str, where: str = "hydra.sweeper.storage") -> Any:
    """The Optuna storage at a SQLAlchemy URL, or a one-line error naming the fix."""
    import optuna

    _stamp_schema_version_in_a_transaction()
    # Parallel trials write to one SQLite file: wait for its lock rather than fail after SQLite's default 5 s.
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except ImportError:
        raise ValueError(
            f"{where}={url}: the database driver for this URL is not installed; install it "
            "(e.g. pip install psycopg2-binary for postgresql://, pymysql for mysql+pymysql://)"
        ) from None
    except Exception as exc:  # SQLAlchemy's errors: a bad URL, an unreachable server, a file that is not a database
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"{where}={url} cannot be opened ({first_line}); give sqlite:///<writable path>.db or the SQLAlchemy URL "
            "of a database this machine can reach"
        ) from None


class OptunaPruning(L.Callback):
    """Reports ``monitor`` to the run's Optuna trial after each validation (step: the epoch), stops training when
    the study's pruner prunes the trial and records it as pruned; records the run folder and best checkpoint on the
    trial. Without a trial (``storage`` null: not a sweep's run) it does nothing.

    Under DDP, rank 0 talks to the storage and tells the other ranks whether to stop.
    """

    def __init__(
        self,
        monitor: str,
        storage: str | None = None,
        study_name: str | None = None,
        trial_number: int | None = None,
        output_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.monitor = monitor
        self.storage_url = storage
        self.study_name = study_name
        self.trial_number = trial_number
        self.output_dir = output_dir
        self.pruned_at: int | None = None  # the epoch the trial was pruned at
        self._study: Any = None
        self._trial: Any = None

    @property
    def active(self) -> bool:
        return self.storage_url is not None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self.active or stage != "fit" or self._trial is not None or not trainer.is_global_zero:
            return
        if self.study_name is None or self.trial_number is None:
            raise ValueError(
                "callbacks.optuna_pruning needs optuna_trial.storage, optuna_trial.study_name and optuna_trial.number "
                "together; run it through seqmodels-train -m hparams_search=optuna"
            )
        import optuna

        storage = open_storage(self.storage_url, where="optuna_trial.storage")
        try:
            study = optuna.load_study(study_name=self.study_name, storage=storage)
        except KeyError:
            raise ValueError(
                f"optuna_trial.study_name={self.study_name} is not a study in {self.storage_url}; "
                "run it through seqmodels-train -m hparams_search=optuna"
            ) from None
        study.pruner = build_pruner(study.user_attrs.get(PRUNER_ATTR), where=f"study {self.study_name}: pruner")
        try:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, int(self.trial_number))
        except KeyError:
            raise ValueError(
                f"optuna_trial.number={self.trial_number} is not a trial of study {self.study_name}; "
                "run it through seqmodels-train -m hparams_search=optuna"
            ) from None
        self._study, self._trial = study, optuna.trial.Trial(study, trial_id)
        if self.output_dir is not None:
            self._trial.set_user_attr(OUTPUT_DIR_ATTR, str(Path(self.output_dir).resolve()))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.active or trainer.sanity_checking:
            return
        prune = False
        if trainer.is_global_zero:
            if self.monitor not in trainer.callback_metrics:
                logged = ", ".join(sorted(trainer.callback_metrics)) or "nothing"
                raise ValueError(
                    f"callbacks.optuna_pruning.monitor={self.monitor} is not logged (logged: {logged}); "
                    "set optimized_metric to one of these"
                )
            value = float(trainer.callback_metrics[self.monitor])
            epoch = trainer.current_epoch
            self._trial.report(value, step=epoch)
            prune = self._trial.should_prune()
            if prune:
                log.info("Optuna trial %d pruned at epoch %d (%s=%.4f)", self._trial.number, epoch, self.monitor, value)
        # Every rank stops at the same epoch, or DDP would wait forever for the ones still training.
        prune = bool(trainer.strategy.broadcast(prune, src=0))
        if prune:
            self.pruned_at = trainer.current_epoch
            trainer.should_stop = True

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.active or not trainer.is_global_zero or self._trial is None:
            return
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if best:
            self._trial.set_user_attr(CHECKPOINT_ATTR, str(Path(best).resolve()))
        if self.pruned_at is not None:
            import optuna

            # Told here, after the checkpoint path: a finished trial takes no more attributes. The sweeper sees
            # the trial finished and leaves its state alone.
            self._study.tell(self._trial, state=optuna.trial.TrialState.PRUNED)
