"""Calendar features beyond sin/cos: one-hot weekdays and months, weekend and month-boundary flags, US federal
holidays; their width in the datamodule's dimensions, and a forecaster that uses the holiday flag."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqmodels.data.forecasting import ForecastingDataModule
from seqmodels.data.timeseries_sources import CALENDAR, calendar_features, calendar_width, us_federal_holidays
from seqmodels.nn import DirectForecaster, RecurrentEncoder

EPOCHS = 30  # the flag-to-jump weight must grow to about 3.5 standard deviations
DAYS = np.arange(np.datetime64("2021-06-28"), np.datetime64("2021-07-08"))  # Monday 28 June - Wednesday 7 July


def test_flags_and_one_hot_positions_follow_the_calendar():
    names = ["weekend", "month_start", "month_end", "holiday", "dayofweek_onehot", "month_onehot"]
    features = calendar_features(DAYS.astype("datetime64[s]"), names)
    assert features.shape == (10, calendar_width(names)) == (10, 4 + 7 + 12)
    weekend, start, end, holiday = features[:, :4].T
    assert DAYS[weekend == 1].astype(str).tolist() == ["2021-07-03", "2021-07-04"]
    assert DAYS[start == 1].astype(str).tolist() == ["2021-07-01"]
    assert DAYS[end == 1].astype(str).tolist() == ["2021-06-30"]
    # 4 July 2021 was a Sunday: the federal holiday is observed on Monday 5 July.
    assert DAYS[holiday == 1].astype(str).tolist() == ["2021-07-05"]
    weekdays, months = features[:, 4:11], features[:, 11:]
    assert (weekdays.sum(1) == 1).all() and weekdays.argmax(1).tolist() == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2]
    assert (months.sum(1) == 1).all() and months.argmax(1).tolist() == [5, 5, 5] + [6] * 7  # June, then July


def test_holidays_cover_the_fixed_and_the_floating_ones():
    year = np.arange(np.datetime64("2024-01-01"), np.datetime64("2025-01-01"))
    found = year[us_federal_holidays(year)].astype(str).tolist()
    assert len(found) == 11  # Juneteenth included
    assert {"2024-01-01", "2024-05-27", "2024-07-04", "2024-11-28", "2024-12-25"} <= set(found)
    assert us_federal_holidays(year[:0]).shape == (0,)


def test_the_cyclic_features_keep_two_channels_and_unknown_names_list_the_choices():
    assert calendar_width(["month", "dayofweek", "holiday", "month_onehot"]) == 2 + 2 + 1 + 12
    with pytest.raises(ValueError, match="unknown calendar feature 'easter'; choose from " + ", ".join(CALENDAR)):
        calendar_features(DAYS, ["easter"])
    with pytest.raises(ValueError, match="need a date/time column"):
        calendar_features(np.arange(5.0), ["weekend"])


def holiday_series(tmp_path, years: int = 6):
    """A daily series: a weekly cycle plus a jump of +3 on every US federal holiday."""
    days = np.arange(np.datetime64("2015-01-01"), np.datetime64(f"{2015 + years}-01-01"))
    rng = np.random.default_rng(0)
    values = (
        np.sin(2 * np.pi * np.arange(len(days)) / 7) + 3.0 * us_federal_holidays(days) + rng.normal(0, 0.1, len(days))
    )
    path = tmp_path / "holidays.csv"
    path.write_text("date,value\n" + "\n".join(f"{d},{v:.4f}" for d, v in zip(days, values, strict=True)) + "\n")
    return path


def module(path, calendar):
    dm = ForecastingDataModule(
        source="csv", path=str(path), time_column="date", target_columns=["value"], lookback=14, horizon=7,
        val_size=0.15, test_size=0.15, seasonal_period=7, calendar=calendar, batch_size=64, seed=0,
    )  # fmt: skip
    dm.setup()
    return dm


def test_the_datamodule_counts_each_features_channels_and_feeds_the_flag_of_every_forecast_step(tmp_path):
    dm = module(holiday_series(tmp_path, years=2), ["dayofweek", "holiday", "dayofweek_onehot"])
    assert dm.dims()["future_size"] == 2 + 1 + 7 and dm.dims()["input_size"] == 1 + 10
    batch = next(iter(dm.test_dataloader()))
    holiday_steps = batch.future[..., 2] == 1
    assert holiday_steps.any()
    assert torch.equal(batch.future[..., 3:].sum(-1), torch.ones(batch.future.shape[:2]))


@pytest.mark.learns
def test_a_forecaster_given_the_holiday_flag_forecasts_the_holidays(tmp_path):
    path = holiday_series(tmp_path)
    errors = {}
    for calendar in (["dayofweek"], ["dayofweek", "holiday"]):
        dm = module(path, calendar)
        torch.manual_seed(0)
        dims = dm.dims()
        net = DirectForecaster(
            RecurrentEncoder("gru", dims["input_size"], 32, batch_first=True), 7, future_size=dims["future_size"]
        )
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(EPOCHS):
            for batch in dm.train_dataloader():
                loss = torch.nn.functional.mse_loss(net(batch.inputs, batch.future)[..., 0], batch.targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        holiday_errors = []
        with torch.no_grad():
            for batch in dm.test_dataloader():
                forecast = dm.target_scaler().inverse(net(batch.inputs, batch.future)[..., 0])
                on_holiday = torch.from_numpy(us_federal_holidays_of(batch, dm))
                holiday_errors.append((forecast - batch.actual)[on_holiday].abs())
        errors[len(calendar)] = torch.cat(holiday_errors).mean().item()
    # Without the flag a holiday's jump of 3 is missed (error near 3); with it the jump is forecast.
    assert errors[1] > 2.0, errors
    assert errors[2] < 0.5 * errors[1], errors


def us_federal_holidays_of(batch, dm) -> np.ndarray:
    """(N, H, 1) bool: which forecast steps of the batch's windows are holidays."""
    times = dm.series[0].time.astype("datetime64[D]")
    steps = batch.origin.numpy()[:, None] + np.arange(batch.actual.shape[1])[None, :]
    return us_federal_holidays(times[steps.ravel()]).reshape(steps.shape)[..., None]
