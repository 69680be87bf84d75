"""The weather and stocks forecasting recipes: the vega_datasets readers, their splits, the runs, the statics."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from seqmodels.config import instantiate_datamodule, resolve_with_datamodule
from seqmodels.data import ForecastingDataModule
from seqmodels.data.vega_sources import (
    STOCK_SYMBOLS,
    WEATHER_TYPES,
    read_seattle_weather,
    read_stocks,
    vega_available,
)
from seqmodels.train import train

needs_vega = pytest.mark.skipif(not vega_available(), reason="needs vega_datasets: pip install vega_datasets")


def day(text: str) -> np.datetime64:
    return np.datetime64(text, "s")


def built(compose_train, experiment: str, *overrides: str) -> ForecastingDataModule:
    cfg = compose_train(f"experiment={experiment}", *overrides)
    dm = instantiate_datamodule(cfg.data)
    dm.setup()
    return dm


# --------------------------------------------------------------------------------------------- no package
def test_a_missing_package_is_a_one_line_error_naming_the_install_command(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vega_datasets" else find_spec(name, *a)
    )
    assert not vega_available()
    for source in ("seattle_weather", "stocks"):
        dm = ForecastingDataModule(source=source, time_column="date", target_columns=["price"])
        with pytest.raises(ImportError) as info:
            dm.setup()
        message = str(info.value)
        assert "\n" not in message and "pip install vega_datasets" in message and f"source={source}" in message


# --------------------------------------------------------------------------------------------- readers
@needs_vega
def test_seattle_weather_reads_every_day_of_2012_to_2015():
    frame = read_seattle_weather()
    assert frame.shape == (1461, 6 + len(WEATHER_TYPES))
    date = frame["date"].to_numpy().astype("datetime64[s]")
    assert date[0] == day("2012-01-01") and date[-1] == day("2015-12-31")
    assert (np.diff(date) == np.timedelta64(1, "D")).all()  # no day missing or repeated
    numbers = frame.drop(columns=["date", "weather"]).to_numpy(dtype=np.float64)
    assert not np.isnan(numbers).any()
    # The file's first row: 2012/01/01,0.0,12.8,5.0,4.7,drizzle
    first = frame.iloc[0]
    assert (first["precipitation"], first["temp_max"], first["temp_min"], first["wind"]) == (0.0, 12.8, 5.0, 4.7)
    assert first["weather"] == "drizzle" and first["weather_drizzle"] == 1.0 and first["weather_sun"] == 0.0
    one_hot = frame[[f"weather_{kind}" for kind in WEATHER_TYPES]].to_numpy()
    assert (one_hot.sum(axis=1) == 1).all()
    assert (np.array(WEATHER_TYPES)[one_hot.argmax(axis=1)] == frame["weather"].to_numpy()).all()


@needs_vega
def test_stocks_reads_five_monthly_series():
    frame = read_stocks()
    assert frame.shape == (560, 3) and not frame["price"].isna().any()
    counts = frame.groupby("symbol").size().to_dict()
    assert counts == {"AAPL": 123, "AMZN": 123, "GOOG": 68, "IBM": 123, "MSFT": 123}
    assert set(counts) == set(STOCK_SYMBOLS)
    # The file's first row: MSFT,Jan 1 2000,39.81
    assert tuple(frame.iloc[0]) == ("MSFT", day("2000-01-01"), 39.81)
    for symbol, part in frame.groupby("symbol"):
        months = part["date"].to_numpy().astype("datetime64[M]")
        assert (np.diff(months).astype(np.int64) == 1).all(), symbol  # consecutive months
        assert months[-1] == np.datetime64("2010-03")
        assert (part["date"].dt.day == 1).all()
    goog = frame[frame["symbol"] == "GOOG"]["date"].to_numpy().astype("datetime64[M]")
    assert goog[0] == np.datetime64("2004-08")


# --------------------------------------------------------------------------------------------- splits
@needs_vega
def test_weather_splits_train_2012_13_validate_2014_test_2015(compose_train):
    dm = built(compose_train, "weather")
    (series,) = dm.series
    assert series.name == "seattle_weather"
    assert dm.split_points == [(731, 1096)]
    assert series.time[731] == day("2014-01-01") and series.time[1096] == day("2015-01-01")
    # Inputs: temp_max, 8 past covariates, sin/cos of the day of year.
    assert dm.dims()["input_size"] == 1 + 8 + 2 and dm.dims()["future_size"] == 2
    assert len(dm.test_set) == 365 - 14 + 1 and len(dm.val_set) == 365 - 14 + 1
    frame = read_seattle_weather()
    first = dm.test_set[0]
    temp = frame["temp_max"].to_numpy()
    np.testing.assert_allclose(first.actual[0, :, 0].numpy(), temp[1096:1110], rtol=1e-6)
    # Targets and covariates are scaled with the training part's statistics only.
    scaled = (temp[1096:1110] - temp[:731].mean()) / temp[:731].std()
    np.testing.assert_allclose(first.targets[0, :, 0].numpy(), scaled, rtol=1e-5)
    wind = frame["wind"].to_numpy()
    expected = (wind[1095] - wind[:731].mean()) / wind[:731].std()
    column = 1 + dm.past_covariates.index("wind")
    assert first.inputs[0, -1, column].item() == pytest.approx(expected, rel=1e-5)


@needs_vega
def test_stocks_splits_each_series_and_scales_it_by_its_own_training_part(compose_train):
    dm = built(compose_train, "stocks")
    lengths = {s.name: len(s) for s in dm.series}
    assert lengths == {"MSFT": 123, "AMZN": 123, "IBM": 123, "GOOG": 68, "AAPL": 123}
    assert dm.split_points == [(n - 36, n - 18) for n in lengths.values()]
    # Per-series statistics of log prices over each training part (population std).
    frame = read_stocks()
    amzn = np.log(frame[frame["symbol"] == "AMZN"]["price"].to_numpy()[: 123 - 36])
    loc, scale = dm.series_stats["AMZN"]
    assert loc[0] == pytest.approx(amzn.mean()) and scale[0] == pytest.approx(amzn.std())
    assert dm.series_stats["GOOG"][0][0] > dm.series_stats["AMZN"][0][0] + 1  # GOOG trades far higher
    # 13 test windows per series (18 months, horizon 6), targets on the price scale.
    assert len(dm.test_set) == 5 * 13
    goog = dm.series.index(next(s for s in dm.series if s.name == "GOOG"))
    window = dm.test_set.take(dm.test_set.tensors["series"] == goog)
    prices = frame[frame["symbol"] == "GOOG"]["price"].to_numpy()
    np.testing.assert_allclose(window.actual[0, :, 0].numpy(), prices[50:56], rtol=1e-6)


# --------------------------------------------------------------------------------------------- runs
@needs_vega
@pytest.mark.parametrize("experiment", ["weather", "stocks"])
def test_experiment_fast_dev_run(compose_train, experiment):
    result = train(compose_train(f"experiment={experiment}", "debug=fdr"))
    assert "test/loss" in result.metrics and "test/naive_mase" in result.metrics
    assert all(math.isfinite(v) for k, v in result.metrics.items() if k.startswith(("train/", "test/")))


@needs_vega
def test_the_ticker_reaches_the_stocks_model_as_a_static_covariate(compose_train):
    cfg = compose_train("experiment=stocks")
    dm = instantiate_datamodule(cfg.data)
    dm.setup()
    resolve_with_datamodule(cfg, dm)
    assert dm.static_vocab == {"symbol": sorted(STOCK_SYMBOLS)}
    assert list(cfg.model.net.static_cardinalities) == [5]
    # Every window carries its own series' ticker code.
    windows = dm.train_set.tensors
    names = [dm.series[i].name for i in windows["series"].tolist()]
    assert windows["static_categoricals"][:, 0].tolist() == [sorted(STOCK_SYMBOLS).index(n) for n in names]
    torch.manual_seed(0)
    task = instantiate(cfg.model)
    task.set_scaler(dm.target_scaler())
    task.eval()
    assert task.net.static_embeddings[0].num_embeddings == 5
    batch = dm.test_set.take(slice(0, 8))
    own = task.forecast(batch)["point"]
    # The same windows told they are another ticker get another forecast: the code sets the encoder's state.
    batch.static_categoricals = (batch.static_categoricals + 1) % 5
    other = task.forecast(batch)["point"]
    assert own.shape == other.shape == (8, 6, 1)
    assert not torch.allclose(own, other)


@needs_vega
def test_a_stocks_checkpoint_backtests_from_the_installed_package(compose_train):
    from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint

    cfg = compose_train("experiment=stocks", "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "logger=none")
    result = train(cfg)
    state = load_checkpoint(result.best_model_path)
    task, dm = build_from_checkpoint(state)
    assert dm.source == "stocks" and dm.path is None  # the checkpoint names the source, no file of the run
    forecast = dm.backtest(task.eval(), "test")
    assert forecast.point.shape == (5 * 13, 6, 1) and np.isfinite(forecast.point).all()
    assert np.abs(forecast.point - forecast.actual).mean() == pytest.approx(result.metrics["test/mae"], rel=1e-4)
