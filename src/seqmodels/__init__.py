"""seqmodels: recurrent sequence models (RNN, LSTM, GRU) for every shape of sequence task.

From Python: :func:`seqmodels.fit` trains an experiment on data held in memory; :func:`seqmodels.forecast` and
:func:`seqmodels.backtest` give a forecaster's forecasts on the data's own scale, :func:`seqmodels.ensemble_forecast`
and :func:`seqmodels.ensemble_backtest` those of several forecasters combined; :func:`seqmodels.stream_forecast`
reads live observations one at a time into a forecaster's state (see :mod:`seqmodels.api`).
"""

from typing import Any

__version__ = "0.1.0"

_API = ("fit", "forecast", "backtest", "ensemble_forecast", "ensemble_backtest", "stream_forecast", "ForecastStream")


def __getattr__(name: str) -> Any:
    # Imported on first use: `import seqmodels` stays light (the CLIs and seqmodels.nn need no Lightning or Hydra).
    if name in _API:
        from seqmodels import api

        return getattr(api, name)
    raise AttributeError(f"module 'seqmodels' has no attribute {name!r}")


__all__ = [
    "ForecastStream",
    "__version__",
    "backtest",
    "ensemble_backtest",
    "ensemble_forecast",
    "fit",
    "forecast",
    "stream_forecast",
]
