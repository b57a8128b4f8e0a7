"""Starting a mixture prior from a hard partition, and N2D's UMAP partition that supplies one."""

import math
import sys

import pytest
import torch

from pyrovae.clustering.accuracy import cluster_accuracy
from pyrovae.priors.mixture_fit import fit_diagonal_gmm, fit_to_partition
from pyrovae.priors import GaussianMixturePrior
from pyrovae.clustering.umap_start import umap_partition


def test_a_partition_gives_its_shares_means_and_standard_deviations():
    z = torch.tensor([[0.0, 1.0], [2.0, 1.0], [10.0, -4.0], [11.0, -2.0], [13.0, -6.0], [-5.0, 5.0]])
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    fit = fit_to_partition(z, labels, 3, min_scale=1e-3)
    torch.testing.assert_close(fit.weights, torch.tensor([2 / 6, 3 / 6, 1 / 6]))
    torch.testing.assert_close(fit.means, torch.tensor([[1.0, 1.0], [34 / 3, -4.0], [-5.0, 5.0]]))
    # population standard deviations: {0, 2} -> 1; {10, 11, 13} -> sqrt(14/9); {-4, -2, -6} -> sqrt(8/3);
    # a lone point or a constant coordinate gets the floor
    expected = torch.tensor([[1.0, 1e-3], [math.sqrt(14 / 9), math.sqrt(8 / 3)], [1e-3, 1e-3]])
    torch.testing.assert_close(fit.scales, expected, rtol=1e-5, atol=1e-6)


def test_the_prior_takes_the_partition_and_gives_it_back():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(200)
    centres = torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    z = centres[labels] + torch.randn(600, 3, generator=g)
    prior = GaussianMixturePrior(3, 3, enumerate=True)
    fit = prior.fit_to_partition(z, labels)
    torch.testing.assert_close(prior.loc, fit.means)
    torch.testing.assert_close(prior.scale, fit.scales, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(prior.mixing().probs, torch.full((3,), 1 / 3), atol=1e-6, rtol=0)
    assert torch.equal(prior.cluster(z), labels)  # 10 standard deviations apart


def test_bad_partitions_are_refused_with_the_fix():
    z = torch.randn(4, 2)
    with pytest.raises(ValueError, match=r"components \[2\] have no points"):
        fit_to_partition(z, torch.tensor([0, 1, 1, 0]), 3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        fit_to_partition(z, torch.tensor([0, 1, 2, 0]), 2)
    with pytest.raises(ValueError, match="labels \\(N,\\)"):
        fit_to_partition(z, torch.tensor([0, 1]), 2)
    with pytest.raises(ValueError, match=r"codes must be \(N, 2\)"):
        GaussianMixturePrior(2, 2).fit_to_partition(torch.randn(4, 3), torch.tensor([0, 1, 1, 0]))


def rings(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two concentric circles (radius 1 and 4) in 3-D: one mean, so no mixture of Gaussians in
    these coordinates tells them apart, but every point's neighbours are on its own ring."""
    g = torch.Generator().manual_seed(seed)
    ring = torch.arange(2).repeat_interleave(n // 2)
    angle = torch.rand(n, generator=g) * 2 * math.pi
    radius = torch.tensor([1.0, 4.0])[ring]
    z = torch.stack([radius * angle.cos(), radius * angle.sin(), torch.zeros(n)], 1)
    return z + 0.05 * torch.randn(n, 3, generator=g), ring


def test_umap_separates_clusters_that_a_mixture_on_the_codes_cannot():
    z, ring = rings(600)
    direct = fit_diagonal_gmm(z, 2, generator=torch.Generator().manual_seed(0)).most_probable(z)
    assert cluster_accuracy(direct, ring) < 0.8  # the rings share a centre: EM cuts across them
    labels = umap_partition(z, 2, neighbours=15, restarts=3)
    assert labels.shape == (600,) and labels.dtype == torch.long
    assert cluster_accuracy(labels, ring) == 1.0


def test_missing_umap_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # makes "import umap" raise ImportError
    with pytest.raises(ImportError, match=r'pip install "pyrovae\[cluster\]"'):
        umap_partition(torch.randn(50, 3), 2)
