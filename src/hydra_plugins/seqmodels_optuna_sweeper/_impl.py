"""The sweep: hydra-optuna-sweeper's search space and batching, with a stored study, pruned runs and the best trial.

Each batch of ``n_jobs`` trials goes to the Hydra launcher in one call (run one after another by the basic
launcher, in parallel by submitit). Every trial's run gets ``optuna_trial.{storage,study_name,number}`` so that
its :class:`~seqmodels.callbacks.optuna_pruning.OptunaPruning` callback reports to the trial, and records there
its run folder and best checkpoint. A trial its run pruned is left pruned; the others are told the run's value.
"""

from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from omegaconf import OmegaConf
from optuna.trial import TrialState

from seqmodels.callbacks.optuna_pruning import (
    CHECKPOINT_ATTR,
    METRIC_ATTR,
    OUTPUT_DIR_ATTR,
    PRUNER_ATTR,
    absolute_storage_url,
    build_pruner,
    open_storage,
)

log = logging.getLogger(__name__)

ENDED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
TRIAL_NODE = "optuna_trial"  # the job config node naming the run's trial


class SeqmodelsOptunaSweeperImpl(OptunaSweeperImpl):
    def __init__(self, *, pruner: dict[str, Any] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pruner_spec = pruner
        self.pruner = build_pruner(pruner)  # checked now: a bad pruner fails before any trial runs

    def sweep(self, arguments: list[str]) -> None:
        self._process_searchspace_config()
        params_conf = [*self._parse_sweeper_params_config(), *arguments]
        distributions, fixed_params = create_params_from_overrides(params_conf)
        search_space = {**(self.search_space_distributions or {}), **distributions}
        if isinstance(self.sampler, functools.partial) and self.sampler.func == optuna.samplers.GridSampler:
            grid = {name: self._to_grid_sampler_choices(dist) for name, dist in search_space.items()}
            self.sampler = self.sampler(grid)
            self.n_trials = min(self.n_trials, functools.reduce(lambda n, c: n * len(c), grid.values(), 1))
        for name in fixed_params:
            search_space.pop(name, None)

        directions = self._get_directions()
        study, url = self._open_study(directions)
        self._run_trials(study, url, search_space, fixed_params, directions)

        counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,))) for state in ENDED}
        results: dict[str, Any] = {"name": "optuna", "study_name": study.study_name, "storage": url, **counts}
        if len(directions) == 1 and counts["complete"]:
            best = study.best_trial
            results.update(best_params=best.params, best_value=best.value, best_trial=best.number)
            results["best_dir"] = str(self._write_best(best, fixed_params))
            log.info("Best trial %d: %s = %s, %s", best.number, self.config.optimized_metric, best.value, best.params)
        elif len(directions) > 1:
            results["solutions"] = [{"params": t.params, "values": t.values} for t in study.best_trials]
        else:
            log.warning("No trial of study %s completed: there is no best trial", study.study_name)
        OmegaConf.save(OmegaConf.create(results), Path(self.config.hydra.sweep.dir) / "optimization_results.yaml")

    def _open_study(self, directions: list[str]) -> tuple[optuna.Study, str | None]:
        name = str(self.study_name or self.config.task_name)
        metric = str(self.config.optimized_metric)
        if self.storage is None:
            log.warning("hydra.sweeper.storage=null: the study lives in memory (no resuming, no pruning)")
            return optuna.create_study(study_name=name, sampler=self.sampler, directions=directions), None
        url = absolute_storage_url(str(self.storage))
        storage = open_storage(url)
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=self.sampler,
            pruner=self.pruner,
            directions=directions,
            load_if_exists=True,
        )
        # Optuna caches the trials a process creates and would not see what their runs write to them (a pruned
        # state, a checkpoint path): the sweeper reads and writes the database itself.
        study._storage = storage
        stored = [d.name.lower() for d in study.directions]
        if stored != [d.lower() for d in directions] or study.user_attrs.get(METRIC_ATTR, metric) != metric:
            raise ValueError(
                f"study {name} in {url} {'/'.join(stored)}s {study.user_attrs.get(METRIC_ATTR)}, but this sweep "
                f"{'/'.join(directions).lower()}s {metric}; give it another hydra.sweeper.study_name"
            )
        study.set_user_attr(METRIC_ATTR, metric)
        study.set_user_attr(PRUNER_ATTR, self.pruner_spec)
        ended = study.get_trials(deepcopy=False, states=ENDED)
        if ended:
            # A seeded sampler would suggest again what the first session started with.
            self.sampler.reseed_rng()
            log.info("Resuming study %s in %s: %d of %d trials done", name, url, len(ended), self.n_trials)
            if len(ended) >= self.n_trials:
                log.info("Nothing to run: raise hydra.sweeper.n_trials above %d for more trials", len(ended))
        else:
            log.info("Study %s in %s", name, url)
        return study, url

    def _run_trials(
        self,
        study: optuna.Study,
        url: str | None,
        search_space: dict[str, Any],
        fixed_params: dict[str, Any],
        directions: list[str],
    ) -> None:
        # n_trials counts the study's ended trials, from every session and every process working on it.
        while (to_go := self.n_trials - len(study.get_trials(deepcopy=False, states=ENDED))) > 0:
            trials = [study.ask() for _ in range(min(self.n_jobs, to_go))]
            overrides = self._configure_trials(trials, search_space, fixed_params)
            if url is not None:
                overrides = [
                    (*o, *_trial_overrides(url, study.study_name, t.number))
                    for o, t in zip(overrides, trials, strict=True)
                ]
            try:
                returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            except BaseException:
                # Interrupted (Ctrl-C, a job's exit): these trials will not end by themselves.
                for trial in trials:
                    if not study._storage.get_trial(trial._trial_id).state.is_finished():
                        study.tell(trial, state=TrialState.FAIL)
                raise
            self.job_idx += len(returns)
            told = [_tell(study, trial, ret, directions) for trial, ret in zip(trials, returns, strict=True)]
            failures = [exc for exc in told if exc is not None]
            if len(failures) / len(returns) > self.max_failure_rate:
                rate = self.max_failure_rate
                log.error("%d of %d trials failed (max_failure_rate=%s)", len(failures), len(returns), rate)
                for ret in returns:
                    ret.return_value  # noqa: B018 -- raises the failed job's own error, with its traceback

    def _write_best(self, best: optuna.trial.FrozenTrial, fixed_params: dict[str, Any]) -> Path:
        """``<sweep dir>/best/``: the best trial's composed config, its overrides, its checkpoint, a summary."""
        best_dir = Path(self.config.hydra.sweep.dir) / "best"
        best_dir.mkdir(parents=True, exist_ok=True)
        output_dir = Path(best.user_attrs[OUTPUT_DIR_ATTR]) if OUTPUT_DIR_ATTR in best.user_attrs else None
        hydra_dir = output_dir / ".hydra" if output_dir is not None else None
        if hydra_dir is not None and (hydra_dir / "config.yaml").is_file():
            config = OmegaConf.load(hydra_dir / "config.yaml")
            config.pop(TRIAL_NODE, None)  # a rerun of this config is not that trial
            OmegaConf.save(config, best_dir / "config.yaml")
            overrides = [o for o in OmegaConf.load(hydra_dir / "overrides.yaml") if _reruns_the_trial(str(o))]
        else:
            overrides = [f"{k}={v}" for k, v in {**best.params, **fixed_params}.items()]
        OmegaConf.save(OmegaConf.create(overrides), best_dir / "overrides.yaml")

        checkpoint = best.user_attrs.get(CHECKPOINT_ATTR)
        if checkpoint is None and output_dir is not None:
            # Not recorded by the run (no storage, or callbacks.optuna_pruning removed): the one best checkpoint
            # model_checkpoint keeps beside last.ckpt.
            kept = [p for p in sorted((output_dir / "checkpoints").glob("*.ckpt")) if p.name != "last.ckpt"]
            checkpoint = str(kept[0]) if len(kept) == 1 else None
        summary = {
            "number": best.number,
            "value": best.value,
            "params": best.params,
            "run_dir": str(output_dir) if output_dir else None,
            "checkpoint": checkpoint,
        }
        OmegaConf.save(OmegaConf.create(summary), best_dir / "trial.yaml")
        (best_dir / "best_checkpoint.txt").unlink(missing_ok=True)
        (best_dir / "best.ckpt").unlink(missing_ok=True)
        if checkpoint and Path(checkpoint).is_file():
            (best_dir / "best_checkpoint.txt").write_text(checkpoint + "\n")
            try:
                (best_dir / "best.ckpt").symlink_to(checkpoint)
            except OSError:  # a file system without symbolic links
                shutil.copyfile(checkpoint, best_dir / "best.ckpt")
        else:
            log.warning("Best trial %d saved no checkpoint (checkpointing off?): best/ has no best.ckpt", best.number)
        return best_dir


def _trial_overrides(url: str, study_name: str, number: int) -> tuple[str, ...]:
    def quoted(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return (
        f"++{TRIAL_NODE}.storage={quoted(url)}",
        f"++{TRIAL_NODE}.study_name={quoted(study_name)}",
        f"++{TRIAL_NODE}.number={number}",
    )


def _reruns_the_trial(override: str) -> bool:
    """Whether an override of the trial's run belongs in a plain rerun (not the sweep's own settings)."""
    key = override.lstrip("+~").split("=", 1)[0]
    return key != "hparams_search" and not key.startswith((TRIAL_NODE, "hydra."))


def _tell(study: optuna.Study, trial: optuna.trial.Trial, ret: JobReturn, directions: list[str]) -> Exception | None:
    """Tells the trial the run's value (a run that pruned its trial already said so); the error if it failed."""
    stored = study._storage.get_trial(trial._trial_id)
    if stored.state.is_finished():
        log.info("Trial %d %s at step %s", trial.number, stored.state.name.lower(), stored.last_step)
        return None
    if OUTPUT_DIR_ATTR not in stored.user_attrs and ret.hydra_cfg is not None:
        trial.set_user_attr(OUTPUT_DIR_ATTR, str(Path(ret.hydra_cfg.hydra.runtime.output_dir).resolve()))
    try:
        value = ret.return_value
        values = [float(value)] if len(directions) == 1 else [float(v) for v in value]
        study.tell(trial, values)
        return None
    except Exception as exc:
        study.tell(trial, state=TrialState.FAIL)
        log.warning("Trial %d failed: %s", trial.number, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return exc
