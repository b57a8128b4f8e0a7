"""pyrovae: variational autoencoders written as Pyro models and guides."""

from pyrovae.clustering import cluster, cluster_accuracy, component_probabilities
from pyrovae.dreg import DReG
from pyrovae.elbo import ELBOLoss, SyncFreeTrace_ELBO
from pyrovae.encoders import DiagonalNormalEncoder, Encoder
from pyrovae.errors import InputError, NonFiniteError, PyrovaeError, TrainingInterrupted
from pyrovae.guides import FullCovarianceNormalEncoder, IAFEncoder, LowRankNormalEncoder
from pyrovae.iwae import IWAE
from pyrovae.likelihoods import (
    BernoulliLikelihood,
    ContinuousBernoulliLikelihood,
    LaplaceLikelihood,
    Likelihood,
    NormalLikelihood,
)
from pyrovae.nets import MLP, ConvDecoderNet, ConvEncoderNet
from pyrovae.objectives import LatentScale, linear_warmup
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
from pyrovae.traced_loss import TracedLoss
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
]
