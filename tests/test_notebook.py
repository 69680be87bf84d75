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


VANISHING = Path(__file__).resolve().parents[1] / "notebooks" / "vanishing_gradients.ipynb"


@pytest.mark.slow
def test_vanishing_gradients_notebook_runs(monkeypatch):
    monkeypatch.setenv("VANISHING_STEPS", "300")
    monkeypatch.setenv("VANISHING_LENGTH", "30")
    nb = nbformat.read(VANISHING, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(VANISHING.parent)}}).execute()
    outputs = "".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    figures = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
               if "image/png" in out.get("data", {})]
    assert len(figures) == 1, outputs

    def number(prefix: str) -> float:
        return float(outputs.split(prefix)[1].split()[0])

    # After training, the gradient reaching t = 0 has all but vanished in the tanh RNN, not in the LSTM.
    rnn_ratio = number("rnn_tanh trained: ||dL/dh_0|| / ||dL/dh_T-1|| =")
    lstm_ratio = number("lstm trained: ||dL/dh_0|| / ||dL/dh_T-1|| =")
    assert lstm_ratio > 1000 * rnn_ratio, outputs
    assert number("lstm: test MSE") < 0.5 * number("rnn_tanh: test MSE"), outputs
