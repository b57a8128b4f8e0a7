"""A flat, improper "prior" p(z) = 1 over the real line: no penalty on the code."""

from __future__ import annotations

import pyro.distributions as dist
from torch import Tensor
from torch.distributions import constraints

from pyrovae.priors.base import Prior


class FlatPrior(Prior):
    """log p(z) = 0 for every real ``z`` (Pyro's ``ImproperUniform``), for a plain autoencoder.

    With a point-mass guide (:class:`pyrovae.guides.DeltaEncoder`) the model's ``z`` site then
    adds nothing to ``Trace_ELBO``'s loss, which is the reconstruction term
    ``-log p(x | f(x))`` alone: the plain autoencoder. Keeping the site (rather than dropping it
    from the model, or scaling it by 0 with ``poutine.scale``) leaves ``model`` and ``guide``
    naming the same latent sites, so the VAE's code and every ``pyro.infer`` objective apply
    unchanged, and the prior is swapped like any other.

    The density is improper: it cannot be sampled (:meth:`sample` says what to do instead) and
    gives no ``log p(x)``. Generate from an autoencoder by fitting a density to its codes after
    training, :func:`pyrovae.models.autoencoder.fit_ex_post_mixture`.

    Args:
        latent_dim: size of ``z``.
    """

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def forward(self, context: Tensor | None = None) -> dist.Distribution:
        return dist.ImproperUniform(constraints.real, batch_shape=(), event_shape=(self.latent_dim,))

    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        raise NotImplementedError("a flat prior is improper and has no samples; fit a density to the "
                                  "training codes (pyrovae.models.autoencoder.fit_ex_post_mixture) and "
                                  "decode its draws")


__all__ = ["FlatPrior"]
