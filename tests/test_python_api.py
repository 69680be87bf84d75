"""seqmodels from Python: ``seqmodels.fit`` on data held in memory, forecasts on the data's own scale, and every
datamodule that reads files taking the same data in memory (same tensors, vocabularies and splits; same checks)."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import seqmodels
from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
from seqmodels.data import (
    CoNLLTaggingDataModule,
    ForecastingDataModule,
    JapaneseVowelsDataModule,
    ParallelTextDataModule,
    TextClassificationDataModule,
    TextCorpusDataModule,
    UEADataModule,
    demo_ner_path,
    demo_reviews_path,
    read_conll,
    read_ts,
    read_tsv_pairs,
)
from seqmodels.data.forecasting import demo_demand_path
from seqmodels.data.parallel import demo_translation_path

pd = pytest.importorskip("pandas")

# The side-by-side comparison a user writes (e.g. beside Darts), exactly as they would type it.
COMPARISON = """
import numpy as np, pandas as pd
import seqmodels

t = np.arange(400)
noise = 0.15 * np.random.default_rng(0).standard_normal(400)
frame = pd.DataFrame({"time": t, "value": 10 + 3 * np.sin(2 * np.pi * t / 25) + noise})
train, held_out = frame.iloc[:-12], frame.iloc[-12:]
result = seqmodels.fit("sunspots", data=train, seed=0, logger=None, trainer={"max_epochs": 10},
                       datamodule={"lookback": 48, "horizon": 12}, model={"net.encoder.hidden_size": 32})
forecast = seqmodels.forecast(result, train)  # the 12 steps after `train`, in its units
mae = np.abs(forecast.point[0, :, 0] - held_out["value"].to_numpy()).mean()
naive_mae = np.abs(train["value"].iloc[-1] - held_out["value"].to_numpy()).mean()
print(f"MAE {mae:.3f} vs naive {naive_mae:.3f}")
"""


def one_line(info: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(info.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, (part, message)
    return message


# ------------------------------------------------------------------------------------------------ seqmodels.fit
@pytest.mark.learns
def test_a_forecasting_comparison_from_a_dataframe_takes_at_most_15_lines(tmp_path, monkeypatch, capsys):
    """A forecaster trained from a DataFrame in memory with ``seqmodels.fit`` and asked for the held-out steps on
    the user's scale beats the naive forecast on a clean sine (level 10, amplitude 3), in <= 15 lines of user code.

    Catches: a datamodule that ignores (or copies wrongly) in-memory data, and forecasts on the wrong scale: history
    not standardised before the network, or forecasts left standardised (the trap of ``ForecastingTask.forecast``,
    which takes standardised inputs and returns original-scale values); either puts the forecast far from 10 +- 3.
    """
    lines = [line for line in COMPARISON.strip().splitlines() if line.strip()]
    assert len(lines) <= 15, len(lines)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # fit's default output folder: inside tmp_path
    namespace: dict = {}
    exec(compile(COMPARISON, "comparison", "exec"), namespace)
    assert capsys.readouterr().out.startswith("MAE "), "fit and forecast print nothing of their own when quiet"
    forecast, held_out = namespace["forecast"], namespace["held_out"]
    assert forecast.time[0].tolist() == held_out["time"].tolist()
    assert namespace["mae"] < 0.6 * namespace["naive_mae"], (namespace["mae"], namespace["naive_mae"])
    # Historical forecasts over the held-out part of the training frame, from every origin, beat naive as well.
    backtest = seqmodels.backtest(namespace["result"])
    model, naive = (np.abs(x - backtest.actual).mean() for x in (backtest.point, backtest.naive))
    assert model < 0.6 * naive, (model, naive)


@pytest.fixture(scope="module")
def level_run(tmp_path_factory):
    """One quick fit (1 epoch) of a series around 1000, from a DataFrame in memory."""
    t = np.arange(300)
    frame = pd.DataFrame({"time": t, "value": 1000 + np.sin(2 * np.pi * t / 20)})
    out = tmp_path_factory.mktemp("level_run")
    result = seqmodels.fit(
        "sunspots",
        data=frame,
        output_dir=out,
        seed=0,
        trainer={"max_epochs": 1},
        datamodule={"lookback": 20, "horizon": 5},
        model={"net": {"encoder": {"hidden_size": 8}}},
    )
    return frame, out, result


def test_fit_applies_keywords_and_returns_the_run(level_run):
    frame, out, result = level_run
    assert result.datamodule.lookback == 20 and result.datamodule.horizon == 5
    assert result.task.net.encoder.hidden_size == 8
    assert Path(result.best_model_path).parent == out / "checkpoints"
    assert np.isfinite(result.metrics["test/mae"])
    assert (out / "tensorboard").is_dir()  # the experiment's logger, unless logger=None


def test_forecasts_are_on_the_users_scale_and_a_checkpoint_gives_the_same(level_run):
    frame, _, result = level_run
    forecast = seqmodels.forecast(result, frame)
    assert forecast.point.shape == (1, 5, 1) and forecast.lower is not None  # the sunspots recipe: quantile interval
    assert np.abs(forecast.point - 1000).max() < 20, forecast.point  # not standardised (~0), not scaled twice
    assert forecast.time[0].tolist() == [300.0, 301.0, 302.0, 303.0, 304.0]
    # No history: past the end of the training series (the same frame here).
    np.testing.assert_allclose(seqmodels.forecast(result).point, forecast.point)
    table = forecast.to_frame()
    assert list(table.columns[:5]) == ["series", "time", "step", "target", "forecast"] and len(table) == 5
    assert {"lower", "upper", "q0.1", "q0.5", "q0.9"} <= set(table.columns)

    # The checkpoint holds plain data (no DataFrame), says its series came from memory, and forecasts the same.
    checkpoint = load_checkpoint(result.best_model_path)
    assert "data" not in checkpoint["datamodule_hyper_parameters"]
    assert checkpoint["seqmodels"]["config"]["data"]["source"] == "memory"
    task, datamodule = build_from_checkpoint(checkpoint, setup_data=False)
    np.testing.assert_allclose(datamodule.forecast(task, frame).point, forecast.point, rtol=1e-5)
    with pytest.raises(ValueError, match="trained on series held in memory") as info:
        datamodule.forecast(task)
    one_line(info, "data=")


def test_forecast_refuses_a_task_trained_with_another_scaler(level_run):
    frame, _, result = level_run
    other = ForecastingDataModule(data=frame["value"].to_numpy() * 2, lookback=20, horizon=5)
    with pytest.raises(ValueError, match="target scaler is not this datamodule's") as info:
        other.forecast(result.task, frame)
    one_line(info)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trainer": {"max_epoch": 1}}, "unknown config key trainer.max_epoch (did you mean trainer.max_epochs?)"),
        ({"traner": {"max_epochs": 1}}, "unknown config key traner.max_epochs (did you mean trainer?)"),
        (
            {"datamodule": {"lookbak": 5}, "model": {"net.encoder.hiden_size": 8}},
            "unknown config keys datamodule.lookbak (did you mean datamodule.lookback?), model.net.encoder.hiden_size",
        ),
        ({"hydra": {"job": {"name": "x"}}}, "unknown config key hydra.job.name"),
        ({"overrides": ["trainer.max_epochs=="]}, "overrides ['trainer.max_epochs==']"),
        ({"overrides": "trainer.max_epochs=1"}, "overrides must be a list of strings"),
        ({"datamodule": {"path": "series.csv"}}, "pass the series as data= or as path=series.csv, not both"),
        ({"datamodule": {"source": "co2"}}, "pass the series as data= or as source=co2, not both"),
    ],
)
def test_fit_refuses_unknown_keys_and_conflicting_sources_in_one_line(tmp_path, kwargs, message):
    with pytest.raises(ValueError) as info:
        seqmodels.fit("sunspots", data=np.sin(np.arange(300) / 4), output_dir=tmp_path, **kwargs)
    one_line(info, message)
    assert not (tmp_path / "checkpoints").exists()  # refused before any training


def test_fit_refuses_an_unknown_experiment_and_data_its_datamodule_cannot_take(tmp_path):
    with pytest.raises(ValueError) as info:
        seqmodels.fit("sunspot", data=np.zeros(10))
    one_line(info, "unknown experiment 'sunspot'", "sunspots")
    with pytest.raises(ValueError) as info:
        seqmodels.fit("parity", data=np.zeros(10), output_dir=tmp_path)
    one_line(info, "ParityDataModule, which takes no data in memory")


def test_fit_accepts_parameters_the_config_does_not_list(tmp_path):
    """``trainer.limit_train_batches`` is not in trainer/default.yaml: a Trainer parameter needs no ``+``."""
    pairs = [(f"{'good' if i % 2 else 'bad'} item {i}", "pos" if i % 2 else "neg") for i in range(60)]
    result = seqmodels.fit(
        "text_classification",
        data=pairs,
        output_dir=tmp_path,
        logger=None,
        trainer={"max_epochs": 1, "limit_train_batches": 1},
    )
    assert result.datamodule.class_names == ["neg", "pos"] and np.isfinite(result.metrics["test/acc"])
    # Its checkpoint says the rows came from memory: it classifies new text with its vocabulary, and refuses to
    # evaluate on the bundled demo reviews in their place.
    checkpoint = load_checkpoint(result.best_model_path)
    assert checkpoint["seqmodels"]["config"]["data"]["train_path"] == "<in memory>"
    _, datamodule = build_from_checkpoint(checkpoint, setup_data=False)
    assert datamodule.inputs_from_text("good item").tolist() == result.datamodule.inputs_from_text("good item").tolist()
    with pytest.raises(ValueError) as info:
        build_from_checkpoint(checkpoint)
    one_line(info, "data was given in memory", "data.train_path=")


# ------------------------------------------------------------------------------------------------ forecasting
def assert_same_windows(a: ForecastingDataModule, b: ForecastingDataModule) -> None:
    assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std) and a.calendar_names == b.calendar_names
    assert a.split_points == b.split_points and a.dims() == b.dims()
    for split in ("train_set", "val_set", "test_set"):
        ta, tb = getattr(a, split).tensors, getattr(b, split).tensors
        assert ta.keys() == tb.keys(), split
        for key, value in ta.items():
            assert (value is None and tb[key] is None) or torch.equal(value, tb[key]), (split, key)


def built(cls, **kwargs):
    datamodule = cls(**kwargs)
    datamodule.setup()
    return datamodule


def test_one_series_from_a_csv_a_dataframe_a_pandas_series_or_an_array_gives_the_same_windows(tmp_path):
    t = np.arange(150)
    values = np.round(np.sin(t / 5) * 10 + t / 10, 4)
    frame = pd.DataFrame({"time": t, "value": values})
    frame.to_csv(tmp_path / "series.csv", index=False)
    options = dict(lookback=12, horizon=4, calendar=None)
    from_file = built(ForecastingDataModule, path=tmp_path / "series.csv", **options)
    for data in (frame, frame.set_index("time")["value"], values, list(values), [values], {"s": values[:, None]}):
        assert_same_windows(from_file, built(ForecastingDataModule, data=data, **options))


def test_a_panel_with_dates_and_covariates_from_memory_matches_the_csv_also_when_forecasting_ahead(tmp_path):
    columns = dict(
        time_column="date",
        target_columns=["sales"],
        past_covariates=["temperature"],
        future_covariates=["promo"],
        series_column="store",
        lookback=28,
        horizon=7,
        seasonal_period=7,
    )
    frame = pd.read_csv(demo_demand_path(), parse_dates=["date"])
    from_file = built(ForecastingDataModule, path=demo_demand_path(), **columns)
    from_memory = built(ForecastingDataModule, data=frame, **columns)
    assert_same_windows(from_file, from_memory)
    assert [s.name for s in from_memory.series] == ["north", "south"] and from_memory.calendar_names

    # Forecasting ahead with known-future promotions: the last 7 rows of each store give them, sales left empty.
    ahead = []
    for store, group in frame.groupby("store", sort=False):
        dates = pd.date_range(group["date"].iloc[-1] + pd.Timedelta(days=1), periods=7, freq="D")
        ahead.append(group)
        ahead.append(pd.DataFrame({"date": dates, "store": store, "promo": [1, 0, 0, 1, 0, 0, 1]}))
    history = pd.concat(ahead, ignore_index=True)[frame.columns]
    history.to_csv(tmp_path / "ahead.csv", index=False, date_format="%Y-%m-%d")
    series_a, batch_a, times_a = from_file.last_windows(tmp_path / "ahead.csv")
    series_b, batch_b, times_b = from_memory.last_windows(data=history)
    assert torch.equal(batch_a.inputs, batch_b.inputs) and torch.equal(batch_a.future, batch_b.future)
    assert (times_a == times_b).all() and [s.name for s in series_a] == [s.name for s in series_b]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (pd.DataFrame({"time": range(60), "value": [1.0] * 41 + [np.nan] + [1.0] * 18}), "first at index 41"),
        (pd.DataFrame({"time": range(60), "value": [1.0] * 41 + [np.inf] + [1.0] * 18}), "index 41 holds inf"),
        (np.r_[np.ones(30), 1e39, np.ones(29)], "step 30 holds 1e+39, not a finite number"),
        (pd.DataFrame({"time": [], "value": []}), "data holds no rows"),
        (pd.DataFrame({"time": [2, 1] + list(range(3, 61)), "value": 1.0}), "goes back at index 0"),
        (pd.DataFrame({"t": range(60), "value": 1.0}), "no column 'time'; its columns are t, value"),
        (pd.DataFrame({"time": range(60), "value": ["1"] * 59 + ["x"]}), "column 'value' index 59 holds 'x'"),
        (np.ones(20), "its training part (14) is shorter than lookback + horizon = 16"),
        (np.ones((60, 2)), "2 target channel(s) but target_columns names 1"),
        ("text", "cannot read str as numbers"),
        ([np.ones(60), np.ones(8)], "series '1' has 8 steps"),
    ],
)
def test_series_in_memory_are_checked_as_files_are(data, message):
    with pytest.raises(ValueError) as info:
        built(ForecastingDataModule, data=data, lookback=12, horizon=4, calendar=None)
    one_line(info, message)


def test_covariates_need_a_dataframe_and_memory_source_needs_data():
    with pytest.raises(ValueError) as info:
        built(ForecastingDataModule, data=np.ones(60), past_covariates=["temp"], lookback=12, horizon=4)
    one_line(info, "covariates and series need a DataFrame", "temp")
    with pytest.raises(ValueError) as info:
        built(ForecastingDataModule, source="memory", lookback=12, horizon=4)
    one_line(info, "held in memory", "data=")


# ------------------------------------------------------------------------------------------------ text and tags
def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def assert_same_sets(a, b) -> None:
    for split in ("train_set", "val_set", "test_set"):
        sa, sb = getattr(a, split), getattr(b, split)
        assert len(sa) == len(sb), split
        for i in range(len(sa)):
            (xa, ya), (xb, yb) = sa[i], sb[i]
            assert torch.equal(xa, xb) and torch.equal(torch.as_tensor(ya), torch.as_tensor(yb)), (split, i)


def test_text_classification_from_pairs_or_a_dataframe_matches_the_csv(tmp_path):
    with demo_reviews_path().open(encoding="utf-8") as handle:
        pairs = [(row["text"], row["label"]) for row in csv.DictReader(handle)]
    from_file = built(TextClassificationDataModule, tokenizer="word")
    for data in (pairs, pd.read_csv(demo_reviews_path())):
        from_memory = built(TextClassificationDataModule, data=data, tokenizer="word")
        assert from_memory.vocab == from_file.vocab and from_memory.class_names == from_file.class_names
        assert_same_sets(from_file, from_memory)
    # Given splits, as val_path/test_path give them.
    train, val, test = pairs[:400], pairs[400:480], pairs[480:]
    paths = {name: write_csv(tmp_path / f"{name}.csv", rows) for name, rows in (("train", train), ("val", val))}
    paths["test"] = write_csv(tmp_path / "test.csv", test)
    from_files = built(TextClassificationDataModule, **{f"{name}_path": path for name, path in paths.items()})
    from_memory = built(TextClassificationDataModule, data={"train": train, "val": val, "test": test})
    assert from_memory.vocab == from_files.vocab
    assert_same_sets(from_files, from_memory)


def test_tagging_from_sentences_matches_the_conll_file(tmp_path):
    sentences = [(s.tokens, s.tags) for s in read_conll(demo_ner_path())]
    from_file, from_memory = built(CoNLLTaggingDataModule), built(CoNLLTaggingDataModule, data=sentences)
    assert from_memory.vocab == from_file.vocab and from_memory.tag_names == from_file.tag_names
    assert_same_sets(from_file, from_memory)
    val = tmp_path / "val.conll"
    val.write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in zip(*s, strict=True)) for s in sentences[:20]) + "\n")
    from_file = built(CoNLLTaggingDataModule, val_path=val)
    from_memory = built(CoNLLTaggingDataModule, data={"train": sentences, "val": sentences[:20]})
    assert_same_sets(from_file, from_memory)


def test_parallel_text_from_pairs_matches_the_tsv(tmp_path):
    pairs = read_tsv_pairs(demo_translation_path())[:1500]
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    from_file, from_memory = built(ParallelTextDataModule, train_path=path), built(ParallelTextDataModule, data=pairs)
    assert from_memory.source_vocab == from_file.source_vocab and from_memory.target_vocab == from_file.target_vocab
    assert_same_sets(from_file, from_memory)
    test = tmp_path / "test.tsv"
    test.write_text("".join(f"{s}\t{t}\n" for s, t in pairs[:50]), encoding="utf-8")
    assert_same_sets(
        built(ParallelTextDataModule, train_path=path, test_path=test),
        built(ParallelTextDataModule, data={"train": pairs, "test": pairs[:50]}),
    )


@pytest.mark.parametrize("level", ["char", "word"])
def test_a_text_corpus_from_strings_matches_its_files(tmp_path, level):
    texts = [f"line {i} of file {k}: the quick brown fox\n" * 40 for k, i in ((0, 1), (1, 2))]
    folder = tmp_path / "corpus"
    folder.mkdir()
    for k, text in enumerate(texts):
        (folder / f"{k}.txt").write_text(text, encoding="utf-8")
    options = dict(level=level, batch_size=4, eval_batch_size=2, bptt=16)
    for path, data in ((folder / "0.txt", texts[0]), (folder, texts)):
        a, b = built(TextCorpusDataModule, path=path, **options), built(TextCorpusDataModule, data=data, **options)
        assert a.vocab == b.vocab and all(torch.equal(a.streams[k], b.streams[k]) for k in a.streams)


# ------------------------------------------------------------------------------------------------ UCR/UEA
def write_ts(path: Path, xs: list[np.ndarray], ys: list[str]) -> Path:
    header = "@problemName Toy\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true a b c\n@data\n"
    lines = [
        ":".join(",".join(repr(float(v)) for v in x[:, c]) for c in range(2)) + f":{y}"
        for x, y in zip(xs, ys, strict=True)
    ]
    path.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_labelled_series_from_arrays_match_the_ts_files(tmp_path):
    rng = np.random.default_rng(0)
    xs = [np.round(rng.standard_normal((int(n), 2)), 3) for n in rng.integers(5, 12, 90)]
    ys = ["abc"[i % 3] for i in range(90)]
    write_ts(tmp_path / "Toy_TRAIN.ts", xs[:60], ys[:60])
    write_ts(tmp_path / "Toy_TEST.ts", xs[60:], ys[60:])
    from_files = built(UEADataModule, name="Toy", data_dir=tmp_path)
    from_memory = built(UEADataModule, data={"train": (xs[:60], ys[:60]), "test": (xs[60:], ys[60:])})
    assert from_memory.class_names == from_files.class_names and from_memory.dims() == from_files.dims()
    assert torch.equal(from_memory.mean, from_files.mean) and torch.equal(from_memory.std, from_files.std)
    assert_same_sets(from_files, from_memory)
    # Equal lengths as one (N, L, C) array; without a test part a stratified test_fraction is held out.
    square = built(UEADataModule, data=(rng.standard_normal((50, 8, 2)), np.arange(50) % 5), test_fraction=0.2)
    assert (len(square.train_set), len(square.val_set), len(square.test_set)) == (36, 4, 10)
    assert square.class_names == ["0", "1", "2", "3", "4"]


def test_the_japanese_vowels_recipe_takes_its_own_files_as_arrays():
    vowels = built(JapaneseVowelsDataModule)
    folder = Path(vowels.files()[0]).parent
    train, test = (read_ts(folder / f"JapaneseVowels_{part}.ts")[:2] for part in ("TRAIN", "TEST"))
    from_memory = built(JapaneseVowelsDataModule, data={"train": train, "test": test})
    assert from_memory.class_names == vowels.class_names
    assert_same_sets(vowels, from_memory)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ((np.full((5, 4, 2), np.nan), list("aabbc")), "data: series 0 contains NaN; impute or drop missing values"),
        ((np.array([[1.0, np.inf]]), ["a"]), "data: series 0: infinite value in dimension 0"),
        ((np.ones((5, 4, 2)), ["a"] * 4), "5 series but 4 labels"),
        (([np.ones((4, 2)), np.ones((4, 3))], ["a", "b"]), "series 1 has 3 channel(s) but series 0 has 2"),
        (([], []), "data holds no series"),
        (([np.ones((4, 2))], [None]), "series 0 has no label"),
        ({"train": (np.ones((4, 3, 1)), [0, 1, 0, 1]), "dev": None}, "unknown split 'dev'"),
    ],
)
def test_labelled_series_in_memory_are_checked_as_files_are(data, message):
    with pytest.raises(ValueError) as info:
        built(UEADataModule, data=data)
    one_line(info, message)


# ------------------------------------------------------------------------------------------------ all of them
PAIRS = [(f"text {i}", "ab"[i % 2]) for i in range(50)]
SENTENCES = [(["w", f"x{i}"], ["O", "B-X"]) for i in range(50)]
IN_MEMORY = [
    (ForecastingDataModule, {"data": np.sin(np.arange(200) / 3), "lookback": 12, "horizon": 4}),
    (TextClassificationDataModule, {"data": PAIRS}),
    (CoNLLTaggingDataModule, {"data": SENTENCES}),
    (ParallelTextDataModule, {"data": [(f"a {i}", f"b {i}") for i in range(50)]}),
    (TextCorpusDataModule, {"data": "some text to model\n" * 50, "batch_size": 2}),
    (UEADataModule, {"data": (np.ones((20, 5, 2)), [0, 1] * 10)}),
]


@pytest.mark.parametrize(("cls", "kwargs"), IN_MEMORY, ids=lambda v: getattr(v, "__name__", ""))
def test_in_memory_data_stays_out_of_the_saved_hyperparameters(cls, kwargs, tmp_path):
    datamodule = built(cls, **kwargs)
    assert "data" not in datamodule.hparams and "data" not in datamodule.hparams_initial
    torch.save({"hparams": dict(datamodule.hparams_initial), "state": datamodule.state_dict()}, tmp_path / "dm.pt")
    torch.load(tmp_path / "dm.pt", weights_only=True)  # plain data only


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (ForecastingDataModule, {"path": "s.csv"}, "pass the series as data= or as path=s.csv, not both"),
        (ForecastingDataModule, {"source": "airline"}, "pass the series as data= or as source=airline, not both"),
        (TextClassificationDataModule, {"val_path": "v.csv"}, "pass the rows as data= or as files (val_path=v.csv)"),
        (CoNLLTaggingDataModule, {"train_path": "t.conll"}, "pass the sentences as data= or as files (train_path="),
        (ParallelTextDataModule, {"test_path": "t.tsv"}, "pass the pairs as data= or as files (test_path=t.tsv)"),
        (TextCorpusDataModule, {"path": "c.txt"}, "pass the text as data= or as files (path=c.txt), not both"),
        (UEADataModule, {"data_dir": "ucr"}, "pass the series as data= or as data_dir=ucr, not both"),
        (JapaneseVowelsDataModule, {"data_dir": "ucr"}, "pass the series as data= or as data_dir=ucr, not both"),
    ],
)
def test_data_and_a_file_together_are_refused_in_one_line(cls, kwargs, message):
    with pytest.raises(ValueError) as info:
        cls(data=[("a", "b")], **kwargs)
    one_line(info, message)


@pytest.mark.parametrize("cls", [cls for cls, _ in IN_MEMORY], ids=lambda cls: cls.__name__)
def test_a_run_config_of_data_in_memory_rebuilds_a_datamodule_that_says_its_data_is_not_at_hand(cls):
    """fit writes ``memory_config`` into the run config (so into checkpoints): without the data, building refuses
    instead of reading a bundled demo set in its place."""
    options = {"lookback": 12, "horizon": 4} if cls is ForecastingDataModule else {}
    with pytest.raises(ValueError) as info:
        built(cls, **cls.memory_config, **options)
    one_line(info, "memory", "data=")


def test_a_text_corpus_needs_text_from_somewhere():
    with pytest.raises(ValueError) as info:
        built(TextCorpusDataModule)
    one_line(info, "no text to model", "data=")


@pytest.mark.parametrize(
    ("cls", "data", "message"),
    [
        (TextClassificationDataModule, [("fine", "pos"), ("ok", "")], "data: item 1: empty label"),
        (TextClassificationDataModule, [("just text",)], "data: item 0 is not a (text, label) pair"),
        (TextClassificationDataModule, [], "data is empty"),
        (TextClassificationDataModule, pd.DataFrame({"body": ["a"], "label": ["x"]}), "data: no column 'text'"),
        (TextClassificationDataModule, PAIRS[:3], "data: 3 usable rows leave none for validation"),
        (TextClassificationDataModule, {"train": PAIRS, "dev": PAIRS}, "data: unknown split 'dev'"),
        (CoNLLTaggingDataModule, [(["a", "b"], ["O"])], "data: sentence 0 has 2 token(s) and 1 tag(s)"),
        (CoNLLTaggingDataModule, SENTENCES[:3], "data: 3 sentence(s) leave none for validation"),
        (CoNLLTaggingDataModule, {"val": SENTENCES}, "data: no 'train' split"),
        (ParallelTextDataModule, [("a", " ")], "data: item 0: empty target side"),
        (ParallelTextDataModule, [("a", "b")] * 3, "data: 3 pair(s) leave none for validation"),
        (TextCorpusDataModule, "", "data holds no text"),
        (TextCorpusDataModule, ["text", 3], "data: item 1 is not a string (int)"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_text_in_memory_is_checked_as_files_are(cls, data, message):
    with pytest.raises(ValueError) as info:
        built(cls, data=data)
    one_line(info, message)
