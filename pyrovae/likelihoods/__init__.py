"""Likelihoods p(x | z): modules that map a latent code to a distribution over the data."""

from pyrovae.likelihoods.discrete import CategoricalLikelihood, DiscretizedLogisticMixtureLikelihood
from pyrovae.likelihoods.elementwise import (
    BernoulliLikelihood,
    ContinuousBernoulliLikelihood,
    LaplaceLikelihood,
    Likelihood,
    NormalLikelihood,
)

__all__ = [
    "Likelihood",
    "BernoulliLikelihood",
    "ContinuousBernoulliLikelihood",
    "NormalLikelihood",
    "LaplaceLikelihood",
    "CategoricalLikelihood",
    "DiscretizedLogisticMixtureLikelihood",
]
