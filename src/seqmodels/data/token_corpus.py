"""Text corpora larger than memory: tokenised once into memory-mapped files of token ids, read window by window.

:func:`tokenize_corpus` reads a text file or a folder of files in one streaming pass (a progress bar over the
bytes read), writing every token's provisional id to disk as it goes; no list of the corpus' tokens is ever held.
It then counts the training part's ids (``np.bincount`` over chunks), builds the vocabulary from those counts
exactly as :class:`~seqmodels.data.TextCorpusDataModule` builds it from the training text, and rewrites the ids
into ``train.bin``, ``val.bin`` and ``test.bin`` (uint16 when the vocabulary fits, else uint32, as nanoGPT does) and
``meta.json`` (the vocabulary, the tokenizer, the split sizes and the sources it was made from, written last so an
interrupted pass never leaves a cache that looks complete).

:class:`TokenCorpusDataModule` trains a language model from such a cache: each split is a read-only ``np.memmap``
viewed as N parallel streams, and every BPTT window copies only its (N, bptt + 1) ids into a tensor, so the
resident memory of a run does not grow with the corpus (the mapped pages are the operating system's file cache,
dropped under memory pressure). Its batches equal :class:`~seqmodels.data.TextCorpusDataModule`'s on the same text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqmodels.data.datamodule import MissingDataFileError
from seqmodels.data.language import StreamWindows, TextCorpusDataModule
from seqmodels.data.text import CharTokenizer, Vocabulary, tokenizer_from_dict

log = logging.getLogger(__name__)

META = "meta.json"
SPLITS = ("train", "val", "test")
FORMAT = 1  # bump when the cache layout changes: older caches are then rebuilt
_READ_CHARS = 1 << 18  # characters per read of a character-level corpus (its token list: 2 MB)
_CHUNK_IDS = 1 << 19  # ids per vectorised pass (numpy indexes with int64: 4 MB of temporaries)


@dataclass
class TokenCorpus:
    """A tokenised corpus on disk: ``root/{train,val,test}.bin`` and ``root/meta.json``."""

    root: Path
    vocab: Vocabulary
    tokenizer: CharTokenizer
    dtype: np.dtype
    sizes: dict[str, int]
    meta: dict[str, Any]

    @classmethod
    def open(cls, root: str | Path) -> TokenCorpus:
        root = Path(root)
        try:
            meta = json.loads((root / META).read_text(encoding="utf-8"))
            vocab = Vocabulary.from_dict(meta["vocab"])
            tokenizer = tokenizer_from_dict(meta["tokenizer"])
            dtype, sizes = np.dtype(meta["dtype"]), {split: int(meta["sizes"][split]) for split in SPLITS}
        except FileNotFoundError:
            raise MissingDataFileError(
                f"{root}: no {META}; not a tokenised corpus (tokenize_corpus writes one)"
            ) from None
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{root / META}: not a seqmodels token-corpus description ({err}); delete the folder to tokenise again"
            ) from err
        for split in SPLITS:
            path = root / f"{split}.bin"
            if not path.is_file() or path.stat().st_size != sizes[split] * dtype.itemsize:
                raise ValueError(f"{path}: missing or not {sizes[split]} ids long; delete {root} to tokenise again")
        return cls(root, vocab, tokenizer, dtype, sizes, meta)

    def ids(self, split: str) -> np.ndarray:
        """The split's token ids, memory-mapped read-only (an empty array for an empty split)."""
        if self.sizes[split] == 0:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(self.root / f"{split}.bin", dtype=self.dtype, mode="r", shape=(self.sizes[split],))


def corpus_files(path: Path, pattern: str) -> list[Path]:
    """A file, or the files matching ``pattern`` under a folder, in sorted order."""
    if path.is_dir():
        files = sorted(p for p in path.rglob(pattern) if p.is_file())
        if not files:
            raise MissingDataFileError(f"no files matching {pattern!r} under {path}; set data.pattern to match them")
        return files
    if not path.is_file():
        raise MissingDataFileError(f"text file not found: {path}; pass data.path=/path/to/text.txt or a folder")
    return [path]


def _sources(files: Sequence[Path]) -> list[list[Any]]:
    return [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def _file_tokens(file: Path, tokenizer: CharTokenizer, encoding: str) -> Iterator[tuple[list[str], int]]:
    """(tokens, characters read) chunk by chunk, as TextCorpusDataModule tokenises a whole file's text."""
    try:
        with open(file, encoding=encoding) as handle:
            if tokenizer.kind == "char":
                while chunk := handle.read(_READ_CHARS):
                    yield tokenizer(chunk), len(chunk)
                return
            for line in handle:
                tokens: list[str] = []
                for part in line.splitlines():  # the same line breaks as str.splitlines over the whole text
                    words = tokenizer(part)
                    if words:
                        tokens.extend(words)
                        tokens.append(Vocabulary.EOS)
                yield tokens, len(line)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{file} is not {encoding} text ({exc.reason}); pass data.encoding=...") from None


def tokenize_corpus(
    files: Sequence[Path],
    out_dir: str | Path,
    tokenizer: CharTokenizer,
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
    min_freq: int = 1,
    max_vocab: int | None = None,
    encoding: str = "utf-8",
    progress: bool = True,
) -> TokenCorpus:
    """Tokenises ``files`` (read one after another) into ``out_dir`` in one streaming pass; see the module docstring.

    The splits are contiguous blocks of the token stream, as :class:`~seqmodels.data.TextCorpusDataModule` cuts
    them; the vocabulary counts the training block only (``min_freq``, ``max_vocab`` as there), other tokens read
    as ``<unk>``.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / META).unlink(missing_ok=True)  # until the new cache is complete, none is valid
    raw_path = out / "provisional.u32"
    table: dict[str, int] = {}
    total = 0
    bar = tqdm(
        total=sum(f.stat().st_size for f in files),
        unit="B",
        unit_scale=True,
        desc=f"tokenising {len(files)} file(s)",
        disable=not progress,
    )
    try:
        with open(raw_path, "wb") as raw, bar:
            for file in files:
                for tokens, chars in _file_tokens(file, tokenizer, encoding):
                    # Provisional ids in order of first appearance; len(table) is read before each insertion.
                    ids = np.fromiter((table.setdefault(t, len(table)) for t in tokens), np.uint32, len(tokens))
                    ids.tofile(raw)
                    total += len(tokens)
                    bar.update(chars)  # characters, not bytes: close enough for a progress bar
        if total == 0:
            raise ValueError(
                f"{files[0] if len(files) == 1 else 'the corpus'} holds no text; a language model "
                "needs a non-empty corpus"
            )
        num_test = int(round(test_fraction * total))
        num_val = int(round(val_fraction * total))
        num_train = total - num_val - num_test
        provisional = np.memmap(raw_path, dtype=np.uint32, mode="r", shape=(total,))
        counts = np.zeros(len(table), dtype=np.int64)
        for start in range(0, num_train, _CHUNK_IDS):
            counts += np.bincount(provisional[start : min(start + _CHUNK_IDS, num_train)], minlength=len(table))
        tokens_by_id = list(table)  # provisional id -> token
        vocab = Vocabulary.from_counts(
            {tokens_by_id[i]: int(counts[i]) for i in np.flatnonzero(counts)},
            min_freq=min_freq,
            max_size=max_vocab,
            specials=(Vocabulary.EOS,),
        )
        dtype = np.dtype(np.uint16 if len(vocab) <= np.iinfo(np.uint16).max + 1 else np.uint32)
        final = np.full(len(table), Vocabulary.UNK_ID, dtype=dtype)
        for token, pid in table.items():
            final[pid] = vocab.stoi.get(token, Vocabulary.UNK_ID)
        bounds = {
            "train": (0, num_train),
            "val": (num_train, num_train + num_val),
            "test": (num_train + num_val, total),
        }
        for split, (begin, end) in bounds.items():
            with open(out / f"{split}.bin", "wb") as handle:
                for start in range(begin, end, _CHUNK_IDS):
                    final[provisional[start : min(start + _CHUNK_IDS, end)]].tofile(handle)
        del provisional
    finally:
        raw_path.unlink(missing_ok=True)
    meta = {
        "format": FORMAT,
        "vocab": vocab.to_dict(),
        "tokenizer": tokenizer.to_dict(),
        "dtype": dtype.name,
        "sizes": {split: end - begin for split, (begin, end) in bounds.items()},
        "settings": _settings(tokenizer, val_fraction, test_fraction, min_freq, max_vocab, encoding),
        "sources": _sources(files),
    }
    partial = out / (META + ".partial")
    partial.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(partial, out / META)
    return TokenCorpus.open(out)


def _settings(tokenizer: CharTokenizer, *values: Any) -> list[Any]:
    return [tokenizer.to_dict(), *values]


class TokenCorpusDataModule(TextCorpusDataModule):
    """:class:`~seqmodels.data.TextCorpusDataModule` for corpora larger than memory (see the module docstring).

    The first run tokenises ``path`` into ``cache_dir`` (one streaming pass with a progress bar); later runs with
    the same files (paths, sizes, modification times) and settings reuse it, and a changed file or setting
    tokenises again. ``path`` may also be a cache folder itself (with ``meta.json``), e.g. one made on another
    machine with :func:`tokenize_corpus`. Batches, vocabulary and splits equal ``TextCorpusDataModule``'s on the
    same text; each window copies only its (N, bptt + 1) ids from the memory-mapped files.

    Args:
        cache_dir: the folder for the token files (None: beside the corpus, ``<path>.tokens``, or where the corpus'
            folder is read-only, ``~/.cache/seqmodels/tokens/<name>-<hash of its path>``).
        progress: show the tokenising pass's progress bar.
        Every other argument as :class:`~seqmodels.data.TextCorpusDataModule` (not ``data=``: text in memory
        needs no memory map).
    """

    def __init__(
        self, path: str | Path | None = None, cache_dir: str | Path | None = None, progress: bool = True, **options: Any
    ) -> None:
        if options.get("data") is not None:
            raise ValueError("TokenCorpusDataModule reads files; for text in memory use TextCorpusDataModule")
        super().__init__(path=path, **options)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.progress = progress
        self.corpus: TokenCorpus | None = None

    def _cache_root(self) -> Path:
        if self.cache_dir is not None:
            return self.cache_dir
        assert self.path is not None
        if os.access(self.path.resolve().parent, os.W_OK):
            return self.path.with_name(self.path.name + ".tokens")
        # A corpus in a read-only place (a system folder, a shared mount): the user's cache folder instead.
        digest = hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:10]
        cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return cache_home / "seqmodels" / "tokens" / f"{self.path.name}-{digest}"

    def open_corpus(self) -> TokenCorpus:
        """The token cache for ``path``: reused when it matches the files and settings, else made again."""
        if self.path is None:
            raise ValueError("no text to model: pass data.path=/path/to/text.txt (a file or a folder of them)")
        if self.path.is_dir() and (self.path / META).is_file():
            return TokenCorpus.open(self.path)  # a tokenised corpus itself
        files = corpus_files(self.path, self.pattern)
        root = self._cache_root()
        settings = _settings(
            self.tokenizer, self.val_fraction, self.test_fraction, self.min_freq, self.max_vocab, self.encoding
        )
        if (root / META).is_file():
            try:
                corpus = TokenCorpus.open(root)
                same = corpus.meta.get("format") == FORMAT and corpus.meta.get("settings") == settings
                if same and corpus.meta.get("sources") == _sources(files):
                    log.info("reusing the token cache %s", root)
                    return corpus
            except ValueError as err:
                log.warning("%s; tokenising again", err)
            log.info("the corpus or its settings changed since %s was made; tokenising again", root)
        return tokenize_corpus(
            files,
            root,
            self.tokenizer,
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            min_freq=self.min_freq,
            max_vocab=self.max_vocab,
            encoding=self.encoding,
            progress=self.progress,
        )

    def build(self) -> None:
        corpus = self.corpus = self.open_corpus()
        if self.vocab is not None and self.vocab.to_dict() != corpus.vocab.to_dict():
            raise ValueError(
                f"the token cache {corpus.root} has another vocabulary than this checkpoint's; point data.path at "
                "the corpus the model was trained on, or set data.cache_dir to a new folder and retrain"
            )
        self.vocab, self.tokenizer = corpus.vocab, corpus.tokenizer
        for split in SPLITS:
            ids = corpus.ids(split)
            num_streams = self.batch_size if split == "train" else self.eval_batch_size
            if ids.size and ids.size < num_streams * 2:
                size = "batch_size" if split == "train" else "eval_batch_size"
                raise ValueError(
                    f"the {split} split has {ids.size} tokens, fewer than {size} * 2 = {num_streams * 2} "
                    f"(two per stream); use more text, a smaller data.{size} or a larger {split} fraction"
                )
            length = ids.size // num_streams
            self.streams[split] = ids[: length * num_streams].reshape(num_streams, length)  # a view: nothing read
        self.train_set = StreamWindows(self.streams["train"], self.bptt, self.variable_bptt, seed=self.seed)
        self.val_set = StreamWindows(self.streams["val"], self.bptt) if self.streams["val"].size else []
        self.test_set = StreamWindows(self.streams["test"], self.bptt) if self.streams["test"].size else []

    def num_tokens(self, split: str) -> int:
        self._require(f"{split}_set")
        return int(self.streams[split].size)


__all__ = ["TokenCorpus", "TokenCorpusDataModule", "corpus_files", "tokenize_corpus"]
