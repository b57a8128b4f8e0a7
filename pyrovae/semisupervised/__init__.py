"""Semi-supervised and conditional VAEs: M2 (Kingma et al. 2014) and the CVAE (Sohn et al. 2015)."""

from pyrovae.semisupervised.baseline import MaskedBaseline, fit_baseline
from pyrovae.semisupervised.cvae import ConditionalVAE, conditional_nll
from pyrovae.semisupervised.m2 import M2
from pyrovae.semisupervised.training import SemiSupervisedLoss, SemiSupervisedTrainer

__all__ = ["M2", "SemiSupervisedLoss", "SemiSupervisedTrainer", "ConditionalVAE", "conditional_nll",
           "MaskedBaseline", "fit_baseline"]
