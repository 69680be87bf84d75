"""Bad input files give one clear line (file, line/row/key, what to do), never a traceback or a silent wrong run.

Each test writes its own bad file into ``tmp_path`` and calls the reader or datamodule in-process; the two CLI
tests check that seqmodels-predict refuses a bad ``output_file`` before doing any work.
"""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from seqmodels.data import (
    CoNLLTaggingDataModule,
    DTMFDataModule,
    ParallelTextDataModule,
    TextClassificationDataModule,
    read_wav,
    write_wav,
)
from seqmodels.data.forecasting import ForecastingDataModule
from seqmodels.data.parallel import read_tsv_pairs
from seqmodels.data.tagging import read_conll
from seqmodels.data.timeseries_sources import Series, read_csv_series

REPO = Path(__file__).resolve().parents[2]
TEN_MB = 10 * 1024 * 1024


def one_line(info: pytest.ExceptionInfo, *parts: object) -> str:
    """The error's message: one line, naming each of ``parts`` (a path, a line number, ...)."""
    message = str(info.value)
    assert "\n" not in message, message
    for part in parts:
        assert str(part) in message, (part, message)
    return message


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def texts_csv(path: Path, rows: int, extra: list[str] = ()) -> Path:
    lines = ["text,label", *[f"sample text {i},{'pos' if i % 2 else 'neg'}" for i in range(rows)], *extra]
    return write(path, "\n".join(lines) + "\n")


def ramp(path: Path, n: int = 100, bad: dict[int, str] | None = None, header: str = "time,value,temp") -> Path:
    """``time,value,temp`` rows t = 0..n-1; ``bad`` replaces the value cell of some steps."""
    bad = bad or {}
    rows = [f"{t},{bad.get(t, t)},{t % 3}" for t in range(n)]
    return write(path, "\n".join([header, *rows]) + "\n")


def forecaster(path: Path | None = None, **kwargs) -> ForecastingDataModule:
    options = dict(
        source="csv",
        path=path,
        time_column="time",
        target_columns="value",
        lookback=8,
        horizon=5,
        val_size=20,
        test_size=20,
        calendar=None,
    )
    options.update(kwargs)
    return ForecastingDataModule(**options)


# ------------------------------------------------------------------------------------------------ 1: huge fields
def test_a_huge_csv_field_in_text_classification_names_the_file_and_line(tmp_path):
    path = write(tmp_path / "huge.csv", "text,label\nfine,pos\n" + "x" * TEN_MB + ",neg\n")
    with pytest.raises(ValueError, match="a field is longer than 1000000 characters") as info:
        TextClassificationDataModule(path).setup()
    one_line(info, path, "line 3")


def test_an_open_quote_that_swallows_the_file_is_named_by_its_line(tmp_path):
    rows = [f"row number {i} of a long file,pos" for i in range(40_000)]  # ~1.3 M characters after the quote
    path = write(tmp_path / "quote.csv", 'text,label\nfine,neg\n"oops,pos\n' + "\n".join(rows) + "\n")
    with pytest.raises(ValueError, match="a quote left open") as info:
        TextClassificationDataModule(path).setup()
    one_line(info, path, "line 3")


def test_a_huge_csv_field_in_a_forecasting_file_names_the_file_and_line(tmp_path):
    path = write(tmp_path / "huge_series.csv", "time,value\n0,1\n1,2\n2," + "9" * TEN_MB + "\n")
    with pytest.raises(ValueError, match="a field is longer than 1000000 characters") as info:
        read_csv_series(path, "time", "value")
    one_line(info, path, "line 4")


def test_a_huge_field_in_parallel_text_is_refused_with_its_line(tmp_path):
    path = write(tmp_path / "huge.tsv", "hello\tbonjour\n" + "a" * TEN_MB + "\tsalut\n")
    with pytest.raises(ValueError, match="source side is longer than 1000000 characters") as info:
        read_tsv_pairs(path)
    one_line(info, f"{path}:2")


# ------------------------------------------------------------------------------------------------ 2: no val split
def test_a_text_file_too_small_for_a_validation_split_is_refused_up_front(tmp_path):
    path = texts_csv(tmp_path / "five.csv", 5)
    with pytest.raises(ValueError, match=r"5 usable rows leave none for validation .*need at least 7") as info:
        TextClassificationDataModule(path).setup()
    one_line(info, path, "data.val_path")
    # The same file trains with an explicit validation file, and a file just big enough needs none.
    TextClassificationDataModule(path, val_path=path).setup()
    dm = TextClassificationDataModule(texts_csv(tmp_path / "seven.csv", 7))
    dm.setup()
    assert len(dm.val_set) >= 1


def test_a_conll_file_too_small_for_a_validation_split_is_refused_up_front(tmp_path):
    path = write(tmp_path / "two.conll", "Anna B-PER\nsings O\n\nBob B-PER\nruns O\n")
    with pytest.raises(ValueError, match=r"2 sentence\(s\) leave none for validation .*need at least 6") as info:
        CoNLLTaggingDataModule(path).setup()
    one_line(info, path, "data.val_path")
    CoNLLTaggingDataModule(path, val_path=path, test_path=path).setup()


def test_a_parallel_file_too_small_for_a_validation_split_is_refused_up_front(tmp_path):
    path = write(tmp_path / "four.tsv", "a\tb\nc\td\ne\tf\ng\th\n")
    with pytest.raises(ValueError, match=r"4 pair\(s\) leave none for validation .*need at least 6") as info:
        ParallelTextDataModule(path).setup()
    one_line(info, path, "data.val_path")
    ParallelTextDataModule(path, val_path=path, test_path=path).setup()


# ------------------------------------------------------------------------------------------------ 3: inf
@pytest.mark.parametrize("text", ["inf", "-inf", "Infinity", "1e400"])
def test_an_infinite_target_is_refused_like_a_missing_one(tmp_path, text):
    path = ramp(tmp_path / "inf.csv", bad={30: text})
    with pytest.raises(ValueError, match=rf"column 'value' row 32 holds '{text}', not a finite number") as info:
        forecaster(path).setup()
    one_line(info, path)
    # Filling missing values does not make an infinite one right.
    with pytest.raises(ValueError, match="not a finite number"):
        forecaster(path, missing="interpolate").setup()


def test_an_infinite_covariate_is_refused_with_its_file_row_in_a_panel(tmp_path):
    rows = [f"{t},{store},{t},{'-inf' if (store, t) == ('b', 40) else t % 3}" for t in range(100) for store in "ab"]
    path = write(tmp_path / "panel.csv", "\n".join(["time,store,value,temp", *rows]) + "\n")
    with pytest.raises(ValueError, match=r"\(series 'b'\): column 'temp' row 83 holds '-inf'") as info:
        forecaster(path, series_column="store", past_covariates=["temp"]).setup()
    one_line(info, path)


def test_inf_in_a_prediction_or_backtest_file_is_refused(tmp_path):
    dm = forecaster(ramp(tmp_path / "clean.csv"))
    dm.setup()
    bad = ramp(tmp_path / "bad.csv", bad={95: "inf"})
    with pytest.raises(ValueError, match="column 'value' row 97 holds 'inf'") as info:
        dm.last_windows(bad)
    one_line(info, bad)
    with pytest.raises(ValueError, match="column 'value' row 97 holds 'inf'"):
        dm.backtest_windows("test", bad)


def test_series_made_in_memory_are_checked_too(tmp_path):
    values = np.arange(100, dtype=np.float64)
    values[42] = np.inf
    dm = forecaster(ramp(tmp_path / "clean.csv"))
    with pytest.raises(ValueError, match=r"series 'x': column 'value' step 42 holds inf, not a finite number"):
        dm.build([Series("x", np.arange(100.0), values)])
    values[42] = 1e39  # finite in float64, infinite in the model's float32
    with pytest.raises(ValueError, match="step 42 holds 1e\\+39"):
        dm.build([Series("x", np.arange(100.0), values)])
    values[42] = 1e38  # as large as allowed: windows stay finite
    dm.build([Series("x", np.arange(100.0), values)])
    assert dm.train_set.tensors["inputs"].isfinite().all() and dm.test_set.tensors["mase_scale"].isfinite().all()


# ------------------------------------------------------------------------------------------------ 4: CoNLL columns
def test_a_one_column_conll_file_is_refused_instead_of_tagging_words_with_themselves(tmp_path):
    path = write(tmp_path / "words.conll", "EU\nrejects\nGerman\n\nPeter\n")
    with pytest.raises(
        ValueError, match="1 column\\(s\\), but token_column=0 and tag_column=-1 need at least 2"
    ) as info:
        read_conll(path)
    one_line(info, f"{path}:1")
    mixed = write(tmp_path / "mixed.conll", "EU NNP B-ORG\nrejects VBZ\n")
    with pytest.raises(ValueError, match="mixed.conll:2: 2 column\\(s\\), but token_column=0 and tag_column=2"):
        read_conll(mixed, tag_column=2)
    with pytest.raises(ValueError, match="pick the same column"):  # columns 2 and -2 meet in a 4-column line
        read_conll(write(tmp_path / "four.conll", "a b c d\n"), token_column=2, tag_column=-2)
    with pytest.raises(ValueError, match="token_column and tag_column are both 1"):
        CoNLLTaggingDataModule(path, token_column=1, tag_column=1)


# ------------------------------------------------------------------------------------------------ 5: TSV columns
def test_a_third_tsv_column_is_not_merged_into_the_target(tmp_path):
    path = write(
        tmp_path / "tatoeba.tsv", "Go.\tVa !\tCC-BY 2.0 (France) tatoeba.org #2877272\nHi.\tSalut !\t#538123\n"
    )
    assert read_tsv_pairs(path) == [("Go.", "Va !"), ("Hi.", "Salut !")]
    assert read_tsv_pairs(path, columns=[1, 0]) == [("Va !", "Go."), ("Salut !", "Hi.")]
    short = write(tmp_path / "short.tsv", "Go.\tVa !\t#1\nHi.\tSalut !\n")
    with pytest.raises(ValueError, match="2 tab-separated columns; each line needs 3 columns") as info:
        read_tsv_pairs(short, columns=[0, 2])
    one_line(info, f"{short}:2", "data.columns=[0, 2]")
    with pytest.raises(ValueError, match="columns must be two different column indices"):
        ParallelTextDataModule(path, columns=[1, 1])


def test_the_parallel_text_datamodule_and_config_take_columns(tmp_path):
    rows = "".join(f"#{i}\tword{i}\tmot{i}\n" for i in range(20))
    path = write(tmp_path / "numbered.tsv", rows)
    dm = ParallelTextDataModule(path, columns=[1, 2], val_path=path, test_path=path)
    dm.setup()
    assert dm.source_text(dm.test_set[0][0]) == "word0" and dm.target_text(dm.test_set[0][1]) == "mot0"
    assert OmegaConf.load(REPO / "configs" / "data" / "parallel_text.yaml").columns == [0, 1]


# ------------------------------------------------------------------------------------------------ 6: audio
def test_audio_shorter_than_one_feature_frame_is_refused_with_its_duration(tmp_path):
    path = write_wav(tmp_path / "click.wav", np.array([0.5]), 8000)
    dm = DTMFDataModule(num_train=1, num_val=0, num_test=0)
    with pytest.raises(
        ValueError, match=r"lasts 0\.1 ms \(1 samples at 8000 Hz\), shorter than one feature frame"
    ) as info:
        dm.features_from_wav(path)
    one_line(info, path)
    ok = write_wav(tmp_path / "ok.wav", np.zeros(400), 8000)  # 50 ms: one 32 ms frame and more
    assert dm.features_from_wav(ok).shape[0] >= 1


def _wav_bytes(path: Path, frames: int, rate: int = 8000) -> bytes:
    write_wav(path, np.sin(np.arange(frames) / 5.0) * 0.5, rate)
    return path.read_bytes()


def test_a_truncated_wav_is_refused_and_a_streamed_one_is_read(tmp_path):
    data = _wav_bytes(tmp_path / "full.wav", 8000)
    cut = write(tmp_path / "cut.wav", data[: 44 + 8000])  # the header says 8000 frames, 4000 are there
    with pytest.raises(ValueError, match=r"is truncated: its header announces 8000 frames .* holds 4000") as info:
        read_wav(cut)
    one_line(info, cut)
    # A streaming writer leaves the sizes at 0xFFFFFFFF ("unknown"): the samples there are the recording.
    streamed = bytearray(data)
    streamed[4:8] = streamed[40:44] = (0xFFFFFFFF).to_bytes(4, "little")
    waveform, rate = read_wav(write(tmp_path / "streamed.wav", bytes(streamed)))
    assert rate == 8000 and waveform.shape == (8000,)
    with wave.open(str(tmp_path / "full.wav"), "rb") as handle:
        assert handle.getnframes() == 8000


def test_predict_reads_a_wav_list_as_utf8_and_a_wav_without_its_suffix(tmp_path):
    from seqmodels.predict import audio_paths

    listing = write(tmp_path / "wavs.txt", "a.wav\nb\xe9.wav\n".encode("latin-1"))
    with pytest.raises(ValueError, match="byte 0xe9 at byte offset 7 \\(line 2\\)") as info:
        audio_paths(OmegaConf.create({"input": None, "input_file": str(listing)}))
    one_line(info, listing)
    recording = write(tmp_path / "recording.audio", _wav_bytes(tmp_path / "x.wav", 800))
    assert audio_paths(OmegaConf.create({"input": None, "input_file": str(recording)})) == [recording]


# ------------------------------------------------------------------------------------------------ 7: blank lines
def _inputs(path: Path) -> list[str]:
    from seqmodels.predict import read_inputs

    return read_inputs(OmegaConf.create({"input": None, "input_file": str(path)}))


def test_a_blank_input_line_is_refused_so_outputs_stay_aligned_with_inputs(tmp_path):
    path = write(tmp_path / "inputs.txt", "first\n\nthird\n")
    with pytest.raises(ValueError, match="line 2 is blank") as info:
        _inputs(path)
    one_line(info, path)
    # Blank lines after the last input shift nothing; a byte-order mark is not part of the first input.
    assert _inputs(write(tmp_path / "ok.txt", "\ufefffirst\r\nsecond\n\n\n")) == ["first", "second"]


# ------------------------------------------------------------------------------------------------ 8: output_file
def test_output_file_in_a_missing_folder_or_naming_a_folder_is_refused(tmp_path):
    from seqmodels.predict import check_output_file

    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        check_output_file(OmegaConf.create({"output_file": str(tmp_path / "nowhere" / "out.tsv")}))
    one_line(info, tmp_path / "nowhere")
    with pytest.raises(ValueError, match="is a folder") as info:
        check_output_file(OmegaConf.create({"output_file": str(tmp_path)}))
    one_line(info, tmp_path)
    assert check_output_file(OmegaConf.create({"output_file": str(tmp_path / "out.tsv")})) == tmp_path / "out.tsv"
    assert check_output_file(OmegaConf.create({"output_file": None})) is None


@pytest.mark.parametrize("where", ["missing_folder", "folder"])
def test_predict_cli_checks_output_file_before_any_work(tmp_path, where):
    """The checkpoint does not even exist: the output path is reported first, in one line, exit code 1."""
    output = tmp_path / "nowhere" / "out.tsv" if where == "missing_folder" else tmp_path
    kept = write(tmp_path / "kept.tsv", "earlier results\n")
    result = subprocess.run(
        [sys.executable, "-m", "seqmodels.cli.predict", "ckpt_path=nope.ckpt", "input=abc", f"output_file={output}"],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"seqmodels-predict: error: output_file={output}"), result.stderr
    assert kept.read_text() == "earlier results\n"


# ------------------------------------------------------------------------------------------------ 9: not UTF-8
LATIN1 = "text,label\ncafé au lait,pos\n".encode("latin-1")  # é is byte 0xe9, at offset 14


@pytest.mark.parametrize(
    ("name", "content", "read", "where"),
    [
        ("texts.csv", LATIN1, lambda p: TextClassificationDataModule(p).setup(), "byte offset 14 (line 2)"),
        ("bom.csv", b"\xef\xbb\xbf" + LATIN1, lambda p: TextClassificationDataModule(p).setup(), "byte offset 17"),
        ("tags.conll", "EU B-ORG\nMünchen B-LOC\n".encode("latin-1"), read_conll, "byte offset 10 (line 2)"),
        ("pairs.tsv", "hello\tbonjour\nthé\ttea\n".encode("latin-1"), read_tsv_pairs, "byte offset 16 (line 2)"),
        (
            "series.csv",
            "time,value\n0,1\n1,2 µg\n".encode("latin-1"),
            lambda p: read_csv_series(p, "time", "value"),
            "byte offset 19 (line 3)",
        ),
        ("inputs.txt", "good\nnaïve\n".encode("latin-1"), _inputs, "byte offset 7 (line 2)"),
    ],
)
def test_a_file_that_is_not_utf8_names_the_file_and_the_byte_offset(tmp_path, name, content, read, where):
    path = write(tmp_path / name, content)
    with pytest.raises(ValueError, match="not UTF-8 text") as info:
        read(path)
    one_line(info, path, where, "save the file as UTF-8")
