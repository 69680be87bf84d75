"""UCR/UEA time-series classification archives in the sktime ``.ts`` format.

A ``.ts`` file is ``#`` comments, ``@key value`` header lines, then ``@data`` and one series per line: the
dimensions separated by ``:``, values inside a dimension by ``,``, the class label last::

    @problemName JapaneseVowels
    @univariate false
    @dimensions 12
    @equalLength false
    @classLabel true 1 2 3 4 5 6 7 8 9
    @data
    1.86,1.89,...:-0.20,-0.19,...: ... :1
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from seqmodels.data.datamodule import (
    MissingDataFileError,
    SequenceDataModule,
    SequenceDataset,
    stratified_split,
)
from seqmodels.data.text import IN_MEMORY, memory_lost, memory_lost_error
from seqmodels.runtime import read_series_file, series_files

_MISSING_TOKENS = {"?", "nan", "na", "n/a", "null", "none"}


def _flag(value: str, path: Path, lineno: int, key: str) -> bool:
    word = value.split()[0].lower() if value.split() else ""
    if word not in ("true", "false"):
        raise ValueError(f"{path}: line {lineno}: @{key} must be 'true' or 'false', got {value!r}")
    return word == "true"


def _parse_header(header: dict[str, tuple[int, str]], path: Path) -> dict[str, Any]:
    """Turn raw ``@key value`` lines (lowercased keys) into metadata."""

    def get(key: str) -> tuple[int, str] | None:
        return header.get(key)

    meta: dict[str, Any] = {
        "problem_name": get("problemname")[1] if get("problemname") else path.stem.rsplit("_", 1)[0],
        "timestamps": False,
        "missing": False,
        "univariate": None,
        "dimensions": None,
        "equal_length": None,
        "series_length": None,
        "class_labels": None,
        "target_label": False,
        "header": {key: value for key, (_, value) in header.items()},
    }
    for key, meta_key in (
        ("timestamps", "timestamps"),
        ("missing", "missing"),
        ("univariate", "univariate"),
        ("equallength", "equal_length"),
        ("targetlabel", "target_label"),
    ):
        if (entry := get(key)) is not None:
            meta[meta_key] = _flag(entry[1], path, entry[0], key)
    if meta["timestamps"]:
        lineno = header["timestamps"][0]
        raise ValueError(f"{path}: line {lineno}: @timeStamps true (time-stamped series) is not supported")
    for key, meta_key in (("dimensions", "dimensions"), ("serieslength", "series_length")):
        if (entry := get(key)) is not None:
            try:
                meta[meta_key] = int(entry[1])
            except ValueError:
                raise ValueError(f"{path}: line {entry[0]}: @{key} must be an integer, got {entry[1]!r}") from None
            if meta[meta_key] < 1:
                raise ValueError(f"{path}: line {entry[0]}: @{key} must be >= 1, got {entry[1]!r}")
    if meta["dimensions"] is None and meta["univariate"]:
        meta["dimensions"] = 1
    if (entry := get("classlabel")) is not None:
        words = entry[1].split()
        if _flag(entry[1], path, entry[0], "classLabel"):
            meta["class_labels"] = words[1:]
            if len(set(words[1:])) != len(words[1:]):
                raise ValueError(f"{path}: line {entry[0]}: @classLabel lists a label twice: {words[1:]}")
    if meta["class_labels"] is not None and meta["target_label"]:
        raise ValueError(f"{path}: both @classLabel true and @targetLabel true")
    return meta


def _parse_values(field: str, path: Path, lineno: int, dimension: int) -> np.ndarray:
    tokens = field.split(",")
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        for token in tokens:
            word = token.strip()
            if word.lower() in _MISSING_TOKENS:
                raise ValueError(
                    f"{path}: series contains NaN ({word!r}) at line {lineno}; impute or drop missing values first"
                ) from None
            if word == "":
                raise ValueError(f"{path}: line {lineno}: empty value in dimension {dimension}") from None
            try:
                float(word)
            except ValueError:
                raise ValueError(
                    f"{path}: line {lineno}: non-numeric value {word[:40]!r} in dimension {dimension}"
                ) from None
        raise  # pragma: no cover - numpy refused something float() accepts
    if np.isnan(values).any():
        raise ValueError(f"{path}: series contains NaN at line {lineno}; impute or drop missing values first")
    if np.isinf(values).any():
        raise ValueError(f"{path}: line {lineno}: infinite value in dimension {dimension}")
    return values


def _split_label(
    fields: list[str], meta: dict[str, Any], n_dims: int | None, path: Path, lineno: int
) -> tuple[list[str], str]:
    """A labelled series line's dimensions and its label (the last ``:`` field), checked against the header."""
    if len(fields) < 2 or "," in fields[-1] or (n_dims is not None and len(fields) == n_dims):
        raise ValueError(f"{path}: line {lineno}: missing class label after the last ':'")
    label = fields[-1].strip()
    if not label:
        raise ValueError(f"{path}: line {lineno}: missing class label after the last ':'")
    declared = meta["class_labels"]
    if declared and label not in declared:
        raise ValueError(f"{path}: line {lineno}: class label {label!r} is not declared in @classLabel {declared}")
    if meta["target_label"]:
        try:
            float(label)
        except ValueError:
            raise ValueError(f"{path}: line {lineno}: non-numeric target {label[:40]!r}") from None
    return fields[:-1], label


def read_ts(path: str | Path) -> tuple[list[Tensor], list[str], dict[str, Any]]:
    """Read a sktime/UEA ``.ts`` file.

    Returns:
        ``(series, labels, metadata)``: one ``(L, C)`` float32 tensor per series; the label strings (empty
        list when the file has no labels; numbers as strings for ``@targetLabel true`` regression files);
        metadata with ``problem_name``, ``dimensions``, ``equal_length``, ``series_length``, ``class_labels``
        (the ``@classLabel`` list in header order, or ``None``), ``target_label``, ``missing``, ``univariate``
        and the raw ``header``.

    Raises:
        ValueError: one line naming the file (and the line) for an empty file, a missing ``@data`` section,
            dimensions of unequal length within one series, a wrong number of dimensions, a missing or
            undeclared label, non-numeric values and missing values (``?``/NaN).
        MissingDataFileError: the file does not exist (also a ``FileNotFoundError``).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataFileError(f"{path}: .ts file not found")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise ValueError(f"{path}: file is empty")

    header: dict[str, tuple[int, str]] = {}
    meta: dict[str, Any] | None = None
    series: list[Tensor] = []
    labels: list[str] = []
    has_label = False
    n_dims: int | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if meta is None:
            if not line.startswith("@"):
                raise ValueError(
                    f"{path}: line {lineno}: no @data line before the series {line[:30]!r}... "
                    "(a .ts file is '@' header lines, then @data, then one series per line)"
                )
            key, _, value = line[1:].partition(" ")
            key = key.lower()
            if key == "data":
                meta = _parse_header(header, path)
                has_label = meta["class_labels"] is not None or meta["target_label"]
                n_dims = meta["dimensions"]
            else:
                header[key] = (lineno, value.strip())
            continue

        fields = line.split(":")
        label = ""
        if has_label:
            fields, label = _split_label(fields, meta, n_dims, path, lineno)
        if n_dims is None:
            n_dims = len(fields)  # no @dimensions: the first series decides
        if len(fields) != n_dims:
            raise ValueError(f"{path}: line {lineno}: expected {n_dims} dimensions, found {len(fields)}")
        channels = [_parse_values(field, path, lineno, d) for d, field in enumerate(fields)]
        lengths = [len(c) for c in channels]
        if len(set(lengths)) != 1:
            raise ValueError(f"{path}: line {lineno}: ragged series: its dimensions have different lengths {lengths}")
        if meta["equal_length"] and meta["series_length"] is not None and lengths[0] != meta["series_length"]:
            raise ValueError(
                f"{path}: line {lineno}: series length {lengths[0]} but @seriesLength {meta['series_length']}"
            )
        series.append(torch.from_numpy(np.stack(channels, axis=1).astype(np.float32)))
        if has_label:
            labels.append(label)

    if meta is None:
        raise ValueError(f"{path}: no @data line: not a .ts file (or a truncated one)")
    if not series:
        raise ValueError(f"{path}: no series after @data")
    meta["dimensions"] = n_dims
    meta["num_series"] = len(series)
    return series, labels, meta


MEMORY_FORMAT = "(X, y): X an array (N, L, C) or (N, L), or a list of (L, C) / (L,) arrays; y one label per series"


def series_from_memory(data: Any, where: str = "data") -> tuple[list[Tensor], list[str], list[Any]]:
    """Labelled series held in memory, checked as :func:`read_ts` checks a file: ``data`` is ``(X, y)`` (see
    :data:`MEMORY_FORMAT`). NaN (a missing value), infinity, an empty series, a different number of channels than
    the first series and a count of labels other than the count of series are one-line errors naming the series.

    Returns ``(series, labels, raw_labels)``: one ``(L, C)`` float32 tensor per series, the labels as strings (as a
    file gives them) and as given.
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{where}: pass {MEMORY_FORMAT}")
    xs, ys = data
    if isinstance(xs, (str, bytes)) or not hasattr(xs, "__len__"):
        raise ValueError(f"{where}: X is a {type(xs).__name__}; pass {MEMORY_FORMAT}")
    raw_labels = list(getattr(ys, "tolist", lambda: ys)()) if not isinstance(ys, (str, bytes)) else None
    if raw_labels is None:
        raise ValueError(f"{where}: y is a string; pass one label per series")
    if len(xs) == 0:
        raise ValueError(f"{where} holds no series; pass {MEMORY_FORMAT}")
    if len(raw_labels) != len(xs):
        raise ValueError(f"{where}: {len(xs)} series but {len(raw_labels)} labels; give one label per series")
    series: list[Tensor] = []
    for index, x in enumerate(xs):
        try:
            values = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: series {index} is not numeric") from None
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
            raise ValueError(f"{where}: series {index} has shape {values.shape}; each series is (L, C) or (L,), L >= 1")
        if series and values.shape[1] != series[0].shape[1]:
            raise ValueError(
                f"{where}: series {index} has {values.shape[1]} channel(s) but series 0 has {series[0].shape[1]}"
            )
        if np.isnan(values).any():
            raise ValueError(f"{where}: series {index} contains NaN; impute or drop missing values first")
        bad = np.abs(values) > np.finfo(np.float32).max  # inf, or beyond the float32 the models compute in
        if bad.any():
            dimension = int(np.argwhere(bad)[0][1])
            raise ValueError(f"{where}: series {index}: infinite value in dimension {dimension}")
        series.append(torch.from_numpy(values.astype(np.float32)))
    labels = []
    for index, label in enumerate(raw_labels):
        text = "" if label is None or (isinstance(label, float) and label != label) else str(label).strip()
        if not text:
            raise ValueError(f"{where}: series {index} has no label")
        labels.append(text)
    return series, labels, raw_labels


def _label_order(labels: list[str], raw: list[Any]) -> list[str]:
    """Class names for labels given in memory: sorted by their values (numbers numerically), as strings."""
    by_text = dict(zip(labels, raw, strict=True))
    try:
        return [text for text, _ in sorted(by_text.items(), key=lambda item: item[1])]
    except TypeError:  # labels of mixed types
        return sorted(by_text)


def with_deltas(series: Tensor, order: int) -> Tensor:
    """(L, C) -> (L, C * (1 + order)): the channels, then their differences from the step before (zero at the
    first step), then the differences of those, up to ``order``. Each step reads only itself and earlier steps,
    so a prefix gets the same features as the whole series (streaming, early classification)."""
    parts = [series]
    for _ in range(order):
        previous = parts[-1]
        difference = torch.zeros_like(previous)
        difference[1:] = previous[1:] - previous[:-1]
        parts.append(difference)
    return torch.cat(parts, dim=1)


def channel_stats(series: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Mean and (population) standard deviation per channel over all time steps of ``series``."""
    steps = torch.cat(series, dim=0)
    return steps.mean(dim=0), steps.std(dim=0, unbiased=False)


def _sktime_data_dir() -> Path:
    # find_spec locates the package without importing it (importing sktime takes seconds).
    spec = importlib.util.find_spec("sktime")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the UEA/UCR example datasets ship inside sktime: "
            "install with `pip install 'seqmodels[datasets]'` "
            "or pass data.data_dir=/path/to/UEA"
        )
    return Path(spec.origin).parent / "datasets" / "data"


class UEADataModule(SequenceDataModule):
    """A UEA/UCR classification dataset from ``{name}_TRAIN.ts`` and ``{name}_TEST.ts``.

    Keeps the official TRAIN/TEST split; validation is a seeded stratified ``val_fraction`` of TRAIN. With
    ``standardize``, every channel is shifted and scaled by the mean and standard deviation over all time
    steps of the training part (never val/test); the statistics travel in :meth:`state_dict` so a model
    restored from a checkpoint sees its data scaled as in training. Labels become ``0..K-1`` in
    ``@classLabel`` order (:attr:`class_names`).

    Args:
        name: dataset name, e.g. ``"JapaneseVowels"``, ``"BasicMotions"``.
        data_dir: a folder holding ``{name}/{name}_TRAIN.ts`` (an archive root), or the two files directly.
            Default: the data folder inside the installed sktime package
            (``pip install 'seqmodels[datasets]'``).
        data: labelled series in memory instead of files (not with ``data_dir``): ``(X, y)`` with X an array
            (N, L, C) or (N, L) or a list of (L, C) arrays of any lengths, and one label per series; or a dict
            ``{"train": (X, y), "test": (X, y)}`` (``train`` required; ``val`` may be given too). Without a test
            part, a stratified ``test_fraction`` of train is held out. Class names are the labels as strings, in
            the order of their values. Checked as files are; kept out of the saved hyperparameters.
        test_fraction: share of ``data`` held out for testing when it gives no test part (files have their own).
        standardize: per-channel standardisation with training statistics.
        deltas: append each channel's step-to-step differences (1), and their differences too (2), as extra
            channels (the delta features of speech recognition); standardised like the others. 0: none.
        **base: :class:`SequenceDataModule` arguments.

    dims: ``input_size`` (channels), ``num_classes``.
    """

    #: The config values that say the series came from ``data`` (:func:`seqmodels.fit` writes them into the run
    #: config).
    memory_config: ClassVar[dict[str, Any]] = {"data_dir": IN_MEMORY}

    def __init__(
        self,
        name: str = "JapaneseVowels",
        data_dir: str | Path | None = None,
        standardize: bool = True,
        data: Any = None,
        test_fraction: float = 0.2,
        deltas: int = 0,
        **base: Any,
    ) -> None:
        # The data itself stays out of the saved hyperparameters (checkpoints hold plain data).
        data, memory = None, data
        super().__init__(**base)
        for store in (self.hparams, self._hparams_initial):
            store.pop("data", None)
        self.memory_lost = memory_lost(memory, data_dir)
        data_dir = None if data_dir == IN_MEMORY else data_dir
        if memory is not None and data_dir is not None:
            raise ValueError(f"pass the series as data= or as data_dir={data_dir}, not both")
        if not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
        if deltas not in (0, 1, 2):
            raise ValueError(f"deltas must be 0, 1 or 2 (orders of step-to-step differences), got {deltas}")
        self.deltas = deltas
        if memory is not None:
            if isinstance(memory, dict):
                unknown = [str(k) for k in memory if k not in ("train", "val", "test")]
                if unknown or "train" not in memory:
                    problem = f"unknown split {unknown[0]!r}" if unknown else "no 'train' split"
                    raise ValueError(f"data: {problem}; pass {MEMORY_FORMAT}, or a dict of them: train, val, test")
            else:
                memory = {"train": memory}
        self.memory: dict[str, Any] | None = memory
        self.test_fraction = test_fraction
        self.name = name
        self.data_dir = data_dir
        self.standardize = standardize
        self.class_names: list[str] | None = None
        self.mean: Tensor | None = None
        self.std: Tensor | None = None
        self.num_channels: int | None = None
        self._raw: dict[str, tuple[list[Tensor], list[str]]] = {}
        self._paths: dict[str, Path] = {}

    # ------------------------------------------------------------------ files
    def files(self) -> tuple[Path, Path]:
        """Paths of the TRAIN and TEST files."""
        root = Path(self.data_dir).expanduser() if self.data_dir is not None else _sktime_data_dir()
        candidates = [root / self.name, root]
        for folder in candidates:
            train, test = folder / f"{self.name}_TRAIN.ts", folder / f"{self.name}_TEST.ts"
            if train.is_file() and test.is_file():
                return train, test
        hint = "; sktime bundles only a few datasets, pass data.data_dir" if self.data_dir is None else ""
        raise MissingDataFileError(
            f"{self.name}_TRAIN.ts and {self.name}_TEST.ts not found in {candidates[0]} or {candidates[1]}{hint}"
        )

    # --------------------------------------------------------------- building
    def _build_from_memory(self) -> None:
        assert self.memory is not None
        single = len(self.memory) == 1
        parts = {
            split: series_from_memory(value, "data" if single else f"data[{split!r}]")
            for split, value in self.memory.items()
        }
        train_x, train_y, train_raw = parts["train"]
        self.num_channels = int(train_x[0].shape[1])
        for split, (xs, _, _) in parts.items():
            if xs[0].shape[1] != self.num_channels:
                raise ValueError(
                    f"data[{split!r}]: {xs[0].shape[1]} channel(s) but the training series have {self.num_channels}"
                )
        if self.class_names is None:  # not restored from a checkpoint
            self.class_names = _label_order(train_y, train_raw)
        raw: dict[str, tuple[list[Tensor], list[str]]] = {}
        if "test" in parts:
            raw["test"] = parts["test"][:2]
        else:
            keep, held = stratified_split(train_y, self.test_fraction, self.seed + 1)
            raw["test"] = ([train_x[i] for i in held], [train_y[i] for i in held])
            train_x, train_y = [train_x[i] for i in keep], [train_y[i] for i in keep]
        if "val" in parts:
            raw["val"] = parts["val"][:2]
        else:
            keep, val = stratified_split(train_y, self.val_fraction, self.seed)
            raw["val"] = ([train_x[i] for i in val], [train_y[i] for i in val])
            train_x, train_y = [train_x[i] for i in keep], [train_y[i] for i in keep]
        self._raw = {"train": (train_x, train_y), "val": raw["val"], "test": raw["test"]}
        # Where messages say a split's series come from (the split it was carved from, when not given).
        names = {split: "data" if single else f"data[{split!r}]" for split in self.memory}
        self._paths = {split: Path(names.get(split, names["train"])) for split in self._raw}
        self._append_deltas()
        if self.standardize and self.mean is None:
            self.mean, std = channel_stats(self._raw["train"][0])
            self.std = torch.where(std > 1e-8, std, torch.ones_like(std))  # constant channel: only centre it
        self._materialize()

    def build(self) -> None:
        if self.memory_lost:
            raise memory_lost_error(self, "data_dir")
        if self.memory is not None:
            self._build_from_memory()
            return
        train_path, test_path = self.files()
        train_x, train_y, train_meta = read_ts(train_path)
        test_x, test_y, test_meta = read_ts(test_path)
        for path, meta, y in ((train_path, train_meta, train_y), (test_path, test_meta, test_y)):
            if meta["target_label"]:
                raise ValueError(f"{path}: @targetLabel (regression) files are not supported; UEADataModule classifies")
            if not y:
                raise ValueError(f"{path}: no class labels (@classLabel false); UEADataModule needs labelled series")
        if train_meta["dimensions"] != test_meta["dimensions"]:
            raise ValueError(
                f"{test_path}: {test_meta['dimensions']} dimensions but {train_path.name} has "
                f"{train_meta['dimensions']}"
            )
        self.num_channels = int(train_meta["dimensions"])
        if self.class_names is None:  # not restored from a checkpoint
            self.class_names = list(train_meta["class_labels"] or sorted(set(train_y)))

        keep, val = stratified_split(train_y, self.val_fraction, self.seed)
        self._raw = {
            "train": ([train_x[i] for i in keep], [train_y[i] for i in keep]),
            "val": ([train_x[i] for i in val], [train_y[i] for i in val]),
            "test": (test_x, test_y),
        }
        self._paths = {"train": train_path, "val": train_path, "test": test_path}
        self._append_deltas()
        if self.standardize and self.mean is None:
            self.mean, std = channel_stats(self._raw["train"][0])
            self.std = torch.where(std > 1e-8, std, torch.ones_like(std))  # constant channel: only centre it
        self._materialize()

    def _append_deltas(self) -> None:
        if self.deltas:
            assert self.num_channels is not None
            self._raw = {
                split: ([with_deltas(x, self.deltas) for x in xs], ys) for split, (xs, ys) in self._raw.items()
            }
            self.num_channels *= 1 + self.deltas

    def _materialize(self) -> None:
        assert self.class_names is not None
        if self.mean is not None and self.mean.numel() != self.num_channels:
            raise ValueError(
                f"checkpoint scaler has {self.mean.numel()} channels but {self.name} has {self.num_channels}"
            )
        index = {name: i for i, name in enumerate(self.class_names)}
        sets = {}
        for split, (xs, ys) in self._raw.items():
            unknown = sorted(set(ys) - set(index))
            if unknown:
                raise ValueError(
                    f"{self._paths[split]}: class labels {unknown} are not among the known labels {self.class_names}"
                )
            targets = torch.tensor([index[y] for y in ys], dtype=torch.int64)
            if self.mean is not None and self.std is not None:
                xs = [(x - self.mean) / self.std for x in xs]
            sets[split] = SequenceDataset(xs, targets)
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]

    #: What ``seqmodels-predict input_file=`` takes for this datamodule (a file, or a folder of them).
    input_file_description: ClassVar[str] = "a series file (.npy of steps x channels, or .csv with one step per row)"

    def list_input_files(self, folder: Path) -> list[Path]:
        """The series files of ``folder`` (sorted by name)."""
        return series_files(folder)

    def inputs_from_file(self, path: str | Path) -> Tensor:
        """A raw series file (:func:`seqmodels.runtime.read_series_file`: ``.npy``, or text with one step per row)
        as the model reads it (:meth:`inputs_from_series`); a one-line ``ValueError`` names a bad file and the fix."""
        values = read_series_file(path, self.series_channels)
        return self.inputs_from_series(torch.tensor(values, dtype=torch.float32))

    @property
    def series_channels(self) -> int | None:
        """Channels of a raw series (before delta features): what :meth:`inputs_from_series` reads."""
        if self.num_channels is not None:
            return self.num_channels // (1 + self.deltas)
        return self.mean.numel() // (1 + self.deltas) if self.mean is not None else None

    def inputs_from_series(self, series: Tensor) -> Tensor:
        """A raw (L, C) series as the model reads it: delta features appended, standardised with the training
        statistics (a checkpoint's, once restored)."""
        series = with_deltas(series, self.deltas)
        if self.mean is not None and self.std is not None:
            series = (series - self.mean) / self.std
        return series

    def _dims(self) -> dict[str, int]:
        assert self.class_names is not None and self.num_channels is not None
        return {"input_size": self.num_channels, "num_classes": len(self.class_names)}

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Label names and scaler statistics (plain lists: safe for ``torch.load(weights_only=True)``)."""
        return {
            "name": self.name,
            "class_names": list(self.class_names) if self.class_names is not None else None,
            "mean": self.mean.tolist() if self.mean is not None else None,
            "std": self.std.tolist() if self.std is not None else None,
            "deltas": self.deltas,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Use a checkpoint's label order and scaler statistics (before or after ``setup``)."""
        if state_dict.get("class_names") is not None:
            self.class_names = list(state_dict["class_names"])
        deltas = state_dict.get("deltas", 0)
        if deltas != self.deltas:
            raise ValueError(
                f"the checkpoint's data was read with data.deltas={deltas}, this datamodule with "
                f"data.deltas={self.deltas}; pass data.deltas={deltas}"
            )
        mean, std = state_dict.get("mean"), state_dict.get("std")
        self.mean = torch.tensor(mean, dtype=torch.float32) if mean is not None else None
        self.std = torch.tensor(std, dtype=torch.float32) if std is not None else None
        self.standardize = self.mean is not None
        if self.is_built:
            self._materialize()


class JapaneseVowelsDataModule(UEADataModule):
    """UEA JapaneseVowels: 9 speakers, 12 LPC-cepstrum channels, lengths 7-29, 270 train / 370 test series."""

    def __init__(
        self, data_dir: str | Path | None = None, standardize: bool = True, data: Any = None, **base: Any
    ) -> None:
        # The data itself stays out of the saved hyperparameters (checkpoints hold plain data). With it, this is the
        # JapaneseVowels recipe's datamodule on your own labelled series.
        data, memory = None, data
        super().__init__(name="JapaneseVowels", data_dir=data_dir, standardize=standardize, data=memory, **base)
