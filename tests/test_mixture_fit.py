"""EM fit of a diagonal mixture: recovers a known mixture, and ``fit_to`` copies it into the prior."""

import pytest
import torch

from pyrovae.clustering.accuracy import cluster_accuracy
from pyrovae.priors.mixture_fit import fit_diagonal_gmm, kmeans_plus_plus
from pyrovae.priors import GaussianMixturePrior

WEIGHTS = torch.tensor([0.5, 0.3, 0.2])
MEANS = torch.tensor([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
SCALES = torch.tensor([[1.0, 0.5], [0.5, 2.0], [1.5, 1.0]])


def draw(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points from the known mixture and the component each came from."""
    g = torch.Generator().manual_seed(seed)
    c = torch.multinomial(WEIGHTS, n, replacement=True, generator=g)
    return MEANS[c] + SCALES[c] * torch.randn(n, 2, generator=g), c


def test_em_recovers_a_known_mixture():
    z, _ = draw(8000)
    fit = fit_diagonal_gmm(z, 3, generator=torch.Generator().manual_seed(1))
    order = torch.cdist(MEANS, fit.means).argmin(1)  # match fitted components to the true ones
    # standard errors with 4000+ points per component are ~0.02-0.03; 0.1 leaves room, and a
    # wrong M-step (e.g. unweighted variances) misses by far more
    torch.testing.assert_close(fit.weights[order], WEIGHTS, atol=0.02, rtol=0)
    torch.testing.assert_close(fit.means[order], MEANS, atol=0.1, rtol=0)
    torch.testing.assert_close(fit.scales[order], SCALES, atol=0.1, rtol=0)


def test_fit_to_sets_the_prior_and_clusters_the_points():
    z, c = draw(6000)
    prior = GaussianMixturePrior(2, 3, enumerate=True)
    fit = prior.fit_to(z, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(prior.scale, fit.scales, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(prior.loc, fit.means)
    torch.testing.assert_close(prior.mixing().probs, fit.weights, atol=1e-6, rtol=1e-5)
    # the components are 8 standard deviations apart: Bayes-optimal assignment is near perfect
    assert cluster_accuracy(prior.cluster(z), c) > 0.99


def test_kmeans_plus_plus_picks_distinct_points():
    z, _ = draw(500)
    centres = kmeans_plus_plus(z, 3, torch.Generator().manual_seed(0))
    assert centres.shape == (3, 2)
    assert torch.cdist(centres, centres).fill_diagonal_(1.0).min() > 0


def test_bad_codes_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="at least as many codes"):
        fit_diagonal_gmm(torch.randn(2, 2), 3)
    with pytest.raises(ValueError, match=r"\(N, D\) matrix"):
        fit_diagonal_gmm(torch.randn(10), 3)
    with pytest.raises(ValueError, match=r"codes must be \(N, 2\)"):
        GaussianMixturePrior(2, 3).fit_to(torch.randn(10, 5))


def test_pretraining_starts_the_prior_at_the_clusters_of_the_codes():
    # Three well-separated blobs in 8 dimensions: after a short autoencoder pretraining the
    # fitted mixture alone (no training with the prior yet) should recover the blobs.
    from pyrovae import MLP, VAE, DiagonalNormalEncoder, NormalLikelihood, StandardNormalPrior
    from pyrovae.clustering.accuracy import cluster
    from pyrovae.clustering.mixture_start import pretrain_mixture_prior

    torch.manual_seed(0)
    labels = torch.arange(3).repeat(200)
    x = 4.0 * torch.eye(3, 8)[labels] + 0.3 * torch.randn(600, 8)
    vae = VAE(DiagonalNormalEncoder(MLP(8, (32,), 4), 2), NormalLikelihood(MLP(2, (32,), 8), (8,)),
              GaussianMixturePrior(2, 3, enumerate=True), name="pretrain_test")
    before = [p.clone() for p in vae.encoder.parameters()]
    fit = pretrain_mixture_prior(vae, x, 15, lr=1e-2, batch_size=64, progress=False,
                                 generator=torch.Generator().manual_seed(0))
    assert any(not torch.equal(a, b) for a, b in zip(before, vae.encoder.parameters()))
    torch.testing.assert_close(vae.prior.loc, fit.means)
    assert cluster_accuracy(cluster(vae, x), labels) > 0.95
    with pytest.raises(TypeError, match="GaussianMixturePrior"):
        pretrain_mixture_prior(VAE(vae.encoder, vae.likelihood, StandardNormalPrior(2), name="other"), x, 1)
