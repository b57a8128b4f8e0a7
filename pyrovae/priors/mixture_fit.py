"""Fitting a diagonal Gaussian mixture to a cloud of latent codes (k-means++ then EM).

VaDE (Jiang et al. 2017) starts its mixture prior from a mixture fitted to the codes of a
pretrained autoencoder; a prior started at random means instead lets the components drift
onto whatever the encoder produces first, and the clusters match the classes less well
(benchmarks/clustering.py: 61.4% against 76.3% on MNIST). This is that fit, written in torch
so it runs on the codes' device; :meth:`pyrovae.priors.GaussianMixturePrior.fit_to` copies the
result into a prior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class MixtureFit:
    """Weights ``(K,)``, means ``(K, D)`` and standard deviations ``(K, D)`` of a fitted
    mixture, and its mean log-likelihood per point (the criterion that picks a restart)."""

    weights: Tensor
    means: Tensor
    scales: Tensor
    mean_log_likelihood: float

    def most_probable(self, z: Tensor) -> Tensor:
        """The most probable component of each of the ``(N, D)`` points, ``(N,)`` long."""
        z = z.double()
        return _log_joint(z, self.weights.to(z), self.means.to(z), self.scales.to(z)).argmax(-1)


def kmeans_plus_plus(z: Tensor, num_components: int, generator: torch.Generator | None = None) -> Tensor:
    """Starting means by k-means++ (Arthur and Vassilvitskii 2007): each new centre is drawn
    with probability proportional to its squared distance from the nearest centre so far.

    Args:
        z: ``(N, D)`` points.
        num_components: ``K``, at most ``N``.

    Returns:
        ``(K, D)`` centres, rows of ``z``.
    """
    first = torch.randint(z.shape[0], (1,), generator=generator, device="cpu").item()
    centres = [z[first]]
    nearest = ((z - z[first]) ** 2).sum(-1)
    for _ in range(1, num_components):
        # multinomial needs a CPU generator's device to match the probabilities'
        index = torch.multinomial(nearest.cpu() + 1e-12, 1, generator=generator).item()
        centres.append(z[index])
        nearest = torch.minimum(nearest, ((z - z[index]) ** 2).sum(-1))
    return torch.stack(centres)


def _log_joint(z: Tensor, weights: Tensor, means: Tensor, scales: Tensor) -> Tensor:
    """``log w_k + log N(z_n; mu_k, sigma_k^2)``, shape ``(N, K)``."""
    diff = (z.unsqueeze(1) - means) / scales  # (N, K, D)
    log_normal = -0.5 * (diff**2).sum(-1) - scales.log().sum(-1) - 0.5 * z.shape[1] * math.log(2 * math.pi)
    return weights.log() + log_normal


def _m_step(z: Tensor, resp: Tensor, min_scale: float) -> tuple[Tensor, Tensor, Tensor]:
    """Weights ``(K,)``, means and floored standard deviations ``(K, D)`` of points ``z``
    ``(N, D)`` under responsibilities ``resp`` ``(N, K)``."""
    counts = resp.sum(0) + 1e-10
    means = resp.T @ z / counts[:, None]
    variances = resp.T @ z**2 / counts[:, None] - means**2
    return counts / counts.sum(), means, variances.clamp_min(min_scale**2).sqrt()


def fit_diagonal_gmm(z: Tensor, num_components: int, iterations: int = 200, restarts: int = 3,
                     min_scale: float = 1e-3, generator: torch.Generator | None = None) -> MixtureFit:
    """Maximum-likelihood diagonal Gaussian mixture by EM, started by k-means++.

    Args:
        z: ``(N, D)`` codes, ``N >= num_components``.
        num_components: ``K``.
        iterations: EM iterations per restart (stops early once the log-likelihood settles).
        restarts: independent k-means++ starts; the fit with the highest likelihood is kept.
        min_scale: floor on every standard deviation, so a component on one point cannot
            collapse to a spike.
        generator: random source for the starts.

    Returns:
        The best :class:`MixtureFit`.
    """
    if z.dim() != 2:
        raise ValueError(f"codes must be a (N, D) matrix, got shape {tuple(z.shape)}")
    if z.shape[0] < num_components:
        raise ValueError(f"cannot fit {num_components} components to {z.shape[0]} points; "
                         "pass at least as many codes as components")
    z = z.detach().double()  # EM's responsibilities underflow in float32 on far-apart codes
    best: MixtureFit | None = None
    for _ in range(restarts):
        means = kmeans_plus_plus(z, num_components, generator)
        scales = z.std(0).expand(num_components, -1).clone().clamp_min(min_scale)
        weights = torch.full((num_components,), 1.0 / num_components, dtype=z.dtype, device=z.device)
        previous = -math.inf
        for _ in range(iterations):
            log_joint = _log_joint(z, weights, means, scales)
            log_total = log_joint.logsumexp(-1, keepdim=True)
            current = log_total.mean().item()
            resp = (log_joint - log_total).exp()  # (N, K) responsibilities
            weights, means, scales = _m_step(z, resp, min_scale)
            if current - previous < 1e-7 * abs(current):
                break
            previous = current
        final = _log_joint(z, weights, means, scales).logsumexp(-1).mean().item()
        if best is None or final > best.mean_log_likelihood:
            best = MixtureFit(weights.float(), means.float(), scales.float(), final)
    assert best is not None
    return best


def fit_to_partition(z: Tensor, labels: Tensor, num_components: int, min_scale: float = 1e-3) -> MixtureFit:
    """The diagonal mixture that a hard partition of the codes implies: each component's weight
    is its share of the points, its mean and standard deviation those of its points (the
    M-step of EM with 0/1 responsibilities). Starts a mixture prior from a clustering found
    some other way, e.g. :func:`pyrovae.clustering.umap_start.umap_partition`.

    Args:
        z: ``(N, D)`` codes.
        labels: ``(N,)`` integer component of each code, in ``[0, num_components)``; every
            component needs at least one point.
        num_components: ``K``.
        min_scale: floor on every standard deviation (a component of one point has none).

    Returns:
        A :class:`MixtureFit` with weights ``(K,)``, means and scales ``(K, D)``.
    """
    if z.dim() != 2 or labels.shape != z.shape[:1]:
        raise ValueError(f"need codes (N, D) and labels (N,), got shapes {tuple(z.shape)} and {tuple(labels.shape)}")
    labels = labels.long().to(z.device)
    if labels.min() < 0 or labels.max() >= num_components:
        raise ValueError(f"labels must lie in [0, {num_components}), got [{labels.min()}, {labels.max()}]")
    counts = torch.bincount(labels, minlength=num_components)
    if (counts == 0).any():
        empty = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"components {empty} have no points; relabel the partition to {num_components} non-empty parts")
    z = z.detach().double()
    resp = torch.nn.functional.one_hot(labels, num_components).double()
    weights, means, scales = _m_step(z, resp, min_scale)
    log_likelihood = _log_joint(z, weights, means, scales).logsumexp(-1).mean().item()
    return MixtureFit(weights.float(), means.float(), scales.float(), log_likelihood)


__all__ = ["MixtureFit", "fit_diagonal_gmm", "fit_to_partition", "kmeans_plus_plus"]
