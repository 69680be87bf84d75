"""The wheel ships the config tree: seqmodels-train works from a wheel installed away from the checkout,
and users can add their own config dir with their own experiment."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    (path,) = out.glob("seqmodels-*.whl")
    return path


def test_wheel_contains_configs_and_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "seqmodels/configs/train.yaml" in names
    assert "seqmodels/configs/experiment/japanese_vowels.yaml" in names
    assert "seqmodels/configs/model/encoder/gru.yaml" in names
    assert "seqmodels/nn/recurrent.py" in names


@pytest.mark.slow
def test_installed_wheel_trains_with_user_config_dir(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    user_configs = tmp_path / "my_configs" / "experiment"
    user_configs.mkdir(parents=True)
    (user_configs / "my_parity.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - override /data: parity\n  - override /model/encoder: gru\n"
        "task_name: my_parity\noptimized_metric: val/acc\ndata:\n  max_length: 5\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "SEQMODELS_LOG_DIR": str(tmp_path / "logs")}
    code = "import seqmodels.config as c; print(c.config_dir())"
    where = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert where.stdout.strip() == str(site / "seqmodels" / "configs"), where.stderr
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqmodels.cli.train",
            "--config-dir",
            str(tmp_path / "my_configs"),
            "experiment=my_parity",
            "debug=fdr",
            "~callbacks.rich_progress_bar",
            "trainer.enable_progress_bar=false",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/acc" in result.stdout
    assert (tmp_path / "logs" / "debug" / "runs").is_dir()


def test_the_sweeper_plugin_is_a_namespace_package_in_the_wheel():
    """Hydra discovers seqmodels' Optuna sweeper under ``hydra_plugins`` only as a namespace package."""
    import tomllib

    config = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "src/hydra_plugins" in config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    plugins = Path(__file__).resolve().parents[1] / "src" / "hydra_plugins"
    assert not (plugins / "__init__.py").exists() and (plugins / "seqmodels_optuna_sweeper" / "__init__.py").exists()
