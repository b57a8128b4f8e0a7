"""Amortized encoders q(z | x): modules that map a data point to a distribution over the latent code.

An encoder is the guide's main part. Any module whose ``forward(x, context=None)`` returns a
distribution over ``z`` with one event dimension can stand in for :class:`DiagonalNormalEncoder`
(flow and low-rank guides do exactly that).
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyrovae.nn.rebuild import Rebuildable


class Encoder(Rebuildable, nn.Module):
    """Base class for ``q(z | x[, context])``; ``latent_dim`` is the size of ``z``."""

    latent_dim: int

    def forward(self, x: Tensor, context: Tensor | None = None) -> dist.Distribution:
        raise NotImplementedError

    def mean(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """A point summary of ``q(z | x)``: its mean, shape ``(*batch, latent_dim)``."""
        return self(x, context).mean


class DiagonalNormalEncoder(Encoder):
    """q(z | x) = Normal(loc(x), diag(scale(x)^2)) with loc and scale from one network.

    Args:
        net: maps ``(*batch, *event_shape)`` (and, when ``context_dim`` is set, the context
            concatenated to the flattened input) to ``(*batch, 2 * latent_dim)``.
        latent_dim: size of ``z``.
        context_dim: size of an extra conditioning vector (e.g. a one-hot label), or 0.
        min_scale: floor on the standard deviation, for numerical safety.
        scale: how the network's raw output becomes a standard deviation: ``"softplus"``
            (grows linearly, gentle gradients for large outputs) or ``"exp"`` (Pyro's VAE
            tutorial; starts at 1 = the standard prior's scale, so the KL starts near 0).
    """

    SCALES = {"softplus": F.softplus, "exp": torch.exp}

    def __init__(self, net: nn.Module, latent_dim: int, context_dim: int = 0, min_scale: float = 1e-4,
                 scale: str = "softplus") -> None:
        super().__init__()
        if scale not in self.SCALES:
            raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(self.SCALES)}")
        self.scale = scale
        self.net = net
        self.latent_dim = latent_dim
        self.context_dim = context_dim
        self.min_scale = min_scale

    def loc_scale(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Location and scale, each ``(*batch, latent_dim)``."""
        if self.context_dim:
            if context is None:
                raise ValueError("this encoder is conditional: pass a context of size "
                                 f"{self.context_dim}")
            batch = context.shape[:-1]
            flat = x.reshape(*batch, -1)
            x = torch.cat([flat, context], dim=-1)
        loc, raw_scale = self.net(x).split(self.latent_dim, dim=-1)
        return loc, self.SCALES[self.scale](raw_scale) + self.min_scale

    def forward(self, x: Tensor, context: Tensor | None = None) -> dist.Distribution:
        loc, scale = self.loc_scale(x, context)
        return dist.Normal(loc, scale).to_event(1)

    def mean(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.loc_scale(x, context)[0]


__all__ = ["Encoder", "DiagonalNormalEncoder"]
