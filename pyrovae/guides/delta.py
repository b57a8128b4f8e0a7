"""A point-mass guide q(z | x) = delta(f(x)): the encoder of a (deterministic) autoencoder.

Swapping this encoder into :class:`pyrovae.VAE` in place of a diagonal Normal turns the VAE into
an autoencoder without touching ``model``, ``guide`` or the training loop. Under ``Trace_ELBO``
the single-sample estimate ``log p(x | z) + log p(z) - log q(z | x)`` is taken at ``z = f(x)``
and ``log q`` of a point mass at its own location is 0 (the Delta's ``log_density``), so the
objective is

* ``log p(x | f(x)) + log p(f(x))`` with a proper prior: the MAP, or regularized, autoencoder.
  With the standard Normal prior the penalty is ``||f(x)||^2 / 2`` plus a constant, the code
  regularizer of Ghosh et al. (2020)'s RAE; ``beta`` (``LatentScale``) weighs it.
* ``log p(x | f(x))`` with :class:`pyrovae.priors.FlatPrior` (log-density 0 everywhere): the
  plain reconstruction objective of an autoencoder.

Neither number bounds ``log p(x)``: the ELBO is a bound because ``E_q[log q]`` is the entropy
term that pays for spreading ``q``; a point mass has no density with respect to the Lebesgue
measure on ``z`` (its differential entropy is minus infinity), and setting its log-density to
0 drops that infinite term. The figure is a training objective, not a log-likelihood.
"""

from __future__ import annotations

import pyro.distributions as dist
from torch import Tensor, nn

from pyrovae.guides.diagonal import Encoder
from pyrovae.guides.inputs import network_output


class DeltaEncoder(Encoder):
    """q(z | x) = Delta(f(x)), a point mass at the network's output.

    Args:
        net: maps ``(*batch, *event_shape)`` (and, with ``context_dim``, the flattened input
            concatenated with the context) to ``(*batch, latent_dim)``.
        latent_dim: size of ``z``.
        context_dim: size of an extra conditioning vector, or 0.

    Shapes:
        ``forward(x)`` returns a distribution with batch shape ``(*batch,)`` and event shape
        ``(latent_dim,)``; ``mean(x)`` is the code ``f(x)``, ``(*batch, latent_dim)``.
    """

    def __init__(self, net: nn.Module, latent_dim: int, context_dim: int = 0) -> None:
        super().__init__()
        self.net = net
        self.latent_dim = latent_dim
        self.context_dim = context_dim

    def code(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """The deterministic code ``f(x)``, ``(*batch, latent_dim)``."""
        return network_output(self.net, x, context, self.context_dim)

    def forward(self, x: Tensor, context: Tensor | None = None) -> dist.Distribution:
        return dist.Delta(self.code(x, context), event_dim=1)

    def mean(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.code(x, context)


__all__ = ["DeltaEncoder"]
