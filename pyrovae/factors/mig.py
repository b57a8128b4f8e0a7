"""The mutual information gap (MIG) of Chen et al., "Isolating Sources of Disentanglement in VAEs", 2018.

``MIG = (1/K) sum_k (I(z_{j(k)}; v_k) - max_{j != j(k)} I(z_j; v_k)) / H(v_k)`` with
``j(k) = argmax_j I(z_j; v_k)``: for every factor, the gap between the two latent dimensions
that know most about it, as a fraction of what there is to know. 1 when each factor lives in one
dimension alone, 0 when two dimensions share it equally or none knows it. Factors that never
vary (``H(v_k) = 0``, e.g. dSprites' colour) are left out of the average.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mutual_information_gaps(mutual_information: Tensor, factor_entropies: Tensor) -> Tensor:
    """Normalized gap per factor; ``(K,)``, NaN for a factor that never varies.

    Args:
        mutual_information: ``(D, K)`` ``I(z_j; v_k)`` in nats (``D >= 2``).
        factor_entropies: ``(K,)`` ``H(v_k)`` in nats.
    """
    if mutual_information.shape[0] < 2:
        raise ValueError("the mutual information gap needs at least 2 latent dimensions")
    top_two = mutual_information.topk(2, dim=0).values
    gaps = (top_two[0] - top_two[1]) / factor_entropies
    return torch.where(factor_entropies > 0, gaps, torch.nan)


def mutual_information_gap(mutual_information: Tensor, factor_entropies: Tensor) -> float:
    """MIG, the mean of :func:`mutual_information_gaps` over the factors that vary."""
    gaps = mutual_information_gaps(mutual_information, factor_entropies)
    varying = ~gaps.isnan()
    if not varying.any():
        raise ValueError("no factor varies in these data: the mutual information gap is undefined")
    return gaps[varying].mean().item()


__all__ = ["mutual_information_gap", "mutual_information_gaps"]
