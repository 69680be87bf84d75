"""DNA and genomic sequences: FASTA, FASTQ and GenBank readers, nucleotide and k-mer tokens, datamodules.

Reading goes through Biopython's ``Bio.SeqIO`` (``pip install 'seqmodels[datasets]'``, i.e. ``biopython``); files
may be gzip-compressed (recognised by their first bytes, whatever their name). A record Biopython cannot parse, or
whose sequence holds a character that is no IUPAC nucleotide code, is a one-line ``ValueError`` naming the file
and the record.

Ambiguous bases (the rule every reader and tokenizer here follows):

* letters are upper-cased and ``U`` reads as ``T``; gap characters ``-`` and ``.`` are dropped (positions of
  GenBank features refer to the ungapped sequence, which GenBank files always are);
* every IUPAC ambiguity code (``N R Y K M S W B D H V``) becomes ``N``: models see five symbols ``A C G T N``;
* a k-mer that contains an ``N`` is the single token ``N`` (so the k-mer vocabulary is the ``4**k`` k-mers plus
  ``N``);
* windows cut for tagging or classification are dropped when more than ``max_ambiguous`` (default 10%) of their
  bases are ``N``; language-model streams keep every base, ``N`` included.

Data that works offline: Debian's ``kaptive-data`` (annotated GenBank capsule loci of *Klebsiella* and
*Acinetobacter*, :func:`kaptive_files`) and ``bowtie2-examples`` (the lambda phage genome and simulated reads,
:func:`lambda_phage_files`); ``make system-data`` installs both.
"""

from __future__ import annotations

import gzip
import io
import logging
import math
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from seqmodels.data.datamodule import MissingDataFileError, SequenceDataModule, SequenceDataset
from seqmodels.data.language import LanguageModelDataModule, StreamWindows, batchify
from seqmodels.data.text import Vocabulary, make_tokenizer

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
BASES = "ACGT"
AMBIGUOUS = "RYKMSWBDHVN"
IUPAC = set(BASES + "U" + AMBIGUOUS)
GAPS = "-."
_COMPLEMENT = str.maketrans("ACGTURYKMSWBDHVNacgturykmswbdhvn", "TGCAAYRMKSWVHDBNtgcaayrmkswvhdbn")
_NORMALIZE = str.maketrans({**{c: "N" for c in AMBIGUOUS}, "U": "T"})
FORMATS = {
    "fasta": "fasta",
    "fa": "fasta",
    "fna": "fasta",
    "fas": "fasta",
    "ffn": "fasta",
    "fastq": "fastq",
    "fq": "fastq",
    "genbank": "genbank",
    "gb": "genbank",
    "gbk": "genbank",
    "gbff": "genbank",
}
KAPTIVE_DIR = Path("/usr/share/kaptive/reference_database")
BOWTIE2_EXAMPLES_DIR = Path("/usr/share/doc/bowtie2/examples")
#: The kaptive loci the experiments read by default: the K (capsule) loci of Klebsiella and Acinetobacter.
KAPTIVE_DEFAULT = ("Klebsiella_k_locus_primary_reference.gbk", "Acinetobacter_baumannii_k_locus_primary_reference.gbk")


# ------------------------------------------------------------------------------------------------- availability
def biopython_available() -> bool:
    try:
        import Bio.SeqIO  # noqa: F401
    except ImportError:
        return False
    return True


def require_biopython() -> Any:
    """``Bio.SeqIO``, or a one-line ``ImportError`` saying how to install it."""
    try:
        from Bio import SeqIO
    except ImportError:
        raise ImportError(
            "reading FASTA/FASTQ/GenBank needs Biopython: pip install 'seqmodels[datasets]' (or pip install biopython)"
        ) from None
    return SeqIO


def kaptive_files(names: Iterable[str] = KAPTIVE_DEFAULT) -> list[Path]:
    """Paths of kaptive-data's GenBank files; a one-line error naming the package when it is not installed."""
    if not KAPTIVE_DIR.is_dir():
        raise MissingDataFileError(
            f"{KAPTIVE_DIR} not found: the DNA experiments read Debian's kaptive-data package; run make system-data "
            "(or apt-get install kaptive-data), or pass data.paths=[your.gbk]"
        )
    paths = [KAPTIVE_DIR / name for name in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise MissingDataFileError(f"kaptive-data lacks {', '.join(missing)}; reinstall it (make system-data)")
    return paths


def kaptive_available() -> bool:
    return biopython_available() and all((KAPTIVE_DIR / name).is_file() for name in KAPTIVE_DEFAULT)


def lambda_phage_files() -> dict[str, Path]:
    """bowtie2-examples' lambda phage genome (``reference``, FASTA) and reads (``reads_1``, ``reads_2``,
    ``longreads``: FASTQ), all gzipped; a one-line error naming the package when it is not installed."""
    paths = {
        "reference": BOWTIE2_EXAMPLES_DIR / "reference" / "lambda_virus.fa.gz",
        "reads_1": BOWTIE2_EXAMPLES_DIR / "reads" / "reads_1.fq.gz",
        "reads_2": BOWTIE2_EXAMPLES_DIR / "reads" / "reads_2.fq.gz",
        "longreads": BOWTIE2_EXAMPLES_DIR / "reads" / "longreads.fq.gz",
    }
    if not paths["reference"].is_file():
        raise MissingDataFileError(
            f"{paths['reference']} not found: install Debian's bowtie2-examples (make system-data)"
        )
    return paths


# ------------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Feature:
    """An annotated feature: 0-based ``start`` / exclusive ``end`` on the forward strand, ``strand`` +1, -1 or 0
    (unknown), ``parts`` the ``(start, end)`` pieces of a joined location, and the feature's qualifiers."""

    type: str
    start: int
    end: int
    strand: int
    parts: tuple[tuple[int, int], ...]
    qualifiers: dict[str, list[str]] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return sum(end - start for start, end in self.parts)


@dataclass(frozen=True)
class GenomicRecord:
    """One sequence read from a file: normalised ``sequence`` (see the module's ambiguous-base rule), per-base
    Phred ``qualities`` (FASTQ only), ``features`` (GenBank only) and ``annotations`` (e.g. ``organism``,
    ``notes``: the source feature's notes, where kaptive names the locus type)."""

    id: str
    description: str
    sequence: str
    qualities: tuple[int, ...] | None = None
    features: tuple[Feature, ...] = ()
    annotations: dict[str, Any] = field(default_factory=dict, compare=False)
    source: str = ""

    def __len__(self) -> int:
        return len(self.sequence)


def normalize_sequence(sequence: str, where: str = "sequence") -> str:
    """Upper-cases, reads ``U`` as ``T``, drops gaps and maps IUPAC ambiguity codes to ``N``; a character that
    is not a nucleotide code is a one-line ``ValueError`` naming ``where``."""
    text = sequence.upper()
    for gap in GAPS:
        text = text.replace(gap, "")
    bad = set(text) - IUPAC
    if bad:
        position = min(text.index(c) for c in bad)
        raise ValueError(
            f"{where}: {text[position]!r} at base {position + 1} is not a nucleotide code (IUPAC: ACGTU RYKMSWBDHVN); "
            "fix or remove the record"
        )
    return text.translate(_NORMALIZE)


def reverse_complement(sequence: str) -> str:
    """The reverse complement (IUPAC codes complemented too: R<->Y, K<->M, B<->V, D<->H; N, S, W themselves)."""
    return sequence.translate(_COMPLEMENT)[::-1]


def guess_format(path: str | Path) -> str:
    """``fasta``, ``fastq`` or ``genbank`` from the file name (``.fa``, ``.fq``, ``.gbk``, ..., optionally ``.gz``)."""
    suffixes = [s.lstrip(".").lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in ("gz", "gzip"):
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in FORMATS:
        return FORMATS[suffixes[-1]]
    raise ValueError(
        f"{path}: cannot tell the format from the name; use a .fasta/.fa, .fastq/.fq or .gbk/.gb name (optionally "
        "with .gz) or pass format='fasta'|'fastq'|'genbank'"
    )


def open_text(path: str | Path) -> io.TextIOBase:
    """Opens a text file, decompressing it when it starts with the gzip magic bytes."""
    path = Path(path)
    with path.open("rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="strict")
    return path.open("r", encoding="utf-8")


def _feature(feature: Any) -> Feature:
    location = feature.location
    parts = tuple((int(p.start), int(p.end)) for p in getattr(location, "parts", [location]))
    return Feature(
        type=feature.type,
        start=int(location.start),
        end=int(location.end),
        strand=int(location.strand or 0),
        parts=parts,
        qualifiers={k: [str(v) for v in vs] for k, vs in feature.qualifiers.items()},
    )


def _record(raw: Any, fmt: str, where: str, source: str) -> GenomicRecord:
    try:
        text = str(raw.seq)
    except Exception as exc:  # an undefined sequence (GenBank without ORIGIN)
        raise ValueError(f"{where}: no sequence ({exc}); fix or remove the record") from None
    sequence = normalize_sequence(text, where)
    qualities = None
    if fmt == "fastq":
        phred = raw.letter_annotations.get("phred_quality")
        qualities = tuple(int(q) for q in phred) if phred is not None else None
        if qualities is not None and len(qualities) != len(sequence):
            raise ValueError(f"{where}: gap characters in a FASTQ sequence leave qualities unaligned; remove them")
    features: tuple[Feature, ...] = ()
    annotations: dict[str, Any] = {}
    if fmt == "genbank":
        features = tuple(_feature(f) for f in raw.features if f.location is not None)
        bad = next((f for f in features if f.end > len(sequence) or f.start < 0), None)
        if bad is not None:
            raise ValueError(
                f"{where}: {bad.type} feature {bad.start + 1}..{bad.end} lies outside the {len(sequence)}-base "
                "sequence; fix the record's location"
            )
        notes = [n for f in raw.features if f.type == "source" for n in f.qualifiers.get("note", [])]
        annotations = {"organism": raw.annotations.get("organism", ""), "notes": notes}
    return GenomicRecord(
        id=raw.id,
        description=raw.description,
        sequence=sequence,
        qualities=qualities,
        features=features,
        annotations=annotations,
        source=source,
    )


def iter_records(path: str | Path, format: str | None = None) -> Iterator[GenomicRecord]:
    """Records of a FASTA, FASTQ or GenBank file (gzipped or not), as :class:`GenomicRecord`.

    Errors are one line naming the file and the record: a missing file, a record Biopython cannot parse (named
    by its number and the id of the record before it), or a sequence with a non-nucleotide character.
    """
    seqio = require_biopython()
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingDataFileError(f"sequence file not found: {path}; pass data.paths=[/path/to/file.gbk]")
    fmt = FORMATS.get(format.lower(), "") if format else guess_format(path)
    if not fmt:
        raise ValueError(f"unknown sequence format {format!r}; choose fasta, fastq or genbank")
    previous = None
    number = 0
    with open_text(path) as handle, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Biopython warns about odd but readable headers; errors are raised below
        records = seqio.parse(handle, fmt)
        while True:
            number += 1
            try:
                raw = next(records)
            except StopIteration:
                break
            except (ValueError, AssertionError, IndexError, KeyError, TypeError, UnicodeDecodeError) as exc:
                after = f", after {previous!r}" if previous else ""
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise ValueError(
                    f"{path}: malformed {fmt} record {number}{after}: {reason}; fix or remove that record"
                ) from None
            where = f"{path}: {fmt} record {number} ({raw.id})"
            yield _record(raw, fmt, where, str(path))
            previous = raw.id
    if number == 1:
        raise ValueError(f"{path} holds no {fmt} records; check the file and its format")


def read_sequences(path: str | Path, format: str | None = None) -> list[GenomicRecord]:
    """All records of one file (see :func:`iter_records`)."""
    return list(iter_records(path, format))


def read_fasta(path: str | Path) -> list[GenomicRecord]:
    return read_sequences(path, "fasta")


def read_fastq(path: str | Path) -> list[GenomicRecord]:
    return read_sequences(path, "fastq")


def read_genbank(path: str | Path) -> list[GenomicRecord]:
    return read_sequences(path, "genbank")


def read_many(paths: Sequence[str | Path], format: str | None = None) -> list[GenomicRecord]:
    records = [record for path in paths for record in iter_records(path, format)]
    if not records:
        raise ValueError(f"no sequences in {', '.join(map(str, paths))}")
    return records


# ------------------------------------------------------------------------------------------------- tokens
class NucleotideTokenizer:
    """Single nucleotides (``k=1``) or k-mers, overlapping (``stride=1``) or not (``stride=k``, the default).

    Sequences are normalised first (:func:`normalize_sequence`); a k-mer with an ``N`` is the token ``N``. A
    trailing piece shorter than ``k`` is dropped. The vocabulary is fixed (it does not depend on the data):
    ``<pad>``, ``<unk>``, then ``specials``, then ``N`` and the ``4**k`` k-mers in lexicographic order.
    """

    kind = "nucleotide"

    def __init__(self, k: int = 1, stride: int | None = None) -> None:
        if not 1 <= k <= 8:
            raise ValueError(f"k must be in 1..8 (4**k tokens), got {k}")
        stride = k if stride is None else stride
        if not 1 <= stride <= k:
            raise ValueError(f"stride must be in 1..k={k} (1: overlapping k-mers, k: non-overlapping), got {stride}")
        self.k = k
        self.stride = stride

    def __call__(self, sequence: str) -> list[str]:
        text = normalize_sequence(sequence)
        k = self.k
        if k == 1:
            return list(text)
        return ["N" if "N" in text[i : i + k] else text[i : i + k] for i in range(0, len(text) - k + 1, self.stride)]

    def detokenize(self, tokens: Iterable[str]) -> str:
        """Tokens back to bases (exact for non-overlapping k-mers; overlapping ones contribute their first
        ``stride`` bases, the last its whole k-mer). ``N`` tokens read as ``k`` N's."""
        tokens = [t if t != "N" else "N" * self.k for t in tokens]
        if self.stride == self.k or not tokens:
            return "".join(tokens)
        return "".join(t[: self.stride] for t in tokens[:-1]) + tokens[-1]

    def vocabulary(self, specials: Sequence[str] = ()) -> Vocabulary:
        import itertools

        kmers = ["".join(p) for p in itertools.product(BASES, repeat=self.k)]
        return Vocabulary([Vocabulary.PAD, Vocabulary.UNK, *specials, "N", *kmers])

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "k": self.k, "stride": self.stride}

    def __repr__(self) -> str:
        return f"NucleotideTokenizer(k={self.k}, stride={self.stride})"


def complement_ids(vocab: Vocabulary) -> Tensor:
    """For a single-nucleotide vocabulary: id -> id of the complementary base (specials and N map to themselves)."""
    table = torch.arange(len(vocab))
    for base, other in zip("ACGT", "TGCA", strict=True):
        if base in vocab and other in vocab:
            table[vocab.stoi[base]] = vocab.stoi[other]
    return table


def reverse_complement_ids(ids: Tensor, complement: Tensor, length: int | None = None) -> Tensor:
    """Reverse complement of a 1-D id sequence (its first ``length`` ids; the rest, padding, stays in place)."""
    length = ids.shape[0] if length is None else int(length)
    out = ids.clone()
    out[:length] = complement[ids[:length].flip(0)]
    return out


# ------------------------------------------------------------------------------------------------- language model
class GenomicCorpusDataModule(LanguageModelDataModule):
    """A nucleotide language model over FASTA/GenBank sequences, read as truncated-BPTT streams.

    Records (loci, contigs) are split *by record*, seeded: ``val_fraction`` and ``test_fraction`` of them are held
    out whole, so no held-out base was seen in training. Each split's records are joined into one stream with a
    line break between records and read exactly as :class:`~seqmodels.data.TextCorpusDataModule` reads text:
    ``batch_size`` parallel streams in windows of ``bptt`` tokens, the state carried across windows.

    Args:
        paths: FASTA/FASTQ/GenBank files (gzipped or not); default: kaptive-data's K loci (:func:`kaptive_files`).
        format: ``fasta`` | ``fastq`` | ``genbank``; default: from each file name.
        k: tokens are non-overlapping k-mers (``k=1``: single nucleotides, ``char_level``: ``bpc`` is bits per
            base; for ``k > 1`` bits per base are bits per token / k).
        revcomp_augment: train on each training record's reverse complement too (doubles the training stream).
        max_records: read at most this many records per file (quick runs).
        bptt, variable_bptt, eval_batch_size: as :class:`~seqmodels.data.TextCorpusDataModule`.
        **base: :class:`SequenceDataModule` arguments; ``batch_size`` is the number of parallel streams.
    """

    SEPARATOR = "\n"

    def __init__(
        self,
        paths: Sequence[str] | str | None = None,
        format: str | None = None,
        k: int = 1,
        revcomp_augment: bool = False,
        max_records: int | None = None,
        bptt: int = 100,
        variable_bptt: bool = False,
        val_fraction: float = 0.05,
        test_fraction: float = 0.1,
        eval_batch_size: int | None = None,
        **base: Any,
    ) -> None:
        super().__init__(val_fraction=val_fraction, **base)
        if not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction + test_fraction must leave records to train on, got {val_fraction} + {test_fraction}"
            )
        if bptt < 1:
            raise ValueError(f"bptt must be >= 1, got {bptt}")
        self.paths = [paths] if isinstance(paths, str) else list(paths) if paths is not None else None
        self.format = format
        self.nucleotides = NucleotideTokenizer(k)
        self.k = k
        # k = 1: the text tokenizer of character models (prompts and samples are plain bases).
        self.tokenizer = make_tokenizer("char", lowercase=False) if k == 1 else None
        self.revcomp_augment = revcomp_augment
        self.max_records = max_records
        self.bptt = bptt
        self.variable_bptt = variable_bptt
        self.test_fraction = test_fraction
        self.eval_batch_size = eval_batch_size or self.batch_size
        self.streams: dict[str, Tensor] = {}
        self.records: dict[str, list[GenomicRecord]] = {}

    @property
    def char_level(self) -> bool:
        return self.k == 1

    def files(self) -> list[Path]:
        return [Path(p).expanduser() for p in self.paths] if self.paths else kaptive_files()

    def read_records(self) -> list[GenomicRecord]:
        records: list[GenomicRecord] = []
        for path in self.files():
            found = iter_records(path, self.format)
            for index, record in enumerate(found):
                if self.max_records is not None and index >= self.max_records:
                    break
                if len(record) >= self.k:
                    records.append(record)
        if not records:
            raise ValueError(f"no sequences of at least k={self.k} bases in {', '.join(map(str, self.files()))}")
        return records

    def split_records(self, records: list[GenomicRecord]) -> dict[str, list[GenomicRecord]]:
        """Seeded split by record; every split gets at least one record when its fraction is > 0."""
        order = np.random.default_rng(self.seed).permutation(len(records))
        num_test = max(1, round(self.test_fraction * len(records))) if self.test_fraction > 0 else 0
        num_val = max(1, round(self.val_fraction * len(records))) if self.val_fraction > 0 else 0
        if num_val + num_test >= len(records):
            raise ValueError(
                f"{len(records)} record(s) cannot be split into train/val/test by record; add sequences or lower "
                "data.val_fraction / data.test_fraction"
            )
        pick = lambda idx: [records[i] for i in sorted(idx)]  # noqa: E731
        return {
            "train": pick(order[num_val + num_test :]),
            "val": pick(order[:num_val]),
            "test": pick(order[num_val : num_val + num_test]),
        }

    def stream_tokens(self, records: Iterable[GenomicRecord], augment: bool = False) -> list[str]:
        tokens: list[str] = []
        for record in records:
            sequences = [record.sequence, reverse_complement(record.sequence)] if augment else [record.sequence]
            for sequence in sequences:
                tokens.extend(self.nucleotides(sequence))
                tokens.append(self.SEPARATOR)
        return tokens

    def build(self) -> None:
        self.records = self.split_records(self.read_records())
        if self.vocab is None:
            self.vocab = self.nucleotides.vocabulary(specials=(self.SEPARATOR,))
        for split, records in self.records.items():
            num_streams = self.batch_size if split == "train" else self.eval_batch_size
            if not records:
                self.streams[split] = torch.empty(num_streams, 0, dtype=torch.long)
                continue
            tokens = self.stream_tokens(records, augment=self.revcomp_augment and split == "train")
            if len(tokens) < num_streams * 2:
                raise ValueError(
                    f"the {split} split has {len(tokens)} tokens, fewer than two per stream ({num_streams} streams); "
                    "use more sequences or a smaller data.batch_size / data.eval_batch_size"
                )
            ids = torch.tensor(self.vocab.encode(tokens), dtype=torch.long)
            self.streams[split] = batchify(ids, num_streams)
        self.train_set = StreamWindows(self.streams["train"], self.bptt, self.variable_bptt, seed=self.seed)
        self.val_set = StreamWindows(self.streams["val"], self.bptt) if self.streams["val"].numel() else []
        self.test_set = StreamWindows(self.streams["test"], self.bptt) if self.streams["test"].numel() else []

    def tokenize(self, text: str) -> list[str]:
        return self.nucleotides("".join(text.split()))

    def prompt_prefix(self) -> list[int]:
        vocab = self._require_vocab()
        return [vocab.stoi[self.SEPARATOR]]  # generation starts as a new record does

    def num_tokens(self, split: str) -> int:
        self._require(f"{split}_set")
        return self.streams[split].numel()

    def bases_per_token(self) -> int:
        return self.k


# ------------------------------------------------------------------------------------------------- Markov baseline
class MarkovModel:
    """An order-``k`` Markov model over token ids: ``P(x_t | x_{t-k} .. x_{t-1})``.

    ``smoothing="witten_bell"`` interpolates every order with the one below it (Witten-Bell backoff, down to an
    add-one unigram); ``"add_one"`` uses Laplace counts of order ``k`` alone. Contexts are cut at the start of a
    stream (the first positions use the orders they have). Counts are kept sparse (sorted codes), so memory grows
    with the contexts seen, not with ``V**k``.
    """

    def __init__(self, order: int, smoothing: str = "witten_bell") -> None:
        if order < 0:
            raise ValueError(f"order must be >= 0, got {order}")
        if smoothing not in ("witten_bell", "add_one"):
            raise ValueError(f"smoothing must be 'witten_bell' or 'add_one', got {smoothing!r}")
        self.order = order
        self.smoothing = smoothing
        self.alphabet: np.ndarray | None = None
        self.tables: list[dict[str, np.ndarray]] = []

    def _codes(self, rows: Sequence[np.ndarray]) -> list[np.ndarray]:
        assert self.alphabet is not None
        lookup = np.full(int(self.alphabet.max()) + 2, len(self.alphabet), dtype=np.int64)
        lookup[self.alphabet] = np.arange(len(self.alphabet))
        return [lookup[np.minimum(np.asarray(r, dtype=np.int64), len(lookup) - 1)] for r in rows]

    @property
    def size(self) -> int:
        assert self.alphabet is not None
        return len(self.alphabet) + 1  # the symbols seen in training, plus one for any other

    @staticmethod
    def _context(row: np.ndarray, order: int, size: int) -> np.ndarray:
        """Code of the ``order`` symbols before each position t >= order: (len(row) - order,)."""
        code = np.zeros(len(row) - order, dtype=np.int64)
        for j in range(order):
            code = code * size + row[j : len(row) - order + j]
        return code

    def fit(self, rows: Sequence[np.ndarray] | np.ndarray) -> MarkovModel:
        rows = [np.asarray(r) for r in rows] if not isinstance(rows, np.ndarray) or rows.ndim == 2 else [rows]
        self.alphabet = np.unique(np.concatenate(rows))
        if math.log(self.size) * (self.order + 1) > math.log(2**62):
            raise ValueError(f"order {self.order} with {self.size} symbols overflows the context codes; lower k")
        coded = self._codes(rows)
        size = self.size
        self.tables = []
        for order in range(self.order + 1):
            joint = [self._context(r, order, size) * size + r[order:] for r in coded if len(r) > order]
            codes, counts = np.unique(np.concatenate(joint), return_counts=True)
            contexts, context_counts = np.unique(codes // size, return_counts=True)  # types per context
            totals = np.zeros(len(contexts), dtype=np.int64)
            np.add.at(totals, np.searchsorted(contexts, codes // size), counts)
            self.tables.append(
                {"codes": codes, "counts": counts, "contexts": contexts, "totals": totals, "types": context_counts}
            )
        return self

    @staticmethod
    def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
        at = np.searchsorted(keys, query).clip(max=len(keys) - 1)
        return np.where(keys[at] == query, values[at], 0)

    def log_probs(self, row: np.ndarray) -> np.ndarray:
        """Natural log-probability of every token of ``row`` after the first: (len(row) - 1,)."""
        if self.alphabet is None:
            raise RuntimeError("MarkovModel.fit first")
        (coded,) = self._codes([np.asarray(row)])
        size = self.size
        targets = coded[1:]
        n = len(targets)
        prob = np.full(n, 1.0 / size)
        for order in range(self.order + 1):
            table = self.tables[order]
            # positions t (1..n) with at least `order` symbols before them: t >= order
            first = max(order, 1)
            if first > n:
                break
            context = self._context(coded[: n + 1], order, size)[first - order :]  # contexts for t = first..n
            context = context[: n - first + 1]
            joint = context * size + coded[first : n + 1]
            count = self._lookup(table["codes"], table["counts"], joint).astype(np.float64)
            total = self._lookup(table["contexts"], table["totals"], context).astype(np.float64)
            types = self._lookup(table["contexts"], table["types"], context).astype(np.float64)
            lower = prob[first - 1 :]
            if order == 0 or self.smoothing == "add_one":
                estimate = (count + 1.0) / (total + size)  # add-one: the highest order a position has wins
            else:
                seen = total > 0
                estimate = np.where(seen, (count + types * lower) / np.maximum(total + types, 1.0), lower)
            prob[first - 1 :] = estimate
        return np.log(prob)

    def bits_per_token(self, rows: Sequence[np.ndarray] | np.ndarray) -> float:
        rows = list(rows) if not isinstance(rows, np.ndarray) or rows.ndim == 2 else [rows]
        total, count = 0.0, 0
        for row in rows:
            if len(row) > 1:
                lp = self.log_probs(np.asarray(row))
                total -= float(lp.sum())
                count += len(lp)
        return total / max(count, 1) / math.log(2.0)


def markov_table(
    train: Sequence[np.ndarray], test: Sequence[np.ndarray], orders: Iterable[int] = range(1, 9)
) -> list[dict[str, float]]:
    """Bits per token on ``test`` of Markov models fit on ``train``, for each order and both smoothings."""
    rows = []
    for order in orders:
        start = time.perf_counter()
        row: dict[str, float] = {"k": order}
        for smoothing in ("witten_bell", "add_one"):
            model = MarkovModel(order, smoothing).fit(train)
            row[smoothing] = model.bits_per_token(test)
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------- gene tagging
#: Per-base tags of :class:`GeneTaggingDataModule`: outside coding sequences, inside a CDS on the forward
#: strand, inside a CDS on the reverse strand.
GENE_TAGS = ("noncoding", "CDS+", "CDS-")
_STRAND_SWAP = torch.tensor([0, 2, 1])  # a reverse complement swaps the strands


def coding_tags(record: GenomicRecord, feature_type: str = "CDS") -> np.ndarray:
    """Per-base tag ids (:data:`GENE_TAGS`) from a record's ``feature_type`` features (each part of a joined
    location). Where genes on both strands overlap, the feature listed later in the file wins; a feature of unknown
    strand counts as forward."""
    tags = np.zeros(len(record), dtype=np.int64)
    for feature in record.features:
        if feature.type != feature_type:
            continue
        tag = 2 if feature.strand == -1 else 1
        for start, end in feature.parts:
            tags[start:end] = tag
    return tags


def cut_windows(length: int, window: int, stride: int, min_length: int) -> list[tuple[int, int]]:
    """``(start, end)`` windows of at most ``window`` bases every ``stride`` bases; the last window is kept when it
    has at least ``min_length`` bases (a record shorter than that gives no window)."""
    spans = []
    for start in range(0, max(length, 1), stride):
        end = min(start + window, length)
        if end - start >= min_length:
            spans.append((start, end))
        if end == length:
            break
    return spans


class RevCompAugmented(Dataset):
    """Wraps a tagging :class:`SequenceDataset` of base ids: each item is reverse-complemented (tags reversed and
    strands swapped) with probability ``p``, drawn anew each time it is read, reproducible from ``seed``.

    The draw for the k-th read of item i comes from (seed, i, k) alone, and k is counted in shared memory, so
    loader workers (each with its own copy of this object, reading items in any interleaving) draw exactly what
    one process would: ``num_workers`` never changes a batch."""

    def __init__(self, dataset: SequenceDataset, complement: Tensor, p: float = 0.5, seed: int = 0) -> None:
        self.dataset = dataset
        self.complement = complement
        self.p = p
        self.seed = int(seed)
        self.reads = torch.zeros(len(dataset), dtype=torch.int64).share_memory_()  # per item, across workers
        self.lengths = dataset.lengths

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        inputs, tags = self.dataset[index]
        count = int(self.reads[index])
        self.reads[index] = count + 1  # an item is read by one worker at a time (once per epoch)
        if np.random.default_rng([self.seed, int(index), count]).random() < self.p:
            return reverse_complement_ids(inputs, self.complement), _STRAND_SWAP[tags.flip(0)]
        return inputs, tags


class GeneTaggingDataModule(SequenceDataModule):
    """Per-base tagging of coding regions and their strand (:data:`GENE_TAGS`) from GenBank CDS annotations.

    Records are split by record (seeded), then cut into windows of ``window`` bases (training: every ``stride``
    bases; evaluation: non-overlapping); windows with more than ``max_ambiguous`` of ``N`` are dropped.

    Args:
        paths: GenBank files (gzipped or not); default: kaptive-data's K loci.
        window, stride, min_length: window length, training step between windows, shortest window kept.
        revcomp_augment: probability of reading a training window as its reverse complement (tags reversed,
            strands swapped); 0 turns it off.
        max_ambiguous: the largest share of ``N`` bases a window may hold.
        max_records: at most this many records per file (quick runs).
        feature_type: the annotation tagged (``CDS``).
        **base: :class:`SequenceDataModule` arguments.

    ``dims``: ``vocab_size``, ``padding_idx``, ``num_tags``; ``tag_names``.
    """

    input_padding_value = Vocabulary.PAD_ID
    target_padding_value = IGNORE_INDEX
    target_mode = "pad"
    dims_need_data = False

    def __init__(
        self,
        paths: Sequence[str] | str | None = None,
        window: int = 1000,
        stride: int | None = None,
        min_length: int = 100,
        revcomp_augment: float = 0.5,
        max_ambiguous: float = 0.1,
        max_records: int | None = None,
        feature_type: str = "CDS",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        **base: Any,
    ) -> None:
        super().__init__(val_fraction=val_fraction, **base)
        if window < 1 or min_length < 1 or min_length > window:
            raise ValueError(f"need 1 <= min_length <= window, got window={window}, min_length={min_length}")
        if not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
            raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
        self.paths = [paths] if isinstance(paths, str) else list(paths) if paths is not None else None
        self.window = window
        self.stride = stride or window
        self.min_length = min_length
        self.revcomp_augment = revcomp_augment
        self.max_ambiguous = max_ambiguous
        self.max_records = max_records
        self.feature_type = feature_type
        self.test_fraction = test_fraction
        self.nucleotides = NucleotideTokenizer(1)
        self.vocab = self.nucleotides.vocabulary()
        self.complement = complement_ids(self.vocab)
        self.tag_names = list(GENE_TAGS)
        self.records: dict[str, list[GenomicRecord]] = {}
        self.spans: dict[str, list[tuple[int, int, int]]] = {}

    def files(self) -> list[Path]:
        return [Path(p).expanduser() for p in self.paths] if self.paths else kaptive_files()

    def read_records(self) -> list[GenomicRecord]:
        records: list[GenomicRecord] = []
        for path in self.files():
            for index, record in enumerate(iter_records(path, "genbank")):
                if self.max_records is not None and index >= self.max_records:
                    break
                records.append(record)
        return records

    def encode(self, sequence: str) -> Tensor:
        return torch.tensor(self.vocab.encode(self.nucleotides(sequence)), dtype=torch.long)

    def _dataset(self, records: list[GenomicRecord], split: str) -> SequenceDataset:
        stride = self.stride if split == "train" else self.window
        inputs, targets, spans = [], [], []
        for index, record in enumerate(records):
            ids = self.encode(record.sequence)
            tags = torch.from_numpy(coding_tags(record, self.feature_type))
            n_id = self.vocab.stoi["N"]
            for start, end in cut_windows(len(record), self.window, stride, self.min_length):
                piece = ids[start:end]
                if (piece == n_id).float().mean().item() > self.max_ambiguous:
                    continue
                inputs.append(piece)
                targets.append(tags[start:end])
                spans.append((index, start, end))
        self.spans[split] = spans
        return SequenceDataset(inputs, targets)

    def build(self) -> None:
        records = self.read_records()
        order = np.random.default_rng(self.seed).permutation(len(records))
        num_test = max(1, round(self.test_fraction * len(records))) if self.test_fraction > 0 else 0
        num_val = max(1, round(self.val_fraction * len(records))) if self.val_fraction > 0 else 0
        if num_val + num_test >= len(records):
            raise ValueError(
                f"{len(records)} record(s) cannot be split into train/val/test by record; add GenBank files or lower "
                "data.val_fraction / data.test_fraction"
            )
        pick = lambda idx: [records[i] for i in sorted(idx)]  # noqa: E731
        self.records = {
            "train": pick(order[num_val + num_test :]),
            "val": pick(order[:num_val]),
            "test": pick(order[num_val : num_val + num_test]),
        }
        train = self._dataset(self.records["train"], "train")
        self.train_set = (
            RevCompAugmented(train, self.complement, self.revcomp_augment, self.seed) if self.revcomp_augment else train
        )
        self.val_set = self._dataset(self.records["val"], "val")
        self.test_set = self._dataset(self.records["test"], "test")

    def inputs_from_text(self, text: str) -> Tensor:
        """A DNA sequence (whitespace ignored) -> base ids ``(L,)``, for ``seqmodels-predict``."""
        return self.encode("".join(text.split()))

    def _dims(self) -> dict[str, Any]:
        return {
            "vocab_size": len(self.vocab),
            "padding_idx": self.vocab.pad_id,
            "num_tags": len(self.tag_names),
            "tag_names": list(self.tag_names),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"vocab": self.vocab.to_dict(), "tag_names": list(self.tag_names)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.vocab = Vocabulary.from_dict(state_dict["vocab"])
        self.tag_names = list(state_dict["tag_names"])


@torch.no_grad()
def strand_averaged_scores(net: Any, inputs: Tensor, lengths: Tensor, complement: Tensor) -> Tensor:
    """Tag probabilities averaged over both strands: ``net`` reads each sequence and its reverse complement; the
    second reading is flipped back and its strand tags swapped. (N, L, 3) for :data:`GENE_TAGS`."""
    forward = net(inputs, lengths).softmax(-1)
    flipped = torch.stack([reverse_complement_ids(row, complement, n) for row, n in zip(inputs, lengths, strict=True)])
    backward = net(flipped, lengths).softmax(-1)
    aligned = torch.zeros_like(backward)
    for i, n in enumerate(lengths.tolist()):
        aligned[i, :n] = backward[i, :n].flip(0)[:, _STRAND_SWAP.to(backward.device)]
    return (forward + aligned) / 2


# ------------------------------------------------------------------------------------------------- near-duplicates
def _kmer_codes(sequence: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every k-mer of ``sequence`` as a base-4 integer, and whether it is free of N: two (len - k + 1,) arrays."""
    lookup = np.full(256, 4, dtype=np.uint64)
    for i, base in enumerate(BASES):
        lookup[ord(base)] = i
    digits = lookup[np.frombuffer(sequence.encode(), dtype=np.uint8)]
    count = len(digits) - k + 1
    value = np.zeros(count, dtype=np.uint64)
    for j in range(k):
        value = value * np.uint64(4) + digits[j : j + count] % np.uint64(4)
    valid = np.convolve((digits == 4).astype(np.int64), np.ones(k, dtype=np.int64), "valid") == 0
    return value, valid


def minhash_sketches(sequences: Sequence[str], k: int = 16, size: int = 128, seed: int = 0) -> np.ndarray:
    """MinHash sketches of each sequence's canonical k-mer set (a k-mer and its reverse complement count as one):
    (len(sequences), size) uint64; the share of equal columns of two rows estimates their Jaccard similarity."""
    if not 1 <= k <= 31:
        raise ValueError(f"k must be in 1..31 for 64-bit k-mer codes, got {k}")
    rng = np.random.default_rng(seed)
    mask = np.uint64(2**61 - 1)
    a = rng.integers(1, 2**61 - 1, size=size, dtype=np.uint64)
    b = rng.integers(0, 2**61 - 1, size=size, dtype=np.uint64)
    sketches = np.full((len(sequences), size), np.iinfo(np.uint64).max, dtype=np.uint64)
    for row, sequence in enumerate(sequences):
        if len(sequence) < k:
            continue
        forward, valid = _kmer_codes(sequence, k)
        backward, _ = _kmer_codes(reverse_complement(sequence), k)
        canonical = np.unique(np.minimum(forward, backward[::-1])[valid])
        if len(canonical):
            sketches[row] = ((canonical[:, None] * a[None, :] + b[None, :]) & mask).min(axis=0)
    return sketches


def similarity_groups(sequences: Sequence[str], threshold: float = 0.5, k: int = 16) -> np.ndarray:
    """Group ids joining every pair of sequences whose estimated k-mer Jaccard similarity is at least
    ``threshold`` (single linkage): splitting by group keeps near-identical sequences in one split."""
    sketches = minhash_sketches(sequences, k=k)
    parent = list(range(len(sequences)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(sequences)):
        similar = (sketches[i + 1 :] == sketches[i]).mean(axis=1) >= threshold
        for j in np.nonzero(similar)[0] + i + 1:
            parent[find(int(j))] = find(i)
    roots = [find(i) for i in range(len(sequences))]
    return np.unique(roots, return_inverse=True)[1]


# ------------------------------------------------------------------------------------------------- locus classification
#: The classes of :class:`LocusClassificationDataModule` by default: kaptive-data's files, one class each.
KAPTIVE_CLASSES = {
    "Klebsiella K": "Klebsiella_k_locus_primary_reference.gbk",
    "Klebsiella O": "Klebsiella_o_locus_primary_reference.gbk",
    "A. baumannii K": "Acinetobacter_baumannii_k_locus_primary_reference.gbk",
    "A. baumannii OC": "Acinetobacter_baumannii_OC_locus_primary_reference.gbk",
}


class LocusClassificationDataModule(SequenceDataModule):
    """Many-to-one: which kind of locus a window of DNA comes from (by default kaptive-data's four reference sets:
    Klebsiella K and O loci, A. baumannii K and OC loci).

    Records are grouped so that near-identical ones (estimated k-mer Jaccard similarity >= ``similarity``, single
    linkage, :func:`similarity_groups`) share a group, and whole groups go to train, validation or test (seeded, per
    class): no near-identical locus is in two splits. Each record then gives non-overlapping windows of ``window``
    bases (at most ``max_windows`` per record, evenly spread); windows with more than ``max_ambiguous`` N are dropped.

    Args:
        classes: ``{class name: file}``; default :data:`KAPTIVE_CLASSES` in kaptive-data's folder.
        window, max_windows, max_ambiguous, similarity: see above.
        max_records: at most this many records per file (quick runs).
        **base: :class:`SequenceDataModule` arguments.

    ``dims``: ``vocab_size``, ``padding_idx``, ``num_classes``; ``class_names``.
    """

    input_padding_value = Vocabulary.PAD_ID
    dims_need_data = False

    def __init__(
        self,
        classes: dict[str, str] | None = None,
        window: int = 500,
        max_windows: int = 8,
        max_ambiguous: float = 0.1,
        similarity: float = 0.5,
        max_records: int | None = None,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        **base: Any,
    ) -> None:
        super().__init__(val_fraction=val_fraction, **base)
        if not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
            raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
        self.classes = dict(classes) if classes else None
        self.class_names = sorted(self.classes or KAPTIVE_CLASSES)
        self.window = window
        self.max_windows = max_windows
        self.max_ambiguous = max_ambiguous
        self.similarity = similarity
        self.max_records = max_records
        self.test_fraction = test_fraction
        self.nucleotides = NucleotideTokenizer(1)
        self.vocab = self.nucleotides.vocabulary()
        self.records: dict[str, list[tuple[GenomicRecord, int]]] = {}

    def files(self) -> dict[str, Path]:
        if self.classes:
            return {name: Path(path).expanduser() for name, path in self.classes.items()}
        paths = kaptive_files(KAPTIVE_CLASSES.values())
        return dict(zip(KAPTIVE_CLASSES, paths, strict=True))

    def encode(self, sequence: str) -> Tensor:
        return torch.tensor(self.vocab.encode(self.nucleotides(sequence)), dtype=torch.long)

    def windows(self, record: GenomicRecord) -> list[str]:
        spans = cut_windows(len(record), self.window, self.window, self.window)
        if len(spans) > self.max_windows:
            picks = np.linspace(0, len(spans) - 1, self.max_windows).round().astype(int)
            spans = [spans[i] for i in picks]
        pieces = [record.sequence[a:b] for a, b in spans]
        return [p for p in pieces if p.count("N") <= self.max_ambiguous * len(p)]

    def build(self) -> None:
        labelled: list[tuple[GenomicRecord, int]] = []
        for name, path in self.files().items():
            for index, record in enumerate(iter_records(path)):
                if self.max_records is not None and index >= self.max_records:
                    break
                labelled.append((record, self.class_names.index(name)))
        groups = similarity_groups([r.sequence for r, _ in labelled], self.similarity)
        rng = np.random.default_rng(self.seed)
        split_of_group: dict[int, str] = {}
        for label in range(len(self.class_names)):
            members = sorted({int(groups[i]) for i, (_, y) in enumerate(labelled) if y == label} - set(split_of_group))
            order = [members[i] for i in rng.permutation(len(members))]
            num_test = max(1, round(self.test_fraction * len(order))) if len(order) >= 3 else 0
            num_val = max(1, round(self.val_fraction * len(order))) if len(order) >= 3 else 0
            for rank, group in enumerate(order):
                split_of_group[group] = "test" if rank < num_test else "val" if rank < num_test + num_val else "train"
        self.records = {"train": [], "val": [], "test": []}
        for i, item in enumerate(labelled):
            self.records[split_of_group[int(groups[i])]].append(item)
        sets = {}
        for split, items in self.records.items():
            inputs, targets = [], []
            for record, label in items:
                for piece in self.windows(record):
                    inputs.append(self.encode(piece))
                    targets.append(label)
            sets[split] = SequenceDataset(inputs, torch.tensor(targets, dtype=torch.long))
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]

    def inputs_from_text(self, text: str) -> Tensor:
        """A DNA sequence (whitespace ignored) -> base ids ``(L,)``, for ``seqmodels-predict``."""
        return self.encode("".join(text.split()))

    def _dims(self) -> dict[str, Any]:
        return {"vocab_size": len(self.vocab), "padding_idx": self.vocab.pad_id, "num_classes": len(self.class_names)}

    def state_dict(self) -> dict[str, Any]:
        return {"vocab": self.vocab.to_dict(), "class_names": list(self.class_names)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.vocab = Vocabulary.from_dict(state_dict["vocab"])
        self.class_names = list(state_dict["class_names"])


# ------------------------------------------------------------------------------------------------- ORF baseline
STOP_CODONS = ("TAA", "TAG", "TGA")


def longest_orfs(sequence: str, min_length: int = 300, starts: tuple[str, ...] = ("ATG", "GTG", "TTG")) -> np.ndarray:
    """The open-reading-frame baseline: per-base tags (:data:`GENE_TAGS`) calling, on both strands and all three
    frames, every ORF (a start codon to the next in-frame stop, stop included) of at least ``min_length`` bases;
    where called ORFs overlap, the longer wins. Greedy from longest, as gene finders' simplest baseline does."""
    n = len(sequence)
    candidates: list[tuple[int, int, int]] = []  # (length, start, strand) on forward coordinates
    for strand, text in ((1, sequence), (-1, reverse_complement(sequence))):
        for frame in range(3):
            start = None
            for i in range(frame, n - 2, 3):
                codon = text[i : i + 3]
                if start is None and codon in starts:
                    start = i
                elif start is not None and codon in STOP_CODONS:
                    end = i + 3
                    if end - start >= min_length:
                        lo, hi = (start, end) if strand == 1 else (n - end, n - start)
                        candidates.append((end - start, lo, strand))
                    start = None
    tags = np.zeros(n, dtype=np.int64)
    taken = np.zeros(n, dtype=bool)
    for length, lo, strand in sorted(candidates, reverse=True):
        if taken[lo : lo + length].any():
            continue
        taken[lo : lo + length] = True
        tags[lo : lo + length] = 1 if strand == 1 else 2
    return tags


def per_base_f1(predicted: np.ndarray, actual: np.ndarray, num_tags: int = 3) -> dict[str, float]:
    """Per-base accuracy, each tag's F1 and their macro average."""
    scores: dict[str, float] = {"acc": float((predicted == actual).mean()) if len(actual) else 0.0}
    f1s = []
    for tag in range(num_tags):
        tp = float(((predicted == tag) & (actual == tag)).sum())
        denominator = float((predicted == tag).sum() + (actual == tag).sum())
        f1 = 2 * tp / denominator if denominator else 0.0
        scores[f"f1_{GENE_TAGS[tag]}"] = f1
        f1s.append(f1)
    scores["macro_f1"] = sum(f1s) / num_tags
    return scores


def gene_spans(tags: np.ndarray) -> set[tuple[int, int, int]]:
    """Maximal runs ``(start, end, tag)`` of a coding tag (1 or 2) in a per-base tag array."""
    spans = set()
    start = None
    for i, tag in enumerate([*tags.tolist(), 0]):
        if start is not None and tag != tags[start]:
            spans.add((start, i, int(tags[start])))
            start = None
        if start is None and tag != 0 and i < len(tags):
            start = i
    return spans


__all__ = [
    "GENE_TAGS",
    "Feature",
    "GeneTaggingDataModule",
    "KAPTIVE_CLASSES",
    "LocusClassificationDataModule",
    "GenomicCorpusDataModule",
    "GenomicRecord",
    "MarkovModel",
    "NucleotideTokenizer",
    "RevCompAugmented",
    "biopython_available",
    "coding_tags",
    "complement_ids",
    "cut_windows",
    "gene_spans",
    "guess_format",
    "iter_records",
    "kaptive_available",
    "kaptive_files",
    "lambda_phage_files",
    "longest_orfs",
    "markov_table",
    "minhash_sketches",
    "normalize_sequence",
    "per_base_f1",
    "read_fasta",
    "read_fastq",
    "read_genbank",
    "read_many",
    "read_sequences",
    "reverse_complement",
    "reverse_complement_ids",
    "similarity_groups",
    "strand_averaged_scores",
]
