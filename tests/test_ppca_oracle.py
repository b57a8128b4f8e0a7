"""Analytic oracle: a linear-Gaussian VAE is probabilistic PCA, whose log p(x) is exact.

Model  z ~ N(0, I_d),  x | z ~ N(W z + b, sigma^2 I_D);  so  x ~ N(b, W W^T + sigma^2 I_D).
With a Gaussian q(z | x) = N(mu, diag(s^2)) the ELBO is also closed-form:
  E_q[log p(x|z)] = -D/2 log(2 pi sigma^2) - (|x - W mu - b|^2 + sum_j s_j^2 |W_j|^2) / (2 sigma^2)
  KL = 1/2 sum_j (mu_j^2 + s_j^2 - 1 - log s_j^2).
"""

import math

import torch
from pyro.infer import Trace_ELBO
from torch import nn

from pyrovae import VAE, DiagonalNormalEncoder, NormalLikelihood, StandardNormalPrior, Trainer

D, d, SIGMA = 5, 2, 0.5


def linear_vae() -> VAE:
    encoder = DiagonalNormalEncoder(nn.Linear(D, 2 * d), d)
    likelihood = NormalLikelihood(nn.Linear(d, D), (D,), scale=SIGMA)
    return VAE(encoder, likelihood, StandardNormalPrior(d))


def exact_log_px(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    W, b = vae.likelihood.net.weight, vae.likelihood.net.bias
    cov = W @ W.T + SIGMA**2 * torch.eye(D)
    return torch.distributions.MultivariateNormal(b, cov).log_prob(x)


def analytic_elbo(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    W, b = vae.likelihood.net.weight, vae.likelihood.net.bias
    mu, s = vae.encoder.loc_scale(x)
    residual = ((x - mu @ W.T - b) ** 2).sum(-1) + (s**2 @ (W**2).sum(0))
    recon = -0.5 * D * math.log(2 * math.pi * SIGMA**2) - residual / (2 * SIGMA**2)
    kl = 0.5 * (mu**2 + s**2 - 1 - torch.log(s**2)).sum(-1)
    return recon - kl


def ppca_data(n: int = 400) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    W = torch.randn(D, d, generator=g)
    z = torch.randn(n, d, generator=g)
    return z @ W.T + 1.0 + SIGMA * torch.randn(n, D, generator=g)


def test_monte_carlo_elbo_matches_the_closed_form_and_stays_below_log_px():
    vae, x = linear_vae(), ppca_data(50)
    with torch.no_grad():
        exact_elbo = analytic_elbo(vae, x).sum().item()
        assert (analytic_elbo(vae, x) <= exact_log_px(vae, x) + 1e-5).all()
    # Independent estimates of the per-batch ELBO give a Monte Carlo error bar.
    estimates = torch.tensor([-Trace_ELBO(num_particles=50, vectorize_particles=True).loss(vae.model, vae.guide, x)
                              for _ in range(20)])
    stderr = estimates.std() / math.sqrt(len(estimates))
    assert abs(estimates.mean().item() - exact_elbo) < 4 * stderr + 1e-3


def test_training_closes_the_gap_to_the_exact_log_likelihood():
    torch.manual_seed(0)
    vae, x = linear_vae(), ppca_data()
    before = (exact_log_px(vae, x) - analytic_elbo(vae, x)).mean().item()
    Trainer(vae, lr=2e-2, batch_size=100, progress=False,
            generator=torch.Generator().manual_seed(0)).fit(x, epochs=150, eval_size=100)
    with torch.no_grad():
        log_px, elbo = exact_log_px(vae, x), analytic_elbo(vae, x)
    gap = (log_px - elbo).mean().item()
    assert (elbo <= log_px + 1e-5).all()
    assert gap < 0.05, f"ELBO still {gap:.3f} nats below log p(x) (was {before:.3f})"
    # The maximum-likelihood PPCA solution has a closed form (Tipping and Bishop 1999, with
    # sigma fixed): W W^T = U (Lambda - sigma^2 I) U^T from the top-d eigenpairs of the sample covariance.
    xc = x - x.mean(0)
    evals, evecs = torch.linalg.eigh(xc.T @ xc / x.shape[0])
    top, U = evals[-d:], evecs[:, -d:]
    cov_ml = U @ torch.diag(top - SIGMA**2) @ U.T + SIGMA**2 * torch.eye(D)
    best = torch.distributions.MultivariateNormal(x.mean(0), cov_ml).log_prob(x).mean().item()
    assert log_px.mean().item() > best - 0.05
