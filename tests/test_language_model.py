"""Language modelling: stream batching, truncated BPTT, the network and its regularisers, decoding, generation."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from seqmodels.data import StreamWindows, TextCorpusDataModule, Vocabulary
from seqmodels.nn import LockedDropout, RecurrentLanguageModel, WeightDrop, embedding_dropout
from seqmodels.nn.decoding import decode, filter_logits, sample_next
from seqmodels.tasks import LanguageModelTask
from seqmodels.train import train

CELLS = ["rnn_tanh", "lstm", "gru"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ data
def test_vocabulary_specials_come_first_and_build_from_train_only(tmp_path):
    vocab = Vocabulary.build([["b", "a", "a"]], specials=(Vocabulary.BOS, Vocabulary.EOS))
    assert vocab.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert (vocab.bos_id, vocab.eos_id) == (2, 3)
    assert vocab.unknown(["a", "z", "z"]) == ["z"]
    with pytest.raises(ValueError, match="no <bos> token"):
        _ = Vocabulary.build([["a"]]).bos_id

    # "z" occurs only in the last (test) part of the stream: it reads as <unk>.
    dm = TextCorpusDataModule(
        path=_write(tmp_path / "t.txt", "ab" * 500 + "z" * 50),
        batch_size=2,
        bptt=8,
        val_fraction=0.05,
        test_fraction=0.05,
    )
    dm.setup()
    assert "z" not in dm.vocab
    assert (dm.streams["test"] == dm.vocab.unk_id).any()


def test_stream_windows_cover_the_stream_in_order():
    streams = torch.arange(2 * 23).view(2, 23)
    windows = list(StreamWindows(streams, bptt=5))
    assert [w.inputs.shape[1] for w in windows] == [5, 5, 5, 5, 2]
    assert [w.continues for w in windows] == [False, True, True, True, True]
    assert torch.equal(torch.cat([w.inputs for w in windows], 1), streams[:, :-1])
    assert torch.equal(torch.cat([w.targets for w in windows], 1), streams[:, 1:])
    assert all(torch.equal(w.lengths, torch.full((2,), w.inputs.shape[1])) for w in windows)


def test_variable_bptt_redraws_each_epoch_reproducibly():
    streams = torch.arange(3000).view(1, 3000)
    data = StreamWindows(streams, bptt=50, variable_bptt=True, seed=3)
    first, second = [w.inputs.shape[1] for w in data], [w.inputs.shape[1] for w in data]
    assert first != second and sum(first) == sum(second) == 2999
    assert min(first[:-1]) >= 5 and 35 < sum(first) / len(first) < 60
    again = StreamWindows(streams, bptt=50, variable_bptt=True, seed=3)
    assert [w.inputs.shape[1] for w in again] == first


def test_corpus_reads_a_directory_with_a_pattern_and_word_level_line_ends(tmp_path):
    (tmp_path / "docs").mkdir()
    _write(tmp_path / "docs" / "b.md", "world again\n" * 40)
    _write(tmp_path / "docs" / "a.md", "hello there\n" * 40)
    _write(tmp_path / "docs" / "skip.txt", "never read\n" * 40)
    dm = TextCorpusDataModule(path=tmp_path / "docs", pattern="*.md", level="word", batch_size=2, bptt=4)
    dm.setup()
    assert [p.name for p in dm.files()] == ["a.md", "b.md"]
    assert "never" not in dm.vocab and Vocabulary.EOS in dm.vocab
    assert dm.decode(dm.vocab.encode(["hello", "there", "<eos>", "world"])) == "hello there\nworld"
    assert dm.dims() == {"vocab_size": len(dm.vocab), "padding_idx": 0, "char_level": 0}


@pytest.mark.parametrize(
    "content,kwargs,expected",
    [
        ("", {}, "holds no text"),
        ("abc", {"batch_size": 4}, "fewer than batch_size"),
        (None, {}, "text file not found"),
    ],
)
def test_bad_corpus_gives_a_clear_error(tmp_path, content, kwargs, expected):
    path = tmp_path / "corpus.txt"
    if content is not None:
        _write(path, content)
    dm = TextCorpusDataModule(path=path, bptt=4, **kwargs)
    with pytest.raises((ValueError, FileNotFoundError), match=expected):
        dm.setup()
    with pytest.raises(ValueError, match="pass data.path"):
        TextCorpusDataModule(path=None).setup()


def test_text_shorter_than_one_window_warns_and_still_yields_a_window(tmp_path, caplog):
    dm = TextCorpusDataModule(
        path=_write(tmp_path / "t.txt", "short text, " * 10),
        batch_size=2,
        bptt=128,
        val_fraction=0.1,
        test_fraction=0.1,
    )
    with caplog.at_level("WARNING"):
        dm.setup()
    assert "not more than one window" in caplog.text
    windows = list(dm.train_dataloader())
    assert len(windows) == 1 and windows[0].inputs.shape == (2, dm.streams["train"].shape[1] - 1)


# ------------------------------------------------------------------------------------------ network
@pytest.mark.parametrize("cell", CELLS)
def test_state_carry_equals_one_pass(cell):
    torch.manual_seed(0)
    lm = RecurrentLanguageModel(vocab_size=11, embedding_dim=6, hidden_size=8, num_layers=2, cell=cell).eval()
    tokens = torch.randint(1, 11, (3, 12))
    full, full_state = lm(tokens)
    first, state = lm(tokens[:, :5])
    second, state = lm(tokens[:, 5:], state=state)
    assert full.shape == (3, 12, 11)
    torch.testing.assert_close(torch.cat([first, second], 1), full, atol=1e-6, rtol=1e-5)
    for a, b in zip(
        state if isinstance(state, tuple) else [state],
        full_state if isinstance(full_state, tuple) else [full_state],
        strict=True,
    ):
        assert a.shape == (2, 3, 8)
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_padding_never_changes_logits_or_state():
    torch.manual_seed(0)
    lm = RecurrentLanguageModel(vocab_size=9, embedding_dim=5, hidden_size=7, num_layers=2).eval()
    short = torch.randint(1, 9, (1, 4))
    padded = torch.cat([short, torch.zeros(1, 6, dtype=torch.long)], 1)
    batch = torch.cat([padded, torch.randint(1, 9, (1, 10))])
    alone_logits, (alone_h, alone_c) = lm(short)
    logits, (h, c) = lm(batch, lengths=torch.tensor([4, 10]))
    torch.testing.assert_close(logits[0, :4], alone_logits[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(h[:, 0], alone_h[:, 0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c[:, 0], alone_c[:, 0], atol=1e-6, rtol=1e-5)


def test_tied_weights_share_the_embedding_with_a_projection_when_sizes_differ():
    lm = RecurrentLanguageModel(vocab_size=20, embedding_dim=8, hidden_size=16, tie_weights=True)
    assert lm.decoder.weight is lm.embedding.weight
    assert lm.projection is not None and lm.projection.out_features == 8
    untied = RecurrentLanguageModel(vocab_size=20, embedding_dim=8, hidden_size=16)
    assert sum(p.numel() for p in lm.parameters()) < sum(p.numel() for p in untied.parameters())
    assert lm(torch.randint(0, 20, (2, 3)))[0].shape == (2, 3, 20)


def test_weight_drop_keeps_the_fused_module_and_is_off_in_eval():
    torch.manual_seed(0)
    lstm = nn.LSTM(4, 6, batch_first=True)
    dropped = WeightDrop(lstm, p=0.5)
    assert dropped.weights == ["weight_hh_l0"]
    x = torch.randn(2, 7, 4)
    reference, _ = lstm(x)
    out_a, _ = dropped(x)
    out_b, _ = dropped(x)
    assert not torch.allclose(out_a, reference) and not torch.allclose(out_a, out_b)
    out_a.sum().backward()
    assert lstm.weight_hh_l0.grad is not None and lstm.weight_hh_l0.grad.abs().sum() > 0
    assert isinstance(dropped.module, nn.LSTM) and {n for n, _ in dropped.named_parameters()} == {
        f"module.{n}" for n, _ in lstm.named_parameters()
    }
    dropped.eval()
    torch.testing.assert_close(dropped(x)[0], reference)
    with pytest.raises(ValueError, match="has no parameter"):
        WeightDrop(lstm, p=0.5, weights=["weight_hh_l5"])


def test_locked_dropout_shares_its_mask_across_time_and_embedding_dropout_drops_rows():
    torch.manual_seed(0)
    x = torch.ones(4, 10, 6)
    out = LockedDropout(0.5).train()(x)
    assert torch.equal(out, out[:, :1].expand_as(out))  # the same mask at every step
    assert ((out == 0) | (out == 2)).all() and (out == 0).any()
    assert torch.equal(LockedDropout(0.5).eval()(x), x)

    emb = nn.Embedding(50, 3, padding_idx=0)
    tokens = torch.arange(50).repeat(2, 1)
    dropped = embedding_dropout(emb, tokens, p=0.5, training=True)
    zero_rows = (dropped == 0).all(-1)
    assert torch.equal(zero_rows[0], zero_rows[1])  # a token type is dropped wherever it occurs
    assert 5 < int(zero_rows[0].sum()) < 45
    torch.testing.assert_close(embedding_dropout(emb, tokens, 0.5, training=False), emb(tokens))


def test_regularisers_are_inactive_in_eval_mode():
    torch.manual_seed(0)
    kwargs = dict(vocab_size=13, embedding_dim=6, hidden_size=8, num_layers=2)
    plain = RecurrentLanguageModel(**kwargs)
    regularised = RecurrentLanguageModel(
        **kwargs, dropout=0.3, embedding_dropout=0.2, input_dropout=0.2, layer_dropout=0.3, weight_drop=0.5
    )
    state = {k.replace(".module.", "."): v for k, v in regularised.state_dict().items()}
    plain.load_state_dict(state)
    tokens = torch.randint(1, 13, (2, 9))
    torch.testing.assert_close(regularised.eval()(tokens)[0], plain.eval()(tokens)[0])
    assert not torch.allclose(regularised.train()(tokens)[0], plain(tokens)[0])


# ------------------------------------------------------------------------------------------ decoding
def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.1)).tolist() == [[False, True, True, True]]
    samples = torch.stack(
        [sample_next(logits, top_k=2, generator=torch.Generator().manual_seed(i)) for i in range(200)]
    )
    assert set(samples.flatten().tolist()) == {0, 1}


def _small_lm(seed: int = 0) -> RecurrentLanguageModel:
    torch.manual_seed(seed)
    return RecurrentLanguageModel(vocab_size=17, embedding_dim=8, hidden_size=16, num_layers=2).eval()


def test_generation_with_carried_state_equals_rerunning_the_prefix():
    lm = _small_lm()
    prompt = torch.randint(1, 17, (2, 5))
    tokens, lengths = lm.generate(prompt, 12, temperature=0)
    sequence = prompt
    for _ in range(12):  # the slow reference: re-read everything at every step
        logits, _ = lm(sequence)
        sequence = torch.cat([sequence, logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(tokens, sequence[:, 5:]) and lengths.tolist() == [12, 12]


def test_low_temperature_sampling_equals_greedy_and_seeds_reproduce():
    lm = _small_lm()
    prompt = torch.randint(1, 17, (3, 4))
    greedy, _ = lm.generate(prompt, 20, temperature=0)
    cold, _ = lm.generate(prompt, 20, temperature=1e-4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(cold, greedy)
    a, _ = lm.generate(prompt, 20, temperature=1.0, generator=torch.Generator().manual_seed(7))
    b, _ = lm.generate(prompt, 20, temperature=1.0, generator=torch.Generator().manual_seed(7))
    c, _ = lm.generate(prompt, 20, temperature=1.0, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_decode_stops_rows_at_eos():
    # A fake step function that emits token 3 (eos) for row 0 right away and never for row 1.
    logits = torch.tensor([[0.0, 0.0, 0.0, 9.0], [0.0, 9.0, 0.0, 0.0]])
    tokens, lengths = decode(lambda t, s: (logits, s), logits, None, 6, temperature=0, eos_id=3, pad_id=0)
    assert lengths.tolist() == [1, 6]
    assert tokens[0].tolist() == [3, 0, 0, 0, 0, 0] and tokens[1].tolist() == [1] * 6
    with pytest.raises(ValueError, match="temperature"):
        decode(lambda t, s: (logits, s), logits, None, 3, temperature=-1)


# ------------------------------------------------------------------------------------------ training
class _Streams(L.LightningDataModule):
    def __init__(self, train: torch.Tensor, val: torch.Tensor, bptt: int) -> None:
        super().__init__()
        self.train_streams, self.val_streams, self.bptt = train, val, bptt

    def train_dataloader(self):
        return torch.utils.data.DataLoader(StreamWindows(self.train_streams, self.bptt), batch_size=None)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(StreamWindows(self.val_streams, self.bptt), batch_size=None)


def _fit(datamodule, vocab_size: int, epochs: int, carry_state: bool = True, lr: float = 0.01, seed: int = 0):
    L.seed_everything(seed)
    net = RecurrentLanguageModel(vocab_size=vocab_size, embedding_dim=16, hidden_size=32, num_layers=1, cell="lstm")
    task = LanguageModelTask(net, optimizer=lambda params: torch.optim.Adam(params, lr=lr), carry_state=carry_state)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=1.0,
    )
    trainer.fit(task, datamodule=datamodule)
    return float(trainer.callback_metrics["val/loss"]), trainer


def _key_streams(num_streams: int, windows: int, bptt: int, seed: int) -> torch.Tensor:
    """Windows of ``? c . . . r r``: a random key ``r`` (said twice, so the model learns to hold it in its
    state), and ``c``, a copy of the previous window's key after the ``?``.

    The copy (the target of ``?``) can only be predicted from the previous window: with the state carried.
    """
    g = torch.Generator().manual_seed(seed)
    keys = torch.randint(3, 5, (num_streams, windows + 1), generator=g)
    rows = torch.full((num_streams, windows * bptt + 1), 2)  # 2 = filler
    for k in range(windows):
        rows[:, k * bptt] = 1  # '?'
        rows[:, k * bptt + 1] = keys[:, k]  # the previous window's key (keys[:, 0] for the first)
        rows[:, k * bptt + bptt - 2] = keys[:, k + 1]  # this window's key, twice
        rows[:, k * bptt + bptt - 1] = keys[:, k + 1]
    rows[:, -1] = 1
    return rows


@pytest.mark.learns
def test_truncated_bptt_learns_a_dependency_across_windows_only_with_state_carry():
    """A token that depends on one from the previous window is learned only when the state is carried.

    Catches: state not carried (or reset) between truncated-BPTT windows, streams out of order.
    """
    bptt = 6
    dm = _Streams(_key_streams(16, 40, bptt, seed=0), _key_streams(16, 10, bptt, seed=1), bptt)
    with_carry, trainer = _fit(dm, vocab_size=5, epochs=25, carry_state=True)
    without_carry, _ = _fit(dm, vocab_size=5, epochs=25, carry_state=False)
    # Per window, the copied key is worth ln 2 nats: (ln 2) / bptt per token separates the two.
    assert without_carry - with_carry > 0.6 * math.log(2) / bptt, (with_carry, without_carry)
    assert trainer.lightning_module._carried["val"] is not None


@pytest.mark.learns
def test_language_model_drives_a_deterministic_grammar_to_near_zero_loss(tmp_path, compose_train):
    """A language model learns a deterministic corpus to a test loss < 0.05 nats per token.

    Catches: shifted inputs/targets, padding counted in the loss, a broken vocabulary or stream split.
    """
    sentences = ["the cat sat on the mat.", "a dog ran to the park.", "my bird sang all day."]
    path = _write(tmp_path / "grammar.txt", "\n".join(sentences * 120) + "\n")
    cfg = compose_train(
        "experiment=char_lm",
        f"data.path={path}",
        "data.pattern=*.txt",
        "data.batch_size=8",
        "data.eval_batch_size=1",
        "data.bptt=32",
        "model.net.hidden_size=64",
        "model.net.embedding_dim=16",
        "model.net.num_layers=1",
        "model.net.dropout=0",
        "model.net.layer_dropout=0",
        "model.optimizer.lr=0.01",
        "trainer.max_epochs=12",
        "~callbacks.early_stopping",
        "callbacks.generation_samples.max_new_tokens=30",
    )
    trained = train(cfg)
    assert trained.metrics["test/loss"] < 0.05, trained.metrics
    assert trained.metrics["test/bpc"] == pytest.approx(trained.metrics["test/loss"] / math.log(2), rel=1e-4)
    assert trained.metrics["test/ppl"] == pytest.approx(math.exp(trained.metrics["test/loss"]), rel=1e-4)

    # The GenerationSamples callback wrote text samples to TensorBoard.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    samples = []
    for event_file in (tmp_path / "tensorboard").rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(event_file), size_guidance={"tensors": 0})
        acc.Reload()
        if "samples/text_summary" in acc.Tags().get("tensors", []):
            samples += [e.tensor_proto.string_val[0].decode() for e in acc.Tensors("samples/text_summary")]
    assert len(samples) == 12 and "the" in samples[-1], samples[-1:]

    # A fresh process generates from the checkpoint alone: the corpus is gone.
    path.unlink()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [
        sys.executable,
        "-m",
        "seqmodels.cli.generate",
        f"ckpt_path={trained.best_model_path}",
        "prompt='the cat'",
        "max_new_tokens=20",
        "temperature=0",
    ]
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("the cat sat on the mat."), result.stdout

    unknown = subprocess.run(
        args[:-3] + ["prompt='the cat Q'", "max_new_tokens=5"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert unknown.returncode == 0 and "read as <unk>: 'Q'" in unknown.stderr
    assert unknown.stdout.startswith("the cat <unk>")
