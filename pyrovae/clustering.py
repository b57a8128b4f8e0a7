"""Clustering accuracy: the best one-to-one matching of predicted clusters to class labels."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


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


__all__ = ["cluster_accuracy", "confusion_counts"]
