"""scripts/reproduce.py: the registry composes and reads metrics its tasks log; a quick run prints and writes the
table, keeping rows of benchmarks it did not run; a failing benchmark is reported and the table goes on."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import hydra
import pytest
from torchmetrics import MetricCollection

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import reproduce  # noqa: E402

from seqmodels.config import compose_run_config, instantiate_datamodule, resolve_with_datamodule  # noqa: E402

# Smaller data than --quick's, so that building every datamodule stays cheap (no JSB cache is assumed: the three
# JSB rows share one parse of 8 chorales, cached in a temp dir).
TINY_DATA = {
    "jsb_chorales": ["data.max_chorales=8"],
    "copy_memory": ["data.num_train=16", "data.num_val=8", "data.num_test=8"],
    "adding_problem": ["data.num_train=16", "data.num_val=8", "data.num_test=8"],
    "cmudict_g2p": ["data.max_words=400"],
}


def logged_test_keys(task) -> set[str]:
    """The ``test/...`` keys a task logs: its declared split metrics (a collection's under its members' names)."""
    keys: set[str] = set()
    for key, metric in task.split_metrics.items():
        keys |= set(metric.keys(keep_base=False)) if isinstance(metric, MetricCollection) else {key}
    return {key for key in keys if key.startswith("test/")}


@pytest.fixture(scope="module")
def chorale_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("chorales")


@pytest.mark.parametrize("benchmark", reproduce.BENCHMARKS, ids=lambda b: b.name)
def test_every_benchmark_composes_and_reads_keys_its_task_logs(benchmark, chorale_cache):
    tiny = TINY_DATA.get(benchmark.experiment, [])
    if benchmark.experiment == "jsb_chorales":
        tiny = [*tiny, f"data.cache_dir={chorale_cache}"]
    for quick in (False, True):
        overrides = [*benchmark.run_overrides(0, quick), *tiny]
        cfg = compose_run_config([*overrides, *reproduce.QUIET, "logger=none"])
        assert cfg.task_name == benchmark.experiment
    assert cfg.trainer.max_time == "00:00:01:00"  # --quick caps every run at a minute of training
    datamodule = instantiate_datamodule(cfg.data)
    resolve_with_datamodule(cfg, datamodule)
    task = hydra.utils.instantiate(cfg.model)
    logged = logged_test_keys(task)
    assert set(benchmark.keys) - set(benchmark.rescored_keys) <= logged, (benchmark.keys, logged)
    assert set(benchmark.rescored_keys) <= set(benchmark.keys)
    assert (benchmark.rescore is None) == (not benchmark.rescored_keys)
    assert benchmark.command.startswith(f"seqmodels-train experiment={benchmark.experiment}")
    assert benchmark.published and benchmark.source and benchmark.seeds


def test_registry_rows_and_published_figures():
    names = [benchmark.name for benchmark in reproduce.BENCHMARKS]
    assert len(names) == len(set(names))
    assert {"jsb_chorales_lstm", "copy_memory_t100", "adding_problem", "japanese_vowels", "cmudict_g2p"} <= set(names)
    by_name = {benchmark.name: benchmark for benchmark in reproduce.BENCHMARKS}
    assert [by_name[f"jsb_chorales_{cell}"].published for cell in ("lstm", "gru", "rnn")] == ["8.45", "8.43", "8.91"]
    assert by_name["copy_memory_t100"].published == "0.173" and by_name["copy_memory_t200"].published == "0.0945"
    assert reproduce.copy_baseline(100) == pytest.approx(10 * math.log(8) / 120)
    assert by_name["sequential_digits"].published == "-"
    assert by_name["japanese_vowels"].seeds == (0, 1, 2, 3, 4)
    assert [b.name for b in reproduce.registry(["cmudict_g2p", "adding_problem"])] == ["adding_problem", "cmudict_g2p"]
    with pytest.raises(ValueError, match="unknown benchmark 'mnist'; choose from jsb_chorales_lstm"):
        reproduce.registry(["mnist"])


def test_figures_are_read_from_the_metrics_and_a_missing_key_is_named():
    g2p = reproduce.registry(["cmudict_g2p"])[0]
    assert g2p.read({"g2p/wer": 0.262, "g2p/per": 0.0611, "test/loss": 1.0}) == pytest.approx((26.2, 6.11))
    vowels = reproduce.registry(["japanese_vowels"])[0]
    assert vowels.read({"test/acc": 0.99}) == pytest.approx((99.0,))
    with pytest.raises(KeyError, match="the run logged no test/acc"):
        vowels.read({"test/loss": 0.5})
    entry = {"seeds": [0, 1], "mean": [26.0, 6.0], "min": [25.0, 5.5], "max": [27.0, 6.5]}
    assert reproduce.seqmodels_figure(g2p, entry) == "26.0 (25.0-27.0) / 6.0 (5.5-6.5)"


def test_a_failing_benchmark_is_reported_with_its_first_line(monkeypatch, capsys):
    def fail_on_seed_one(benchmark, seed, quick, extra):
        if seed == 1:
            raise RuntimeError("data_dir does not exist\nsecond line")
        return (99.0,), 3.0

    monkeypatch.setattr(reproduce, "run_once", fail_on_seed_one)
    benchmark = reproduce.registry(["japanese_vowels"])[0]
    entry = reproduce.run_benchmark(benchmark, [0, 1, 2], quick=True, extra=[]).summary()
    assert entry["status"] == "FAIL" and entry["seeds"] == [0]
    assert entry["error"] == "seed 1: RuntimeError: data_dir does not exist"
    (row,) = reproduce.table_rows([entry])
    assert row[0] == "japanese_vowels" and row[3] == "FAIL seed 1: RuntimeError: data_dir does not exist"
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_run_prints_the_table_and_writes_json_and_markdown(tmp_path):
    output = tmp_path / "results.json"
    # A row from an earlier run of another benchmark: kept, since that benchmark is not run now.
    kept = {"name": "adding_problem", "status": "ok", "figure": "0.0012", "metric": "m", "published": "p",
            "source": "s", "command": "c", "seeds": [0], "wall_s_mean": 1.0}  # fmt: skip
    output.write_text(json.dumps({"environment": "earlier", "benchmarks": [kept]}))
    command = [
        sys.executable,
        str(ROOT / "scripts" / "reproduce.py"),
        "--quick",
        "--only", "japanese_vowels", "cmudict_g2p",
        "--seeds", "0",
        "--output", str(output),
        "--",
        "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    table = result.stdout[result.stdout.index("benchmark  ") :].splitlines()
    assert table[0].split()[:2] == ["benchmark", "metric"]
    assert [line.split()[0] for line in table[1:3]] == ["japanese_vowels", "cmudict_g2p"]
    assert "MLSTM-FCN, Karim et al. 2019" in table[1] and "`seqmodels-train experiment=japanese_vowels`" in table[1]

    rows = {entry["name"]: entry for entry in json.loads(output.read_text())["benchmarks"]}
    assert list(rows) == ["adding_problem", "japanese_vowels", "cmudict_g2p"]  # registry order
    assert rows["adding_problem"] == kept
    vowels, g2p = rows["japanese_vowels"], rows["cmudict_g2p"]
    for entry in (vowels, g2p):
        assert entry["status"] == "ok" and entry["seeds"] == [0] and len(entry["runs"]) == 1
        assert entry["wall_s_mean"] > 0 and entry["mean"] == entry["min"] == entry["max"]
        assert "quick" in entry["environment"]
    (accuracy,) = vowels["mean"]
    assert 0.0 <= accuracy <= 100.0 and vowels["figure"] == f"{accuracy:.1f}"
    wer, per = g2p["mean"]
    # An untrained decoder may insert more phonemes than the references hold: PER has no upper bound.
    assert 0.0 <= wer <= 100.0 and per >= 0.0 and g2p["figure"] == f"{wer:.1f} / {per:.1f}"
    markdown = output.with_suffix(".md").read_text().splitlines()
    assert markdown[4].startswith("| benchmark | metric |")
    assert [line.split(" | ")[0] for line in markdown[6:]] == ["| adding_problem", "| japanese_vowels", "| cmudict_g2p"]


def test_a_foreign_output_file_is_refused_before_any_training(tmp_path, capsys):
    """Another script's JSON at --output is never overwritten: one line, before anything is trained."""
    foreign = tmp_path / "results.json"
    foreign.write_text('{"rows": []}\n')
    with pytest.raises(SystemExit):
        reproduce.main(["--only", "japanese_vowels", "--output", str(foreign)])
    assert "is not a results file of scripts/reproduce.py" in capsys.readouterr().err
    assert foreign.read_text() == '{"rows": []}\n'


def test_add_seeds_joins_a_rows_earlier_runs_of_the_same_command():
    g2p = reproduce.registry(["cmudict_g2p"])[0]
    earlier = reproduce.Row(g2p, [0], [(25.1, 5.9)], [2000.0]).summary()
    now = reproduce.with_earlier_runs(reproduce.Row(g2p, [1], [(24.1, 5.5)], [1900.0]), earlier)
    entry = now.summary()
    assert entry["seeds"] == [0, 1] and [run["seed"] for run in entry["runs"]] == [0, 1]
    assert entry["mean"] == pytest.approx([24.6, 5.7]) and entry["min"] == [24.1, 5.5]
    assert entry["figure"] == "24.6 (24.1-25.1) / 5.7 (5.5-5.9)"
    # a rerun seed replaces its earlier run; a row of another command or a failed row adds nothing
    rerun = reproduce.with_earlier_runs(reproduce.Row(g2p, [0], [(30.0, 7.0)], [1.0]), earlier).summary()
    assert rerun["seeds"] == [0] and rerun["mean"] == [30.0, 7.0]
    other = {**earlier, "command": "seqmodels-train experiment=cmudict_g2p trainer.max_epochs=1"}
    assert reproduce.with_earlier_runs(reproduce.Row(g2p, [1], [(20.0, 5.0)], [1.0]), other).seeds == [1]
    failed = {**earlier, "status": "FAIL"}
    assert reproduce.with_earlier_runs(reproduce.Row(g2p, [1], [(20.0, 5.0)], [1.0]), failed).seeds == [1]
