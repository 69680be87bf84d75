"""The quickstart notebook runs top to bottom (with fewer steps) and its plain-torch model learns."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_runs(monkeypatch):
    monkeypatch.setenv("QUICKSTART_STEPS", "200")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = "".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    accuracy = float(outputs.split("held-out accuracy:")[1].split()[0])
    assert accuracy > 0.9, outputs
    assert "test/acc" in outputs
