"""Bits per dimension: a negative log-likelihood in nats per data point, as image-model papers report it."""

from __future__ import annotations

import math
from collections.abc import Sequence


def bits_per_dim(nll_nats: float, event_shape: int | Sequence[int]) -> float:
    """``nll / (D ln 2)``: the code length per sub-pixel, for ``D`` values per data point.

    Meaningful only for a probability mass function over the data (the 8-bit likelihoods of
    :mod:`pyrovae.likelihoods.discrete`); for a density the figure depends on the data's scale.
    CIFAR-10 models are compared at ``D = 3 * 32 * 32 = 3072`` (e.g. PixelCNN++'s 2.92 bits/dim,
    Salimans et al. 2017).

    Args:
        nll_nats: ``-log p(x)`` in nats per data point, e.g. the importance-sampled estimate.
        event_shape: the shape of one data point, e.g. ``(3, 32, 32)``, or ``D`` itself.

    Returns:
        Bits per dimension.
    """
    dims = event_shape if isinstance(event_shape, int) else math.prod(event_shape)
    if dims < 1:
        raise ValueError(f"a data point must have at least one dimension, got shape {event_shape}")
    return nll_nats / (dims * math.log(2))


__all__ = ["bits_per_dim"]
