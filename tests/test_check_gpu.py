"""scripts/check_gpu.py runs its GPU checks' code paths on the CPU (every cell packed and unpacked against a CPU
copy, 32-bit and bf16 mixed-precision training of a task family) and says when there is no GPU to check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "SEQMODELS_LOG_DIR": str(tmp_path / "logs"),
        "CUDA_VISIBLE_DEVICES": "",
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_gpu.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_code_paths_pass_on_the_cpu(tmp_path):
    from seqmodels.nn import CELLS, MODERN_CELLS

    done = run("--device", "cpu", "--quick", "--families", "many-to-one", tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    for cell in CELLS + MODERN_CELLS:
        rows = [line for line in lines if line.split()[:1] == [cell]]
        assert len(rows) == 2 and all(row.endswith("ok") for row in rows), rows  # packed and unpacked
    assert any("bf16-mixed" in line and line.endswith("ok") for line in lines)
    assert "every check passed" in lines[-1]


def test_without_a_gpu_it_says_so(tmp_path):
    done = run(tmp_path=tmp_path)
    assert done.returncode == 0 and "no CUDA device here" in done.stdout
