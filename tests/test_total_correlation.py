"""The total-correlation estimators against closed forms, and the beta-TC objective against the ELBO."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyrovae import VAE, BernoulliLikelihood, DiagonalNormalEncoder, StandardNormalPrior
from pyrovae.infer.tcvae import BetaTCELBO
from pyrovae.infer.total_correlation import (
    kl_decomposition,
    log_aggregate_posterior,
    total_correlation,
    vae_kl_decomposition,
)
from pyrovae.nn import MLP


def gaussian_aggregate(correlation: torch.Tensor, scale: float, dataset_size: int, generator: torch.Generator):
    """Posterior means ``x_n ~ N(0, R - s^2 I)`` and ``q(z | x_n) = N(x_n, s^2 I)``: the aggregate
    posterior is a mixture whose limit, as ``N`` grows, is ``N(0, R)``."""
    dim = correlation.shape[0]
    factor = torch.linalg.cholesky(correlation - scale**2 * torch.eye(dim))
    return torch.randn(dataset_size, dim, generator=generator) @ factor.T


def batch_tc(locs, scale, batch_size, generator, estimator="mss"):
    idx = torch.randperm(locs.shape[0], generator=generator)[:batch_size]
    loc = locs[idx]
    scale = torch.full_like(loc, scale)
    z = loc + scale * torch.randn(loc.shape, generator=generator)
    return total_correlation(z, loc, scale, locs.shape[0], estimator).item()


@pytest.mark.parametrize("rho", [0.5, 0.0])
def test_stratified_tc_converges_to_the_gaussian_closed_form(rho):
    """TC of N(0, R) is -0.5 log det R. With N = 100,000 posteriors, batches of 1,000 and 20
    batches, the standard error of the mean is about 0.006 nats; the tolerance is 0.03 nats
    (five standard errors, and a Jensen bias of the log of the estimate well below it)."""
    generator = torch.Generator().manual_seed(0)
    correlation = torch.full((3, 3), rho)
    correlation.fill_diagonal_(1.0)
    closed_form = -0.5 * torch.logdet(correlation).item()
    locs = gaussian_aggregate(correlation, 0.5, 100_000, generator)
    estimates = [batch_tc(locs, 0.5, 1000, generator) for _ in range(20)]
    assert sum(estimates) / len(estimates) == pytest.approx(closed_form, abs=0.03)


def test_stratified_estimate_over_the_whole_data_set_is_the_exact_aggregate():
    """With the batch equal to the data set every weight is 1/N: log q(z) = logmeanexp_n log q(z | x_n)."""
    generator = torch.Generator().manual_seed(1)
    loc, scale = torch.randn(50, 4, generator=generator), torch.rand(50, 4, generator=generator) + 0.2
    z = loc + scale * torch.randn(50, 4, generator=generator)
    log_q = torch.distributions.Normal(loc, scale).log_prob(z.unsqueeze(1))  # (sample, posterior, dim)
    exact_joint = torch.logsumexp(log_q.sum(-1), 1) - math.log(50)
    exact_marginals = torch.logsumexp(log_q, 1) - math.log(50)
    joint, marginals = log_aggregate_posterior(z, loc, scale, dataset_size=50, chunk_size=7)
    torch.testing.assert_close(joint, exact_joint)
    torch.testing.assert_close(marginals, exact_marginals)


def test_weighted_sampling_is_the_papers_formula():
    """MWS: log q(z_i) ~ logsumexp_j log q(z_i | x_j) - log(N B) (Chen et al. 2018, section 4.1)."""
    generator = torch.Generator().manual_seed(2)
    loc, scale = torch.randn(8, 3, generator=generator), torch.rand(8, 3, generator=generator) + 0.5
    z = loc + scale * torch.randn(8, 3, generator=generator)
    log_q = torch.distributions.Normal(loc, scale).log_prob(z.unsqueeze(1)).sum(-1)
    joint, _ = log_aggregate_posterior(z, loc, scale, dataset_size=1000, estimator="mws")
    torch.testing.assert_close(joint, torch.logsumexp(log_q, 1) - math.log(8 * 1000))


def test_the_three_terms_add_up_to_the_kl():
    generator = torch.Generator().manual_seed(3)
    loc, scale = torch.randn(64, 5, generator=generator), torch.rand(64, 5, generator=generator) + 0.1
    z = loc + scale * torch.randn(64, 5, generator=generator)
    parts = kl_decomposition(z, loc, scale, torch.zeros(5), torch.ones(5), dataset_size=10_000)
    total = parts["mutual_information"] + parts["total_correlation"] + parts["dimensionwise_kl"]
    torch.testing.assert_close(total, parts["kl"])
    expected_kl = (torch.distributions.Normal(loc, scale).log_prob(z)
                   - torch.distributions.Normal(0.0, 1.0).log_prob(z)).sum(-1).mean()
    torch.testing.assert_close(parts["kl"], expected_kl)


def small_vae(latent_dim=3):
    encoder = DiagonalNormalEncoder(MLP(6, [16], 2 * latent_dim), latent_dim)
    likelihood = BernoulliLikelihood(MLP(latent_dim, [16], 6), torch.Size([6]))
    return VAE(encoder, likelihood, StandardNormalPrior(latent_dim))


def test_beta_one_is_the_elbo():
    """At beta = 1 the TC term vanishes: the loss equals Trace_ELBO's on the same draw."""
    pyro.clear_param_store()
    vae = small_vae()
    x = torch.bernoulli(torch.full((32, 6), 0.5))
    pyro.set_rng_seed(0)
    ours = BetaTCELBO(beta=1.0, dataset_size=1000).differentiable_loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(0)
    pyros = Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
    torch.testing.assert_close(ours, pyros)


def test_beta_adds_beta_minus_one_times_the_batch_tc():
    pyro.clear_param_store()
    vae = small_vae()
    x = torch.bernoulli(torch.full((32, 6), 0.5))
    pyro.set_rng_seed(0)
    elbo_loss = BetaTCELBO(beta=1.0, dataset_size=1000).differentiable_loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(0)
    tc_loss = BetaTCELBO(beta=6.0, dataset_size=1000).differentiable_loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(0)
    posterior = vae.posterior(x)
    z = posterior.rsample()
    tc = total_correlation(z, posterior.base_dist.loc, posterior.base_dist.scale, 1000)
    torch.testing.assert_close(tc_loss - elbo_loss, 5.0 * 32 * tc)
    tc_loss.backward()
    assert all(p.grad is not None for p in vae.parameters())


def test_the_objective_refuses_a_missing_dataset_size_and_a_non_diagonal_guide():
    pyro.clear_param_store()
    vae = small_vae()
    x = torch.bernoulli(torch.full((8, 6), 0.5))
    with pytest.raises(ValueError, match="training-set size"):
        BetaTCELBO(beta=6.0).differentiable_loss(vae.model, vae.guide, x)
    with pytest.raises(ValueError, match="unknown estimator"):
        BetaTCELBO(estimator="exact")


def test_vae_kl_decomposition_adds_up_and_refuses_a_mixture_prior():
    from pyrovae import GaussianMixturePrior

    pyro.clear_param_store()
    vae = small_vae()
    x = torch.bernoulli(torch.full((100, 6), 0.5))
    parts = vae_kl_decomposition(vae, x, dataset_size=1000)
    assert parts["mutual_information"] + parts["total_correlation"] + parts["dimensionwise_kl"] == \
        pytest.approx(parts["kl"], abs=1e-4)
    vae.prior = GaussianMixturePrior(3, 4)
    with pytest.raises(ValueError, match="factorized Normal prior"):
        vae_kl_decomposition(vae, x)


def test_weighted_sampling_tc_is_offset_by_d_minus_one_log_n_on_overlapping_posteriors():
    """MWS divides every sum by N B: where the batch's posteriors overlap widely, its log q(z) and
    each log q(z_j) come out about log N low, so its TC is the true TC plus (D - 1) log N (why
    the reported figures use the stratified estimator)."""
    generator = torch.Generator().manual_seed(4)
    correlation = torch.full((3, 3), 0.5)
    correlation.fill_diagonal_(1.0)
    locs = gaussian_aggregate(correlation, 0.5, 100_000, generator)
    estimates = [batch_tc(locs, 0.5, 1000, generator, estimator="mws") for _ in range(5)]
    expected = -0.5 * torch.logdet(correlation).item() + 2 * math.log(100_000)
    assert sum(estimates) / len(estimates) == pytest.approx(expected, abs=0.1)
