"""Disentanglement measured on data with known factors: mutual information, MIG and DCI."""

from pyrovae.factors.dci import dci, importance_matrix, informativeness
from pyrovae.factors.mig import mutual_information_gap, mutual_information_gaps
from pyrovae.factors.mutual_information import (
    binned_mutual_information,
    discrete_entropy,
    factor_codes,
    sampled_mutual_information,
)
from pyrovae.factors.scores import MI_ESTIMATORS, factor_scores, posterior_parameters

__all__ = ["MI_ESTIMATORS", "binned_mutual_information", "dci", "discrete_entropy", "factor_codes",
           "factor_scores", "importance_matrix", "informativeness", "mutual_information_gap",
           "mutual_information_gaps", "posterior_parameters", "sampled_mutual_information"]
