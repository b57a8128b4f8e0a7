"""Two-level hierarchical prior z2 -> z1 -> x, with its guide part q(z2 | z1) written next to it."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyrovae.nn import MLP
from pyrovae.priors.base import Prior


class _NormalNet(nn.Module):
    """``v -> Normal(loc(v), diag(scale(v)^2))`` with both from one MLP; event ``(out_dim,)``."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int], activation: str) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.net = MLP(in_dim, hidden, 2 * out_dim, activation=activation)

    def forward(self, v: Tensor) -> dist.Distribution:
        loc, raw_scale = self.net(v).split(self.out_dim, dim=-1)
        return dist.Normal(loc, F.softplus(raw_scale) + 1e-4).to_event(1)


class HierarchicalPrior(Prior):
    """``p(z1) = integral p(z1 | z2) p(z2) dz2`` with ``p(z2) = N(0, I)`` and
    ``p(z1 | z2) = N(mu(z2), diag(sigma(z2)^2))`` from a small network.

    ``z1`` is the VAE's ``z`` (what the likelihood sees; its site is the VAE's ``"z"``); ``z2``
    lives at site ``f"{name}_top"``. In the guide, ``z2 ~ q(z2 | z1)`` from an amortized
    network (bottom-up inference as in the two-stochastic-layer models of Burda et al. 2015),
    so the guide is
    ``q(z1 | x) q(z2 | z1)`` and the ELBO is
    ``E_q[log p(x | z1) + log p(z1 | z2) + log p(z2) - log q(z1 | x) - log q(z2 | z1)]``.

    The marginal ``log p(z1)`` has no closed form: :meth:`forward` and :meth:`log_prob` raise
    ``NotImplementedError``. Sampling (``sample``, ``model_sample``) and training work; to score
    ``z1`` use :meth:`conditional` and :meth:`top` (the joint ``log p(z1, z2)``).

    Args:
        latent_dim: size of ``z1``.
        top_dim: size of ``z2``.
        hidden: hidden layer sizes of both small networks.
        activation: their nonlinearity.
    """

    def __init__(self, latent_dim: int, top_dim: int, hidden: Sequence[int] = (64,),
                 activation: str = "softplus") -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.top_dim = top_dim
        self.prior_net = _NormalNet(top_dim, latent_dim, hidden, activation)
        self.guide_net = _NormalNet(latent_dim, top_dim, hidden, activation)
        self.register_buffer("top_loc", torch.zeros(top_dim), persistent=False)
        self.register_buffer("top_scale", torch.ones(top_dim), persistent=False)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, top_dim={self.top_dim}"

    # -- the parts --------------------------------------------------------------------------

    def top(self) -> dist.Distribution:
        """``p(z2) = N(0, I)``, event ``(top_dim,)``."""
        return dist.Normal(self.top_loc, self.top_scale).to_event(1)

    def conditional(self, z2: Tensor) -> dist.Distribution:
        """``p(z1 | z2)`` for ``z2`` of shape ``(*batch, top_dim)``; batch ``(*batch,)``, event ``(latent_dim,)``."""
        return self.prior_net(z2)

    def top_posterior(self, z1: Tensor) -> dist.Distribution:
        """``q(z2 | z1)`` for ``z1`` of shape ``(*batch, latent_dim)``; event ``(top_dim,)``."""
        return self.guide_net(z1)

    def forward(self, context: Tensor | None = None) -> dist.Distribution:
        raise NotImplementedError(
            "HierarchicalPrior has no closed-form marginal p(z1) = ∫ p(z1|z2) p(z2) dz2: use "
            "sample() to draw z1, or conditional(z2) and top() to score the joint p(z1, z2)")

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Not available: the marginal ``log p(z1)`` is intractable (raises ``NotImplementedError``).

        Estimate ``log p(x)`` with importance sampling over the whole guide (both levels)
        instead of scoring ``z1`` alone.
        """
        return self.forward(context).log_prob(z)

    # -- inference hooks --------------------------------------------------------------------

    def model_sample(self, name: str, context: Tensor | None = None) -> Tensor:
        """``z2 ~ p(z2)`` at ``f"{name}_top"``, then ``z1 ~ p(z1 | z2)`` at ``name``."""
        z2 = pyro.sample(f"{name}_top", self.top())
        return pyro.sample(name, self.conditional(z2))

    def guide_sample(self, name: str, z: Tensor, x: Tensor, context: Tensor | None = None) -> None:
        """``z2 ~ q(z2 | z1)`` at ``f"{name}_top"``, given the guide's ``z1``."""
        pyro.sample(f"{name}_top", self.top_posterior(z))

    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        """Ancestral samples ``z1``, shape ``(num_samples, latent_dim)``."""
        z2 = self.top().sample((num_samples,))
        return self.conditional(z2).sample()


__all__ = ["HierarchicalPrior"]
