"""Sequence tagging: CoNLL reading, BIO entity F1, padding invariance, learning, errors on bad input."""

from __future__ import annotations

import pytest
import torch

from seqmodels.data import CoNLLTaggingDataModule, demo_ner_path, read_conll
from seqmodels.nn import RecurrentEncoder, SequenceTaggerNet, TokenEmbedding
from seqmodels.tasks.tagging import EntityF1, bio_spans
from seqmodels.train import train


def test_bio_spans_follow_conlleval():
    assert bio_spans(["B-PER", "I-PER", "O", "B-LOC"]) == {("PER", 0, 2), ("LOC", 3, 4)}
    assert bio_spans(["I-ORG", "I-ORG", "B-ORG"]) == {("ORG", 0, 2), ("ORG", 2, 3)}  # I- may open an entity
    assert bio_spans(["B-PER", "I-LOC"]) == {("PER", 0, 1), ("LOC", 1, 2)}  # a type change ends the entity
    assert bio_spans(["O", "O"]) == set()


def test_entity_f1_counts_exact_matches_and_skips_padding():
    names = ["B-PER", "I-PER", "O"]
    f1 = EntityF1(names)
    # Row 0: gold PER(0,2); predicted PER(0,1) -> wrong boundary. Row 1: gold PER(0,1), predicted right;
    # the padded step (-100) would otherwise add a predicted entity.
    targets = torch.tensor([[0, 1, 2], [0, 2, -100]])
    preds = torch.tensor([[0, 2, 2], [0, 2, 0]])
    f1.update(preds, targets)
    # 1 true positive, 2 predicted, 2 actual -> F1 = 2 * 1 / 4
    assert f1.compute().item() == pytest.approx(0.5)


def test_read_conll_sentences_and_errors(tmp_path):
    sentences = read_conll(demo_ner_path())
    assert len(sentences) == 1200 and all(len(s.tokens) == len(s.tags) for s in sentences)
    assert sentences[0].line == 3  # after the -DOCSTART- line and a blank line
    (tmp_path / "empty.conll").write_text("\n\n")
    with pytest.raises(ValueError, match="no tagged sentences"):
        read_conll(tmp_path / "empty.conll")
    (tmp_path / "one.conll").write_text("EU B-ORG\nrejects\n")
    with pytest.raises(ValueError, match=r"one.conll:2: 1 column\(s\)"):
        read_conll(tmp_path / "one.conll", tag_column=1)
    with pytest.raises(FileNotFoundError, match="tagging file not found"):
        read_conll(tmp_path / "missing.conll")


def test_unknown_tag_at_test_time_is_a_clear_error(tmp_path):
    (tmp_path / "train.conll").write_text("Anna B-PER\nsings O\n\nBob B-PER\nruns O\n")
    (tmp_path / "test.conll").write_text("Paris B-LOC\nsleeps O\n")
    dm = CoNLLTaggingDataModule(
        train_path=tmp_path / "train.conll", val_path=tmp_path / "train.conll", test_path=tmp_path / "test.conll"
    )
    with pytest.raises(ValueError, match=r"line 1: tag 'B-LOC' never occurs in the training data"):
        dm.setup()


def test_unknown_words_read_as_unk_and_dims_carry_the_tags(tmp_path):
    (tmp_path / "train.conll").write_text("Anna B-PER\nsings O\n\nBob B-PER\nruns O\n")
    (tmp_path / "test.conll").write_text("Zed B-PER\nsings O\n")
    dm = CoNLLTaggingDataModule(
        train_path=tmp_path / "train.conll", val_path=tmp_path / "train.conll", test_path=tmp_path / "test.conll"
    )
    dm.setup()
    inputs, targets = dm.test_set[0]
    assert inputs.tolist() == [dm.vocab.unk_id, dm.vocab.stoi["sings"]]
    assert dm.dims()["tag_names"] == ["B-PER", "O"] and targets.tolist() == [0, 1]


def test_tagger_scores_do_not_depend_on_padding():
    torch.manual_seed(0)
    encoder = RecurrentEncoder("lstm", input_size=6, hidden_size=5, bidirectional=True, batch_first=True)
    net = SequenceTaggerNet(encoder, num_tags=4, frontend=TokenEmbedding(20, 6)).eval()
    short = torch.randint(1, 20, (1, 3))
    batch = torch.cat([torch.cat([short, torch.zeros(1, 4, dtype=torch.long)], 1), torch.randint(1, 20, (1, 7))])
    alone = net(short, torch.tensor([3]))
    scores = net(batch, torch.tensor([3, 7]))
    torch.testing.assert_close(scores[0, :3], alone[0], atol=1e-6, rtol=1e-5)
    assert (scores[0, 3:] == 0).all()
    with pytest.raises(ValueError, match="batch_first=True"):
        SequenceTaggerNet(RecurrentEncoder("gru", input_size=6, hidden_size=5), num_tags=4)


@pytest.mark.learns
def test_ner_experiment_learns_the_demo_corpus_and_its_checkpoint_alone_tags_sentences(compose_train, caplog):
    """The NER experiment learns its demo corpus (token accuracy > 0.95, entity F1 > 0.85) and its checkpoint tags text.

    Catches: tags misaligned with tokens, padding counted in loss or result.metrics, a broken bidirectional encoder.
    """
    from omegaconf import OmegaConf

    from seqmodels.predict import label_texts

    cfg = compose_train("experiment=ner", "trainer.max_epochs=5")
    result = train(cfg)
    assert result.metrics["test/acc"] > 0.95, result.metrics
    assert result.metrics["test/f1"] > 0.85, result.metrics

    # seqmodels-predict with the checkpoint alone: one tag per word, as the gold file has them.
    sentences = read_conll(demo_ner_path())[:40]
    options = {
        "ckpt_path": result.best_model_path,
        "input": None,
        "n_best": 1,
        "batch_size": 16,
        "device": "cpu",
        "weights_only": True,
    }
    path = cfg.paths.output_dir + "/sentences.txt"
    with open(path, "w") as handle:
        handle.write("\n".join(" ".join(s.tokens) for s in sentences) + "\n")
    results = label_texts(OmegaConf.create({**options, "input_file": path}))
    assert [text for text, _ in results] == [" ".join(s.tokens) for s in sentences]
    predicted = [outputs[0][0].split() for _, outputs in results]
    assert all(len(tags) == len(s.tags) for tags, s in zip(predicted, sentences, strict=True))
    correct = sum(
        p == g for tags, s in zip(predicted, sentences, strict=True) for p, g in zip(tags, s.tags, strict=True)
    )
    assert correct / sum(len(s.tags) for s in sentences) > 0.9
    # A word the vocabulary lacks is read as <unk>, and said so.
    with caplog.at_level("WARNING"):
        ((text, [(tags, _)]),) = label_texts(OmegaConf.create({**options, "input": "Zyxwvut visits Paris"}))
    assert len(tags.split()) == 3 and "'Zyxwvut'" in caplog.text
    with pytest.raises(ValueError, match="set n_best=1"):
        label_texts(OmegaConf.create({**options, "input": "EU rejects", "n_best": 2}))
