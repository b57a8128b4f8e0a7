"""Inference: objectives (ELBO, IWAE, DReG, KL weighting), importance sampling and evaluation."""
