"""Priors p(z): each a module returning a distribution, some owning extra sample sites."""

from pyrovae.priors.base import Prior
from pyrovae.priors.conditional import ConditionalNormalPrior
from pyrovae.priors.flat import FlatPrior
from pyrovae.priors.flow import FlowPrior
from pyrovae.priors.hierarchical import HierarchicalPrior
from pyrovae.priors.mixture import GaussianMixturePrior
from pyrovae.priors.normal import LearnedNormalPrior, StandardNormalPrior
from pyrovae.priors.vamp import VampPrior
from pyrovae.priors.codes import CodePrior, UniformCodePrior
from pyrovae.priors.pixelcnn import PixelCNNPrior

__all__ = [
    "Prior",
    "StandardNormalPrior",
    "LearnedNormalPrior",
    "GaussianMixturePrior",
    "VampPrior",
    "FlowPrior",
    "HierarchicalPrior",
    "ConditionalNormalPrior",
    "FlatPrior",
    "CodePrior",
    "UniformCodePrior",
    "PixelCNNPrior",
]
