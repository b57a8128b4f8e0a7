"""A prior's marginal density ``p(z)`` as one distribution, for models scored by importance sampling."""

from __future__ import annotations

import math
from typing import Any

import pyro.distributions as dist
import torch
from torch import Tensor
from torch.distributions import constraints


class MarginalPrior(dist.TorchDistribution):
    """``p(z)`` of a :class:`~pyrovae.priors.Prior` as one distribution: ``log_prob`` is the
    prior's marginal ``prior.log_prob(z, context)`` (a mixture's component summed out),
    ``sample`` its ``prior.sample``.

    A model that draws ``z`` from this has the single latent site ``z`` where the prior's own
    ``model_sample`` may add more (an enumerated component), so importance sampling needs no
    enumeration (:meth:`pyrovae.VAE.marginal_model`).

    Args:
        prior: the prior.
        context: ``(batch, ...)`` or None, passed to the prior.
        batch_shape: e.g. ``(batch,)``.
    """

    arg_constraints: dict = {}
    support = constraints.real_vector

    def __init__(self, prior: Any, context: Tensor | None, batch_shape: torch.Size) -> None:
        self.prior, self.context = prior, context
        super().__init__(torch.Size(batch_shape), torch.Size([prior.latent_dim]), validate_args=False)

    def expand(self, batch_shape: torch.Size, _instance: Any = None) -> MarginalPrior:
        return MarginalPrior(self.prior, self.context, torch.Size(batch_shape))

    def log_prob(self, value: Tensor) -> Tensor:
        return self.prior.log_prob(value, self.context).expand(value.shape[:-1])

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        return self.prior.sample(math.prod(sample_shape + self.batch_shape) or 1, self.context).reshape(
            sample_shape + self.batch_shape + self.event_shape)


__all__ = ["MarginalPrior"]
