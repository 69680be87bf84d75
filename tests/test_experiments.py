"""Every experiment config composes and runs end to end (fast_dev_run), and the default is JapaneseVowels."""

from __future__ import annotations

import math

import pytest
from hydra.utils import instantiate

from seqmodels.config import config_dir, instantiate_datamodule, resolve_with_datamodule
from seqmodels.data.fortunes import fortunes_available
from seqmodels.data.genomic import kaptive_available
from seqmodels.data.speech import espeak_available
from seqmodels.data.vega_sources import vega_available
from seqmodels.train import train

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))


def test_experiments_are_found():
    assert {"japanese_vowels", "adding_problem", "parity", "text_classification"} <= set(EXPERIMENTS)


def test_default_experiment_is_japanese_vowels(compose_train):
    cfg = compose_train()
    assert cfg.task_name == "japanese_vowels"
    assert cfg.data._target_.endswith("JapaneseVowelsDataModule")
    assert cfg.logger.tensorboard._target_.endswith("TensorBoardLogger")


# Keep one-batch runs quick where building the full data set takes long.
QUICK_DATA = {
    "bach_melody": ["data.max_chorales=12", "data.cache_dir=null"],
    "bach_conditioned": ["data.max_chorales=12", "data.cache_dir=null"],
    "cmudict_g2p": ["data.max_words=2000"],
    "dtmf_ctc": ["data.num_train=64", "data.num_val=16", "data.num_test=16"],
    "spoken_digits": ["data.num_train=8", "data.num_val=4", "data.num_test=4", "data.cache_dir=null"],
    "spoken_digits_streaming": ["data.num_train=8", "data.num_val=4", "data.num_test=4", "data.cache_dir=null"],
    "dna_lm": ["data.max_records=10"],
    "gene_tagging": ["data.max_records=10"],
    "locus_classification": ["data.max_records=10"],
    "frame_prediction": ["data.num_train=8", "data.num_val=4", "data.num_test=4", "data.batch_size=4"],
    "jsb_chorales": ["data.max_chorales=12", "data.cache_dir=null"],
    "copy_memory": ["data.num_train=64", "data.num_val=16", "data.num_test=16"],
}

# Experiments whose data needs a program outside Python: skipped, with the reason, where it is missing.
NEEDS_PROGRAM = {
    "spoken_digits": (espeak_available, "espeak-ng is not installed (make system-data)"),
    "spoken_digits_streaming": (espeak_available, "espeak-ng is not installed (make system-data)"),
    "dna_lm": (kaptive_available, "kaptive-data or Biopython is missing (make system-data)"),
    "gene_tagging": (kaptive_available, "kaptive-data or Biopython is missing (make system-data)"),
    "locus_classification": (kaptive_available, "kaptive-data or Biopython is missing (make system-data)"),
    "topic_classification": (fortunes_available, "the fortunes package is not installed (make system-data)"),
    "weather": (vega_available, "vega_datasets is not installed (pip install vega_datasets)"),
    "stocks": (vega_available, "vega_datasets is not installed (pip install vega_datasets)"),
}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_fast_dev_run(compose_train, experiment):
    available, reason = NEEDS_PROGRAM.get(experiment, (lambda: True, ""))
    if not available():
        pytest.skip(reason)
    cfg = compose_train(f"experiment={experiment}", "debug=fdr", *QUICK_DATA.get(experiment, []))
    result = train(cfg)
    assert "test/loss" in result.metrics, result.metrics
    assert all(math.isfinite(v) for k, v in result.metrics.items() if k.startswith(("train/", "test/"))), result.metrics


@pytest.mark.parametrize("encoder,cell", [("rnn", "rnn_tanh"), ("lstm", "lstm"), ("gru", "gru")])
def test_encoder_group_selects_cell(compose_train, encoder, cell):
    cfg = compose_train("experiment=parity", f"model/encoder={encoder}")
    assert cfg.model.net.encoder.cell == cell


def test_data_sizes_reach_the_model_by_interpolation(compose_train):
    cfg = compose_train("experiment=text_classification")
    datamodule = instantiate_datamodule(cfg.data)
    resolve_with_datamodule(cfg, datamodule)
    assert cfg.model.net.frontend.num_embeddings == datamodule.dim("vocab_size")
    assert cfg.model.num_classes == datamodule.dim("num_classes")
    model = instantiate(cfg.model)
    assert model.net.encoder.input_size == cfg.model.net.frontend.embedding_dim


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("scheduler", ["plateau", "cosine"])
def test_every_experiment_takes_every_scheduler(compose_train, experiment, scheduler):
    import torch

    cfg = compose_train(f"experiment={experiment}", f"model/scheduler={scheduler}")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    instantiate(cfg.model.scheduler)(optimizer=optimizer)  # no option left over from another scheduler
