"""Amortized inverse autoregressive flow guide: a diagonal Normal q0(z | x) refined by flows conditioned on h(x)."""

from __future__ import annotations

from collections.abc import Sequence

import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch.nn.functional as F
from torch import Tensor, nn

from pyrovae.guides.diagonal import Encoder
from pyrovae.guides.inputs import network_output


class IAFEncoder(Encoder):
    """``q(z | x)``: ``z = f_K o ... o f_1(z0)``, ``z0 ~ N(mu(x), diag(sigma(x)^2))``, with each
    ``f_k`` an affine autoregressive transform conditioned on a context vector ``h(x)``
    (inverse autoregressive flow, Kingma et al. 2016).

    One network gives ``mu``, ``sigma`` and ``h``; every flow step is a Pyro
    ``ConditionalAffineAutoregressive`` whose MADE network reads ``(h(x), z)``. Sampling and
    scoring a fresh sample are one pass per step (the sample's log-density comes from the
    transforms' cache), so ``Trace_ELBO`` costs a few network calls more than the diagonal
    encoder. Scoring an arbitrary ``z`` (not drawn by this guide) inverts each step, which takes
    ``latent_dim`` network calls per step.

    A drop-in ``encoder=`` for :class:`~pyrovae.VAE`.

    Args:
        net: maps ``(*batch, *event_shape)`` (with ``context_dim``, the flattened input and the
            context concatenated) to ``(*batch, 2 * latent_dim + hidden_features)``, read as
            ``mu``, raw ``sigma`` (through softplus) and ``h``.
        latent_dim: size of ``z``.
        hidden_features: size of ``h(x)``.
        num_flows: number of IAF steps.
        flow_hidden: hidden sizes of each step's autoregressive network; None takes Pyro's
            default ``[10 * (latent_dim + hidden_features) + 1]``.
        context_dim: size of an extra conditioning vector for the network (e.g. a one-hot
            label), or 0.
        stable: use the gated ("stable") update of Kingma et al. 2016, Eq. 14.
        min_scale: floor on the base standard deviation.
    """

    def __init__(self, net: nn.Module, latent_dim: int, hidden_features: int, num_flows: int = 2,
                 flow_hidden: Sequence[int] | None = None, context_dim: int = 0, stable: bool = True,
                 min_scale: float = 1e-4) -> None:
        super().__init__()
        if num_flows < 1:
            raise ValueError(f"num_flows must be at least 1, got {num_flows}")
        self.net = net
        self.latent_dim = latent_dim
        self.hidden_features = hidden_features
        self.context_dim = context_dim
        self.min_scale = min_scale
        hidden = None if flow_hidden is None else list(flow_hidden)
        self.flows = nn.ModuleList(
            T.conditional_affine_autoregressive(latent_dim, hidden_features, hidden, stable=stable)
            for _ in range(num_flows)
        )

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, hidden_features={self.hidden_features}, num_flows={len(self.flows)}"

    @staticmethod
    def output_size(latent_dim: int, hidden_features: int) -> int:
        """Number of network outputs this encoder reads: ``2 * latent_dim + hidden_features``."""
        return 2 * latent_dim + hidden_features

    def base(self, x: Tensor, context: Tensor | None = None) -> tuple[dist.Distribution, Tensor]:
        """The diagonal Normal ``q0(z0 | x)`` (event ``(latent_dim,)``) and the flow context ``h(x)``,
        ``(*batch, hidden_features)``."""
        out = network_output(self.net, x, context, self.context_dim)
        loc, raw_scale, h = out.split([self.latent_dim, self.latent_dim, self.hidden_features], dim=-1)
        return dist.Normal(loc, F.softplus(raw_scale) + self.min_scale).to_event(1), h

    def forward(self, x: Tensor, context: Tensor | None = None) -> dist.Distribution:
        """``q(z | x)`` as a ``TransformedDistribution``: batch ``(*batch,)``, event ``(latent_dim,)``,
        with ``rsample``."""
        q0, h = self.base(x, context)
        return dist.TransformedDistribution(q0, [flow.condition(h) for flow in self.flows])

    def mean(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """A deterministic point summary: the flow applied to the base mean, ``f(mu(x))``,
        shape ``(*batch, latent_dim)``.

        This is not ``E_q[z]`` (the flow is nonlinear), but it is exact, needs no sampling and
        is the image of the base distribution's mode, which is what ``encode`` and clustering
        want from a point estimate.
        """
        q0, h = self.base(x, context)
        z = q0.mean
        for flow in self.flows:
            z = flow.condition(h)(z)
        return z


__all__ = ["IAFEncoder"]
