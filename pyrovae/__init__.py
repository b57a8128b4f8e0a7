"""pyrovae: variational autoencoders written as Pyro models and guides."""

from pyrovae.elbo import SyncFreeTrace_ELBO
from pyrovae.encoders import DiagonalNormalEncoder, Encoder
from pyrovae.likelihoods import (
    BernoulliLikelihood,
    ContinuousBernoulliLikelihood,
    LaplaceLikelihood,
    Likelihood,
    NormalLikelihood,
)
from pyrovae.nets import MLP, ConvDecoderNet, ConvEncoderNet
from pyrovae.objectives import LatentScale, linear_warmup
from pyrovae.priors import LearnedNormalPrior, Prior, StandardNormalPrior
from pyrovae.training import Trainer, TrainingRecord
from pyrovae.vae import VAE

__version__ = "0.1.0"

__all__ = [
    "VAE",
    "Trainer",
    "TrainingRecord",
    "MLP",
    "ConvEncoderNet",
    "ConvDecoderNet",
    "Encoder",
    "DiagonalNormalEncoder",
    "Likelihood",
    "BernoulliLikelihood",
    "ContinuousBernoulliLikelihood",
    "NormalLikelihood",
    "LaplaceLikelihood",
    "Prior",
    "StandardNormalPrior",
    "LearnedNormalPrior",
    "LatentScale",
    "SyncFreeTrace_ELBO",
    "linear_warmup",
]
