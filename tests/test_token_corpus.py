"""Memory-mapped token corpora: batches equal to TextCorpusDataModule's, the cache's reuse and invalidation, ids in
uint16 or uint32, one-line errors for a damaged cache, training from the config tree, and a corpus several times
larger than a memory cap read with the process's own (anonymous) memory staying under it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from seqmodels.data import TextCorpusDataModule, TokenCorpusDataModule, tokenize_corpus
from seqmodels.data.text import make_tokenizer
from seqmodels.data.token_corpus import TokenCorpus

WORDS = ["alpha", "beta", "gamma", "delta", "eps", "don't", "x!", "Zeta"]


def write_corpus(root: Path, files: int = 3, lines: int = 300, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        text = "\n".join(" ".join(rng.choice(WORDS, size=rng.integers(0, 12))) for _ in range(lines))
        (root / f"part{i}.txt").write_text(text + "\r\n")  # a Windows line end too
    return root


def batches(dm, split: str) -> list:
    return list(getattr(dm, f"{split}_dataloader")())


@pytest.mark.parametrize("level", ["char", "word"])
def test_batches_equal_the_in_memory_corpus(tmp_path, level):
    root = write_corpus(tmp_path / "texts")
    options = dict(path=str(root), level=level, lowercase=level == "word", batch_size=4, eval_batch_size=2, bptt=16)
    in_memory = TextCorpusDataModule(**options)
    mapped = TokenCorpusDataModule(**options, cache_dir=str(tmp_path / "cache"), progress=False)
    in_memory.setup()
    mapped.setup()
    assert mapped.vocab.to_dict() == in_memory.vocab.to_dict() and mapped.dims() == in_memory.dims()
    assert isinstance(mapped.streams["train"], np.memmap)  # a view of the file, not a copy
    for split in ("train", "val", "test"):
        expected, actual = batches(in_memory, split), batches(mapped, split)
        assert len(actual) == len(expected) > 0 and mapped.num_tokens(split) == in_memory.num_tokens(split)
        for a, e in zip(actual, expected, strict=True):
            assert a.inputs.dtype == torch.int64 and torch.equal(a.inputs, e.inputs)
            assert torch.equal(a.targets, e.targets) and a.continues == e.continues
    assert mapped.decode(batches(mapped, "train")[0].inputs[0]) == in_memory.decode(
        batches(in_memory, "train")[0].inputs[0]
    )


def test_the_cache_is_reused_and_remade_when_the_corpus_or_a_setting_changes(tmp_path, monkeypatch):
    import seqmodels.data.token_corpus as module

    root = write_corpus(tmp_path / "texts")
    made = []
    real = module.tokenize_corpus
    monkeypatch.setattr(module, "tokenize_corpus", lambda *a, **k: made.append(1) or real(*a, **k))

    def setup(**changes):
        options = dict(path=str(root), level="word", batch_size=2, bptt=8, progress=False) | changes
        dm = TokenCorpusDataModule(**options)
        dm.setup()
        return dm

    first = setup()
    assert first.corpus.root == tmp_path / "texts.tokens" and len(made) == 1  # default: beside the corpus
    setup()
    assert len(made) == 1  # same files, same settings: reused
    setup(min_freq=2)
    assert len(made) == 2  # another vocabulary rule
    (root / "part1.txt").write_text("new words entirely\n" * 50)
    changed = setup(min_freq=2)
    assert len(made) == 3 and "entirely" in changed.vocab
    # The cache folder itself is a corpus (tokenised elsewhere): read without the text.
    direct = TokenCorpusDataModule(path=str(tmp_path / "texts.tokens"), batch_size=2, bptt=8)
    direct.setup()
    assert direct.vocab.to_dict() == changed.vocab.to_dict() and direct.tokenizer.kind == "word"


def test_ids_are_uint16_until_the_vocabulary_needs_uint32(tmp_path):
    tokenizer = make_tokenizer("word", lowercase=False)
    small = tmp_path / "small.txt"
    small.write_text("a b c\n" * 100)
    assert tokenize_corpus([small], tmp_path / "s", tokenizer, progress=False).dtype == np.uint16
    big = tmp_path / "big.txt"
    big.write_text("\n".join(f"w{i}" for i in range(70_000)))
    corpus = tokenize_corpus([big], tmp_path / "b", tokenizer, val_fraction=0.0, test_fraction=0.0, progress=False)
    assert corpus.dtype == np.uint32 and len(corpus.vocab) == 70_000 + 3  # <pad> <unk> <eos> + every word
    ids = corpus.ids("train")
    assert int(ids.max()) == len(corpus.vocab) - 1 and corpus.vocab.decode([int(ids[0])]) == ["w0"]


def test_damaged_or_missing_input_fails_in_one_line(tmp_path):
    root = write_corpus(tmp_path / "texts", files=1)
    corpus = tokenize_corpus([root / "part0.txt"], tmp_path / "cache", make_tokenizer("char"), progress=False)
    (corpus.root / "val.bin").write_bytes(b"\x00")  # truncated
    with pytest.raises(ValueError, match=r"val.bin: missing or not \d+ ids long; delete") as error:
        TokenCorpus.open(corpus.root)
    meta = corpus.root / "meta.json"
    meta.write_text("{not json")
    with pytest.raises(ValueError, match="not a seqmodels token-corpus description"):
        TokenCorpus.open(corpus.root)
    for error_type, options, match in [
        (FileNotFoundError, dict(path=str(tmp_path / "missing.txt")), "text file not found"),
        (FileNotFoundError, dict(path=str(root), pattern="*.md"), r"no files matching '\*.md'"),
        (ValueError, dict(path=None), "no text to model"),
    ]:
        with pytest.raises(error_type, match=match) as error:
            TokenCorpusDataModule(**options, progress=False).setup()
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="for text in memory use TextCorpusDataModule"):
        TokenCorpusDataModule(data="some text")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="holds no text"):
        TokenCorpusDataModule(path=str(empty), cache_dir=str(tmp_path / "e"), progress=False).setup()
    assert not (tmp_path / "e" / "meta.json").exists()  # an interrupted or failed pass leaves no valid cache


def test_a_language_model_trains_from_the_config_tree(compose_train, tmp_path):
    from seqmodels.train import train

    root = write_corpus(tmp_path / "texts", lines=200)
    cfg = compose_train(
        "experiment=char_lm",
        "data=token_corpus",
        f"data.path={root}",
        "data.pattern=*.txt",
        "data.batch_size=4",
        "data.bptt=32",
        "data.progress=false",
        "model.net.hidden_size=16",
        "model.net.embedding_dim=8",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "logger=none",
    )
    result = train(cfg)
    assert result.metrics["test/loss"] > 0 and (tmp_path / "texts.tokens" / "meta.json").is_file()


MEMORY_CHECK = """
import sys, threading, time
import numpy as np
from pathlib import Path
from seqmodels.data import TokenCorpusDataModule

def anon_kb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])

text = Path(sys.argv[1])
rng = np.random.default_rng(0)
alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz  .\\n", np.uint8)
with open(text, "wb") as handle:  # written in pieces: the generator itself must not hold the corpus
    for _ in range(int(sys.argv[2])):
        handle.write(alphabet[rng.integers(0, len(alphabet), 4_000_000)].tobytes())
base, peak, running = anon_kb(), [0], True

def sample():
    while running:
        peak[0] = max(peak[0], anon_kb())
        time.sleep(0.002)

thread = threading.Thread(target=sample)
thread.start()
dm = TokenCorpusDataModule(path=str(text), level="char", lowercase=False, batch_size=64, bptt=256, progress=False)
dm.setup()
tokens = sum(batch.inputs.numel() for batch in dm.train_dataloader())
running = False
thread.join()
print(base, peak[0], tokens, dm.corpus.sizes["train"], dm.corpus.dtype.itemsize)
"""


def test_a_corpus_larger_than_the_memory_cap_keeps_memory_under_it(tmp_path):
    """64 MB of ids (32M characters as uint16) read with the process's anonymous memory growing by less than a
    16 MB cap: tokenising streams through the text, and training windows copy only their own ids."""
    cap_kb = 16 * 1024
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MEMORY_CHECK), str(tmp_path / "corpus.txt"), "8"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    base, peak, tokens, train_ids, itemsize = map(int, done.stdout.split())
    assert train_ids * itemsize > 3 * cap_kb * 1024  # the corpus is several times the cap
    assert tokens >= train_ids - 64 * 257  # every window was read (the remainder of the streams aside)
    assert peak - base < cap_kb, f"anonymous memory grew by {(peak - base) / 1024:.1f} MB"
    assert json.loads((tmp_path / "corpus.txt.tokens" / "meta.json").read_text())["dtype"] == "uint16"
