"""Clustering with a mixture prior: accuracy by Hungarian matching, and starts for the mixture."""

from pyrovae.clustering.accuracy import cluster, cluster_accuracy, component_probabilities

__all__ = ["cluster", "cluster_accuracy", "component_probabilities"]
