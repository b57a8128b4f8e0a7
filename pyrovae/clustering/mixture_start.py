"""VaDE's start for a mixture prior: train the networks as an autoencoder, then fit the mixture
to the codes.

A mixture prior started at random means lets its components settle wherever the encoder's
first codes happen to fall, and the clusters then split digits by stroke width as readily as
by class. VaDE (Jiang et al. 2017) first trains encoder and decoder without the prior, fits
a Gaussian mixture to the codes of the training data, and only then trains the full model.
What this start gains on full MNIST, against a random one, is measured by
benchmarks/clustering.py (its section in benchmarks/README.md).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pyrovae.clustering.accuracy import encode_in_chunks
from pyrovae.priors.mixture_fit import MixtureFit
from pyrovae.priors.mixture import GaussianMixturePrior
from pyrovae.priors.normal import StandardNormalPrior
from pyrovae.train.trainer import Trainer
from pyrovae.models.vae import VAE


def pretrain_mixture_prior(vae: VAE, train: Tensor, epochs: int, *, kl_weight: float = 0.0,
                           restarts: int = 3, generator: torch.Generator | None = None,
                           **trainer_kwargs: Any) -> MixtureFit:
    """Train ``vae``'s encoder and likelihood as an autoencoder for ``epochs``, then set its
    mixture prior to a diagonal mixture fitted by EM to the codes of ``train``.

    The networks are trained inside a VAE with a standard Normal prior whose KL term is
    weighted by ``kl_weight`` (0: a plain autoencoder with a noisy code, as VaDE pretrains);
    ``vae``'s own prior is not touched until the fit.

    Args:
        vae: a VAE whose prior is a :class:`~pyrovae.priors.GaussianMixturePrior`.
        train: ``(N, *event_shape)`` training data.
        epochs: pretraining passes over ``train`` (at least 1).
        kl_weight: weight of the KL term while pretraining.
        restarts: EM restarts of the mixture fit.
        generator: random source for the batches and the EM starts.
        **trainer_kwargs: passed to :class:`~pyrovae.Trainer` (``lr``, ``batch_size``,
            ``transform``, ``progress``, ``callbacks``, ...).

    Returns:
        The fit that was copied into ``vae.prior``.
    """
    if not isinstance(vae.prior, GaussianMixturePrior):
        raise TypeError(f"pretraining fits a Gaussian mixture prior; this VAE's prior is "
                        f"{type(vae.prior).__name__}: build it with GaussianMixturePrior")
    if epochs < 1:
        raise ValueError(f"pretraining needs at least 1 epoch, got {epochs}")
    autoencoder = VAE(vae.encoder, vae.likelihood, StandardNormalPrior(vae.prior.latent_dim).to(train.device),
                      name=f"{vae.name}_pretrain")
    Trainer(autoencoder, beta=kl_weight, generator=generator, **trainer_kwargs).fit(train, epochs=epochs)
    # k-means++ draws its starts on the CPU; a CUDA generator cannot drive those draws
    fit_generator = generator if generator is not None and generator.device.type == "cpu" else None
    return vae.prior.fit_to(encode_in_chunks(vae, train), restarts=restarts, generator=fit_generator)


__all__ = ["pretrain_mixture_prior"]
