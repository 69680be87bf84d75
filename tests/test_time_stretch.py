"""time_stretch: per-sequence resampling along time (a time-warp augmentation), and ManyToOneNet's use of it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqmodels.nn import ManyToOneNet, RecurrentEncoder
from seqmodels.nn.regularization import time_stretch


def _padded(lengths: list[int], channels: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    x = torch.randn(len(lengths), max(lengths), channels)
    for i, n in enumerate(lengths):
        x[i, n:] = 0.0
    return x, torch.tensor(lengths)


def test_each_sequence_matches_linear_interpolation_of_its_valid_steps():
    x, lengths = _padded([7, 12, 3, 29])
    factors = torch.tensor([1.3, 0.8, 2.0, 0.5])
    out, new_lengths = time_stretch(x, lengths, factors)
    assert new_lengths.tolist() == [9, 10, 6, 14]  # round(length * factor)
    assert out.shape == (4, 14, 3)
    for i, (n, m) in enumerate(zip(lengths.tolist(), new_lengths.tolist(), strict=True)):
        # interpolate with align_corners=False maps step centres to step centres, as time_stretch does
        reference = F.interpolate(x[i, :n].T.unsqueeze(0), size=m, mode="linear", align_corners=False)[0].T
        torch.testing.assert_close(out[i, :m], reference, atol=1e-6, rtol=1e-5)
        assert torch.all(out[i, m:] == 0)  # padding stays zero


def test_a_factor_of_one_changes_nothing_and_lengths_keep_their_device():
    x, lengths = _padded([5, 9, 1])
    out, new_lengths = time_stretch(x, lengths, torch.ones(3))
    assert torch.equal(new_lengths, lengths) and new_lengths.device == lengths.device
    torch.testing.assert_close(out, x)


def test_every_sequence_keeps_at_least_one_step_and_gradients_reach_the_inputs():
    x, lengths = _padded([2, 4])
    x.requires_grad_(True)
    out, new_lengths = time_stretch(x, lengths, torch.tensor([0.1, 0.6]))
    assert new_lengths.tolist() == [1, 2]
    out.sum().backward()
    assert x.grad is not None and torch.all(x.grad[0, 2:] == 0) and x.grad[1, :4].abs().sum() > 0


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r"\(N, L, C\)"):
        time_stretch(torch.zeros(2, 5), torch.tensor([5, 5]), torch.ones(2))
    encoder = RecurrentEncoder("gru", input_size=3, hidden_size=8, batch_first=True)
    with pytest.raises(ValueError, match=r"time_stretch must be in \[0, 1\)"):
        ManyToOneNet(encoder, num_outputs=2, time_stretch=1.0)


def test_the_network_stretches_while_training_only():
    torch.manual_seed(0)
    encoder = RecurrentEncoder("gru", input_size=3, hidden_size=8, batch_first=True)
    stretching = ManyToOneNet(encoder, num_outputs=4, pooling="mean", time_stretch=0.3)
    plain = ManyToOneNet(encoder, num_outputs=4, pooling="mean")
    plain.load_state_dict(stretching.state_dict())
    x, lengths = _padded([6, 11, 8])
    stretching.eval(), plain.eval()
    torch.testing.assert_close(stretching(x, lengths), plain(x, lengths))  # eval: no augmentation
    stretching.train(), plain.train()
    torch.manual_seed(1)
    assert not torch.allclose(stretching(x, lengths), plain(x, lengths))
