"""Cluster assignments of data points under a VAE whose prior is a mixture (e.g. a Gaussian mixture)."""

from __future__ import annotations

import torch
from torch import Tensor

from pyrovae.priors.mixture import GaussianMixturePrior
from pyrovae.vae import VAE


def _mixture_prior(vae: VAE) -> GaussianMixturePrior:
    """The VAE's prior if it can assign components (any prior with ``cluster`` and
    ``component_posterior``), else a clear error."""
    prior = vae.prior
    if not (hasattr(prior, "cluster") and hasattr(prior, "component_posterior")):
        raise ValueError(f"{type(prior).__name__} has no mixture components to cluster by: build the "
                         "VAE with a mixture prior such as GaussianMixturePrior")
    return prior


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
    prior = _mixture_prior(vae)
    parts = []
    for start in range(0, x.shape[0], batch_size):
        c = None if context is None else context[start : start + batch_size]
        parts.append(prior.component_posterior(vae.encode(x[start : start + batch_size], c)))
    return torch.cat(parts)


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
    prior = _mixture_prior(vae)
    parts = []
    for start in range(0, x.shape[0], batch_size):
        c = None if context is None else context[start : start + batch_size]
        parts.append(prior.cluster(vae.encode(x[start : start + batch_size], c)))
    return torch.cat(parts)


__all__ = ["cluster", "component_probabilities"]
