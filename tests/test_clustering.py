"""Clustering accuracy by Hungarian matching of clusters to labels."""

import numpy as np
import pytest
import torch

from pyrovae.clustering.accuracy import cluster_accuracy, confusion_counts


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


def test_codes_are_computed_in_eval_mode_and_the_mode_is_restored():
    # A denoising encoder (dropout on its input) must give the same codes twice: encode_in_chunks
    # switches dropout off for the encoding and leaves the VAE training afterwards.
    from pyrovae import MLP, VAE, BernoulliLikelihood, DiagonalNormalEncoder
    from pyrovae.clustering.accuracy import encode_in_chunks
    from pyrovae.priors import StandardNormalPrior

    torch.manual_seed(0)
    encoder = DiagonalNormalEncoder(torch.nn.Sequential(torch.nn.Dropout(0.5), MLP(6, (8,), 4)), 2)
    vae = VAE(encoder, BernoulliLikelihood(MLP(2, (8,), 6), (6,)), StandardNormalPrior(2))
    vae.train()
    x = torch.rand(10, 6)
    first = encode_in_chunks(vae, x, batch_size=3)
    torch.testing.assert_close(first, encode_in_chunks(vae, x, batch_size=4))
    torch.testing.assert_close(first, vae.eval().encode(x))
    vae.train()
    encode_in_chunks(vae, x)
    assert vae.training and encoder.net[0].training
    assert not torch.equal(encoder(x).mean, encoder(x).mean)  # dropout is on again
