"""Gaussian priors with one component: the standard Normal and a learned diagonal Normal."""

from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyrovae.priors.base import Prior


class StandardNormalPrior(Prior):
    """p(z) = Normal(0, I) over ``latent_dim`` dimensions; no parameters.

    The zeros and ones are buffers so that the prior follows the model to its device.
    """

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("loc", torch.zeros(latent_dim), persistent=False)
        self.register_buffer("scale", torch.ones(latent_dim), persistent=False)

    def forward(self, context: Tensor | None = None) -> dist.Distribution:
        return dist.Normal(self.loc, self.scale).to_event(1)


class LearnedNormalPrior(Prior):
    """p(z) = Normal(mu, diag(sigma^2)) with mu and sigma learned (sigma through softplus)."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.loc = nn.Parameter(torch.zeros(latent_dim))
        # softplus(0.5413) = 1: start at the standard Normal.
        self.raw_scale = nn.Parameter(torch.full((latent_dim,), 0.5413))

    def forward(self, context: Tensor | None = None) -> dist.Distribution:
        return dist.Normal(self.loc, F.softplus(self.raw_scale)).to_event(1)


__all__ = ["StandardNormalPrior", "LearnedNormalPrior"]
