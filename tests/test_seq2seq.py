"""Encoder-decoder: attention, padding invariance, beam search vs greedy, data, learning, prediction CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from seqmodels.data import CMUDictDataModule, ParallelTextDataModule, SyntheticTransductionDataModule, read_tsv_pairs
from seqmodels.nn import Attention, Seq2Seq
from seqmodels.train import train


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_attention_weights_sum_to_one_and_skip_padding(kind):
    torch.manual_seed(0)
    attention = Attention(kind, query_size=6, key_size=6)
    keys, query = torch.randn(3, 5, 6), torch.randn(3, 6)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    context, weights = attention(query, keys, mask)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    assert (weights[~mask] == 0).all() and (weights[mask] > 0).all()
    assert torch.allclose(weights[2, 0], torch.tensor(1.0))
    torch.testing.assert_close(context[2], keys[2, 0])
    with pytest.raises(ValueError, match="query_size == key_size"):
        Attention("dot", 6, 8)


def _model(cell: str = "lstm", attention: str = "additive", seed: int = 0) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(
        source_vocab_size=20,
        target_vocab_size=15,
        bos_id=2,
        eos_id=3,
        embedding_dim=8,
        hidden_size=16,
        cell=cell,
        attention=attention,
        encoder_layers=2,
    ).eval()


def _source(n: int = 6, length: int = 7, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, length + 1, (n,), generator=g)
    lengths[0] = length
    source = torch.randint(4, 20, (n, length), generator=g)
    source[torch.arange(length)[None] >= lengths[:, None]] = 0
    return source, lengths


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_encoder_memory_and_decoding_do_not_depend_on_padding(cell):
    model = _model(cell)
    source, lengths = _source()
    memory, state = model.encode(source, lengths)
    i = int(lengths.argmin())
    alone_memory, alone_state = model.encode(source[i : i + 1, : lengths[i]], lengths[i : i + 1])
    torch.testing.assert_close(memory.outputs[i, : lengths[i]], alone_memory.outputs[0], atol=1e-6, rtol=1e-5)
    assert (memory.outputs[i, lengths[i] :] == 0).all()
    rnn, alone_rnn = (state.rnn[0], alone_state.rnn[0]) if cell == "lstm" else (state.rnn, alone_state.rnn)
    torch.testing.assert_close(rnn[:, i], alone_rnn[:, 0], atol=1e-6, rtol=1e-5)
    batch_tokens, batch_lengths = model.greedy(source, lengths, 12)
    alone_tokens, alone_lengths = model.greedy(source[i : i + 1, : lengths[i]], lengths[i : i + 1], 12)
    assert batch_tokens[i, : batch_lengths[i]].tolist() == alone_tokens[0, : alone_lengths[0]].tolist()


@pytest.mark.parametrize("cell,attention", [("lstm", "additive"), ("gru", "general"), ("lstm", "none")])
def test_beam_of_one_is_greedy_and_wider_beams_never_score_worse(cell, attention):
    model = _model(cell, attention)
    source, lengths = _source(n=8, seed=1)
    greedy, greedy_lengths = model.greedy(source, lengths, 12)
    greedy_rows = [greedy[i, : greedy_lengths[i]].tolist() for i in range(8)]
    single = model.beam_search(source, lengths, beam_size=1, max_len=12, length_penalty=0.0)
    assert [hyps[0][0] for hyps in single] == greedy_rows
    greedy_scores = [hyps[0][1] for hyps in single]
    for beam in (3, 5):
        results = model.beam_search(source, lengths, beam_size=beam, max_len=12, length_penalty=0.0, n_best=3)
        for hyps, greedy_score in zip(results, greedy_scores, strict=True):
            scores = [score for _, score in hyps]
            assert scores == sorted(scores, reverse=True) and len({tuple(t) for t, _ in hyps}) == 3
            assert scores[0] >= greedy_score - 1e-5


def test_teacher_forcing_below_one_feeds_back_predictions():
    model = _model().train()
    source, lengths = _source()
    targets = torch.randint(4, 15, (6, 5))
    targets[:, 0] = 2
    torch.manual_seed(0)
    forced, _ = model(source, lengths, targets, teacher_forcing=1.0)
    torch.manual_seed(0)
    free, _ = model(source, lengths, targets, teacher_forcing=0.0)
    torch.testing.assert_close(forced[:, 0], free[:, 0])  # the first step always sees <bos>
    assert not torch.allclose(forced[:, 1:], free[:, 1:])


@pytest.mark.parametrize(
    "content,expected",
    [
        ("hello\tbonjour\nno tab here\n", r"pairs.tsv:2: no tab"),
        ("hello\tbonjour\n\n\t salut\n", r"pairs.tsv:3: empty source side"),
        ("hello\t \n", r"pairs.tsv:1: empty target side"),
        ("\n\n", "holds no source<TAB>target"),
    ],
)
def test_bad_tsv_lines_are_reported_with_line_numbers(tmp_path, content, expected):
    (tmp_path / "pairs.tsv").write_text(content)
    with pytest.raises(ValueError, match=expected):
        read_tsv_pairs(tmp_path / "pairs.tsv")


def test_parallel_text_vocabularies_come_from_training_pairs(tmp_path):
    (tmp_path / "train.tsv").write_text("a cat\tun chat\nthe dog\tle chien\n" * 5)
    (tmp_path / "test.tsv").write_text("a bird\tun oiseau\n")
    dm = ParallelTextDataModule(
        train_path=tmp_path / "train.tsv",
        val_path=tmp_path / "train.tsv",
        test_path=tmp_path / "test.tsv",
        batch_size=4,
    )
    dm.setup()
    source, target = dm.test_set[0]
    assert dm.source_vocab.decode(source) == ["a", "<unk>"]
    assert target[0] == dm.target_vocab.bos_id and target[-1] == dm.target_vocab.eos_id
    assert dm.target_tokens(target) == ["un", "<unk>"]
    batch = next(iter(dm.train_dataloader()))
    assert batch.target_lengths is not None and batch.targets.shape[0] == batch.inputs.shape[0]


def test_cmudict_splits_by_word_and_keeps_every_pronunciation():
    dm = CMUDictDataModule(max_words=3000, batch_size=32)
    dm.setup()
    words = {name: {"".join(s) for s, _ in dm.pairs[name]} for name in ("train", "val", "test")}
    assert not (words["train"] & words["test"]) and not (words["train"] & words["val"])
    assert sum(map(len, words.values())) == 3000
    phonemes = {p for _, t in dm.pairs["train"] for p in t}
    assert not any(ch.isdigit() for p in phonemes for ch in p) and len(phonemes) <= 39
    refs = dm.references["test"]
    assert len(refs) == len(dm.pairs["test"]) and all(dm.pairs["test"][i][1] == r[0] for i, r in enumerate(refs))
    stressed = CMUDictDataModule(keep_stress=True, max_words=200)
    assert any(ch.isdigit() for word, prons in stressed.pronunciations() for ch in "".join(prons[0]))


@pytest.mark.learns
def test_reversal_is_learned_and_predict_decodes_from_the_checkpoint(compose_train, tmp_path):
    """An attention encoder-decoder learns string reversal (exact match > 0.95) and predict decodes from its checkpoint.

    Catches: broken attention masking, teacher forcing, beam search or the checkpoint's vocabularies.
    """
    cfg = compose_train("experiment=reverse", "trainer.max_epochs=8", "data.num_train=3000")
    trained = train(cfg)
    assert trained.metrics["test/exact"] > 0.95, trained.metrics
    assert trained.metrics["test/ter"] < 0.02, trained.metrics
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "seqmodels.cli.predict", f"ckpt_path={trained.best_model_path}", "input=abcdef"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "abcdef\tfedcba"
    missing = subprocess.run(
        [sys.executable, "-m", "seqmodels.cli.predict", "ckpt_path=nope.ckpt", "input=ab"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert missing.returncode == 1 and missing.stderr.strip().startswith(
        "seqmodels-predict: error: checkpoint not found"
    )


def test_dates_task_generates_valid_iso_targets():
    dm = SyntheticTransductionDataModule(task="dates", num_train=50, num_val=5, num_test=5)
    dm.setup()
    import datetime as dt

    for source, target in dm.pairs["train"]:
        iso = "".join(target)
        assert dt.date.fromisoformat(iso).year >= 1950 and str(dt.date.fromisoformat(iso).year) in "".join(source)


def test_predict_output_of_a_line_does_not_depend_on_the_other_lines(compose_train, tmp_path):
    """An encoder-decoder decodes each input with the output length its own length allows, alone or beside others.

    Catches: a decoding limit taken from the longest input in the batch (an untrained model rarely emits <eos>, so
    its outputs run to the limit and a short line's output grew when a long line shared its batch).
    """
    from seqmodels.predict import predict

    cfg = compose_train(
        "experiment=reverse",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "data.num_train=32",
        "data.num_val=8",
        "data.num_test=8",
        "logger=none",
    )
    trained = train(cfg)
    # A model that never ends its output: every hypothesis runs to the decoding limit, which is what is compared.
    checkpoint = torch.load(trained.best_model_path, weights_only=True)
    checkpoint["state_dict"]["net.decoder.output.bias"][trained.task.eos_id] = -1e4
    ckpt = tmp_path / "never_ends.ckpt"
    torch.save(checkpoint, ckpt)
    base = {
        "ckpt_path": str(ckpt),
        "beam_size": 2,
        "n_best": 1,
        "length_penalty": 1.0,
        "batch_size": 64,
        "device": "cpu",
    }
    alone = predict(OmegaConf.create({**base, "input": "abc"}))
    lines = tmp_path / "inputs.txt"
    lines.write_text("abc\n" + "abcdefghijklmnopqr\n" + "abc\n", encoding="utf-8")
    together = predict(OmegaConf.create({**base, "input_file": str(lines)}))
    assert [text for text, _ in together] == ["abc", "abcdefghijklmnopqr", "abc"]
    assert together[0] == alone[0] and together[2] == alone[0]
