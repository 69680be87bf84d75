"""Classic recurrent benchmarks: JSB-style chorale piano rolls, the copy task and sequential digits."""

from __future__ import annotations

import math

import pytest
import torch

from seqmodels.data import CopyMemoryDataModule, JSBChoralesDataModule, SequenceBatch, SequentialDigitsDataModule
from seqmodels.data.polyphonic import LOWEST_PITCH, parse_chorale_rolls, piano_roll
from seqmodels.data.sequential_digits import pixel_order
from seqmodels.nn import RecurrentEncoder, SequenceTaggerNet
from seqmodels.tasks import PianoRollTask
from seqmodels.train import train

# ---------------------------------------------------------------- sequential digits


def test_sequential_digits_shapes_and_stratified_split():
    dm = SequentialDigitsDataModule(seed=0)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (1294, 144, 359)
    x, y = dm.train_set[0]
    assert x.shape == (64, 1) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert set(dm.test_set.targets.tolist()) == set(range(10))
    assert dm.dims() == {"input_size": 1, "num_classes": 10}
    batch = next(iter(dm.train_dataloader()))
    assert batch.inputs.shape == (32, 64, 1) and batch.targets.shape == (32,)


def test_sequential_digits_permutation_is_fixed_by_its_seed():
    assert pixel_order(False, 0).tolist() == list(range(64))
    order = pixel_order(True, 0)
    assert sorted(order.tolist()) == list(range(64)) and order.tolist() != list(range(64))
    assert order.tolist() == pixel_order(True, 0).tolist()
    assert order.tolist() != pixel_order(True, 1).tolist()
    plain = SequentialDigitsDataModule(seed=3)
    permuted = SequentialDigitsDataModule(permute=True, seed=3)
    plain.setup()
    permuted.setup()
    # The same images in the same split, read in the seeded order; the split seed does not move the order.
    assert torch.equal(permuted.test_set.inputs[0], plain.test_set.inputs[0][torch.from_numpy(order)])
    assert SequentialDigitsDataModule(permute=True, seed=9).order.tolist() == order.tolist()
    with pytest.raises(ValueError, match="test_fraction"):
        SequentialDigitsDataModule(test_fraction=1.0)


# ---------------------------------------------------------------- copy task


def test_copy_memory_layout_and_targets():
    dm = CopyMemoryDataModule(length=5, num_train=6, num_val=2, num_test=3, seed=1)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (6, 2, 3)
    x, y = dm.train_set[0]
    assert x.shape == (25, 10) and x.dtype == torch.float32 and y.shape == (25,) and y.dtype == torch.int64
    tokens = x.argmax(-1)
    symbols = tokens[:10]
    assert symbols.min() >= 1 and symbols.max() <= 8
    # 10 symbols, T - 1 = 4 blanks, the delimiter, 10 blanks
    assert tokens[10:14].tolist() == [0] * 4 and tokens[14] == 9 and tokens[15:].tolist() == [0] * 10
    assert y[:15].tolist() == [0] * 15 and torch.equal(y[15:], symbols)
    assert dm.dims() == {"input_size": 10, "num_tags": 9, "tag_names": ["blank", *map(str, range(1, 9))]}
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, SequenceBatch) and batch.targets.shape == (6, 25)


def test_copy_memory_baseline_is_ten_log_eight_over_t_plus_twenty():
    assert CopyMemoryDataModule(length=100).baseline_cross_entropy == pytest.approx(10 * math.log(8) / 120)
    assert CopyMemoryDataModule(length=100).baseline_cross_entropy == pytest.approx(0.1733, abs=1e-4)
    assert CopyMemoryDataModule(length=200).baseline_cross_entropy == pytest.approx(0.0945, abs=1e-4)
    # The memoryless guess (blank, then uniform over the alphabet) scores exactly the baseline.
    dm = CopyMemoryDataModule(length=20, num_train=4, num_val=1, num_test=1)
    dm.setup()
    _, y = dm.train_set[0]
    logits = torch.full((y.shape[0], 9), -1e4)
    logits[:-10, 0] = 0.0
    logits[-10:, 1:] = 0.0
    ce = torch.nn.functional.cross_entropy(logits, y)
    assert float(ce) == pytest.approx(dm.baseline_cross_entropy, rel=1e-5)


def test_copy_memory_refuses_bad_options():
    with pytest.raises(ValueError, match="length"):
        CopyMemoryDataModule(length=0)
    with pytest.raises(ValueError, match="alphabet_size"):
        CopyMemoryDataModule(alphabet_size=1)


# ---------------------------------------------------------------- JSB chorales


def test_piano_roll_of_bwv269_by_hand():
    (chorale,) = parse_chorale_rolls(max_chorales=1)
    assert chorale["name"].endswith("bwv269") and (chorale["tonic"], chorale["mode"]) == (7, "major")  # G major
    # From the score: soprano G4 G4(2 beats) D5 B4(1.5) ..., alto D4 D4 E4 D4 D4(2) ..., tenor B3 B3 C4-B3(eighths)
    # A3 G3 F#3 ..., bass G2 G3 E3 F#3 G3 D3 ...; the tenor's B3 at beat 2.5 is not sampled.
    assert chorale["steps"][:6] == [
        [43, 59, 62, 67],
        [55, 59, 62, 67],
        [52, 60, 64, 67],
        [54, 57, 62, 74],
        [55, 62, 71],  # tenor and bass both on G3
        [50, 54, 62, 71],
    ]
    roll = piano_roll(chorale["steps"], semitones=5)  # G major -> C major: up a fourth
    assert roll.shape == (len(chorale["steps"]), 88)
    assert torch.nonzero(roll[0]).flatten().add(LOWEST_PITCH).tolist() == [48, 64, 67, 72]  # C3 E4 G4 C5


@pytest.fixture(scope="module")
def small_chorales(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    dm = JSBChoralesDataModule(
        max_chorales=10, val_fraction=0.2, test_fraction=0.2, batch_size=4, seed=0, cache_dir=cache
    )
    dm.setup()
    return dm


def test_jsb_chorales_split_and_next_step_targets(small_chorales):
    dm = small_chorales
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (6, 2, 2)
    assert not set(dm.split_names["train"]) & set(dm.split_names["test"])
    x, y = dm.train_set[0]
    assert x.shape[1] == 88 and x.shape == y.shape and torch.equal(x[1:], y[:-1])  # targets are the next steps
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0} and 3 <= float(x.sum(-1).mean()) <= 4
    batch = next(iter(dm.train_dataloader()))
    assert batch.targets.shape == batch.inputs.shape and batch.target_lengths is not None
    assert dm.dims() == {"input_size": 88, "num_pitches": 88}
    again = JSBChoralesDataModule(max_chorales=10, val_fraction=0.2, test_fraction=0.2, seed=0, cache_dir=dm.cache_dir)
    again.setup()
    assert again.split_names == dm.split_names


def test_jsb_chorales_refuses_bad_options():
    with pytest.raises(ValueError, match="val_fraction"):
        JSBChoralesDataModule(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="max_chorales"):
        JSBChoralesDataModule(max_chorales=0)


def test_piano_roll_task_nll_is_summed_over_pitches_and_averaged_over_real_steps(small_chorales):
    encoder = RecurrentEncoder("lstm", input_size=88, hidden_size=8, batch_first=True)
    task = PianoRollTask(SequenceTaggerNet(encoder, num_tags=88), num_pitches=88, optimizer=torch.optim.Adam)
    batch = next(iter(small_chorales.val_dataloader()))
    with torch.no_grad():
        nll, steps = task.step_nll(batch)
        logits = task(batch.inputs, batch.lengths)
    assert int(steps) == int(batch.lengths.sum())
    expected = sum(
        torch.nn.functional.binary_cross_entropy_with_logits(logits[i, :n], batch.targets[i, :n], reduction="sum")
        for i, n in enumerate(batch.lengths.tolist())
    ) / int(steps)
    assert float(nll) == pytest.approx(float(expected), rel=1e-5)
    assert float(nll) == pytest.approx(88 * math.log(2), rel=0.1)  # an untrained net: about a coin flip per key


# ---------------------------------------------------------------- experiments end to end


@pytest.mark.parametrize(
    "overrides",
    [
        ["experiment=sequential_digits", "data.permute=true"],
        ["experiment=copy_memory", "data.num_train=16", "data.num_val=8", "data.num_test=8", "data.length=10"],
        ["experiment=jsb_chorales", "data.max_chorales=8", "data.cache_dir=null", "model/encoder=gru"],
    ],
    ids=["sequential_digits", "copy_memory", "jsb_chorales"],
)
def test_experiment_fast_dev_run(compose_train, overrides):
    cfg = compose_train(*overrides, "debug=fdr")
    result = train(cfg)
    assert "test/loss" in result.metrics
    if "experiment=jsb_chorales" in overrides:
        assert "test/nll" in result.metrics
    assert all(math.isfinite(v) for k, v in result.metrics.items() if k.startswith(("train/", "test/"))), result.metrics
