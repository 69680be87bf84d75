"""The performance benchmark still runs end to end (tiny sizes) and reports every figure; values are not judged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_smoke_run_reports_every_figure(tmp_path):
    output = tmp_path / "results.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEQMODELS_LOG_DIR": str(tmp_path / "logs")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--smoke", "--output", str(output)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(output.read_text())
    assert {
        "framework_overhead",
        "compute_efficiency",
        "variable_lengths",
        "generation_tokens_per_s",
        "data_wait_share",
        "startup_seconds",
        "machine",
    } <= set(results)
    assert set(results["framework_overhead"]) == {"64", "256"}
    assert results["variable_lengths"]["max_loss_difference"] < 1e-4  # padding never changes a loss
    for line in (
        "1. framework overhead",
        "2. LSTM training step",
        "3. long-tailed lengths",
        "4. generation",
        "5. data pipeline",
        "6. start-up",
    ):
        assert line in result.stdout
