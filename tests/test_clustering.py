"""Clustering accuracy by Hungarian matching of clusters to labels."""

import numpy as np
import pytest
import torch

from pyrovae.clustering import cluster_accuracy, confusion_counts


def test_a_permuted_perfect_clustering_scores_one():
    labels = torch.arange(10).repeat(7)
    permutation = torch.randperm(10)
    assert cluster_accuracy(permutation[labels], labels) == 1.0


def test_hand_worked_example():
    # clusters:  0 -> labels {1, 1};  1 -> labels {0, 0, 1};  2 -> label {2}
    predicted = [0, 0, 1, 1, 1, 2]
    labels = [1, 1, 0, 0, 1, 2]
    np.testing.assert_array_equal(confusion_counts(np.array(predicted), np.array(labels)),
                                  [[0, 2, 0], [2, 1, 0], [0, 0, 1]])
    # best matching 0->1, 1->0, 2->2 gets 2 + 2 + 1 of 6 right
    assert cluster_accuracy(np.array(predicted), np.array(labels)) == pytest.approx(5 / 6)


def test_more_clusters_than_classes_leaves_surplus_clusters_wrong():
    predicted = np.array([0, 1, 2, 2])
    labels = np.array([0, 0, 1, 1])
    assert cluster_accuracy(predicted, labels) == pytest.approx(3 / 4)


def test_fewer_clusters_than_classes():
    assert cluster_accuracy(np.array([0, 0, 0]), np.array([0, 1, 1])) == pytest.approx(2 / 3)


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="must hold integers"):
        cluster_accuracy(np.array([0.2, 0.8]), np.array([0, 1]))
    with pytest.raises(ValueError, match="one cluster id per label"):
        cluster_accuracy(np.array([0, 1, 1]), np.array([0, 1]))
    with pytest.raises(ValueError, match="non-negative"):
        cluster_accuracy(np.array([-1, 1]), np.array([0, 1]))
