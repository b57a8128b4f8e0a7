"""Mutual information between each latent dimension and each ground-truth factor of variation.

Data with known factors (dSprites: shape, scale, orientation, x and y position) hold every
factor on a finite grid, so each factor ``v_k`` is a discrete variable whose entropy ``H(v_k)``
is computed exactly from the counts. Two estimators of ``I(z_j; v_k)``:

* :func:`sampled_mutual_information` (Chen et al., "Isolating Sources of Disentanglement in
  VAEs", 2018, section 5): ``I(z_j; v_k) = H(z_j) - H(z_j | v_k)`` with ``z_j`` drawn from the
  encoder's ``q(z_j | x)`` and the densities of the aggregate posteriors
  ``q(z_j) = mean_n q(z_j | x_n)`` and ``q(z_j | v_k = v) = mean_{n: v_k(n) = v} q(z_j | x_n)``
  evaluated exactly over the points given (the images evaluated stand for the data set; Chen
  et al. use all of dSprites). Monte Carlo in the samples only.
* :func:`binned_mutual_information` (the protocol of Locatello et al. 2019's
  disentanglement_lib): the posterior means of each dimension are cut into equal-width bins and
  the discrete mutual information of the bin with the factor is computed from counts.

Both return a ``(latent_dim, num_factors)`` matrix in nats.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def factor_codes(factors: Tensor) -> Tensor:
    """Each factor's values replaced by their index among the factor's distinct values.

    Args:
        factors: ``(N, K)`` factor values (any numbers; a grid per factor).

    Returns:
        ``(N, K)`` int64 codes ``0 .. (number of distinct values - 1)``.
    """
    return torch.stack([torch.unique(column, return_inverse=True)[1] for column in factors.T], dim=1)


def discrete_entropy(codes: Tensor) -> Tensor:
    """Entropy in nats of each column of integer codes, from the empirical frequencies; ``(K,)``."""
    entropies = []
    for column in codes.T:
        p = torch.bincount(column).double() / column.numel()
        p = p[p > 0]
        entropies.append(-(p * p.log()).sum())
    return torch.stack(entropies).float()


def _discrete_mutual_information(a: Tensor, b: Tensor) -> Tensor:
    """``I(a; b)`` in nats of two integer code vectors of equal length, from their joint counts."""
    joint = torch.zeros(int(a.max()) + 1, int(b.max()) + 1, dtype=torch.float64)
    joint.index_put_((a, b), torch.ones(a.numel(), dtype=torch.float64), accumulate=True)
    joint /= a.numel()
    outer = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)
    nonzero = joint > 0
    return (joint[nonzero] * (joint[nonzero] / outer[nonzero]).log()).sum().float()


def binned_mutual_information(codes: Tensor, factors: Tensor, bins: int = 20) -> Tensor:
    """``I(z_j; v_k)`` with each latent dimension's values cut into ``bins`` equal-width bins.

    Args:
        codes: ``(N, D)`` latent codes, usually the posterior means.
        factors: ``(N, K)`` factor values.
        bins: bins per latent dimension (disentanglement_lib uses 20).

    Returns:
        ``(D, K)`` in nats.
    """
    low, high = codes.min(0).values, codes.max(0).values
    width = torch.where(high > low, (high - low) / bins, torch.ones_like(high))
    binned = ((codes - low) / width).floor().clamp(0, bins - 1).long()
    factor_index = factor_codes(factors)
    return torch.stack([torch.stack([_discrete_mutual_information(binned[:, j], factor_index[:, k])
                                     for k in range(factor_index.shape[1])]) for j in range(codes.shape[1])])


def _log_mixture_marginals(z: Tensor, own: Tensor, loc: Tensor, scale: Tensor, chunk_size: int = 256) -> Tensor:
    """``log q(z_{s,j})`` with ``q(z_j)`` the mean of the posteriors ``Normal(loc_mj, scale_mj)`` other
    than sample ``s``'s own (row ``own[s]`` of ``loc``): ``(S, D)`` from ``z`` ``(S, D)`` and ``(M, D)``
    posteriors, chunked over samples."""
    out = []
    for start in range(0, z.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        log_q = torch.distributions.Normal(loc, scale).log_prob(z[rows].unsqueeze(1))  # (s, M, D)
        log_q[torch.arange(log_q.shape[0]), own[rows]] = -math.inf
        out.append(torch.logsumexp(log_q, dim=1) - math.log(loc.shape[0] - 1))
    return torch.cat(out) if out else z.new_zeros(0, z.shape[1])


@torch.no_grad()
def sampled_mutual_information(loc: Tensor, scale: Tensor, factors: Tensor, num_samples: int = 2000,
                               generator: torch.Generator | None = None) -> Tensor:
    """``I(z_j; v_k) = E_{q(z, v)}[log q(z_j | v_k) - log q(z_j)]`` (Chen et al. 2018), in nats.

    ``num_samples`` points ``n`` are drawn uniformly and ``z ~ q(z | x_n)``, so that ``(z, v(n))``
    comes from the joint; at every draw the aggregate densities ``q(z_j) = mean_m q(z_j | x_m)``
    and ``q(z_j | v_k = v) = mean_{m: v_k(m) = v} q(z_j | x_m)`` are summed exactly over the
    points, leaving out the drawn point's own posterior (leave-one-out): on a subset of a factor
    grid a value has few points, and a narrow posterior would otherwise find itself in the small
    conditional mixture and fake information. Both terms use the same draws, so a dimension whose
    posterior does not depend on the factor scores exactly 0. This estimates
    ``H(z_j) - H(z_j | v_k)``, Chen et al.'s form, who sum over all of dSprites. Memory and time
    grow as ``num_samples * N * D`` per factor. Draws whose factor value has a single point are
    left out of that factor's average.

    Args:
        loc, scale: ``(N, D)`` the diagonal Normal posteriors of the ``N`` points (``N >= 2``).
        factors: ``(N, K)`` factor values.
        num_samples: draws ``(n, z)``.
        generator: random source of the draws.

    Returns:
        ``(D, K)`` in nats; a Monte Carlo estimate below 0 (a dimension independent of the factor)
        is reported as 0.
    """
    n = loc.shape[0]
    if n < 2:
        raise ValueError("the mutual information needs at least 2 points")
    chosen = torch.randint(n, (num_samples,), generator=generator, device=generator.device if generator else None)
    chosen = chosen.to(loc.device)
    noise = torch.randn(loc[chosen].shape, generator=generator, device=generator.device if generator else None)
    z = loc[chosen] + scale[chosen] * noise.to(loc)
    log_marginal = _log_mixture_marginals(z, chosen, loc, scale)  # (S, D)
    factor_index = factor_codes(factors)
    columns = []
    for k in range(factor_index.shape[1]):
        difference = torch.zeros_like(log_marginal)
        counted = torch.zeros(num_samples, dtype=torch.bool, device=loc.device)
        for value in factor_index[:, k].unique():
            same = (factor_index[:, k] == value).nonzero().squeeze(1)
            rows = factor_index[chosen, k] == value
            if same.numel() < 2 or not rows.any():
                continue
            position = torch.full((n,), -1, dtype=torch.long, device=loc.device)
            position[same] = torch.arange(same.numel(), device=loc.device)
            log_conditional = _log_mixture_marginals(z[rows], position[chosen[rows]], loc[same], scale[same])
            difference[rows] = log_conditional - log_marginal[rows]
            counted |= rows
        columns.append(difference[counted].mean(0) if counted.any() else torch.zeros(loc.shape[1]))
    return torch.stack(columns, dim=1).clamp_min(0.0)


__all__ = ["binned_mutual_information", "discrete_entropy", "factor_codes", "sampled_mutual_information"]
