"""Conditional prior p(z | y): the label picks the density; indices and one-hot agree."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pyrovae import ConditionalNormalPrior


def test_different_labels_give_different_densities():
    prior = ConditionalNormalPrior(3, 4)
    z = torch.randn(10, 3)
    by_label = torch.stack([prior.log_prob(z, torch.full((10,), y)) for y in range(4)])
    assert by_label.shape == (4, 10)
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.allclose(by_label[a], by_label[b])


def test_the_density_is_the_labels_gaussian():
    prior = ConditionalNormalPrior(3, 4)
    labels = torch.tensor([2, 0, 3])
    z = torch.randn(3, 3)
    loc, scale = prior.loc[labels], F.softplus(prior.raw_scale[labels]) + 1e-4
    expected = torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
    assert torch.allclose(prior.log_prob(z, labels), expected)


def test_indices_and_one_hot_agree():
    prior = ConditionalNormalPrior(3, 4)
    labels = torch.tensor([1, 3, 0, 2])
    z = torch.randn(4, 3)
    one_hot = F.one_hot(labels, 4).float()
    assert torch.allclose(prior.log_prob(z, labels), prior.log_prob(z, one_hot))


def test_samples_follow_the_label():
    prior = ConditionalNormalPrior(2, 3, init_spread=10.0)
    labels = torch.full((3000,), 1)
    samples = prior.sample(3000, labels)
    assert samples.shape == (3000, 2)
    assert torch.allclose(samples.mean(0), prior.loc[1].detach(), atol=0.1)


def test_bad_contexts_are_refused_with_the_fix():
    prior = ConditionalNormalPrior(3, 4)
    z = torch.randn(2, 3)
    with pytest.raises(ValueError, match="needs the labels"):
        prior.log_prob(z)
    with pytest.raises(ValueError, match=r"0\.\.3"):
        prior.log_prob(z, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="one-hot of size 4"):
        prior.log_prob(z, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="one label per sample"):
        prior.sample(3, torch.tensor([0, 1]))
