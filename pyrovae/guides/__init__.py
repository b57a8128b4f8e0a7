"""Guides q(z | x) beyond the diagonal Normal: drop-in ``encoder=`` modules for :class:`pyrovae.VAE`."""

from pyrovae.guides.covariance import FullCovarianceNormalEncoder, LowRankNormalEncoder
from pyrovae.guides.flow import IAFEncoder

__all__ = ["IAFEncoder", "LowRankNormalEncoder", "FullCovarianceNormalEncoder"]
