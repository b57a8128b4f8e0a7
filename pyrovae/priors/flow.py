"""Normalizing-flow prior: p(z) is a standard Normal pushed through learned autoregressive transforms.

Built from Pyro's own transforms (``pyro.distributions.transforms``) rather than zuko: they
are already a dependency, their ``TransformModule`` objects are ``nn.Module`` s that register
with ``pyro.module``, and ``TransformedDistribution`` gives the exact ``log_prob`` by the
change of variables. zuko (and ``pyro.contrib.zuko``) is not installed and would add a
dependency for no capability this prior needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from torch import Tensor, nn

from pyrovae.priors.base import Prior

FLOW_KINDS = ("affine", "spline")


class FlowPrior(Prior):
    """``p(z)``: ``z = f(u)``, ``u ~ N(0, I)``, with ``f`` a stack of autoregressive transforms.

    ``log p(z) = log N(f^{-1}(z); 0, I) + log |det d f^{-1}(z) / dz|``, exact.

    The transforms are used in the masked-autoregressive direction (MAF, Papamakarios et al.
    2017): each layer's network is evaluated on ``z`` to map it back to the base in one pass,
    so ``log_prob`` (what training needs, on ``z`` drawn from the guide) costs one network call
    per layer, and sampling from the prior costs ``latent_dim`` calls per layer. Each
    autoregressive network draws its own random variable order at construction (kept as a
    buffer, so it is saved with the ``state_dict``), which mixes dimensions across layers.

    Args:
        latent_dim: size of ``z`` (at least 2 for an autoregressive flow to mean anything).
        num_layers: number of transforms.
        hidden_dims: hidden sizes of each autoregressive network; None takes Pyro's default
            ``[3 * latent_dim + 1]``.
        kind: ``"affine"`` (``affine_autoregressive``, Kingma et al. 2016 / Papamakarios et al.
            2017) or ``"spline"`` (``spline_autoregressive``, rational-quadratic splines,
            Durkan et al. 2019; identity outside ``[-bound, bound]``).
        count_bins, bound: spline settings.
    """

    def __init__(self, latent_dim: int, num_layers: int = 2, hidden_dims: Sequence[int] | None = None,
                 kind: str = "affine", count_bins: int = 8, bound: float = 3.0) -> None:
        super().__init__()
        if kind not in FLOW_KINDS:
            raise ValueError(f"unknown flow kind {kind!r}; choose one of {FLOW_KINDS}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.latent_dim = latent_dim
        self.kind = kind
        hidden = None if hidden_dims is None else list(hidden_dims)
        if kind == "affine":
            layers = [T.affine_autoregressive(latent_dim, hidden) for _ in range(num_layers)]
        else:
            layers = [T.spline_autoregressive(latent_dim, hidden, count_bins=count_bins, bound=bound)
                      for _ in range(num_layers)]
        self.layers = nn.ModuleList(layers)
        self.register_buffer("base_loc", torch.zeros(latent_dim), persistent=False)
        self.register_buffer("base_scale", torch.ones(latent_dim), persistent=False)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, kind={self.kind!r}"

    def forward(self, context: Tensor | None = None) -> dist.Distribution:
        """``TransformedDistribution`` over ``z``, batch shape ``()``, event shape ``(latent_dim,)``."""
        base = dist.Normal(self.base_loc, self.base_scale).to_event(1)
        # Each layer maps z -> u in one pass; the distribution needs u -> z, i.e. the inverses,
        # applied last layer first.
        return dist.TransformedDistribution(base, [layer.inv for layer in reversed(self.layers)])


__all__ = ["FlowPrior", "FLOW_KINDS"]
