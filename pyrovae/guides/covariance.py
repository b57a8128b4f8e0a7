"""Gaussian encoders with correlated latent dimensions: low-rank-plus-diagonal and full covariance."""

from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyrovae.guides.diagonal import Encoder
from pyrovae.guides.inputs import network_output


class LowRankNormalEncoder(Encoder):
    """``q(z | x) = N(mu(x), W(x) W(x)^T + diag(d(x)))`` with ``W`` of shape ``(latent_dim, rank)``.

    ``LowRankMultivariateNormal`` scores and samples in ``O(latent_dim * rank^2)``, so rank-``r``
    correlations cost little more than the diagonal encoder (``rank=0`` is not allowed: use
    :class:`~pyrovae.guides.diagonal.DiagonalNormalEncoder`).

    Args:
        net: maps the input (see :func:`~pyrovae.guides.inputs.network_output`) to
            ``(*batch, latent_dim * (rank + 2))``, read as ``mu``, ``W`` (row-major) and raw ``d``.
        latent_dim: size of ``z``.
        rank: number of columns of ``W``.
        context_dim: size of an extra conditioning vector, or 0.
        min_scale: floor on the diagonal variance ``d``.
    """

    def __init__(self, net: nn.Module, latent_dim: int, rank: int, context_dim: int = 0,
                 min_scale: float = 1e-4) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank must be at least 1, got {rank} (use DiagonalNormalEncoder for rank 0)")
        self.net = net
        self.latent_dim = latent_dim
        self.rank = rank
        self.context_dim = context_dim
        self.min_scale = min_scale

    @staticmethod
    def output_size(latent_dim: int, rank: int) -> int:
        """Number of network outputs this encoder reads: ``latent_dim * (rank + 2)``."""
        return latent_dim * (rank + 2)

    def forward(self, x: Tensor, context: Tensor | None = None) -> dist.Distribution:
        d = self.latent_dim
        out = network_output(self.net, x, context, self.context_dim)
        loc, factor, raw_diag = out.split([d, d * self.rank, d], dim=-1)
        factor = factor.reshape(*factor.shape[:-1], d, self.rank)
        return dist.LowRankMultivariateNormal(loc, factor, F.softplus(raw_diag) + self.min_scale)

    def mean(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return network_output(self.net, x, context, self.context_dim)[..., : self.latent_dim]


class FullCovarianceNormalEncoder(Encoder):
    """``q(z | x) = N(mu(x), L(x) L(x)^T)`` with ``L`` lower triangular, positive diagonal (softplus).

    Args:
        net: maps the input to ``(*batch, latent_dim + latent_dim * (latent_dim + 1) / 2)``, read as
            ``mu`` and the lower triangle of ``L`` (row by row, ``torch.tril_indices`` order).
        latent_dim: size of ``z``.
        context_dim: size of an extra conditioning vector, or 0.
        min_scale: floor on the diagonal of ``L``.
    """

    def __init__(self, net: nn.Module, latent_dim: int, context_dim: int = 0, min_scale: float = 1e-4) -> None:
        super().__init__()
        self.net = net
        self.latent_dim = latent_dim
        self.context_dim = context_dim
        self.min_scale = min_scale
        rows, cols = torch.tril_indices(latent_dim, latent_dim)
        self.register_buffer("tril_rows", rows, persistent=False)
        self.register_buffer("tril_cols", cols, persistent=False)

    @staticmethod
    def output_size(latent_dim: int) -> int:
        """Number of network outputs this encoder reads: ``latent_dim + latent_dim (latent_dim + 1) / 2``."""
        return latent_dim + latent_dim * (latent_dim + 1) // 2

    def forward(self, x: Tensor, context: Tensor | None = None) -> dist.Distribution:
        d = self.latent_dim
        out = network_output(self.net, x, context, self.context_dim)
        loc, entries = out.split([d, d * (d + 1) // 2], dim=-1)
        tril = loc.new_zeros(*loc.shape, d)
        tril[..., self.tril_rows, self.tril_cols] = entries
        diag = F.softplus(tril.diagonal(dim1=-2, dim2=-1)) + self.min_scale
        tril = tril.tril(-1) + torch.diag_embed(diag)
        return dist.MultivariateNormal(loc, scale_tril=tril)

    def mean(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return network_output(self.net, x, context, self.context_dim)[..., : self.latent_dim]


__all__ = ["LowRankNormalEncoder", "FullCovarianceNormalEncoder"]
