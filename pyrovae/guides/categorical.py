"""A categorical posterior over code maps (the dVAE form): one-hot codes with a straight-through
Gumbel-softmax gradient and a real KL to the prior.

The variational cousin of the quantizer (:mod:`pyrovae.guides.quantizer`): each position of the
``(h, w)`` map has ``q(c_ij | x) = Categorical(softmax(logits_ij))``; a draw is the one-hot vector
of a Gumbel-max sample, and its gradient is that of the relaxed sample
``softmax((logits + g) / tau)`` (straight-through Gumbel-softmax, Jang et al. 2017; Bengio et al.
2013). ``log_prob`` is the categorical log-mass of the one-hot value, so ``Trace_ELBO`` scores
``log p(x | c) + log p(c) - log q(c | x)`` with no auxiliary term, and ``TraceMeanField_ELBO``
uses the analytic ``KL(q || uniform) = sum_ij sum_k q_ijk log(K q_ijk)`` registered here
(the dVAE of Rolfe 2017 and DALL-E's, Ramesh et al. 2021, in this form).

The latent is the one-hot map flattened to ``(batch, h * w * K)``, position-major.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor, nn

from pyrovae.guides.diagonal import Encoder
from pyrovae.priors.base import Prior
from pyrovae.nn.rebuild import Rebuildable


class StraightThroughCategoricalMap(TorchDistribution):
    """Independent categoricals over ``positions`` places, as one flattened one-hot event.

    Args:
        logits: ``(*batch, positions, K)``.
        temperature: ``tau`` of the relaxed sample that carries the gradient.

    Event shape ``(positions * K,)``; ``rsample`` returns exact one-hot values.
    """

    arg_constraints = {"logits": constraints.real}  # noqa: RUF012 - torch's own convention
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, logits: Tensor, temperature: float = 1.0, validate_args: bool | None = None) -> None:
        self.logits = logits.log_softmax(-1)
        self.temperature = temperature
        batch, (positions, k) = logits.shape[:-2], logits.shape[-2:]
        self.num_codes = k
        super().__init__(batch, torch.Size([positions * k]), validate_args=False)

    def expand(self, batch_shape, _instance=None) -> StraightThroughCategoricalMap:
        logits = self.logits.expand(*batch_shape, *self.logits.shape[-2:])
        return StraightThroughCategoricalMap(logits, self.temperature)

    @property
    def probs(self) -> Tensor:
        return self.logits.exp()

    def rsample(self, sample_shape=()) -> Tensor:
        logits = self.logits.expand(*sample_shape, *self.logits.shape)
        gumbel = -torch.empty_like(logits).exponential_().log()
        soft = ((logits + gumbel) / self.temperature).softmax(-1)
        hard = F.one_hot(soft.argmax(-1), self.num_codes).to(soft.dtype)
        return (hard + (soft - soft.detach())).flatten(-2)  # exactly one-hot in value

    def log_prob(self, value: Tensor) -> Tensor:
        one_hot = value.reshape(*value.shape[:-1], -1, self.num_codes)
        return (one_hot * self.logits).sum((-1, -2))

    def entropy(self) -> Tensor:
        return -(self.probs * self.logits).sum((-1, -2))


class UniformOneHotPrior(Prior):
    """``p(c)``: every code equally likely at each of ``positions`` places, over flattened one-hot maps.

    Args:
        positions: ``h * w``.
        num_codes: ``K``.
    """

    def __init__(self, positions: int, num_codes: int) -> None:
        super().__init__()
        self.positions, self.num_codes = positions, num_codes
        self.latent_dim = positions * num_codes

    def forward(self, context: Tensor | None = None) -> dist.Distribution:
        return OneHotMap(torch.zeros(self.positions, self.num_codes))


class OneHotMap(TorchDistribution):
    """Independent categoricals (``logits`` ``(*batch, positions, K)``) over a flattened one-hot map."""

    arg_constraints = {"logits": constraints.real}  # noqa: RUF012 - torch's own convention
    support = constraints.real_vector

    def __init__(self, logits: Tensor) -> None:
        self.logits = logits.log_softmax(-1)
        batch, (positions, k) = logits.shape[:-2], logits.shape[-2:]
        self.num_codes = k
        super().__init__(batch, torch.Size([positions * k]), validate_args=False)

    def expand(self, batch_shape, _instance=None) -> OneHotMap:
        return OneHotMap(self.logits.expand(*batch_shape, *self.logits.shape[-2:]))

    def log_prob(self, value: Tensor) -> Tensor:
        return (value.reshape(*value.shape[:-1], -1, self.num_codes) * self.logits).sum((-1, -2))

    def sample(self, sample_shape=()) -> Tensor:
        logits = self.logits.expand(*sample_shape, *self.logits.shape)
        codes = torch.distributions.Categorical(logits=logits).sample()
        return F.one_hot(codes, self.num_codes).to(logits.dtype).flatten(-2)


@torch.distributions.kl.register_kl(StraightThroughCategoricalMap, OneHotMap)
def _kl_categorical_maps(q: StraightThroughCategoricalMap, p: OneHotMap) -> Tensor:
    """``sum_positions sum_k q_k (log q_k - log p_k)``."""
    return (q.probs * (q.logits - p.logits)).sum((-1, -2))


class CategoricalCodeEncoder(Encoder):
    """``q(c | x)``: a net giving ``(batch, K, h, w)`` logits, read as a categorical per position.

    Args:
        net: ``(batch, *event_shape) -> (batch, K, h, w)``.
        num_codes: ``K``.
        map_shape: ``(h, w)``.
        temperature: of the relaxed sample behind the straight-through gradient.
    """

    def __init__(self, net: nn.Module, num_codes: int, map_shape: tuple[int, int], temperature: float = 1.0) -> None:
        super().__init__()
        self.net, self.num_codes, self.map_shape = net, num_codes, tuple(map_shape)
        self.temperature = temperature
        self.latent_dim = num_codes * math.prod(self.map_shape)

    def forward(self, x: Tensor, context: Tensor | None = None) -> StraightThroughCategoricalMap:
        logits = self.net(x).flatten(-2).transpose(-1, -2)  # (batch, h * w, K)
        return StraightThroughCategoricalMap(logits, self.temperature)

    def mean(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """The most likely code at each position, one-hot, ``(batch, h * w * K)``."""
        q = self(x)
        return F.one_hot(q.logits.argmax(-1), self.num_codes).to(q.logits.dtype).flatten(-2)


class CodeEmbedding(Rebuildable, nn.Module):
    """Flattened one-hot maps ``(batch, h * w * K)`` to code-vector maps ``(batch, D, h, w)``
    through a learned codebook ``(K, D)`` (the decoder's first layer in a dVAE)."""

    def __init__(self, num_codes: int, code_dim: int, map_shape: tuple[int, int]) -> None:
        super().__init__()
        self.codebook = nn.Linear(num_codes, code_dim, bias=False)
        self.num_codes, self.map_shape = num_codes, tuple(map_shape)

    def forward(self, c: Tensor) -> Tensor:
        vectors = self.codebook(c.reshape(*c.shape[:-1], *self.map_shape, self.num_codes))
        return vectors.movedim(-1, -3)


__all__ = [
    "CategoricalCodeEncoder",
    "CodeEmbedding",
    "OneHotMap",
    "StraightThroughCategoricalMap",
    "UniformOneHotPrior",
]
