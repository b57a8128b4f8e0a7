"""Semi-supervised and conditional VAEs: M2 (Kingma et al. 2014) and the CVAE (Sohn et al. 2015)."""

from pyrovae.semisupervised.m2 import M2

__all__ = ["M2"]
