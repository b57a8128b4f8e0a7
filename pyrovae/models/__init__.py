"""Models: a prior, a likelihood and a guide put together as Pyro ``model``/``guide`` pairs."""

from pyrovae.models.autoencoder import autoencoder, fit_ex_post_mixture
from pyrovae.models.cvae import ConditionalVAE, conditional_nll
from pyrovae.models.cvae_baseline import MaskedBaseline, fit_baseline
from pyrovae.models.m2 import M2
from pyrovae.models.vae import VAE
from pyrovae.models.vqvae import VQVAE, VQVAE2
from pyrovae.models.vq_builders import conv_dvae, conv_vqvae, conv_vqvae2

__all__ = ["VAE", "M2", "ConditionalVAE", "conditional_nll", "MaskedBaseline", "fit_baseline", "autoencoder",
           "fit_ex_post_mixture", "VQVAE", "VQVAE2",
           "conv_vqvae", "conv_vqvae2", "conv_dvae"]
