"""Importance-sampled log p(x) and the IWAE bound against the exact log-likelihood of probabilistic PCA."""

import math

import pyro
import torch
from pyro.infer import Trace_ELBO
from ppca_oracle import exact_log_px, ppca_vae, random_problem, standard_error_of_log_mean

from pyrovae.infer.evaluation import log_likelihood
from pyrovae.infer.importance import log_importance_weights
from pyrovae.infer.iwae import IWAE


def _problem(scale_factor=1.4):
    W, b, sigma, x = random_problem()
    return ppca_vae(W, b, sigma, scale_factor=scale_factor), x, exact_log_px(x, W, b, sigma)


def test_estimate_converges_to_exact_log_px():
    vae, x, exact = _problem()
    errors = {}
    for k in (1, 10, 100, 10000):
        estimate = log_likelihood(vae.model, vae.guide, x, num_samples=k, chunk_size=2500)
        errors[k] = (estimate - exact).abs().mean().item()
    assert errors[10000] < errors[100] < errors[1]
    assert errors[10] < errors[1]
    # At large k the error is within a few standard errors of the estimator (delta method).
    log_w = log_importance_weights(vae.model, vae.guide, x, None, num_particles=10000)
    se = standard_error_of_log_mean(log_w)
    estimate = log_likelihood(vae.model, vae.guide, x, num_samples=10000, chunk_size=2500)
    assert ((estimate - exact).abs() < 5 * se + 1e-4).all(), (estimate - exact, se)
    assert se.max() < 0.01


def test_estimate_is_not_below_the_elbo_and_the_elbo_is_below_exact():
    vae, x, exact = _problem()
    log_w = log_importance_weights(vae.model, vae.guide, x, None, num_particles=20000)
    elbo = log_w.mean(0)
    elbo_se = log_w.std(0) / math.sqrt(log_w.shape[0])
    estimate = log_likelihood(vae.model, vae.guide, x, num_samples=5000)
    assert (estimate >= elbo - 4 * elbo_se).all()
    # q is not the posterior (its scales are 1.4 times too wide), so the ELBO gap is real.
    assert (exact - elbo > 4 * elbo_se).all()
    # The ELBO from Pyro's Trace_ELBO agrees with the mean log weight.
    pyro_elbo = -sum(Trace_ELBO().loss(vae.model, vae.guide, x, None) for _ in range(200)) / 200
    se_total = math.sqrt(log_w.var(0).sum().item() / 200)
    assert abs(pyro_elbo - elbo.sum().item()) < 5 * se_total


def test_exact_posterior_gives_exact_log_px_with_one_sample():
    W, b, sigma, x = random_problem(orthogonal=True)
    vae = ppca_vae(W, b, sigma)
    estimate = log_likelihood(vae.model, vae.guide, x, num_samples=1)
    torch.testing.assert_close(estimate, exact_log_px(x, W, b, sigma), atol=1e-4, rtol=1e-5)


def test_iwae_bound_increases_with_k_and_stays_below_exact():
    vae, x, exact = _problem()
    repeats = 2000
    log_w = log_importance_weights(vae.model, vae.guide, x, None, num_particles=repeats * 20)
    bounds = {}
    for k in (1, 2, 5, 20):
        chunks = log_w[: repeats * k].reshape(repeats, k, -1)
        bounds[k] = (torch.logsumexp(chunks, 1) - math.log(k)).mean().item()  # mean over repeats, points
    assert bounds[1] < bounds[2] < bounds[5] < bounds[20] < exact.mean().item()


def test_iwae_objective_is_above_trace_elbo_on_average():
    vae, x, _ = _problem()
    iwae = -sum(IWAE(num_particles=10).loss(vae.model, vae.guide, x, None) for _ in range(100)) / 100
    elbo = -sum(Trace_ELBO().loss(vae.model, vae.guide, x, None) for _ in range(100)) / 100
    assert iwae > elbo + 0.5  # 16 points, gap per point about 0.1 nats or more


def test_chunked_and_unchunked_estimates_agree():
    vae, x, _ = _problem(scale_factor=2.0)
    whole = log_likelihood(vae.model, vae.guide, x, num_samples=4000, chunk_size=4000, batch_size=16)
    chunked = log_likelihood(vae.model, vae.guide, x, num_samples=4000, chunk_size=300, batch_size=5)
    se = standard_error_of_log_mean(log_importance_weights(vae.model, vae.guide, x, None, num_particles=4000))
    assert ((whole - chunked).abs() < 5 * math.sqrt(2) * se + 1e-4).all()
    # Same seed, same chunking: same numbers.
    pyro.set_rng_seed(3)
    again_a = log_likelihood(vae.model, vae.guide, x, num_samples=1000, chunk_size=300, batch_size=5)
    pyro.set_rng_seed(3)
    again_b = log_likelihood(vae.model, vae.guide, x, num_samples=1000, chunk_size=300, batch_size=5)
    torch.testing.assert_close(again_a, again_b)


def test_marginal_model_matches_the_model_for_a_plain_prior():
    vae, x, _ = _problem()
    pyro.set_rng_seed(5)
    a = log_likelihood(vae.model, vae.guide, x, num_samples=50)
    pyro.set_rng_seed(5)
    b = log_likelihood(vae.marginal_model, vae.guide, x, num_samples=50)
    torch.testing.assert_close(a, b)
