"""Mass functions over the 256 intensities of 8-bit sub-pixels: a 256-way categorical and a
discretized logistic mixture (Salimans et al. 2017, PixelCNN++), as Pyro distributions.

The likelihood modules that build them from a decoder's output live in
:mod:`pyrovae.likelihoods.discrete`. Values are ``x = k / 255`` with whole ``k`` in ``0..255``.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import constraints

LEVELS = 256


def to_levels(x: Tensor) -> Tensor:
    """``x = k / 255`` in ``[0, 1]`` -> the whole intensity ``k`` (int64, same shape)."""
    return (x * (LEVELS - 1)).round().clamp(0, LEVELS - 1).long()


class _EightBitGrid(constraints.Constraint):
    """Values ``k / 255`` for whole ``k`` in ``0..255`` (within ``1e-3 / 255``)."""

    is_discrete = True
    event_dim = 0

    def check(self, value: Tensor) -> Tensor:
        k = value * (LEVELS - 1)
        return (value >= 0) & (value <= 1) & ((k - k.round()).abs() < 1e-3)


eight_bit = _EightBitGrid()


def _log1mexp(d: Tensor) -> Tensor:
    """``log(1 - exp(-d))`` for ``d > 0``, accurate at both ends (Maechler, 2012)."""
    return torch.where(d < math.log(2), torch.log(-torch.expm1(-d)), torch.log1p(-torch.exp(-d)))


def discretized_logistic_log_prob(k: Tensor, loc: Tensor, log_scale: Tensor) -> Tensor:
    """``log P(k)`` of a logistic on ``[-1, 1]`` cut into 256 bins of width ``2/255``, the two end
    bins stretched to infinity (Salimans et al. 2017, PixelCNN++).

    With ``y = 2k/255 - 1``, ``a = (y - loc + 1/255) / s`` and ``b = (y - loc - 1/255) / s``:
    ``P(0) = sigmoid(a)``, ``P(255) = 1 - sigmoid(b)``, and in between
    ``sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(b - a))``, whose logarithm is a
    sum of stable terms, so no bin's probability underflows to the density approximation that
    PixelCNN++ falls back on.

    Args:
        k: intensities, int64, broadcastable against ``loc``.
        loc: centres in ``[-1, 1]`` scale.
        log_scale: ``log s``; clamped below at -7 as in PixelCNN++.

    Returns:
        ``log P(k)``, the broadcast shape.
    """
    log_scale = log_scale.clamp_min(-7.0)
    inv_scale = torch.exp(-log_scale)
    y = 2 * k.to(loc.dtype) / (LEVELS - 1) - 1
    centred = y - loc
    a = inv_scale * (centred + 1 / (LEVELS - 1))
    b = inv_scale * (centred - 1 / (LEVELS - 1))
    middle = F.logsigmoid(a) + F.logsigmoid(-b) + _log1mexp(2 * inv_scale / (LEVELS - 1))
    return torch.where(k == 0, F.logsigmoid(a), torch.where(k == LEVELS - 1, F.logsigmoid(-b), middle))


class Categorical256(dist.TorchDistribution):
    """A 256-way categorical over each sub-pixel's intensity, values ``k / 255``, one event over
    the last ``event_dims`` dimensions.

    Args:
        logits: ``(*batch, *event_shape, 256)``.
        event_dims: how many trailing dims of ``logits.shape[:-1]`` form one data point.
    """

    arg_constraints = {"logits": constraints.real_vector}

    def __init__(self, logits: Tensor, event_dims: int, validate_args: bool | None = None) -> None:
        self.logits, self.event_dims = logits, event_dims
        shape = logits.shape[:-1]
        super().__init__(shape[: len(shape) - event_dims], shape[len(shape) - event_dims :],
                         validate_args=validate_args)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return constraints.independent(eight_bit, self.event_dims)

    def expand(self, batch_shape: torch.Size, _instance: object = None) -> Categorical256:
        shape = torch.Size(batch_shape) + self.event_shape + (LEVELS,)
        return Categorical256(self.logits.expand(shape), self.event_dims, validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        shape = torch.broadcast_shapes(value.shape, self.logits.shape[:-1])
        logits = self.logits.expand(shape + (LEVELS,))
        k = to_levels(value).expand(shape).unsqueeze(-1)
        log_p = logits.gather(-1, k).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        return log_p.sum(list(range(-self.event_dims, 0))) if self.event_dims else log_p

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        with torch.no_grad():
            k = torch.distributions.Categorical(logits=self.logits).sample(sample_shape)
            return k.to(self.logits.dtype) / (LEVELS - 1)

    @property
    def mean(self) -> Tensor:
        levels = torch.arange(LEVELS, dtype=self.logits.dtype, device=self.logits.device) / (LEVELS - 1)
        return torch.softmax(self.logits, dim=-1) @ levels


class DiscretizedLogisticMixture(dist.TorchDistribution):
    """A mixture of discretized logistics over each 8-bit value (Salimans et al. 2017, PixelCNN++).

    Uncoupled (``coeffs=None``): every sub-pixel has a mixture of its own, and the sub-pixels
    are independent given the parameters. Coupled: the first event dim holds ``C`` channels
    that share one mixture component per pixel, and channel ``c``'s centre moves with the
    values of the channels before it, ``loc_c + sum_{j<c} coeff_{cj} y_j`` (PixelCNN++'s RGB
    coupling, for any ``C``); the joint of a pixel's channels is then a mixture of products.

    Args:
        logits: mixture logits, ``(*batch, *event_shape, K)`` uncoupled, or
            ``(*batch, *event_shape[1:], K)`` coupled.
        loc: centres in ``[-1, 1]`` scale, ``(*batch, *event_shape, K)``.
        log_scale: ``log`` scales, same shape as ``loc``.
        coeffs: coupled only, ``(*batch, C (C - 1) / 2, *event_shape[1:], K)``, ordered
            ``(1, 0), (2, 0), (2, 1), (3, 0), ...``, e.g. from ``tanh``.
        event_dims: the number of event dims.
    """

    arg_constraints: dict = {}

    def __init__(self, logits: Tensor, loc: Tensor, log_scale: Tensor, coeffs: Tensor | None, event_dims: int,
                 validate_args: bool | None = None) -> None:
        self.logits, self.loc, self.log_scale, self.coeffs, self.event_dims = logits, loc, log_scale, coeffs, event_dims
        shape = loc.shape[:-1]
        super().__init__(shape[: len(shape) - event_dims], shape[len(shape) - event_dims :],
                         validate_args=validate_args)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return constraints.independent(eight_bit, self.event_dims)

    @property
    def coupled(self) -> bool:
        return self.coeffs is not None

    def expand(self, batch_shape: torch.Size, _instance: object = None) -> DiscretizedLogisticMixture:
        batch_shape = torch.Size(batch_shape)
        grow = lambda t: None if t is None else t.expand(batch_shape + t.shape[len(self.batch_shape):])  # noqa: E731
        return DiscretizedLogisticMixture(grow(self.logits), grow(self.loc), grow(self.log_scale), grow(self.coeffs),
                                          self.event_dims, validate_args=False)

    def _channel(self, t: Tensor, c: int) -> Tensor:
        """Channel ``c`` of a ``(*batch, C, *rest, K)`` parameter: ``(*batch, *rest, K)``."""
        return t.select(t.dim() - self.event_dims - 1, c)

    def _centres(self, y: Tensor) -> Tensor:
        """Coupled centres ``(*, C, *rest, K)`` given the channels' values ``y`` ``(*, C, *rest)``."""
        channel_axis = y.dim() - self.event_dims
        centres, pair = [], 0
        for c in range(self.event_shape[0]):
            centre = self._channel(self.loc, c)
            for j in range(c):
                centre = centre + self._channel(self.coeffs, pair) * y.select(channel_axis, j).unsqueeze(-1)
                pair += 1
            centres.append(centre)
        centres = torch.broadcast_tensors(*centres)
        return torch.stack(centres, dim=centres[0].dim() - self.event_dims)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        k = to_levels(value)
        if not self.coupled:
            log_p = discretized_logistic_log_prob(k.unsqueeze(-1), self.loc, self.log_scale)
            log_p = torch.logsumexp(log_p + F.log_softmax(self.logits, dim=-1), dim=-1)
            return log_p.sum(list(range(-self.event_dims, 0)))
        y = 2 * k.to(self.loc.dtype) / (LEVELS - 1) - 1
        log_p = discretized_logistic_log_prob(k.unsqueeze(-1), self._centres(y), self.log_scale)
        log_p = log_p.sum(log_p.dim() - self.event_dims - 1)  # the channels of one component
        log_p = torch.logsumexp(log_p + F.log_softmax(self.logits, dim=-1), dim=-1)
        return log_p.sum(list(range(-(self.event_dims - 1), 0))) if self.event_dims > 1 else log_p

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        with torch.no_grad():
            component = torch.distributions.Categorical(logits=self.logits).sample(sample_shape).unsqueeze(-1)
            if not self.coupled:
                return self._draw(self._pick(self.loc, component), self._pick(self.log_scale, component))
            shape = torch.Size(sample_shape) + self.batch_shape + self.event_shape
            channel_axis = len(shape) - self.event_dims
            component = component.unsqueeze(channel_axis)
            x = torch.zeros(shape, dtype=self.loc.dtype, device=self.loc.device)
            for c in range(self.event_shape[0]):  # each channel given the ones drawn before it
                centre = self._pick(self._centres(2 * x - 1), component).select(channel_axis, c)
                scale = self._pick(self.log_scale, component).select(channel_axis, c)
                x.select(channel_axis, c).copy_(self._draw(centre, scale))
            return x

    @staticmethod
    def _pick(t: Tensor, component: Tensor) -> Tensor:
        """The chosen component's entry of ``t`` ``(..., K)``; ``component`` ends in a dim of 1."""
        shape = torch.broadcast_shapes(t.shape[:-1], component.shape[:-1])
        return t.expand(shape + t.shape[-1:]).gather(-1, component.expand(shape + (1,))).squeeze(-1)

    @staticmethod
    def _draw(loc: Tensor, log_scale: Tensor) -> Tensor:
        """A logistic draw, clipped to ``[-1, 1]`` and rounded to the 8-bit grid, as ``k / 255``."""
        u = torch.rand_like(loc).clamp(1e-5, 1 - 1e-5)
        y = (loc + log_scale.clamp_min(-7.0).exp() * (u.log() - (-u).log1p())).clamp(-1, 1)
        return to_levels((y + 1) / 2).to(loc.dtype) / (LEVELS - 1)

    @property
    def mean(self) -> Tensor:
        """Approximate ``E[x]``: the mixture of the components' centres clipped to ``[-1, 1]``
        (coupled: each channel's centre given the centres of the channels before it), in
        ``[0, 1]``. It ignores the mass the clipping moves to the end bins."""
        weights = torch.softmax(self.logits, dim=-1)
        if not self.coupled:
            return ((weights * self.loc.clamp(-1, 1)).sum(-1) + 1) / 2
        centres = []
        for c in range(self.event_shape[0]):
            centre = self._channel(self.loc, c)
            for j in range(c):
                centre = centre + self._channel(self.coeffs, c * (c - 1) // 2 + j) * centres[j]
            centres.append(centre.clamp(-1, 1))
        stacked = torch.stack(torch.broadcast_tensors(*centres), dim=centres[0].dim() - self.event_dims)
        weights = weights.unsqueeze(weights.dim() - self.event_dims)
        return ((weights * stacked).sum(-1) + 1) / 2


__all__ = ["LEVELS", "eight_bit", "to_levels", "Categorical256", "DiscretizedLogisticMixture", "discretized_logistic_log_prob"]
