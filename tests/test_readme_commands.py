"""Every command the README shows still means something: each ``seqmodels-*`` line of its bash blocks composes.

The short form of a command is its composition: the program's config with the line's overrides, as Hydra builds
it before anything runs (with ``-m``, each value of a sweep). A renamed key, group or option breaks composition,
so a README that drifts from the configs fails here. The training of each experiment is covered elsewhere
(``tests/test_experiments.py`` runs every one with ``fast_dev_run``).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from seqmodels.config import check_experiment_choice, config_dir

README = Path(__file__).resolve().parents[1] / "README.md"
PROGRAMS = {
    "train": "train",
    "eval": "eval",
    "predict": "predict",
    "generate": "generate",
    "export": "export",
    "serve": "serve",
}


def readme_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("seqmodels-"):
                commands.append(line)
    return commands


def test_the_readme_shows_every_program():
    programs = {command.split()[0] for command in readme_commands()}
    assert programs == {f"seqmodels-{name}" for name in PROGRAMS}, programs


def _first_run(overrides: list[str]) -> list[str]:
    """The first run of a ``-m`` sweep: the first of each comma-separated (unquoted) list of values."""
    return [re.sub(r"^([^=]+)=([^,'\"\[\]]+),.*$", r"\1=\2", override) for override in overrides]


@pytest.mark.parametrize("command", readme_commands())
def test_a_readme_command_composes(command):
    words = shlex.split(command)
    program = words[0].removeprefix("seqmodels-")
    overrides = [w for w in words[1:] if w != "-m"]
    if "hparams_search=optuna" in overrides:
        pytest.skip("the Optuna sweep composes in tests/test_train_eval.py::test_cli_optuna_sweep_returns_best_value")
    run = _first_run(overrides) if "-m" in words else overrides
    run = [w.replace("<date>", "2026-01-01_00-00-00") for w in run]
    if program == "train":
        check_experiment_choice(run)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(PROGRAMS[program], overrides=run)
    assert cfg is not None
