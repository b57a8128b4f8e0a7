"""Guides q(z | x): amortized encoders, drop-in ``encoder=`` modules for :class:`pyrovae.VAE`."""

from pyrovae.guides.covariance import FullCovarianceNormalEncoder, LowRankNormalEncoder
# autoencoders (point-mass guide) and denoising (corrupted input)
from pyrovae.guides.corrupted import CorruptedInput, GaussianNoise, MaskingNoise
from pyrovae.guides.delta import DeltaEncoder
from pyrovae.guides.diagonal import DiagonalNormalEncoder, Encoder
from pyrovae.guides.flow import IAFEncoder
from pyrovae.guides.quantizer import QuantizingEncoder, VectorQuantizer

__all__ = ["Encoder", "DiagonalNormalEncoder", "IAFEncoder", "LowRankNormalEncoder", "FullCovarianceNormalEncoder",
           "DeltaEncoder", "CorruptedInput", "GaussianNoise", "MaskingNoise",
           "VectorQuantizer", "QuantizingEncoder"]
