"""DCI disentanglement, completeness and informativeness (Eastwood and Williams, ICLR 2018).

A regressor predicts every factor ``v_k`` from the codes ``z``; its importance matrix
``R[j, k]`` says how much dimension ``j`` is used for factor ``k``. With ``P[j, k] = R[j, k] /
sum_k R[j, k]`` and entropies taken in base ``K`` (or ``D``):

* disentanglement ``D = sum_j rho_j (1 - H_K(P[j, :]))``, ``rho_j = sum_k R[j, k] / sum R``:
  each dimension captures at most one factor;
* completeness ``C = sum_k rho_k (1 - H_D(R[:, k] / sum_j R[j, k]))``, ``rho_k = sum_j R[j, k] /
  sum R``: each factor is captured by one dimension;
* informativeness: how well the codes predict the factors (here ``R^2`` on held-out points).

Eastwood and Williams use lasso and random-forest regressors. The regressor here is the simplest
of that family, closed-form ridge regression on standardized codes with ``R[j, k] = |w_jk|``; a
categorical factor (dSprites' shape) is one-hot encoded, one regression per class, and the
importances are summed over its classes. A linear regressor sees only linear relations, so a
dimension that codes a factor non-monotonically (an angle as a cosine) counts as less
informative than it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from pyrovae.factors.mutual_information import factor_codes


def _standardize(values: Tensor, reference: Tensor) -> Tensor:
    std = reference.std(0)
    return (values - reference.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))


def _ridge(x: Tensor, y: Tensor, penalty: float) -> Tensor:
    """Weights ``w`` of ``y ~ x w + b`` minimizing ``|y - x w - b|^2 + penalty N |w|^2``; ``(D, T)``."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    gram = x.T @ x + penalty * x.shape[0] * torch.eye(x.shape[1], dtype=x.dtype)
    return torch.linalg.solve(gram, x.T @ y)


def _targets(column: Tensor, categorical: bool) -> Tensor:
    """The regression targets of one factor: its standardized value, or its one-hot classes."""
    if categorical:
        codes = factor_codes(column.unsqueeze(1))[:, 0]
        return torch.nn.functional.one_hot(codes).double()
    return column.double().unsqueeze(1)


def _normalized_entropy(p: Tensor, base: int) -> Tensor:
    """Entropy of each row of ``p`` (rows sum to 1) in base ``base``."""
    if base < 2:
        return torch.zeros(p.shape[0], dtype=p.dtype)
    terms = torch.where(p > 0, -p * p.clamp_min(1e-300).log(), torch.zeros_like(p))
    return terms.sum(-1) / math.log(base)


def importance_matrix(codes: Tensor, factors: Tensor, categorical: Sequence[bool] | None = None,
                      penalty: float = 1e-3) -> Tensor:
    """``R[j, k] = |w_jk|`` of ridge regressions of each (standardized) factor on the standardized codes.

    Args:
        codes: ``(N, D)`` latent codes (posterior means).
        factors: ``(N, K)`` factor values.
        categorical: per factor, whether its values are unordered classes (one-hot targets).
        penalty: ridge penalty per data point.

    Returns:
        ``(D, K)`` non-negative importances.
    """
    categorical = list(categorical) if categorical is not None else [False] * factors.shape[1]
    x = _standardize(codes.double(), codes.double())
    columns = []
    for k in range(factors.shape[1]):
        y = _targets(factors[:, k], categorical[k])
        y = _standardize(y, y)
        columns.append(_ridge(x, y, penalty).abs().sum(1))
    return torch.stack(columns, dim=1).float()


def informativeness(codes: Tensor, factors: Tensor, categorical: Sequence[bool] | None = None,
                    penalty: float = 1e-3, test_fraction: float = 0.2,
                    generator: torch.Generator | None = None) -> Tensor:
    """Held-out ``R^2`` of the ridge prediction of each factor from the codes, ``(K,)``.

    For a categorical factor, the ``R^2`` of its one-hot targets (averaged over classes).
    """
    categorical = list(categorical) if categorical is not None else [False] * factors.shape[1]
    order = torch.randperm(codes.shape[0], generator=generator)
    cut = max(1, int(round(codes.shape[0] * (1 - test_fraction))))
    train, test = order[:cut], order[cut:]
    if test.numel() == 0:
        raise ValueError("too few points to hold some out for informativeness")
    x = codes.double()
    x_train, x_test = _standardize(x[train], x[train]), _standardize(x[test], x[train])
    scores = []
    for k in range(factors.shape[1]):
        y = _targets(factors[:, k], categorical[k])
        y_train, y_test = y[train], y[test]
        w = _ridge(x_train, y_train, penalty)
        prediction = (x_test - x_train.mean(0)) @ w + y_train.mean(0)
        residual = ((y_test - prediction) ** 2).sum(0)
        spread = ((y_test - y_test.mean(0)) ** 2).sum(0)
        r2 = torch.where(spread > 0, 1 - residual / spread.clamp_min(1e-300), torch.zeros_like(spread))
        scores.append(r2.mean())
    return torch.stack(scores).float()


def dci(codes: Tensor, factors: Tensor, categorical: Sequence[bool] | None = None, penalty: float = 1e-3,
        generator: torch.Generator | None = None) -> dict[str, float]:
    """Disentanglement, completeness and informativeness of ``codes`` for the varying ``factors``.

    Factors that never vary are dropped. Codes that are constant get uniform importances (as in
    disentanglement_lib), so an encoder that ignores the factors scores 0 on disentanglement and
    completeness and at most 0 on informativeness. Returns ``{"disentanglement", "completeness",
    "informativeness"}`` (informativeness: mean held-out ``R^2`` over the factors), each in [0, 1]
    (``R^2`` can fall below 0 for useless codes).
    """
    varying = factors.double().std(0) > 0
    if not varying.any():
        raise ValueError("no factor varies in these data: DCI is undefined")
    factors = factors[:, varying]
    categorical = None if categorical is None else [c for c, v in zip(categorical, varying.tolist()) if v]
    importance = importance_matrix(codes, factors, categorical, penalty).double()
    num_dims, num_factors = importance.shape
    if importance.sum() <= 0:  # constant codes: no dimension is used, every assignment equally likely
        importance = torch.ones_like(importance)
    total = importance.sum()
    per_dim = importance.sum(1)
    rows = importance / per_dim.clamp_min(1e-300).unsqueeze(1)
    disentanglement = ((1 - _normalized_entropy(rows, num_factors)) * per_dim / total).sum()
    per_factor = importance.sum(0)
    cols = (importance / per_factor.clamp_min(1e-300)).T
    completeness = ((1 - _normalized_entropy(cols, num_dims)) * per_factor / total).sum()
    info = informativeness(codes, factors, categorical, penalty, generator=generator).mean()
    return {"disentanglement": disentanglement.item(), "completeness": completeness.item(),
            "informativeness": info.item()}


__all__ = ["dci", "importance_matrix", "informativeness"]
