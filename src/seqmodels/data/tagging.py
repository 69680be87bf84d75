"""Sequence tagging (POS, NER, chunking) from CoNLL-style files: one token per line, blank lines between sentences.

    EU      B-ORG
    rejects O
    German  B-MISC

Columns are separated by whitespace; the token and the tag column are chosen by index (defaults: first and
last). ``-DOCSTART-`` lines are skipped. The word vocabulary and the tag set come from the training file;
unknown words read as ``<unk>``, while an unknown *tag* in validation or test data is an error, because no
model could predict it.
"""

from __future__ import annotations

import importlib.resources
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from seqmodels.data.datamodule import MissingDataFileError, SequenceDataModule, SequenceDataset, fewest_for_holdout
from seqmodels.data.files import read_utf8
from seqmodels.data.text import (
    IN_MEMORY,
    Vocabulary,
    check_new_input,
    forget_data_hparam,
    memory_items,
    memory_lost,
    memory_lost_error,
    memory_splits,
    refuse_both,
)

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TaggedSentence:
    tokens: list[str]
    tags: list[str]
    line: int  # line number of the first token (in memory: the sentence's index), for error messages
    in_memory: bool = False

    @property
    def where(self) -> str:
        return f"sentence {self.line}" if self.in_memory else f"sentence at line {self.line}"


def demo_ner_path() -> Path:
    """A small generated English NER corpus (PER, LOC, ORG in BIO tags), bundled with seqmodels."""
    return Path(str(importlib.resources.files("seqmodels.data") / "resources" / "ner_demo.conll"))


def _pick(index: int, count: int) -> int | None:
    """Where column ``index`` (negative: from the end) falls in a line of ``count`` columns; None if outside."""
    at = index if index >= 0 else count + index
    return at if 0 <= at < count else None


def columns_needed(token_column: int, tag_column: int) -> int:
    """The fewest columns a line needs to hold the token and the tag in two different columns."""
    if token_column == tag_column:
        raise ValueError(
            f"token_column and tag_column are both {token_column}; the tag must come from another column "
            "(defaults: token_column=0, tag_column=-1)"
        )
    count = 2
    while True:
        token_at, tag_at = _pick(token_column, count), _pick(tag_column, count)
        if token_at is not None and tag_at is not None and token_at != tag_at:
            return count
        count += 1


def read_conll(path: str | Path, token_column: int = 0, tag_column: int = -1) -> list[TaggedSentence]:
    """Reads tagged sentences from a CoNLL-style file; one-line errors name the file and line.

    A line whose columns do not hold the token and the tag in two *different* columns is refused (a one-column
    file would otherwise use each word as its own tag), as is a file that is not UTF-8 (naming the byte offset).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingDataFileError(f"tagging file not found: {path}; pass data.train_path=/path/to/train.conll")
    need = columns_needed(token_column, tag_column)
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    for number, line in enumerate(io.StringIO(read_utf8(path), newline=None), start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if tokens:
                sentences.append(TaggedSentence(tokens, tags, start))
            tokens, tags = [], []
            continue
        token_at, tag_at = _pick(token_column, len(fields)), _pick(tag_column, len(fields))
        if token_at is None or tag_at is None or token_at == tag_at:
            needs = f"need at least {need}" if len(fields) < need else "pick the same column"
            raise ValueError(
                f"{path}:{number}: {len(fields)} column(s), but token_column={token_column} and "
                f"tag_column={tag_column} {needs}; each line needs a token and a tag in separate columns "
                "(blank lines separate sentences)"
            )
        if not tokens:
            start = number
        tokens.append(fields[token_at])
        tags.append(fields[tag_at])
    if tokens:
        sentences.append(TaggedSentence(tokens, tags, start))
    if not sentences:
        raise ValueError(
            f"{path} holds no tagged sentences; expected 'token tag' lines with blank lines between sentences"
        )
    return sentences


def sentences_from_memory(data: Any, where: str = "data") -> list[TaggedSentence]:
    """Tagged sentences held in memory: a list of ``(tokens, tags)`` pairs, each a list of strings (or one string,
    split at whitespace as a CoNLL line would be), one tag per token. Checked as :func:`read_conll` checks a file:
    a sentence whose tokens and tags differ in number, an empty sentence or an empty token or tag is a one-line
    error naming the sentence."""
    what = "(tokens, tags) sentences, e.g. [(['EU', 'rejects'], ['B-ORG', 'O']), ...]"
    sentences = []
    for index, item in enumerate(memory_items(data, where, what)):
        if isinstance(item, (str, bytes)) or not hasattr(item, "__len__") or len(item) != 2:
            raise ValueError(f"{where}: sentence {index} is not a (tokens, tags) pair: {str(item)[:60]!r}")
        tokens, tags = (part.split() if isinstance(part, str) else [str(x) for x in part] for part in item)
        if not tokens or len(tokens) != len(tags):
            raise ValueError(
                f"{where}: sentence {index} has {len(tokens)} token(s) and {len(tags)} tag(s); give one tag per token"
            )
        empty = next(
            (i for i, (w, t) in enumerate(zip(tokens, tags, strict=True)) if not w.strip() or not t.strip()), None
        )
        if empty is not None:
            raise ValueError(f"{where}: sentence {index}, token {empty}: an empty token or tag")
        sentences.append(TaggedSentence(tokens, tags, index, in_memory=True))
    return sentences


class CoNLLTaggingDataModule(SequenceDataModule):
    """Token-level tagging data from CoNLL-style files.

    Args:
        train_path: training file; without it the bundled demo NER corpus (:func:`demo_ner_path`) is used.
        val_path, test_path: optional files; when absent, ``val_fraction`` / ``test_fraction`` of the training
            sentences are held out (seeded); a file too small to leave a validation sentence is refused.
        data: the sentences in memory instead of files (not with the paths): a list of ``(tokens, tags)`` pairs
            (:func:`sentences_from_memory`), or a dict ``{"train": ..., "val": ..., "test": ...}`` of those (``train``
            required). Checked as files are; kept out of the saved hyperparameters.
        token_column, tag_column: column indices (negative counts from the end).
        lowercase: lowercase tokens before the vocabulary lookup.
        min_freq: words seen fewer times in training read as ``<unk>``.
        **base: :class:`SequenceDataModule` arguments (``batch_size``, ``bucket_by_length``, ``seed``, ...).

    ``dims``: ``vocab_size``, ``padding_idx``, ``num_tags``; ``tag_names`` lists the tags by id.
    """

    input_padding_value = Vocabulary.PAD_ID
    target_padding_value = IGNORE_INDEX
    target_mode = "pad"
    #: The config values that say the sentences came from ``data`` (:func:`seqmodels.fit` writes them into the run
    #: config).
    memory_config: ClassVar[dict[str, Any]] = {"train_path": IN_MEMORY, "val_path": None, "test_path": None}

    def __init__(
        self,
        train_path: str | Path | None = None,
        val_path: str | Path | None = None,
        test_path: str | Path | None = None,
        token_column: int = 0,
        tag_column: int = -1,
        lowercase: bool = False,
        min_freq: int = 1,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        data: Any = None,
        **base: Any,
    ) -> None:
        # The data itself stays out of the saved hyperparameters (checkpoints hold plain data).
        data, memory = None, data
        super().__init__(val_fraction=val_fraction, **base)
        forget_data_hparam(self)
        if not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
            raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
        columns_needed(token_column, tag_column)  # the same column for both is refused here, before any reading
        self.memory_lost = memory_lost(memory, train_path)
        train_path = None if train_path == IN_MEMORY else train_path
        refuse_both(memory, "sentences", train_path=train_path, val_path=val_path, test_path=test_path)
        self.memory = memory_splits(memory, "(tokens, tags) sentences") if memory is not None else None
        default = demo_ner_path() if self.memory is None and not self.memory_lost else None
        self.train_path: Path | None = Path(train_path) if train_path is not None else default
        self.val_path = Path(val_path) if val_path is not None else None
        self.test_path = Path(test_path) if test_path is not None else None
        self.token_column, self.tag_column = token_column, tag_column
        self.lowercase = lowercase
        self.min_freq = min_freq
        self.test_fraction = test_fraction
        self.vocab: Vocabulary | None = None
        self.tag_names: list[str] | None = None

    @property
    def dims_need_data(self) -> bool:  # type: ignore[override]
        return self.vocab is None

    def _given(self, split: str) -> bool:
        return split in self.memory if self.memory is not None else getattr(self, f"{split}_path") is not None

    def _source(self, split: str) -> str:
        """How messages name a split's sentences: its file, or ``data`` (``data['val']``) in memory."""
        if self.memory is None:
            return str(getattr(self, f"{split}_path"))
        return "data" if len(self.memory) == 1 else f"data[{split!r}]"

    def _read(self, split: str) -> list[TaggedSentence]:
        if self.memory is not None:
            return sentences_from_memory(self.memory[split], self._source(split))
        return read_conll(getattr(self, f"{split}_path"), self.token_column, self.tag_column)

    def _dataset(self, sentences: list[TaggedSentence], source: str) -> SequenceDataset:
        assert self.vocab is not None and self.tag_names is not None
        tag_ids = {tag: i for i, tag in enumerate(self.tag_names)}
        inputs, targets = [], []
        for sentence in sentences:
            unknown = [t for t in sentence.tags if t not in tag_ids]
            if unknown:
                raise ValueError(
                    f"{source}, {sentence.where}: tag {unknown[0]!r} never occurs in the training "
                    f"data (known: {', '.join(self.tag_names)}); fix the file or train on data that has it"
                )
            words = [w.lower() for w in sentence.tokens] if self.lowercase else sentence.tokens
            inputs.append(torch.tensor(self.vocab.encode(words), dtype=torch.long))
            targets.append(torch.tensor([tag_ids[t] for t in sentence.tags], dtype=torch.long))
        return SequenceDataset(inputs, targets)

    def inputs_from_text(self, text: str) -> Tensor:
        """A new sentence (tokens separated by whitespace, as in the CoNLL files) -> word ids ``(L,)``; words the
        vocabulary lacks read as ``<unk>``, with a warning naming them."""
        if self.vocab is None:
            self.setup()
        assert self.vocab is not None
        words = [w.lower() for w in text.split()] if self.lowercase else text.split()
        check_new_input(self.vocab, words, text, "tag")
        return torch.tensor(self.vocab.encode(words), dtype=torch.long)

    def build(self) -> None:
        if self.memory_lost:
            raise memory_lost_error(self, "train_path")
        sentences = self._read("train")
        has_val, has_test = self._given("val"), self._given("test")
        order = np.random.default_rng(self.seed).permutation(len(sentences))
        num_val = 0 if has_val else int(round(self.val_fraction * len(sentences)))
        num_test = 0 if has_test else int(round(self.test_fraction * len(sentences)))
        val_part = [sentences[i] for i in sorted(order[:num_val])]
        test_part = [sentences[i] for i in sorted(order[num_val : num_val + num_test])]
        train = [sentences[i] for i in sorted(order[num_val + num_test :])]
        if not train:
            raise ValueError(f"{self._source('train')}: no sentences left for training after the val/test hold-out")
        if not has_val and not val_part and self.val_fraction > 0:
            # Lightning would stop later on the missing val/loss; say now what it takes.
            need = fewest_for_holdout(lambda n: round(self.val_fraction * n))
            hint = "data={'train': ..., 'val': ...}" if self.memory is not None else "data.val_path=/path/to/val.conll"
            raise ValueError(
                f"{self._source('train')}: {len(sentences)} sentence(s) leave none for validation "
                f"(val_fraction={self.val_fraction}; need at least {need}); add sentences or pass {hint}"
            )
        if self.vocab is None:  # a checkpoint's vocabulary and tags win over the current files'
            words = [[w.lower() for w in s.tokens] if self.lowercase else s.tokens for s in train]
            self.vocab = Vocabulary.build(words, min_freq=self.min_freq)
            self.tag_names = sorted({tag for s in train for tag in s.tags})
        val = self._read("val") if has_val else val_part
        test = self._read("test") if has_test else test_part
        self.train_set = self._dataset(train, self._source("train"))
        self.val_set = self._dataset(val, self._source("val" if has_val else "train"))
        self.test_set = self._dataset(test, self._source("test" if has_test else "train"))

    def _dims(self) -> dict[str, Any]:
        assert self.vocab is not None and self.tag_names is not None
        return {
            "vocab_size": len(self.vocab),
            "padding_idx": self.vocab.pad_id,
            "num_tags": len(self.tag_names),
            "tag_names": list(self.tag_names),
        }

    def state_dict(self) -> dict[str, Any]:
        if self.vocab is None:
            self.setup()
        return {"vocab": self.vocab.to_dict(), "tag_names": list(self.tag_names or [])}  # type: ignore[union-attr]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.vocab = Vocabulary.from_dict(state_dict["vocab"])
        self.tag_names = list(state_dict["tag_names"])


__all__ = ["CoNLLTaggingDataModule", "TaggedSentence", "demo_ner_path", "read_conll", "sentences_from_memory"]
