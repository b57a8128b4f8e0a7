"""Guides q(z | x): amortized encoders, drop-in ``encoder=`` modules for :class:`pyrovae.VAE`."""

from pyrovae.guides.covariance import FullCovarianceNormalEncoder, LowRankNormalEncoder
from pyrovae.guides.diagonal import DiagonalNormalEncoder, Encoder
from pyrovae.guides.flow import IAFEncoder
from pyrovae.guides.quantizer import QuantizingEncoder, VectorQuantizer

__all__ = ["Encoder", "DiagonalNormalEncoder", "IAFEncoder", "LowRankNormalEncoder", "FullCovarianceNormalEncoder",
           "VectorQuantizer", "QuantizingEncoder"]
