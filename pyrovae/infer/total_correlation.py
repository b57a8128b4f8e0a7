"""The aggregate posterior q(z) estimated from a minibatch, its total correlation, and the KL split.

With ``n`` uniform over the ``N`` training points, the aggregate posterior is
``q(z) = (1/N) sum_n q(z | x_n)`` and the average KL of a VAE with a factorized prior splits
into three terms (Chen et al., "Isolating Sources of Disentanglement in VAEs", 2018, eq. 2)::

    E_n KL(q(z|x_n) || p(z)) =  I_q(z; n)                          index-code mutual information
                              + KL(q(z) || prod_j q(z_j))          total correlation (TC)
                              + sum_j KL(q(z_j) || p(z_j))         dimension-wise KL

``q(z)`` at a sample needs all ``N`` posteriors; a minibatch of ``B`` points estimates it:

* ``"mss"``, minibatch stratified sampling (Chen et al. 2018, appendix C.2): the sample's own
  posterior ``q(z_i | x_i)`` with weight ``1/N`` and each of the ``B - 1`` other points of the
  batch, which stand for the ``N - 1`` others, with weight ``(N - 1) / (N (B - 1))``. For a batch
  drawn uniformly without replacement this is an unbiased estimate of ``q(z_i)`` (its logarithm
  is biased low by the usual Jensen gap, which shrinks as ``B`` grows). Chen et al.'s code
  weights one of the other points slightly differently; the estimates differ by ``O(1/N)``.
* ``"mws"``, minibatch weighted sampling, as printed in the paper (section 4.1):
  ``log q(z_i) ~ log (1 / (N B)) sum_j q(z_i | x_j)``. Where the batch's posteriors overlap
  widely, its ``log q(z)`` and every ``log q(z_j)`` come out about ``log N`` low, so its TC is the
  true TC plus about ``(D - 1) log N``: an offset, not a function of the parameters, so the
  gradient is still usable. Prefer ``"mss"`` for reported figures.

Every function here takes diagonal Normal posteriors: ``loc`` and ``scale`` of ``q(z | x)`` for
each point of the batch, so that the marginals ``q(z_j | x)`` are known in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.distributions as tdist
from torch import Tensor

ESTIMATORS = ("mss", "mws")


def diagonal_normal_parts(q: tdist.Distribution) -> tuple[Tensor, Tensor]:
    """``(loc, scale)`` of a diagonal Normal ``q(z | x)``: a ``Normal`` with its last batch
    dimension declared an event (``Normal(...).to_event(1)``, what the diagonal encoder returns).

    Raises:
        ValueError: when ``q`` is not a diagonal Normal (a flow, a full covariance, a mixture):
            its one-dimensional marginals are then not available in closed form.
    """
    base = q
    while isinstance(base, tdist.Independent):
        base = base.base_dist
    if not isinstance(base, tdist.Normal) or q.event_shape != base.batch_shape[-1:] + base.event_shape:
        raise ValueError(f"the total-correlation estimators need a diagonal Normal q(z|x) (Normal(...).to_event(1)), "
                         f"got {type(q).__name__}; use the diagonal guide")
    return base.loc, base.scale


def pairwise_log_marginals(z: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    """``log q(z_{i,j} | x_m)`` for every sample ``i``, posterior ``m`` and dimension ``j``.

    Args:
        z: ``(..., B, D)`` one sample per data point.
        loc, scale: ``(..., M, D)`` the diagonal posteriors (``M = B`` within a batch).

    Returns:
        ``(..., B, M, D)``.
    """
    return tdist.Normal(loc.unsqueeze(-3), scale.unsqueeze(-3)).log_prob(z.unsqueeze(-2))


def log_stratified_weights(batch_size: int, dataset_size: int, dtype: torch.dtype = torch.float32,
                           device: torch.device | None = None) -> Tensor:
    """``log w[i, m]``, shape ``(B, B)``: the weight of posterior ``m`` in the estimate of ``q(z_i)``
    under minibatch stratified sampling: ``1/N`` on the diagonal, ``(N-1)/(N(B-1))`` elsewhere."""
    if dataset_size < batch_size:
        raise ValueError(f"dataset_size ({dataset_size}) cannot be smaller than the batch ({batch_size})")
    if batch_size == 1:
        return torch.zeros(1, 1, dtype=dtype, device=device)
    other = math.log(dataset_size - 1) - math.log(dataset_size) - math.log(batch_size - 1)
    weights = torch.full((batch_size, batch_size), other, dtype=dtype, device=device)
    weights.diagonal().fill_(-math.log(dataset_size))
    return weights


def log_aggregate_posterior(z: Tensor, loc: Tensor, scale: Tensor, dataset_size: int,
                            estimator: str = "mss", chunk_size: int = 512) -> tuple[Tensor, Tensor]:
    """Minibatch estimates of ``log q(z_i)`` and of every marginal ``log q(z_{i,j})``.

    Args:
        z: ``(..., B, D)``, ``z_i ~ q(z | x_i)``, one per point of the batch.
        loc, scale: ``(..., B, D)``, the batch's diagonal Normal posteriors.
        dataset_size: ``N``, the number of points the batch was drawn from.
        estimator: ``"mss"`` or ``"mws"`` (module notes).
        chunk_size: samples scored against the whole batch at a time (bounds memory).

    Returns:
        ``(log_qz, log_qz_marginals)`` of shapes ``(..., B)`` and ``(..., B, D)``.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    batch_size = z.shape[-2]
    if estimator == "mss":
        log_w = log_stratified_weights(batch_size, dataset_size, z.dtype, z.device)
    else:
        log_w = torch.full((batch_size, batch_size), -math.log(batch_size * dataset_size), dtype=z.dtype,
                           device=z.device)
    joint, marginals = [], []
    for start in range(0, batch_size, chunk_size):  # rows of samples: memory (chunk, B, D), not (B, B, D)
        rows = slice(start, start + chunk_size)
        log_q = pairwise_log_marginals(z[..., rows, :], loc, scale)
        joint.append(torch.logsumexp(log_q.sum(-1) + log_w[rows], dim=-1))
        marginals.append(torch.logsumexp(log_q + log_w[rows].unsqueeze(-1), dim=-2))
    return torch.cat(joint, dim=-1), torch.cat(marginals, dim=-2)


def total_correlation(z: Tensor, loc: Tensor, scale: Tensor, dataset_size: int, estimator: str = "mss") -> Tensor:
    """``TC = E_q(z)[log q(z) - sum_j log q(z_j)]`` estimated from one batch, in nats, shape ``z.shape[:-2]``.

    Arguments as in :func:`log_aggregate_posterior`; the expectation is the mean over the batch.
    """
    log_qz, log_qz_marginals = log_aggregate_posterior(z, loc, scale, dataset_size, estimator)
    return (log_qz - log_qz_marginals.sum(-1)).mean(-1)


def kl_decomposition(z: Tensor, loc: Tensor, scale: Tensor, prior_loc: Tensor, prior_scale: Tensor,
                     dataset_size: int, estimator: str = "mss") -> dict[str, Tensor]:
    """Index-code MI, total correlation and dimension-wise KL (Chen et al. 2018, eq. 2) from one batch.

    All three are means over the batch at the same samples, so they add up exactly to the
    one-sample KL estimate ``mean_i [log q(z_i | x_i) - log p(z_i)]`` of a factorized prior.

    Args:
        z, loc, scale: as in :func:`log_aggregate_posterior`, shape ``(B, D)``.
        prior_loc, prior_scale: the factorized prior ``p(z) = prod_j Normal(prior_loc_j, prior_scale_j)``,
            broadcastable to ``(D,)``.
        dataset_size: ``N``.
        estimator: ``"mss"`` or ``"mws"``.

    Returns:
        ``{"mutual_information", "total_correlation", "dimensionwise_kl", "kl"}``, 0-d tensors, nats.
    """
    log_qz, log_qz_marginals = log_aggregate_posterior(z, loc, scale, dataset_size, estimator)
    log_qz_given_x = tdist.Normal(loc, scale).log_prob(z).sum(-1)
    log_pz_marginals = tdist.Normal(prior_loc, prior_scale).log_prob(z)
    parts = {
        "mutual_information": (log_qz_given_x - log_qz).mean(-1),
        "total_correlation": (log_qz - log_qz_marginals.sum(-1)).mean(-1),
        "dimensionwise_kl": (log_qz_marginals - log_pz_marginals).sum(-1).mean(-1),
    }
    parts["kl"] = (log_qz_given_x - log_pz_marginals.sum(-1)).mean(-1)
    return parts


def factorized_prior_parts(prior: torch.nn.Module) -> tuple[Tensor, Tensor]:
    """``(loc, scale)`` of a factorized Normal prior (standard or learned diagonal Normal).

    Raises:
        ValueError: for a prior whose dimensions are not independent Normals (a mixture, a flow,
            a VampPrior, a hierarchy): the dimension-wise KL of the split is then undefined.
    """
    try:
        return diagonal_normal_parts(prior())
    except (ValueError, TypeError, NotImplementedError):
        raise ValueError(f"the KL split (mutual information, total correlation, dimension-wise KL) needs a "
                         f"factorized Normal prior, got {type(prior).__name__}") from None


@torch.no_grad()
def vae_kl_decomposition(vae: torch.nn.Module, data: Tensor, dataset_size: int | None = None,
                         batch_size: int = 500, generator: torch.Generator | None = None) -> dict[str, float]:
    """The KL split of a VAE with a factorized prior and a diagonal Normal guide, on ``data``.

    One ``z_i ~ q(z | x_i)`` per point; the aggregate posterior is that of ``data`` standing for
    ``dataset_size`` points (stratified weights; exact when ``data`` is the whole training set).

    Args:
        vae: a :class:`~pyrovae.VAE` (``vae.posterior(x)`` and ``vae.prior``).
        data: ``(M, *event_shape)``, e.g. the first training points.
        dataset_size: ``N`` (default ``M``).
        batch_size: points encoded at a time.
        generator: random source of the draws of ``z`` (default: a fresh one seeded 0, so that
            calling this leaves the global random state alone).

    Returns:
        ``{"mutual_information", "total_correlation", "dimensionwise_kl", "kl"}`` in nats per point.

    Raises:
        ValueError: when the prior is not factorized or the guide not a diagonal Normal.
    """
    prior_loc, prior_scale = factorized_prior_parts(vae.prior)
    locs, scales = [], []
    for start in range(0, data.shape[0], batch_size):
        loc, scale = diagonal_normal_parts(vae.posterior(data[start:start + batch_size]))
        locs.append(loc)
        scales.append(scale)
    loc, scale = torch.cat(locs), torch.cat(scales)
    generator = generator or torch.Generator(device=loc.device).manual_seed(0)
    z = loc + scale * torch.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
    parts = kl_decomposition(z, loc, scale, prior_loc, prior_scale, dataset_size or data.shape[0])
    return {name: value.item() for name, value in parts.items()}


def kl_split_callback(data: Tensor, dataset_size: int, prefix: str = "train") -> Callable:
    """A :class:`~pyrovae.train.trainer.Trainer` epoch callback that adds the KL split of
    ``trainer.module`` on ``data`` to the epoch's figures (``{prefix}_mutual_information``,
    ``{prefix}_total_correlation``, ``{prefix}_dimensionwise_kl``), for a module with a
    factorized prior and a diagonal Normal guide (check with :func:`supports_kl_split`).

    List it before callbacks that write the figures out (a metrics file)."""

    def add_split(trainer: Any, figures: dict[str, float]) -> None:
        module = trainer.module
        was_training = module.training
        module.eval()
        parts = vae_kl_decomposition(module, data, dataset_size)
        module.train(was_training)
        figures.update({f"{prefix}_{name}": value for name, value in parts.items() if name != "kl"})

    return add_split


def supports_kl_split(vae: torch.nn.Module, example: Tensor) -> bool:
    """Whether :func:`vae_kl_decomposition` applies: a factorized Normal prior and a diagonal Normal
    guide (tried on ``example``, a small batch)."""
    try:
        factorized_prior_parts(vae.prior)
        with torch.no_grad():
            diagonal_normal_parts(vae.posterior(example))
    except (AttributeError, TypeError, ValueError, NotImplementedError, RuntimeError):
        return False
    return True


__all__ = ["ESTIMATORS", "diagonal_normal_parts", "factorized_prior_parts", "kl_decomposition", "kl_split_callback",
           "log_aggregate_posterior", "log_stratified_weights", "pairwise_log_marginals", "supports_kl_split",
           "total_correlation", "vae_kl_decomposition"]
