"""``seqmodels-generate`` streams its output, stops cleanly on Ctrl-C and refuses bad sampling values in one line.

One tiny character model is trained once for the module (under a second); the CLI runs in subprocesses that read
stdout as it comes, every wait bounded so that no test can hang.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from seqmodels import generate as generate_module
from seqmodels.checkpoint import build_from_checkpoint, load_checkpoint
from seqmodels.config import compose_run_config, config_dir
from seqmodels.data import BachChoralesDataModule, TextCorpusDataModule
from seqmodels.generate import GenerationInterrupted, TextPieces, check_options, generate
from seqmodels.nn.decoding import DecodeStep
from seqmodels.train import train

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A char model (hidden size 8) trained one epoch on a few lines: it only needs to make text, not good text."""
    root = tmp_path_factory.mktemp("generate_cli")
    corpus = root / "corpus.txt"
    corpus.write_text("the cat sat on the mat.\na dog ran to the park.\n" * 20)
    cfg = compose_run_config(
        [
            "experiment=char_lm",
            f"data.path={corpus}",
            "data.pattern=*.txt",
            "data.batch_size=2",
            "data.bptt=16",
            "model.net.embedding_dim=4",
            "model.net.hidden_size=8",
            "model.net.num_layers=1",
            "trainer.max_epochs=1",
            "test=false",
            "logger=none",
            "~callbacks.early_stopping",
            "~callbacks.generation_samples",
            "~callbacks.rich_progress_bar",
            "trainer.enable_progress_bar=false",
            "trainer.accelerator=cpu",
        ],
        output_dir=root / "run",
    )
    result = train(cfg)
    path = Path(str(result.best_model_path))
    assert path.is_file(), result.metrics
    return path


def _cli(checkpoint: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "seqmodels.cli.generate", f"ckpt_path={checkpoint}", *overrides]


def _config(checkpoint: Path, **values: object):
    """The config ``seqmodels-generate`` composes (configs/generate.yaml) with ``values`` set."""
    cfg = OmegaConf.load(config_dir() / "generate.yaml")
    for key in ("defaults", "hydra"):
        cfg.pop(key)
    return OmegaConf.merge(cfg, {"ckpt_path": str(checkpoint), **values})


@pytest.fixture(scope="module")
def language_model(checkpoint: Path):
    model, datamodule = build_from_checkpoint(load_checkpoint(checkpoint), setup_data=False)
    return model.net.eval(), datamodule


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_token_steps_come_one_at_a_time_and_equal_the_batch_generation(language_model, monkeypatch):
    """generate_steps yields one token per step, the same tokens generate() returns; the prefix is read once."""
    net, datamodule = language_model
    prompt = torch.tensor([datamodule.encode_prompt("the cat")])
    tokens, lengths = net.generate(prompt, 60, top_k=5, generator=_seeded(4))

    widths: list[int] = []  # the input length of every forward: the prompt once, then one token per step
    forward = net.forward
    monkeypatch.setattr(
        net, "forward", lambda x, *args, **kwargs: (widths.append(x.shape[1]), forward(x, *args, **kwargs))[1]
    )
    steps = net.generate_steps(prompt, 60, top_k=5, generator=_seeded(4))
    first = next(steps)
    assert isinstance(first, DecodeStep) and first.tokens.shape == (1,) and widths == [prompt.shape[1]]
    streamed = [first.tokens, *(step.tokens for step in steps)]
    assert torch.equal(torch.stack(streamed, dim=1), tokens) and lengths.tolist() == [60]
    assert widths == [prompt.shape[1]] + [1] * 59


def test_streamed_text_is_the_returned_text_and_each_sample_has_its_own_seed(checkpoint, language_model):
    net, datamodule = language_model
    pieces: list[str] = []
    texts = generate(_config(checkpoint, prompt="the c", max_new_tokens=80, num_samples=3, seed=11), pieces.append)
    assert len(pieces) > 3 * 80  # a piece per token: the text streams, it does not come at the end
    assert "".join(pieces) == "\n\n".join(texts) + "\n"

    ids = datamodule.encode_prompt("the c")
    skip = len(datamodule.prompt_prefix())
    for index, text in enumerate(texts):
        # Sample i is what a batch generation seeded 11 + i gives, and what seed=11+i num_samples=1 prints.
        tokens, _ = net.generate(torch.tensor([ids]), 80, generator=_seeded(11 + index))
        assert text == datamodule.decode(ids[skip:] + tokens[0].tolist())
        assert generate(_config(checkpoint, prompt="the c", max_new_tokens=80, seed=11 + index)) == [text]
    assert len(set(texts)) == 3


def _word_lm() -> TextCorpusDataModule:
    datamodule = TextCorpusDataModule(level="word")
    words = ["<pad>", "<unk>", "<eos>", "the", "cat", ".", "sat"]
    datamodule.load_state_dict({"vocab": {"tokens": words}, "tokenizer": {"type": "word"}})
    return datamodule


def _melody_lm() -> BachChoralesDataModule:
    datamodule = BachChoralesDataModule(cache_dir=None)
    notes = ["<pad>", "<unk>", "<bos>", "<eos>", "C5_1", "D5_0.5", "rest_1"]
    datamodule.load_state_dict({"vocab": {"tokens": notes}, "tokenizer": {"type": "whitespace"}})
    return datamodule


@pytest.mark.parametrize("make", [_word_lm, _melody_lm], ids=["words with <eos> line breaks", "melody ending at <eos>"])
def test_text_pieces_add_up_to_the_decoded_sample(make):
    """Every decoder joins to the same text as decode() of the whole sample, specials and <unk> included."""
    datamodule = make()
    vocab = datamodule.vocab
    stop = datamodule.stop_id
    rng = torch.Generator().manual_seed(0)
    for _ in range(50):
        ids = torch.randint(0, len(vocab), (int(torch.randint(0, 12, (1,), generator=rng)),), generator=rng).tolist()
        if stop is not None and stop in ids:  # generation ends at the stop token
            ids = ids[: ids.index(stop) + 1]
        cut = int(torch.randint(0, len(ids) + 1, (1,), generator=rng))
        pieces = TextPieces(datamodule.decode, ids[:cut])
        text = datamodule.decode(ids[:cut])
        for end in range(cut, len(ids)):
            text += pieces.add(ids[end])
            assert text == datamodule.decode(ids[: end + 1]), ids[: end + 1]


def test_ctrl_c_in_process_keeps_the_samples_so_far_and_writes_their_midi(checkpoint, language_model, monkeypatch):
    """Ctrl-C lands as the 25th token is printed: 24 tokens count, and a midi_path gets them (sample 0 only)."""
    net, datamodule = language_model
    written: list[tuple[list[int], str]] = []
    build = generate_module.build_from_checkpoint

    def build_recording_midi(*args, **kwargs):
        model, built = build(*args, **kwargs)
        built.write_midi = lambda ids, path: written.append((list(ids), Path(path).name))  # as a music model would
        return model, built

    monkeypatch.setattr(generate_module, "build_from_checkpoint", build_recording_midi)
    pieces: list[str] = []

    def write(piece: str) -> None:
        if len(pieces) == 25:  # the prompt, then 24 tokens
            pieces.append("<interrupted>")
            raise KeyboardInterrupt
        pieces.append(piece)

    cfg = _config(checkpoint, prompt="the c", max_new_tokens=10**9, num_samples=2, midi_path="out.mid")
    with pytest.raises(GenerationInterrupted, match="^interrupted after 24 tokens$") as caught:
        generate(cfg, write)
    assert caught.value.tokens == 24 and pieces[-2:] == ["<interrupted>", "\n"]
    ids = datamodule.encode_prompt("the c")
    tokens, _ = net.generate(torch.tensor([ids]), 24, generator=_seeded(0))
    assert written == [(ids + tokens[0].tolist(), "out_0.mid")]
    assert "".join(pieces[:25]) == datamodule.decode(ids[len(datamodule.prompt_prefix()) :] + tokens[0].tolist())


BAD_VALUES = [
    ("max_new_tokens", "abc", "max_new_tokens must be an integer >= 1, got 'abc'"),
    ("max_new_tokens", 0, "max_new_tokens must be an integer >= 1, got 0"),
    ("max_new_tokens", 2.5, "max_new_tokens must be an integer >= 1, got 2.5"),
    ("temperature", "abc", r"temperature must be a finite number >= 0 \(0 is greedy\), got 'abc'"),
    ("temperature", -1, "temperature must be a finite number >= 0"),
    ("temperature", float("nan"), "temperature must be a finite number >= 0"),
    ("top_k", "abc", r"top_k must be an integer >= 0 or null \(0 or null: no top-k cut\), got 'abc'"),
    ("top_k", -1, "top_k must be an integer >= 0 or null"),
    ("top_p", "abc", r"top_p must be a number in \(0, 1\] or null \(null: no nucleus cut\), got 'abc'"),
    ("top_p", 0, r"top_p must be a number in \(0, 1\] or null"),
    ("top_p", 1.5, r"top_p must be a number in \(0, 1\] or null"),
    ("num_samples", "abc", "num_samples must be an integer >= 1, got 'abc'"),
    ("num_samples", 0, "num_samples must be an integer >= 1, got 0"),
    ("seed", "abc", "seed must be an integer, got 'abc'"),
    ("seed", 1.5, "seed must be an integer, got 1.5"),
]


@pytest.mark.parametrize(
    ("key", "value", "expected"), BAD_VALUES, ids=[f"{key}={value}" for key, value, _ in BAD_VALUES]
)
def test_bad_sampling_values_are_refused_by_name(key, value, expected):
    with pytest.raises(ValueError, match=f"^{expected}"):
        check_options(_config(Path("unused.ckpt"), **{key: value}))


def test_sampling_values_hydra_or_the_environment_may_hand_over_are_read():
    options = check_options(_config(Path("unused.ckpt"), max_new_tokens=1e5, temperature="0.5", top_k=0, seed="7"))
    assert (options.max_new_tokens, options.temperature, options.top_k, options.seed) == (100000, 0.5, None, 7)


def _read_until(proc: subprocess.Popen, enough: int, timeout: float) -> bytes:
    """Reads stdout as it arrives until ``enough`` bytes, end of file or ``timeout`` seconds."""
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < enough and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            data += chunk
    return data


def _allow_ctrl_c() -> None:
    # A shell that starts the tests in the background ignores SIGINT, and children inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_cli_streams_then_stops_cleanly_on_ctrl_c(checkpoint, tmp_path):
    """Text arrives while the process still runs; SIGINT keeps it, says so in one line and exits 130."""
    proc = subprocess.Popen(
        _cli(checkpoint, "prompt='the c'", "max_new_tokens=1000000000", "seed=5"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        env=ENV,
        cwd=tmp_path,
        preexec_fn=_allow_ctrl_c,
    )
    try:
        early = _read_until(proc, 300, timeout=90)
        assert len(early) >= 300 and proc.poll() is None, (early, proc.poll())  # streamed, not printed at the end
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    stdout, stderr = (early + rest).decode(), err.decode()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    tokens = int(stderr.strip().removeprefix("seqmodels-generate: interrupted after ").removesuffix(" tokens"))
    assert tokens > 0 and stdout.endswith("\n")
    # What was printed is the generation of that many tokens (one more if the signal fell between print and count).
    expected = generate(_config(checkpoint, prompt="the c", max_new_tokens=tokens + 1, seed=5))[0]
    printed = stdout[:-1]
    assert expected.startswith(printed) and len(printed) >= len(expected) - len("<unk>"), (printed, expected)


def test_cli_prints_what_generate_returns(checkpoint, tmp_path):
    result = subprocess.run(
        _cli(checkpoint, "prompt='the c'", "max_new_tokens=40", "num_samples=2", "top_p=0.9", "seed=3"),
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    texts = generate(_config(checkpoint, prompt="the c", max_new_tokens=40, num_samples=2, top_p=0.9, seed=3))
    assert result.stdout == "\n\n".join(texts) + "\n"


def test_cli_refuses_a_bad_value_in_one_line(checkpoint, tmp_path):
    result = subprocess.run(
        _cli(checkpoint, "prompt='the c'", "temperature=abc"),
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "seqmodels-generate: error: temperature must be a finite number >= 0 (0 is greedy), got 'abc'"
    ]
