"""Writes notebooks/python_api.ipynb (kept as a script so the notebook's source is reviewable as code)."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell(
        "# seqmodels from Python\n\n"
        "`seqmodels.fit(experiment, data=...)` trains a recipe of `configs/experiment` (the same run as "
        "`seqmodels-train experiment=...`) on data held in memory, and returns the trained task, the fitted "
        "datamodule, the metrics and the best checkpoint. `seqmodels.forecast` gives a forecaster's forecasts on "
        "the data's own scale.\n\n"
        "Below: a forecaster trained on a DataFrame, its forecast of the held-out steps, and a naive forecast "
        "beside it, as you would set it next to another library's model."
    ),
    new_code_cell(
        "import numpy as np, pandas as pd\n"
        "import seqmodels\n\n"
        "t = np.arange(400)\n"
        "noise = 0.15 * np.random.default_rng(0).standard_normal(400)\n"
        'frame = pd.DataFrame({"time": t, "value": 10 + 3 * np.sin(2 * np.pi * t / 25) + noise})\n'
        "train, held_out = frame.iloc[:-12], frame.iloc[-12:]\n"
        'result = seqmodels.fit("sunspots", data=train, seed=0, logger=None, trainer={"max_epochs": 10},\n'
        '                       datamodule={"lookback": 48, "horizon": 12}, model={"net.encoder.hidden_size": 32})\n'
        "forecast = seqmodels.forecast(result, train)  # the 12 steps after `train`, in its units\n"
        'mae = np.abs(forecast.point[0, :, 0] - held_out["value"].to_numpy()).mean()\n'
        'naive_mae = np.abs(train["value"].iloc[-1] - held_out["value"].to_numpy()).mean()\n'
        'print(f"MAE {mae:.3f} vs naive {naive_mae:.3f}")'
    ),
    new_markdown_cell(
        "Keywords are the config's top-level keys as dicts (`trainer`, `model`, `callbacks`, `logger`, `seed`, "
        "...; `datamodule` for the data config, since `data` is the data itself); keys may be dotted. A key the "
        "config does not know is refused in one line that names it. The `sunspots` recipe is a univariate GRU "
        "forecaster with an 80% quantile interval: the forecast has `lower` and `upper` too, and `to_frame()` "
        "gives one row per step."
    ),
    new_code_cell("forecast.to_frame()"),
    new_markdown_cell(
        "Historical forecasts from every origin of the test part of the training frame (split as in training), "
        "beside the actual values and the naive and seasonal-naive forecasts:"
    ),
    new_code_cell(
        "backtest = seqmodels.backtest(result)\n"
        "for name in ('point', 'naive', 'seasonal_naive'):\n"
        "    print(f'{name:>14} MAE {np.abs(getattr(backtest, name) - backtest.actual).mean():.3f}')\n"
        "print({k: round(v, 3) for k, v in result.metrics.items() if k.startswith('test/')})"
    ),
    new_markdown_cell(
        "Every datamodule that reads files takes the same data in memory as `data=`:\n\n"
        "| experiment | `data=` |\n"
        "|---|---|\n"
        "| sunspots, co2, airline, csv_forecast | a DataFrame with the CSV's columns (or indexed by time), a pandas "
        "Series, an array (T,), (T, C) or (N, T, C), or a list / dict of these |\n"
        "| text_classification | `(text, label)` pairs, or a DataFrame with `text` and `label` columns |\n"
        "| ner | `(tokens, tags)` sentences |\n"
        "| translation | `(source, target)` pairs |\n"
        "| char_lm | a string, or a list of strings |\n"
        "| japanese_vowels | `(X, y)`: X (N, L, C) or a list of (L, C) arrays, one label per series |\n\n"
        'A dict `{"train": ..., "val": ..., "test": ...}` gives the splits, as `train_path`/`val_path`/`test_path` '
        "would. The data is checked as a file is (missing and infinite values, empty data, splits too small)."
    ),
    new_code_cell(
        "reviews = [('a great phone, works well', 'pos'), ('broke after a day', 'neg')] * 40\n"
        "classifier = seqmodels.fit('text_classification', data=reviews, logger=None, trainer={'max_epochs': 3})\n"
        "print(classifier.datamodule.class_names, round(classifier.metrics['test/acc'], 3))"
    ),
]

notebook = new_notebook(
    cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
)
path = Path(__file__).resolve().parents[1] / "notebooks" / "python_api.ipynb"
nbformat.write(notebook, path)
print(f"wrote {path}")
