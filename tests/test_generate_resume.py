"""``seqmodels-generate save_state=... / resume_state=...``: a generation stops and goes on later, token for token.

One tiny character model is trained once for the module (about a second). The library function runs most cases;
two CLI runs check the command line end to end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from seqmodels import generate as generate_module
from seqmodels.config import compose_run_config, config_dir
from seqmodels.data import TextCorpusDataModule
from seqmodels.generate import GenerationInterrupted, generate, load_generation_state
from seqmodels.tasks.capabilities import Capabilities
from seqmodels.train import train

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
PROMPT = "the c"
SETTINGS = {
    "greedy": {"temperature": 0},
    "sampled": {"temperature": 0.9, "top_k": 6, "seed": 7},
    "nucleus": {"temperature": 1.2, "top_p": 0.9, "seed": 3},
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A char LSTM (hidden size 8) trained one epoch on a few lines: it only needs to make text, not good text."""
    root = tmp_path_factory.mktemp("generate_resume")
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
            "model.net.num_layers=2",
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


def _config(checkpoint: Path, **values: object):
    """The config ``seqmodels-generate`` composes (configs/generate.yaml) with ``values`` set."""
    cfg = OmegaConf.load(config_dir() / "generate.yaml")
    for key in ("defaults", "hydra"):
        cfg.pop(key)
    return OmegaConf.merge(cfg, {"ckpt_path": str(checkpoint), **values})


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def _same_state(a: dict, b: dict) -> bool:
    flat_a, flat_b = a["state"], b["state"]
    flat_a = flat_a if isinstance(flat_a, tuple) else (flat_a,)
    flat_b = flat_b if isinstance(flat_b, tuple) else (flat_b,)
    return (
        a["tokens"] == b["tokens"]
        and a["text_anchor"] == b["text_anchor"]
        and len(flat_a) == len(flat_b)
        and all(torch.equal(x, y) for x, y in zip(flat_a, flat_b, strict=True))
        and torch.equal(a["logits"], b["logits"])
        and torch.equal(a["rng_state"], b["rng_state"])
    )


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
def test_forty_then_sixty_resumed_are_the_hundred_of_one_run(checkpoint, tmp_path, settings):
    (whole,) = generate(_config(checkpoint, prompt=PROMPT, max_new_tokens=100, **settings))
    first = tmp_path / "first.pt"
    (start,) = generate(_config(checkpoint, prompt=PROMPT, max_new_tokens=40, save_state=str(first), **settings))
    # The seed is in the saved generator state: another seed on the command line changes nothing.
    resumed = tmp_path / "resumed.pt"
    cfg = _config(checkpoint, resume_state=str(first), save_state=str(resumed), max_new_tokens=60, **settings)
    (rest,) = generate(OmegaConf.merge(cfg, {"seed": 12345}))
    assert start.startswith(PROMPT) and len(start) >= len(PROMPT) + 40 and len(rest) >= 60  # <unk> shows 5
    assert start + rest == whole

    saved = _load(first)
    assert saved["tokens"] == 40 and saved["vocab_size"] == saved["logits"].shape[-1]
    assert all(isinstance(value, torch.Tensor | int | str | list | tuple) for value in saved.values())
    assert os.path.getsize(first) < 16_000  # a few KB: state, next-token scores, generator state
    # The state after 40 + 60 is the state after one run of 100 that saves.
    once = tmp_path / "once.pt"
    generate(_config(checkpoint, prompt=PROMPT, max_new_tokens=100, save_state=str(once), **settings))
    assert _same_state(_load(resumed), _load(once)) and _load(once)["tokens"] == 100


def test_the_same_file_can_be_resumed_and_rewritten_again_and_again(checkpoint, tmp_path):
    state = tmp_path / "story.pt"
    (whole,) = generate(_config(checkpoint, prompt=PROMPT, max_new_tokens=90, seed=5))
    texts = list(generate(_config(checkpoint, prompt=PROMPT, max_new_tokens=30, seed=5, save_state=str(state))))
    for _ in range(2):
        texts += generate(_config(checkpoint, resume_state=str(state), save_state=str(state), max_new_tokens=30))
    assert "".join(texts) == whole and _load(state)["tokens"] == 90
    assert sorted(p.name for p in tmp_path.iterdir()) == ["story.pt"]  # no temporary file left behind


def _interrupt_in_write(after: int):
    """A ``write`` that raises KeyboardInterrupt as the piece after ``after`` pieces comes (its token is drawn)."""
    pieces: list[str] = []

    def write(piece: str) -> None:
        if len(pieces) == after:
            pieces.append("<interrupted>")
            raise KeyboardInterrupt
        pieces.append(piece)

    return pieces, write


@pytest.mark.parametrize("printed", [24, 0], ids=["after 24 tokens", "before the first token"])
def test_ctrl_c_while_printing_saves_a_state_that_resumes_exactly(checkpoint, tmp_path, printed):
    """Token ``printed + 1`` is drawn but Ctrl-C lands as it is printed: it does not count; resuming draws it again."""
    settings = {"temperature": 1.0, "seed": 2}
    (whole,) = generate(_config(checkpoint, prompt=PROMPT, max_new_tokens=100, **settings))
    state = tmp_path / "state.pt"
    pieces, write = _interrupt_in_write(printed + 1)  # the prompt, then the tokens
    with pytest.raises(GenerationInterrupted, match=f"^interrupted after {printed} tokens?$"):
        generate(_config(checkpoint, prompt=PROMPT, max_new_tokens=10**9, save_state=str(state), **settings), write)
    assert pieces[-2:] == ["<interrupted>", "\n"] and _load(state)["tokens"] == printed
    (rest,) = generate(_config(checkpoint, resume_state=str(state), max_new_tokens=100 - printed, **settings))
    assert "".join(pieces[: printed + 1]) + rest == whole


def test_ctrl_c_between_a_printed_token_and_its_step_keeps_that_token(checkpoint, tmp_path, monkeypatch):
    """Ctrl-C inside the recurrent step that reads the 30th token: 30 tokens count and the state has read them."""
    settings = {"temperature": 1.0, "top_k": 8, "seed": 9}
    (whole,) = generate(_config(checkpoint, prompt=PROMPT, max_new_tokens=100, **settings))
    build = generate_module.build_from_checkpoint
    calls = []

    def build_interrupting(*args, **kwargs):
        model, datamodule = build(*args, **kwargs)
        step = model.net.step

        def interrupting_step(tokens, state):
            calls.append(int(tokens[0]))
            if len(calls) == 30:
                raise KeyboardInterrupt
            return step(tokens, state)

        model.net.step = interrupting_step
        return model, datamodule

    monkeypatch.setattr(generate_module, "build_from_checkpoint", build_interrupting)
    state = tmp_path / "state.pt"
    printed: list[str] = []
    with pytest.raises(GenerationInterrupted, match="^interrupted after 30 tokens$"):
        generate(
            _config(checkpoint, prompt=PROMPT, max_new_tokens=100, save_state=str(state), **settings), printed.append
        )
    assert len(calls) == 31  # the 30th step ran again at saving time
    monkeypatch.undo()
    assert _load(state)["tokens"] == 30 and printed[-1] == "\n"
    (rest,) = generate(_config(checkpoint, resume_state=str(state), max_new_tokens=70, **settings))
    assert "".join(printed[:-1]) + rest == whole


def test_a_failed_write_keeps_the_previous_state_file(checkpoint, tmp_path, monkeypatch):
    state = tmp_path / "state.pt"
    generate(_config(checkpoint, prompt=PROMPT, max_new_tokens=20, save_state=str(state)))
    before = state.read_bytes()
    save = torch.save

    def save_half_then_fail(obj, f, *args, **kwargs):
        f.write(b"half a state")
        raise KeyboardInterrupt  # e.g. a second Ctrl-C while writing

    monkeypatch.setattr(generate_module.torch, "save", save_half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        generate(_config(checkpoint, resume_state=str(state), save_state=str(state), max_new_tokens=20))
    monkeypatch.setattr(generate_module.torch, "save", save)
    assert state.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]
    assert load_generation_state(state)["tokens"] == 20


def _other_model(checkpoint: Path, tmp_path: Path) -> Path:
    """The checkpoint with two characters of its vocabulary swapped: same shapes, another model."""
    ckpt = torch.load(checkpoint, weights_only=True)
    key = next(k for k, v in ckpt.items() if isinstance(v, dict) and "vocab" in v)
    tokens = ckpt[key]["vocab"]["tokens"]
    i, j = tokens.index("a"), tokens.index("t")
    tokens[i], tokens[j] = tokens[j], tokens[i]
    path = tmp_path / "other.ckpt"
    torch.save(ckpt, path)
    return path


def test_a_state_that_does_not_fit_is_refused_in_one_line(checkpoint, tmp_path):
    state = tmp_path / "state.pt"
    generate(_config(checkpoint, prompt=PROMPT, max_new_tokens=10, save_state=str(state)))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(2000))
    damaged = tmp_path / "damaged.pt"
    torch.save({**_load(state), "logits": "not a tensor"}, damaged)
    cases = [
        (tmp_path / "missing.pt", FileNotFoundError, "generation state not found: .*missing.pt; write one with"),
        (garbage, ValueError, "garbage.pt is not a generation state .*; pass a file written by"),
        (checkpoint, ValueError, r"\.ckpt is a checkpoint, not a generation state: pass it as ckpt_path="),
        (damaged, ValueError, "damaged.pt is a damaged generation state"),
        (tmp_path, ValueError, "is a folder; pass a file written by save_state"),
    ]
    for path, error, message in cases:
        with pytest.raises(error, match=message) as caught:
            generate(_config(checkpoint, resume_state=str(path), max_new_tokens=5))
        assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="saved from another model") as caught:
        generate(_config(_other_model(checkpoint, tmp_path), resume_state=str(state), max_new_tokens=5))
    assert "\n" not in str(caught.value)


BAD_OPTIONS = [
    ({"prompt": PROMPT, "resume_state": "s.pt"}, "^prompt and resume_state are both given: .*drop prompt="),
    ({"prompt": PROMPT, "save_state": "s.pt", "num_samples": 2}, "^save_state continue a single sample; pass num_s"),
    ({"prompt": PROMPT, "save_state": "no/such/dir/s.pt"}, "^save_state=no/such/dir/s.pt: the folder no/such/dir"),
]


@pytest.mark.parametrize(("values", "message"), BAD_OPTIONS, ids=["prompt+resume", "num_samples", "no folder"])
def test_bad_options_are_refused_before_the_model_is_loaded(tmp_path, monkeypatch, values, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=message):
        generate(_config(tmp_path / "never-loaded.ckpt", **values))


def test_a_task_that_cannot_generate_is_refused_and_nothing_is_written(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(
        generate_module, "task_capabilities", lambda checkpoint: (type("Tagger", (), {}), Capabilities())
    )
    with pytest.raises(ValueError, match="holds a Tagger checkpoint, which seqmodels-generate does not take"):
        generate(_config(checkpoint, prompt=PROMPT, save_state=str(tmp_path / "s.pt")))
    assert list(tmp_path.iterdir()) == []


def test_a_model_whose_samples_end_at_eos_refuses_save_and_resume(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(TextCorpusDataModule, "stop_id", property(lambda self: 2))  # as a sequence model's <eos>
    state = tmp_path / "s.pt"
    state.write_bytes(b"")  # resume_state must exist to get this far; save_state must not touch it
    for values in ({"prompt": PROMPT, "save_state": str(state)}, {"resume_state": str(state)}):
        with pytest.raises(ValueError, match="^save_state/resume_state continue an open-ended text model; .*<eos>"):
            generate(_config(checkpoint, **values))
    assert [p.name for p in tmp_path.iterdir()] == ["s.pt"] and state.read_bytes() == b""


def _cli(checkpoint: Path, *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "seqmodels.cli.generate", f"ckpt_path={checkpoint}", *overrides]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=cwd, timeout=120)


def test_cli_saves_then_resumes(checkpoint, tmp_path):
    first = _cli(checkpoint, f"prompt='{PROMPT}'", "max_new_tokens=40", "seed=4", "save_state=s.pt", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stderr.startswith("wrote s.pt (") and "40 tokens); resume_state=s.pt continues it" in first.stderr
    rest = _cli(checkpoint, "resume_state=s.pt", "max_new_tokens=60", cwd=tmp_path)
    assert rest.returncode == 0, rest.stderr
    (whole,) = generate(_config(checkpoint, prompt=PROMPT, max_new_tokens=100, seed=4))
    assert first.stdout[:-1] + rest.stdout[:-1] == whole and rest.stdout.endswith("\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pt"]
