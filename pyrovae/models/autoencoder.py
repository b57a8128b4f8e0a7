"""Autoencoders as VAEs with a point-mass guide, and generation from them by an ex-post density.

An autoencoder here is not a new model class: it is :class:`~pyrovae.VAE` with the encoder
swapped for :class:`~pyrovae.guides.DeltaEncoder` (``q(z | x) = delta(f(x))``), trained by the same
``Trace_ELBO`` and the same :class:`~pyrovae.Trainer`. The prior decides the objective (see
:mod:`pyrovae.guides.delta`): :class:`~pyrovae.priors.FlatPrior` gives the plain reconstruction
objective ``log p(x | f(x))``, the standard Normal the regularized (MAP) objective
``log p(x | f(x)) + log p(f(x))``. Neither is a bound on ``log p(x)``.

An autoencoder's codes need not fill any simple density, so decoding draws from ``N(0, I)``
gives poor images: the lesson of the tutorials that lead from autoencoders to VAEs. Ghosh et
al. (2020) ("From variational to deterministic autoencoders") generate instead from a density
fitted to the training codes after training, an *ex-post* density; a Gaussian mixture, as
pythae's ``GaussianMixtureSampler`` does, is :func:`fit_ex_post_mixture`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pyrovae.guides.corrupted import CorruptedInput
from pyrovae.guides.delta import DeltaEncoder
from pyrovae.likelihoods.elementwise import Likelihood
from pyrovae.models.vae import VAE
from pyrovae.priors.base import Prior
from pyrovae.priors.flat import FlatPrior
from pyrovae.priors.mixture import GaussianMixturePrior


def autoencoder(encoder_net: nn.Module, likelihood: Likelihood, latent_dim: int, prior: Prior | None = None,
                corruption: nn.Module | None = None, name: str = "ae") -> VAE:
    """A VAE whose guide is the point mass ``q(z | x) = delta(encoder_net(x))``.

    Args:
        encoder_net: maps ``(batch, *event_shape)`` to codes ``(batch, latent_dim)``.
        likelihood: ``p(x | z)``, the decoder.
        latent_dim: size of the code.
        prior: None (default) for :class:`~pyrovae.priors.FlatPrior`, the plain autoencoder that
            maximizes ``log p(x | f(x))``; a proper prior such as
            ``StandardNormalPrior(latent_dim)`` for the regularized autoencoder that maximizes
            ``log p(x | f(x)) + log p(f(x))``.
        corruption: a module corrupting the encoder's input in training (e.g.
            :class:`~pyrovae.guides.MaskingNoise`), giving a denoising autoencoder (Vincent et
            al. 2008); None for none.
        name: the name under which ``pyro.module`` registers the parameters.

    Returns:
        A :class:`~pyrovae.VAE`; train it with ``SVI(ae.model, ae.guide, optim, Trace_ELBO())``
        or :class:`~pyrovae.Trainer`. Its "ELBO" is the objective above, not a bound on ``log p(x)``.
    """
    encoder = DeltaEncoder(encoder_net, latent_dim)
    if corruption is not None:
        encoder = CorruptedInput(encoder, corruption)
    return VAE(encoder, likelihood, prior if prior is not None else FlatPrior(latent_dim), name=name)


@torch.no_grad()
def encode_all(vae: VAE, data: Tensor, batch_size: int = 1000) -> Tensor:
    """Codes (posterior means) of ``data`` ``(N, *event_shape)`` in evaluation mode, ``(N, latent_dim)``."""
    was_training = vae.training
    vae.eval()
    try:
        return torch.cat([vae.encode(chunk) for chunk in data.split(batch_size)])
    finally:
        vae.train(was_training)


@torch.no_grad()
def fit_ex_post_mixture(vae: VAE, data: Tensor, num_components: int = 10, restarts: int = 3,
                        generator: torch.Generator | None = None) -> GaussianMixturePrior:
    """A Gaussian mixture fitted by EM to the codes of ``data``: an ex-post density to sample from.

    ``vae.decode(mixture.sample(n))`` then generates from a trained autoencoder (Ghosh et al.
    2020); it works for a VAE too, whose aggregate posterior often departs from its prior.

    Args:
        vae: a trained model (an autoencoder or any VAE); its codes are ``vae.encode``'s.
        data: ``(N, *event_shape)`` training data, ``N >= num_components``.
        num_components: mixture components ``K``.
        restarts: EM restarts (k-means++ starts); the most likely fit is kept.
        generator: CPU random source for the starts.

    Returns:
        A :class:`~pyrovae.priors.GaussianMixturePrior` on the codes' device; save it with
        ``state_dict()`` and rebuild it with ``GaussianMixturePrior(latent_dim, K)``.
    """
    codes = encode_all(vae, data)
    mixture = GaussianMixturePrior(vae.latent_dim, num_components).to(codes.device)
    mixture.fit_to(codes, restarts=restarts, generator=generator)
    return mixture


__all__ = ["autoencoder", "encode_all", "fit_ex_post_mixture"]
