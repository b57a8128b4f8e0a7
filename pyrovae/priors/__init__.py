"""Priors p(z): each a module returning a distribution, some owning extra sample sites."""

from pyrovae.priors.base import Prior
from pyrovae.priors.normal import LearnedNormalPrior, StandardNormalPrior

__all__ = ["Prior", "StandardNormalPrior", "LearnedNormalPrior"]
