"""Language-model data: token streams for truncated BPTT and whole sequences for sequence-level models.

Two batch layouts, both :class:`SequenceBatch` with ``targets`` = ``inputs`` shifted by one token:

* **streams** (:class:`StreamWindows`): the split is one long token stream cut into ``N`` parallel streams;
  batch ``k`` holds window ``k`` of every stream, so row ``i`` of batch ``k + 1`` continues row ``i`` of batch
  ``k`` and a model may carry its recurrent state across batches (``batch.continues`` says when).
* **sequences**: independent ``<bos> ... <eos>`` sequences, padded; padded targets are ``-100`` (ignored).

The vocabulary comes from the training split only and travels in the datamodule's ``state_dict`` (so in
every checkpoint): generating from a checkpoint needs no corpus.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from seqmodels.data.batch import SequenceBatch
from seqmodels.data.datamodule import MissingDataFileError, SequenceDataModule
from seqmodels.data.text import (
    IN_MEMORY,
    CharTokenizer,
    Vocabulary,
    forget_data_hparam,
    make_tokenizer,
    memory_items,
    memory_lost,
    memory_lost_error,
    refuse_both,
    tokenizer_from_dict,
)

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # torch's cross_entropy default: padded targets add nothing to the loss


class StreamWindows(IterableDataset):
    """Consecutive BPTT windows over ``N`` parallel token streams.

    Args:
        streams: (N, T) int64, row ``i`` is stream ``i``; or an integer numpy array (N, T), e.g. a view of a
            memory-mapped token file, of which each window's ids are copied into a tensor as it is served.
        bptt: window length.
        variable_bptt: draw each window's length around ``bptt`` (AWD-LSTM: ``bptt`` with probability 0.95,
            else ``bptt / 2``, then normal with std 5, at least 5), so that over epochs every token is seen at
            many positions within a window. A new draw every epoch, reproducible from ``seed``.
        seed: seed of the window-length draws.

    Yields ``SequenceBatch(inputs=(N, l), lengths=(N,) all l, targets=(N, l), continues=k > 0)``.
    """

    def __init__(self, streams: Tensor, bptt: int, variable_bptt: bool = False, seed: int = 0) -> None:
        super().__init__()
        if streams.ndim != 2 or streams.shape[1] < 2:
            raise ValueError(f"streams must be (N, T) with T >= 2 tokens, got shape {tuple(streams.shape)}")
        self.streams = streams
        self.bptt = bptt
        self.variable_bptt = variable_bptt
        self.seed = seed
        self._epoch = 0

    def window_lengths(self, epoch: int) -> list[int]:
        total = self.streams.shape[1] - 1  # the last token has no target
        if not self.variable_bptt:
            return [min(self.bptt, total - start) for start in range(0, total, self.bptt)]
        rng = np.random.default_rng([self.seed, epoch])
        lengths: list[int] = []
        covered = 0
        while covered < total:
            mean = self.bptt if rng.random() < 0.95 else self.bptt / 2
            length = max(5, int(round(rng.normal(mean, 5))))
            length = min(length, total - covered)
            lengths.append(length)
            covered += length
        return lengths

    def shard(self, world_size: int, rank: int) -> StreamWindows:
        """This rank's ``N`` of ``world_size * N`` streams over the same tokens, for data-parallel training.

        The ``N`` streams' tokens (in stream order, the text's order) are cut into ``world_size * N`` streams and
        rank ``r`` takes rows ``r * N .. (r + 1) * N``: the ranks' batches together are the batch of one process
        with ``world_size * N`` streams, each rank carries the state of its own rows, and all ranks draw the same
        window lengths (same seed and epoch), so they step in lockstep.
        """
        if world_size == 1:
            return self
        n = self.streams.shape[0]
        streams = batchify(self.streams.reshape(-1), world_size * n)[rank * n : (rank + 1) * n]
        shard = StreamWindows(streams, self.bptt, self.variable_bptt, self.seed)
        shard._epoch = self._epoch
        return shard

    def __len__(self) -> int:
        # Exact for fixed windows; for variable ones the expected count (the progress bar's estimate).
        return math.ceil((self.streams.shape[1] - 1) / self.bptt)

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s window lengths for the next pass (a resumed run is told the epoch it resumes)."""
        self._epoch = int(epoch)

    def __iter__(self) -> Iterator[SequenceBatch]:
        epoch, self._epoch = self._epoch, self._epoch + 1
        start = 0
        n = self.streams.shape[0]
        for index, length in enumerate(self.window_lengths(epoch)):
            window = self.streams[:, start : start + length + 1]
            if isinstance(window, np.ndarray):
                window = torch.from_numpy(window.astype(np.int64))
            start += length
            yield SequenceBatch(
                inputs=window[:, :-1],
                lengths=torch.full((n,), length, dtype=torch.long),
                targets=window[:, 1:],
                continues=index > 0,
            )


def batchify(ids: Tensor | np.ndarray, num_streams: int) -> Tensor | np.ndarray:
    """Cuts a 1-D token stream into ``num_streams`` contiguous rows (the remainder is dropped): (N, T), a view."""
    length = ids.shape[0] // num_streams
    return ids[: length * num_streams].reshape(num_streams, length)


class LanguageModelDataModule(SequenceDataModule):
    """Base of datamodules for token-level generative models: vocabulary, prompt encoding and decoding.

    Subclasses build ``self.vocab`` from their training split in :meth:`build` and set ``self.tokenizer``.
    ``dims``: ``vocab_size``, ``padding_idx``, ``char_level`` (1 when one token is one character).
    """

    input_padding_value = Vocabulary.PAD_ID
    target_padding_value = IGNORE_INDEX
    target_mode = "pad"  # per-step targets

    def __init__(self, **base: Any) -> None:
        super().__init__(**base)
        self.vocab: Vocabulary | None = None
        self.tokenizer: CharTokenizer | None = None

    # ----------------------------------------------------------------- vocabulary
    @property
    def char_level(self) -> bool:
        return self.tokenizer is not None and self.tokenizer.kind == "char"

    def _dims(self) -> dict[str, int]:
        vocab = self._require_vocab()
        return {"vocab_size": len(vocab), "padding_idx": vocab.pad_id, "char_level": int(self.char_level)}

    def _require_vocab(self) -> Vocabulary:
        if self.vocab is None:
            self.setup()
        assert self.vocab is not None
        return self.vocab

    def state_dict(self) -> dict[str, Any]:
        vocab = self._require_vocab()
        tokenizer = self.tokenizer.to_dict() if self.tokenizer is not None else None
        return {"vocab": vocab.to_dict(), "tokenizer": tokenizer}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.vocab = Vocabulary.from_dict(state_dict["vocab"])
        if state_dict.get("tokenizer") is not None:
            self.tokenizer = tokenizer_from_dict(state_dict["tokenizer"])

    @property
    def dims_need_data(self) -> bool:  # type: ignore[override]
        return self.vocab is None

    def _loader(self, dataset: Any, train: bool) -> DataLoader:
        if not isinstance(dataset, StreamWindows):
            return super()._loader(dataset, train)
        # Windows are slices of token streams: no workers, no collation, order is the point. Under DDP each rank
        # reads its own share of the streams (StreamWindows.shard); Lightning adds no sampler to such a loader.
        world_size, rank = self._distributed_info()
        if world_size is not None and world_size > 1:
            dataset = dataset.shard(world_size, rank)
        # A generator of its own: a loader that draws from the global one shifts every later random draw (dropout)
        # by how many loaders were started, which a resumed run cannot reproduce.
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(dataset, batch_size=None, pin_memory=self.pin_memory, generator=generator)

    # ----------------------------------------------------------------- generation
    def encode_prompt(self, text: str) -> list[int]:
        """Prompt text -> token ids; tokens the vocabulary does not know become ``<unk>`` (with a warning)."""
        vocab = self._require_vocab()
        tokens = self.tokenize(text)
        unknown = vocab.unknown(tokens)
        if unknown:
            log.warning("prompt tokens not in the vocabulary, read as <unk>: %s", " ".join(map(repr, unknown)))
        return self.prompt_prefix() + vocab.encode(tokens)

    def prompt_prefix(self) -> list[int]:
        """Ids every prompt starts with (``<bos>`` for sequence models; a line break for a text stream)."""
        return []

    @property
    def stop_id(self) -> int | None:
        """The id that ends a generated sequence (``<eos>`` for sequence models; None for an endless stream)."""
        return None

    def tokenize(self, text: str) -> list[str]:
        if self.tokenizer is None:
            raise ValueError(f"{type(self).__name__} has no text tokenizer; pass token ids instead of text")
        return self.tokenizer(text)

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """Ids -> text, without ``<pad>`` and ``<bos>``; ``<eos>`` ends a line (or the sequence, see ``stop_id``)."""
        vocab = self._require_vocab()
        tokens = [t for t in vocab.decode(ids) if t != Vocabulary.BOS]
        if self.stop_id is not None and Vocabulary.EOS in tokens:
            tokens = tokens[: tokens.index(Vocabulary.EOS)]
        detokenize = self.tokenizer.detokenize if self.tokenizer is not None else " ".join
        lines: list[list[str]] = [[]]
        for token in tokens:
            if token == Vocabulary.EOS:
                lines.append([])
            else:
                lines[-1].append(token)
        return "\n".join(detokenize(line) for line in lines)


class TextCorpusDataModule(LanguageModelDataModule):
    """A language model over your own text: one file, or every file matching ``pattern`` under a directory.

    The text is one token stream; the first ``1 - val_fraction - test_fraction`` of it trains, the next
    ``val_fraction`` validates and the last ``test_fraction`` tests, as contiguous blocks (no shuffling: a
    random split would leak context). Each split is cut into ``batch_size`` parallel streams and read in
    BPTT windows of ``bptt`` tokens (see :class:`StreamWindows`), validation and test too, so a model carries
    its state through each split exactly as in training.

    Args:
        path: a UTF-8 text file, or a directory whose files matching ``pattern`` are read in sorted order.
        data: the text in memory instead of ``path`` (not with it): a string, or a list of strings read one after
            another as a directory's files are. Kept out of the saved hyperparameters (checkpoints keep the
            vocabulary).
        pattern: glob for the files of a directory, searched recursively (``"*.txt"``; ``"*.py"`` models code).
        level: ``"char"`` (every character, newlines included) or ``"word"`` (words and punctuation, with an
            ``<eos>`` token at each line end).
        lowercase: lowercase the text first.
        bptt: tokens per window.
        variable_bptt: vary the training window length each batch (AWD-LSTM); evaluation windows stay fixed.
        min_freq, max_vocab: vocabulary pruning (``max_vocab`` counts the specials); rarer tokens read as
            ``<unk>``.
        val_fraction, test_fraction: shares of the stream for validation and test.
        eval_batch_size: parallel streams for validation and test (default ``batch_size``). Each stream starts
            from a zero state, so fewer, longer streams measure a slightly lower loss (1 is the strictest).
        **base: :class:`SequenceDataModule` arguments; ``batch_size`` is the number of parallel streams.
    """

    #: The config values that say the text came from ``data`` (:func:`seqmodels.fit` writes them into the run config).
    memory_config: ClassVar[dict[str, Any]] = {"path": IN_MEMORY}

    def __init__(
        self,
        path: str | Path | None = None,
        pattern: str = "*.txt",
        level: str = "char",
        lowercase: bool = False,
        bptt: int = 128,
        variable_bptt: bool = False,
        min_freq: int = 1,
        max_vocab: int | None = None,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        eval_batch_size: int | None = None,
        encoding: str = "utf-8",
        data: str | Sequence[str] | None = None,
        **base: Any,
    ) -> None:
        # The data itself stays out of the saved hyperparameters (checkpoints hold plain data).
        data, memory = None, data
        super().__init__(val_fraction=val_fraction, **base)
        forget_data_hparam(self)
        self.memory_lost = memory_lost(memory, path)
        path = None if path == IN_MEMORY else path
        refuse_both(memory, "text", path=path)
        self.texts: list[str] | None = None
        if memory is not None:
            texts = [memory] if isinstance(memory, str) else memory_items(memory, "data", "a string or list of strings")
            bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
            if bad is not None:
                raise ValueError(f"data: item {bad} is not a string ({type(texts[bad]).__name__})")
            self.texts = texts
        if level not in ("char", "word"):
            raise ValueError(f"level must be 'char' or 'word', got {level!r}")
        if bptt < 1:
            raise ValueError(f"bptt must be >= 1, got {bptt}")
        if not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction + test_fraction must leave text to train on, got {val_fraction} + {test_fraction}"
            )
        self.path = Path(path).expanduser() if path is not None else None
        self.pattern = pattern
        self.level = level
        self.tokenizer = make_tokenizer(level, lowercase=lowercase)
        self.bptt = bptt
        self.variable_bptt = variable_bptt
        self.min_freq = min_freq
        self.max_vocab = max_vocab
        self.test_fraction = test_fraction
        if eval_batch_size is not None and eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {eval_batch_size}")
        self.eval_batch_size = eval_batch_size or self.batch_size
        self.encoding = encoding
        self.streams: dict[str, Tensor] = {}

    # ----------------------------------------------------------------- reading
    def files(self) -> list[Path]:
        if self.path is None:
            raise ValueError(
                "no text to model: pass data.path=/path/to/text.txt (a file, or a directory with data.pattern), "
                "or the text as data= in Python"
            )
        if self.path.is_dir():
            files = sorted(p for p in self.path.rglob(self.pattern) if p.is_file())
            if not files:
                raise MissingDataFileError(
                    f"no files matching {self.pattern!r} under {self.path}; point data.path at a text file, or set "
                    "data.pattern to match the folder's files"
                )
            return files
        if not self.path.is_file():
            raise MissingDataFileError(f"text file not found: {self.path}; pass data.path=/path/to/text.txt")
        return [self.path]

    def _read_texts(self) -> Iterator[str]:
        """The corpus, one text per file (or per string given in memory)."""
        if self.texts is not None:
            yield from self.texts
            return
        for file in self.files():
            try:
                yield file.read_text(encoding=self.encoding)
            except UnicodeDecodeError as exc:
                raise ValueError(f"{file} is not {self.encoding} text ({exc.reason}); pass data.encoding=...") from None

    def read_tokens(self) -> list[str]:
        tokens: list[str] = []
        for text in self._read_texts():
            if self.level == "word":
                for line in text.splitlines():
                    words = self.tokenize(line)
                    if words:
                        tokens.extend(words)
                        tokens.append(Vocabulary.EOS)
            else:
                tokens.extend(self.tokenize(text))
        if not tokens:
            source = "data" if self.texts is not None else self.path
            raise ValueError(f"{source} holds no text; a language model needs a non-empty corpus")
        return tokens

    def build(self) -> None:
        if self.memory_lost:
            raise memory_lost_error(self, "path")
        tokens = self.read_tokens()
        total = len(tokens)
        num_test = int(round(self.test_fraction * total))
        num_val = int(round(self.val_fraction * total))
        num_train = total - num_val - num_test
        parts = {
            "train": tokens[:num_train],
            "val": tokens[num_train : num_train + num_val],
            "test": tokens[num_train + num_val :],
        }
        if self.vocab is None:  # a checkpoint's vocabulary wins over the current text's
            self.vocab = Vocabulary.build(
                [parts["train"]], min_freq=self.min_freq, max_size=self.max_vocab, specials=(Vocabulary.EOS,)
            )
        for split, part in parts.items():
            num_streams = self.batch_size if split == "train" else self.eval_batch_size
            if not part:
                self.streams[split] = torch.empty(num_streams, 0, dtype=torch.long)
                continue
            if len(part) < num_streams * 2:
                size = "batch_size" if split == "train" else "eval_batch_size"
                raise ValueError(
                    f"the {split} split has {len(part)} tokens, fewer than {size} * 2 = {num_streams * 2} "
                    f"(two per stream); use more text, a smaller data.{size} or a larger {split} fraction"
                )
            ids = torch.tensor(self.vocab.encode(part), dtype=torch.long)
            self.streams[split] = batchify(ids, num_streams)
        if self.streams["train"].shape[1] <= self.bptt:
            log.warning(
                "each training stream holds %d tokens, not more than one window (bptt=%d): no state is carried "
                "across batches; use more text or a smaller batch_size/bptt",
                self.streams["train"].shape[1],
                self.bptt,
            )
        self.train_set = StreamWindows(self.streams["train"], self.bptt, self.variable_bptt, seed=self.seed)
        self.val_set = StreamWindows(self.streams["val"], self.bptt) if self.streams["val"].numel() else []
        self.test_set = StreamWindows(self.streams["test"], self.bptt) if self.streams["test"].numel() else []

    def prompt_prefix(self) -> list[int]:
        # Generation starts as if after a line break: at the start of a line of the corpus.
        vocab = self._require_vocab()
        newline = Vocabulary.EOS if self.level == "word" else "\n"
        return [vocab.stoi[newline]] if newline in vocab else []

    def num_tokens(self, split: str) -> int:
        self._require(f"{split}_set")
        return self.streams[split].numel()


__all__ = ["IGNORE_INDEX", "LanguageModelDataModule", "StreamWindows", "TextCorpusDataModule", "batchify"]
