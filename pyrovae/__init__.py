"""pyrovae: variational autoencoders written as Pyro models and guides."""

from pyrovae.clustering.accuracy import cluster, cluster_accuracy, component_probabilities
from pyrovae.infer.dreg import DReG
from pyrovae.infer.elbo import ELBOLoss, SyncFreeTrace_ELBO
from pyrovae.guides.diagonal import DiagonalNormalEncoder, Encoder
from pyrovae.errors import InputError, NonFiniteError, PyrovaeError, TrainingInterrupted
from pyrovae.guides import FullCovarianceNormalEncoder, IAFEncoder, LowRankNormalEncoder
from pyrovae.infer.iwae import IWAE
from pyrovae.likelihoods.elementwise import (
    BernoulliLikelihood,
    ContinuousBernoulliLikelihood,
    LaplaceLikelihood,
    Likelihood,
    NormalLikelihood,
)
from pyrovae.nn import MLP, ConvDecoderNet, ConvEncoderNet
from pyrovae.infer.objectives import LatentScale, linear_warmup
from pyrovae.priors import (
    ConditionalNormalPrior,
    FlowPrior,
    GaussianMixturePrior,
    HierarchicalPrior,
    LearnedNormalPrior,
    Prior,
    StandardNormalPrior,
    VampPrior,
)
from pyrovae.fast.traced_loss import TracedLoss
from pyrovae.train.trainer import Trainer, TrainingRecord
from pyrovae.models.vae import VAE
# Saving and loading a model, architecture included.
from pyrovae.io import load, save
from pyrovae.models.vqvae import VQVAE, VQVAE2  # discrete codes (VQ-VAE)
from pyrovae.models.vq_builders import conv_vqvae, conv_vqvae2

# Images of any shape: 8-bit likelihoods (issue 22).
from pyrovae.likelihoods.discrete import CategoricalLikelihood, DiscretizedLogisticMixtureLikelihood

# autoencoders and denoising as swaps of parts (docs/autoencoders.md)
from pyrovae.guides import CorruptedInput, DeltaEncoder, GaussianNoise, MaskingNoise
from pyrovae.models.autoencoder import autoencoder, fit_ex_post_mixture
from pyrovae.priors import FlatPrior

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
    "IAFEncoder",
    "LowRankNormalEncoder",
    "FullCovarianceNormalEncoder",
    "Likelihood",
    "BernoulliLikelihood",
    "ContinuousBernoulliLikelihood",
    "NormalLikelihood",
    "LaplaceLikelihood",
    "Prior",
    "StandardNormalPrior",
    "LearnedNormalPrior",
    "GaussianMixturePrior",
    "VampPrior",
    "FlowPrior",
    "HierarchicalPrior",
    "ConditionalNormalPrior",
    "cluster",
    "component_probabilities",
    "cluster_accuracy",
    "IWAE",
    "DReG",
    "LatentScale",
    "SyncFreeTrace_ELBO",
    "ELBOLoss",
    "TracedLoss",
    "linear_warmup",
    "PyrovaeError",
    "InputError",
    "NonFiniteError",
    "TrainingInterrupted",
    # saving and loading
    "save",
    "load",
    # Images of any shape: 8-bit likelihoods (issue 22).
    "CategoricalLikelihood",
    "DiscretizedLogisticMixtureLikelihood",
    # VQ-VAE
    "VQVAE",
    "VQVAE2",
    "conv_vqvae",
    "conv_vqvae2",
]
__all__ += ["DeltaEncoder", "FlatPrior", "CorruptedInput", "GaussianNoise", "MaskingNoise", "autoencoder",
            "fit_ex_post_mixture"]  # autoencoders and denoising
