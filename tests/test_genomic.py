"""DNA readers (FASTA, FASTQ, GenBank, gzipped, malformed), k-mer tokens, reverse complement, the Markov baseline,
gene tags, the ORF baseline and a fast_dev_run of the DNA experiments."""

from __future__ import annotations

import gzip
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from seqmodels.data import genomic
from seqmodels.data.genomic import (
    GENE_TAGS,
    GeneTaggingDataModule,
    GenomicCorpusDataModule,
    MarkovModel,
    NucleotideTokenizer,
    RevCompAugmented,
    coding_tags,
    complement_ids,
    cut_windows,
    gene_spans,
    longest_orfs,
    normalize_sequence,
    read_fasta,
    read_fastq,
    read_genbank,
    read_sequences,
    reverse_complement,
    reverse_complement_ids,
)

needs_biopython = pytest.mark.skipif(not genomic.biopython_available(), reason="Biopython is not installed")
needs_kaptive = pytest.mark.skipif(
    not genomic.kaptive_available(), reason="kaptive-data or Biopython missing (make system-data)"
)

FASTA = ">seq1 first one\nACGTACGTNN\nacgu\n>seq2\nRYKMACGT\n"
FASTQ = "@r1\nACGTN\n+\nIIII#\n@r2 second\nGGCC\n+\n!!5I\n"


def genbank_text(sequence: str, features: str, name: str = "LOC1") -> str:
    origin = "\n".join(
        f"{i + 1:>9} " + " ".join(sequence[j : j + 10] for j in range(i, min(i + 60, len(sequence)), 10))
        for i in range(0, len(sequence), 60)
    )
    return (
        f"LOCUS       {name:<16}{len(sequence):>11} bp    DNA     linear   BCT 01-JAN-2020\n"
        f"DEFINITION  test locus {name}.\nACCESSION   {name}\nVERSION     {name}.1\nKEYWORDS    .\n"
        "SOURCE      Klebsiella pneumoniae\n  ORGANISM  Klebsiella pneumoniae\n            Bacteria.\n"
        "FEATURES             Location/Qualifiers\n"
        f'     source          1..{len(sequence)}\n                     /note="K locus: KL1"\n'
        f"{features}ORIGIN\n{origin}\n//\n"
    )


GB_SEQUENCE = "ATGAAACCCTAA" + "GGGG" + "TTAGGGTTTCAT" + "AC"  # CDS+ 1..12, CDS- 17..28 (reverse of ATGAAACCCTAA)
GB_FEATURES = (
    '     CDS             1..12\n                     /gene="fwd"\n'
    '     CDS             complement(17..28)\n                     /gene="rev"\n'
)


# ------------------------------------------------------------------------------------------------ readers
@needs_biopython
def test_fasta_reads_records_and_maps_ambiguous_bases_to_n(tmp_path):
    path = tmp_path / "x.fasta"
    path.write_text(FASTA)
    records = read_fasta(path)
    assert [r.id for r in records] == ["seq1", "seq2"]
    assert records[0].description == "seq1 first one"
    assert records[0].sequence == "ACGTACGTNNACGT"  # lower case upper-cased, U read as T, lines joined
    assert records[1].sequence == "NNNNACGT"  # IUPAC ambiguity codes -> N
    assert records[0].qualities is None and records[0].features == ()


@needs_biopython
def test_gzipped_files_read_the_same(tmp_path):
    plain, packed = tmp_path / "x.fa", tmp_path / "x.fa.gz"
    plain.write_text(FASTA)
    packed.write_bytes(gzip.compress(FASTA.encode()))
    assert [r.sequence for r in read_sequences(packed)] == [r.sequence for r in read_sequences(plain)]
    # gzip is recognised by its bytes, not its name
    hidden = tmp_path / "y.fasta"
    hidden.write_bytes(gzip.compress(FASTA.encode()))
    assert read_fasta(hidden)[1].sequence == "NNNNACGT"


@needs_biopython
def test_fastq_keeps_base_qualities(tmp_path):
    path = tmp_path / "reads.fq.gz"
    path.write_bytes(gzip.compress(FASTQ.encode()))
    records = read_fastq(path)
    assert records[0].sequence == "ACGTN"
    assert records[0].qualities == (40, 40, 40, 40, 2)
    assert records[1].qualities == (0, 0, 20, 40)


@needs_biopython
def test_genbank_features_with_strand_and_location(tmp_path):
    path = tmp_path / "locus.gbk"
    path.write_text(genbank_text(GB_SEQUENCE, GB_FEATURES))
    (record,) = read_genbank(path)
    cds = [f for f in record.features if f.type == "CDS"]
    assert [(f.start, f.end, f.strand) for f in cds] == [(0, 12, 1), (16, 28, -1)]
    assert cds[1].qualifiers["gene"] == ["rev"]
    assert record.annotations["notes"] == ["K locus: KL1"]
    assert record.sequence == GB_SEQUENCE
    # the reverse-strand gene reads, reverse-complemented, as the forward one
    assert reverse_complement(record.sequence[16:28]) == record.sequence[0:12]


@needs_biopython
@pytest.mark.parametrize(
    "name,text,needle",
    [
        ("bad.fq", "@r1\nACGT\n+\nIII\n", "record 1"),  # qualities shorter than the sequence
        ("bad2.fq", "@r1\nACGT\n+\nIIII\n@r2\nACGT\nIIII\n", "after 'r1'"),  # '+' line missing in record 2
        ("bad.fa", ">ok\nACGT\n>broken\nAC1GT\n", "record 2 (broken)"),  # a digit is no base
        ("bad.gbk", genbank_text("ACGTACGTAC", "").replace("LOCUS       LOC1", "LOCUS"), "record 1"),
    ],
)
def test_malformed_records_give_one_line_errors_naming_file_and_record(tmp_path, name, text, needle):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        read_sequences(path)
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message and needle in message


@needs_biopython
def test_missing_file_and_unknown_format_are_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_fasta(tmp_path / "nope.fa")
    odd = tmp_path / "x.txt"
    odd.write_text(FASTA)
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_sequences(odd)
    assert [r.id for r in read_sequences(odd, format="fasta")] == ["seq1", "seq2"]


def test_missing_biopython_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_bio(name, *args, **kwargs):
        if name == "Bio" or name.startswith("Bio."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_bio)
    with pytest.raises(ImportError, match=r"seqmodels\[datasets\]"):
        genomic.require_biopython()


def test_missing_kaptive_names_make_system_data(monkeypatch, tmp_path):
    monkeypatch.setattr(genomic, "KAPTIVE_DIR", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="make system-data"):
        genomic.kaptive_files()


# ------------------------------------------------------------------------------------------------ tokens
def test_normalize_rule_and_bad_characters():
    assert normalize_sequence("ac-gu.RYN") == "ACGTNNN"
    with pytest.raises(ValueError, match="'X' at base 3"):
        normalize_sequence("ACXT", "test")


def test_reverse_complement_twice_is_identity_and_complements_iupac():
    rng = random.Random(0)
    for _ in range(50):
        seq = "".join(rng.choice("ACGTRYKMSWBDHVN") for _ in range(rng.randint(0, 40)))
        assert reverse_complement(reverse_complement(seq)) == seq
    assert reverse_complement("AACGTRYB") == "VRYACGTT"


def test_reverse_complement_ids_match_the_string_transform():
    tokenizer = NucleotideTokenizer(1)
    vocab = tokenizer.vocabulary()
    table = complement_ids(vocab)
    seq = "ACGTTGCANA"
    ids = torch.tensor(vocab.encode(list(seq)))
    padded = torch.cat([ids, torch.zeros(3, dtype=torch.long)])
    flipped = reverse_complement_ids(padded, table, len(seq))
    assert vocab.decode(flipped[: len(seq)].tolist()) == list(reverse_complement(seq))
    assert flipped[len(seq) :].tolist() == [0, 0, 0]  # padding stays where it was
    assert torch.equal(reverse_complement_ids(flipped, table, len(seq)), padded)


def test_kmer_tokens_overlapping_and_not():
    seq = "ACGTNACG"
    assert NucleotideTokenizer(1)(seq) == list(seq)
    assert NucleotideTokenizer(3)(seq) == ["ACG", "N"]  # non-overlapping; the trailing 'CG' is dropped
    assert NucleotideTokenizer(3, stride=1)(seq) == ["ACG", "CGT", "N", "N", "N", "ACG"]
    tokenizer = NucleotideTokenizer(2, stride=1)
    assert tokenizer.detokenize(tokenizer("ACGTTA")) == "ACGTTA"
    assert NucleotideTokenizer(4).detokenize(NucleotideTokenizer(4)("ACGTTGCA")) == "ACGTTGCA"
    vocab = NucleotideTokenizer(3).vocabulary()
    assert len(vocab) == 2 + 1 + 64 and "N" in vocab
    with pytest.raises(ValueError, match="stride"):
        NucleotideTokenizer(3, stride=4)


# ------------------------------------------------------------------------------------------------ Markov baseline
def test_markov_model_learns_a_repeat_to_zero_bits():
    rng = np.random.default_rng(0)
    unit = rng.integers(0, 4, size=7)
    stream = np.tile(unit, 300)
    # order 0 knows only the base frequencies; order 6 sees every 7-periodic repeat coming
    low = MarkovModel(0).fit(stream).bits_per_token(stream)
    high = MarkovModel(7).fit(stream).bits_per_token(stream)
    assert low > 1.0
    assert high < 0.05


def test_markov_model_on_random_bases_is_near_two_bits_and_probabilities_sum_to_one():
    rng = np.random.default_rng(1)
    train, test = rng.integers(0, 4, size=20000), rng.integers(0, 4, size=5000)
    for smoothing in ("witten_bell", "add_one"):
        model = MarkovModel(3, smoothing).fit(train)
        assert 1.95 < model.bits_per_token(test) < 2.1
        # the distribution over the next symbol (4 bases + 'other') sums to one at every context
        context = test[:10]
        total = sum(math.exp(model.log_probs(np.append(context, x))[-1]) for x in range(model.size))
        assert total == pytest.approx(1.0, abs=1e-9)


# ------------------------------------------------------------------------------------------------ gene tags and ORFs
def test_coding_tags_and_gene_spans():
    record = genomic.GenomicRecord(
        "r",
        "",
        GB_SEQUENCE,
        features=(
            genomic.Feature("CDS", 0, 12, 1, ((0, 12),)),
            genomic.Feature("CDS", 16, 28, -1, ((16, 28),)),
            genomic.Feature("gene", 0, 30, 1, ((0, 30),)),
        ),
    )
    tags = coding_tags(record)
    assert tags[:12].tolist() == [1] * 12 and tags[12:16].tolist() == [0] * 4 and tags[16:28].tolist() == [2] * 12
    assert gene_spans(tags) == {(0, 12, 1), (16, 28, 2)}


def test_longest_orfs_finds_genes_on_both_strands():
    gene = "ATG" + "GCA" * 40 + "TAA"
    seq = "CC" + gene + "CCCC" + reverse_complement(gene) + "CC"
    tags = longest_orfs(seq, min_length=100)
    assert gene_spans(tags) == {(2, 2 + len(gene), 1), (6 + len(gene), 6 + 2 * len(gene), 2)}


def test_cut_windows_cover_the_sequence():
    assert cut_windows(2500, 1000, 1000, 100) == [(0, 1000), (1000, 2000), (2000, 2500)]
    assert cut_windows(2050, 1000, 1000, 100) == [(0, 1000), (1000, 2000)]  # a 50-base tail is too short
    assert cut_windows(50, 1000, 1000, 100) == []


def test_revcomp_augmentation_swaps_strands():
    vocab = NucleotideTokenizer(1).vocabulary()
    inputs = torch.tensor(vocab.encode(list("ATGCCC")))
    tags = torch.tensor([1, 1, 1, 0, 0, 2])
    dataset = RevCompAugmented(genomic.SequenceDataset([inputs], [tags]), complement_ids(vocab), p=1.0)
    flipped_inputs, flipped_tags = dataset[0]
    assert vocab.decode(flipped_inputs.tolist()) == list("GGGCAT")
    assert flipped_tags.tolist() == [1, 0, 0, 2, 2, 2]


# ------------------------------------------------------------------------------------------------ datamodules
def write_loci(tmp_path: Path, count: int = 10, length: int = 600) -> Path:
    rng = random.Random(0)
    path = tmp_path / "loci.gbk"
    text = ""
    for i in range(count):
        seq = "".join(rng.choice("ACGT") for _ in range(length))
        text += genbank_text(seq, "     CDS             11..310\n     CDS             complement(401..550)\n", f"L{i}")
    path.write_text(text)
    return path


@needs_biopython
def test_lm_datamodule_splits_by_locus(tmp_path):
    path = write_loci(tmp_path)
    dm = GenomicCorpusDataModule(paths=[str(path)], batch_size=4, eval_batch_size=2, bptt=50, val_fraction=0.2)
    dm.setup()
    ids = {split: {r.id for r in records} for split, records in dm.records.items()}
    assert len(ids["val"]) == 2 and len(ids["test"]) == 1 and len(ids["train"]) == 7
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"])
    assert dm.dims()["char_level"] == 1
    assert dm.streams["train"].numel() == (7 * 601 // 4) * 4  # bases plus one separator per locus
    batch = next(iter(dm.train_dataloader()))
    assert torch.equal(batch.inputs[:, 1:], batch.targets[:, :-1])
    augmented = GenomicCorpusDataModule(
        paths=[str(path)], batch_size=4, bptt=50, val_fraction=0.2, revcomp_augment=True
    )
    augmented.setup()
    assert augmented.streams["train"].numel() == (2 * 7 * 601 // 4) * 4


@needs_biopython
def test_tagging_datamodule_windows_and_tags(tmp_path):
    path = write_loci(tmp_path)
    dm = GeneTaggingDataModule(paths=[str(path)], window=200, min_length=100, revcomp_augment=0.0, batch_size=4)
    dm.setup()
    assert dm.dims()["num_tags"] == 3 and dm.dims()["tag_names"] == list(GENE_TAGS)
    assert len(dm.test_set) == 3  # one locus of 600 bases: three windows
    inputs, tags = dm.test_set[0]
    assert inputs.shape == tags.shape == (200,)
    assert tags[:10].tolist() == [0] * 10 and tags[10:200].tolist() == [1] * 190
    assert dm.inputs_from_text("AC GT n").tolist() == dm.vocab.encode(list("ACGTN"))


# ------------------------------------------------------------------------------------------------ experiments
@needs_kaptive
@pytest.mark.parametrize("experiment", ["dna_lm", "gene_tagging", "locus_classification"])
def test_experiment_fast_dev_run(compose_train, experiment):
    from seqmodels.train import train

    cfg = compose_train(f"experiment={experiment}", "debug=fdr", "data.max_records=10")
    result = train(cfg)
    assert "test/loss" in result.metrics
    assert all(math.isfinite(v) for k, v in result.metrics.items() if k.startswith(("train/", "test/")))
    if experiment == "dna_lm":
        assert "test/bpc" in result.metrics


# ------------------------------------------------------------------------------------------------ near-duplicates
def test_similarity_groups_join_near_identical_sequences_on_either_strand():
    rng = random.Random(3)
    first = "".join(rng.choice("ACGT") for _ in range(3000))
    other = "".join(rng.choice("ACGT") for _ in range(3000))
    mutated = list(first)
    for i in range(0, 3000, 300):  # 10 point mutations: still near-identical
        mutated[i] = "A" if mutated[i] != "A" else "C"
    groups = genomic.similarity_groups([first, other, reverse_complement("".join(mutated))], threshold=0.5)
    assert groups[0] == groups[2] != groups[1]


@needs_biopython
def test_locus_classification_keeps_groups_in_one_split(tmp_path):
    rng = random.Random(4)
    files = {}
    for name in ("a", "b"):
        text = ""
        for i in range(6):
            seq = "".join(rng.choice("ACGT" if name == "a" else "AAT") for _ in range(1200))
            text += f">{name}{i}\n{seq}\n>{name}{i}copy\n{seq[:1100]}\n"  # each locus has a near-identical copy
        (tmp_path / f"{name}.fa").write_text(text)
        files[name] = str(tmp_path / f"{name}.fa")
    dm = genomic.LocusClassificationDataModule(classes=files, window=500, val_fraction=0.2, test_fraction=0.2)
    dm.setup()
    where = {record.id: split for split, items in dm.records.items() for record, _ in items}
    assert all(where[f"{name}{i}"] == where[f"{name}{i}copy"] for name in "ab" for i in range(6))
    assert {split for split in where.values()} == {"train", "val", "test"}
    assert dm.dims()["num_classes"] == 2 and dm.class_names == ["a", "b"]
    inputs, label = dm.test_set[0]
    assert inputs.shape == (500,) and int(label) in (0, 1)


@needs_kaptive
def test_predict_reads_a_fasta_file_one_record_per_input(compose_train, tmp_path):
    """``seqmodels-predict input_file=x.fasta`` on a gene tagger: one answer per record, one tag per base."""
    from omegaconf import OmegaConf

    from seqmodels.predict import predict_from_checkpoint
    from seqmodels.train import train

    cfg = compose_train(
        "experiment=gene_tagging",
        "data.max_records=10",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "logger=none",
    )
    ckpt = train(cfg).best_model_path
    fasta = tmp_path / "reads.fasta"
    fasta.write_text(">one\nACGTACGTAA\n>two\nGGGCCCTTTAAANNN\n", encoding="utf-8")
    predict_cfg = OmegaConf.create(
        {"ckpt_path": ckpt, "input_file": str(fasta), "input": None, "device": "cpu", "n_best": 1, "batch_size": 64}
    )
    _, results = predict_from_checkpoint(predict_cfg)
    assert [text for text, _ in results] == ["ACGTACGTAA", "GGGCCCTTTAAANNN"]
    for text, best in results:
        tags = best[0][0].split()
        assert len(tags) == len(text) and set(tags) <= set(GENE_TAGS)
