"""A linear-Gaussian VAE (probabilistic PCA) built from pyrovae's parts, with its exact log p(x).

z ~ N(0, I_d);  x | z ~ N(W z + b, sigma^2 I_D);  q(z | x) = N(A x + c, diag(s^2)) (linear).
Exact: log p(x) = log N(x; b, W W^T + sigma^2 I); the posterior is N(M^-1 W^T (x - b), sigma^2 M^-1)
with M = W^T W + sigma^2 I.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from pyrovae import VAE, DiagonalNormalEncoder, NormalLikelihood, StandardNormalPrior


def exact_posterior(W: Tensor, b: Tensor, sigma: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(A, c, cov)`` with posterior mean ``A x + c`` and covariance ``cov``."""
    d = W.shape[1]
    M = W.T @ W + sigma**2 * torch.eye(d)
    A = torch.linalg.solve(M, W.T)
    return A, -A @ b, sigma**2 * torch.linalg.inv(M)


def ppca_vae(W: Tensor, b: Tensor, sigma: float, scale_factor: float = 1.0, name: str = "ppca") -> VAE:
    """The PPCA VAE with the exact posterior mean and ``scale_factor`` times the exact marginal stds."""
    D, d = W.shape
    decoder = nn.Linear(d, D)
    encoder_net = nn.Linear(D, 2 * d)
    A, c, cov = exact_posterior(W, b, sigma)
    std = cov.diagonal().sqrt() * scale_factor
    min_scale = 1e-4
    with torch.no_grad():
        decoder.weight.copy_(W)
        decoder.bias.copy_(b)
        encoder_net.weight.zero_()
        encoder_net.weight[:d].copy_(A)
        encoder_net.bias[:d].copy_(c)
        encoder_net.bias[d:].copy_(torch.log(torch.expm1(std - min_scale)))
    encoder = DiagonalNormalEncoder(encoder_net, d, min_scale=min_scale)
    return VAE(encoder, NormalLikelihood(decoder, (D,), scale=sigma), StandardNormalPrior(d), name=name)


def exact_log_px(x: Tensor, W: Tensor, b: Tensor, sigma: float) -> Tensor:
    cov = W @ W.T + sigma**2 * torch.eye(W.shape[0])
    return torch.distributions.MultivariateNormal(b, cov).log_prob(x)


def random_problem(D: int = 4, d: int = 2, sigma: float = 0.5, n: int = 16, orthogonal: bool = False,
                   seed: int = 0) -> tuple[Tensor, Tensor, float, Tensor]:
    """``(W, b, sigma, x)`` with ``x`` drawn from the model."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, d, generator=g)
    if orthogonal:  # orthogonal columns make the exact posterior covariance diagonal
        W = torch.linalg.qr(W)[0] * torch.tensor([1.5, 0.8])[:d]
    b = torch.randn(D, generator=g)
    z = torch.randn(n, d, generator=g)
    x = z @ W.T + b + sigma * torch.randn(n, D, generator=g)
    return W, b, sigma, x


def standard_error_of_log_mean(log_w: Tensor) -> Tensor:
    """Delta-method standard error of ``log mean(w)`` from ``log_w`` of shape ``(k, N)``."""
    w = torch.exp(log_w - log_w.max(0).values)
    k = log_w.shape[0]
    return w.std(0) / (math.sqrt(k) * w.mean(0))
