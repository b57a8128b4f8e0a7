"""Cluster assignments under a mixture prior, and clustering accuracy by Hungarian matching to labels."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pyrovae.priors.mixture import GaussianMixturePrior
from pyrovae.models.vae import VAE


def _mixture_prior(vae: VAE) -> GaussianMixturePrior:
    """The VAE's prior if it can assign components (any prior with ``cluster`` and
    ``component_posterior``), else a clear error."""
    prior = vae.prior
    if not (hasattr(prior, "cluster") and hasattr(prior, "component_posterior")):
        raise ValueError(f"{type(prior).__name__} has no mixture components to cluster by: build the "
                         "VAE with a mixture prior such as GaussianMixturePrior")
    return prior


@torch.no_grad()
def encode_in_chunks(vae: VAE, x: Tensor, context: Tensor | None = None, batch_size: int = 1000) -> Tensor:
    """Posterior means ``vae.encode(x)`` of a whole data set, ``batch_size`` points per encoder
    call so that memory stays bounded; ``(N, latent_dim)``.

    The VAE runs in eval mode (dropout and other training-only noise off) and is put back in the
    mode it was in, so codes are deterministic even in the middle of training."""
    was_training = vae.training
    vae.eval()
    try:
        parts = []
        for start in range(0, x.shape[0], batch_size):
            c = None if context is None else context[start : start + batch_size]
            parts.append(vae.encode(x[start : start + batch_size], c))
    finally:
        vae.train(was_training)
    return torch.cat(parts)


@torch.no_grad()
def component_probabilities(vae: VAE, x: Tensor, context: Tensor | None = None,
                            batch_size: int = 1000) -> Tensor:
    """``p(c = k | z = encode(x))`` for each data point: the prior's posterior over components at the
    encoder's point estimate (its mean; for a flow guide, the flow applied to the base mean).

    Args:
        vae: a VAE whose prior has ``component_posterior`` (a mixture prior).
        x: ``(N, *event_shape)``.
        context: ``(N, ...)`` or None, passed to ``vae.encode``.
        batch_size: data points per encoder call.

    Returns:
        ``(N, K)`` probabilities, each row summing to one.
    """
    return _mixture_prior(vae).component_posterior(encode_in_chunks(vae, x, context, batch_size))


@torch.no_grad()
def cluster(vae: VAE, x: Tensor, context: Tensor | None = None, batch_size: int = 1000) -> Tensor:
    """The most probable mixture component for each data point, ``argmax_k p(c = k | encode(x))``.

    Using the encoder's point estimate (not an average over ``q(z | x)``) makes the assignment
    deterministic, as in VaDE's and GMVAE's reported clustering accuracies.

    Args:
        vae: a VAE whose prior has ``cluster`` (a mixture prior).
        x: ``(N, *event_shape)``.
        context: ``(N, ...)`` or None.
        batch_size: data points per encoder call.

    Returns:
        LongTensor ``(N,)`` of component indices in ``0..K-1``.
    """
    return _mixture_prior(vae).cluster(encode_in_chunks(vae, x, context, batch_size))


def confusion_counts(predicted: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> np.ndarray:
    """Counts ``C[k, c]`` of points put in cluster ``k`` whose label is ``c``.

    Args:
        predicted: integer cluster ids, shape ``(N,)``, any non-negative values.
        labels: integer class labels, shape ``(N,)``, non-negative.

    Returns:
        ``(num_clusters, num_classes)`` with ``num_clusters = max(predicted) + 1``.
    """
    p = _as_int_array(predicted, "predicted")
    y = _as_int_array(labels, "labels")
    if p.shape != y.shape:
        raise ValueError(f"predicted has shape {p.shape} but labels {y.shape}; give one cluster id per label")
    counts = np.zeros((int(p.max()) + 1, int(y.max()) + 1), dtype=np.int64)
    np.add.at(counts, (p, y), 1)
    return counts


def cluster_accuracy(predicted: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> float:
    """Fraction of points whose cluster, matched one-to-one to a class, carries the right label.

    ``max over one-to-one maps m: (1/N) sum_n [m(predicted_n) == labels_n]``, found with the
    Hungarian algorithm (``scipy.optimize.linear_sum_assignment``), the protocol of VaDE (Jiang
    et al. 2017) and GMVAE (Dilokthanakul et al. 2016). With more clusters than classes the
    surplus clusters stay unmatched and count as errors; with fewer, some classes go unmatched.

    Args:
        predicted: integer cluster ids, shape ``(N,)``.
        labels: integer class labels, shape ``(N,)``.

    Returns:
        Accuracy in ``[0, 1]``.
    """
    from scipy.optimize import linear_sum_assignment

    counts = confusion_counts(predicted, labels)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / counts.sum())


def _as_int_array(values: Tensor | np.ndarray, what: str) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-d array of integers, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} must hold integers, got dtype {array.dtype}; pass cluster ids, not probabilities")
    if array.min() < 0:
        raise ValueError(f"{what} must be non-negative integers, got minimum {array.min()}")
    return array.astype(np.int64)


__all__ = ["cluster", "component_probabilities", "cluster_accuracy", "confusion_counts", "encode_in_chunks"]
