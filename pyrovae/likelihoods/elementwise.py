"""Likelihoods p(x | z): modules that map a latent code to a distribution over whole images.

Every likelihood wraps a network whose output is reshaped to ``event_shape`` and declares all
image dimensions as one event (``.to_event(len(event_shape))``), so ``log_prob`` returns one
number per data point. An optional ``context`` (a label, a visible part of an image) is
concatenated to ``z`` before the network, which is how conditional models reuse these.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyrovae.nn.rebuild import Rebuildable


class Likelihood(Rebuildable, nn.Module):
    """Base class: ``forward(z, context=None)`` returns ``p(x | z)``; ``mean(z)`` returns an image.

    Args:
        net: maps ``(*batch, latent_dim [+ context_dim])`` to ``(*batch, prod(event_shape))``
            or directly to ``(*batch, *event_shape)``.
        event_shape: shape of one data point, e.g. ``(1, 28, 28)``.
    """

    #: Human-readable rule for the values this likelihood accepts, used in error messages.
    support_rule = "any real value"

    def __init__(self, net: nn.Module, event_shape: tuple[int, ...] | torch.Size) -> None:
        super().__init__()
        self.net = net
        self.event_shape = torch.Size(event_shape)

    def params(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Network output reshaped to ``(*batch, *event_shape)``."""
        h = z if context is None else torch.cat([z, context.expand(*z.shape[:-1], -1)], dim=-1)
        return self.net(h).reshape(z.shape[:-1] + self.event_shape)

    def forward(self, z: Tensor, context: Tensor | None = None) -> dist.Distribution:
        raise NotImplementedError

    def mean(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Expected image ``E[x | z]``, shape ``(*batch, *event_shape)``."""
        return self(z, context).mean

    def in_support(self, x: Tensor) -> bool:
        """Whether every value of ``x`` is one this likelihood can score."""
        return bool(torch.isfinite(x).all())

    @torch.no_grad()
    def init_output_bias(self, x: Tensor) -> bool:
        """Start the decoder at the data's mean image: set the bias of the net's last layer so
        that, while its weights are small, ``mean(z)`` is the per-pixel mean of ``x``.

        The decoder then spends its first steps on how images differ from the average one
        instead of on finding the average (Burda et al.'s IWAE code initialises its Bernoulli
        output this way). The net is left as it was when its last layer has no bias of a
        usable size: one per output value (an MLP) or one per channel (a transposed
        convolution, which gets the channel's mean).

        Args:
            x: training data ``(N, *event_shape)``; only its mean over ``N`` is used.

        Returns:
            Whether a bias was set.
        """
        biased = [m for m in self.net.modules() if isinstance(getattr(m, "bias", None), nn.Parameter)]
        if not biased or x.shape[1:] != self.event_shape:
            return False
        bias = biased[-1].bias
        mean = x.float().mean(0)
        if bias.numel() == mean.numel():
            target = mean.reshape(-1)
        elif len(self.event_shape) >= 2 and bias.numel() == self.event_shape[0]:
            target = mean.reshape(self.event_shape[0], -1).mean(-1)
        else:
            return False
        bias.copy_(self._output_for_mean(target).to(bias))
        return True

    def _output_for_mean(self, mean: Tensor) -> Tensor:
        """The network output whose distribution has this mean (the inverse link)."""
        return mean


class BernoulliLikelihood(Likelihood):
    """p(x | z) = Bernoulli(logits = net(z)) over every pixel.

    On grey-scale pixels in [0, 1] the log-density is the (negative) binary cross-entropy, as in
    Pyro's VAE tutorial: not a normalized density, but the standard objective. Validation of the
    0/1 support is therefore off; ``in_support`` checks the [0, 1] range instead.
    """

    support_rule = "pixel values in [0, 1] (grey-scale is scored by binary cross-entropy)"

    def forward(self, z: Tensor, context: Tensor | None = None) -> dist.Distribution:
        logits = self.params(z, context)
        return dist.Bernoulli(logits=logits, validate_args=False).to_event(len(self.event_shape))

    def mean(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return torch.sigmoid(self.params(z, context))

    def in_support(self, x: Tensor) -> bool:
        return bool(((x >= 0) & (x <= 1)).all())

    def _output_for_mean(self, mean: Tensor) -> Tensor:
        # Clamped so that an always-black pixel starts at a finite logit (about -6.9).
        return torch.logit(mean.clamp(1e-3, 1 - 1e-3))


class ContinuousBernoulliLikelihood(Likelihood):
    """p(x | z) = ContinuousBernoulli(logits = net(z)), a normalized density on [0, 1]
    (Loaiza-Ganem and Cunningham, 2019)."""

    support_rule = "pixel values in [0, 1]"

    def forward(self, z: Tensor, context: Tensor | None = None) -> dist.Distribution:
        logits = self.params(z, context)
        return dist.ContinuousBernoulli(logits=logits).to_event(len(self.event_shape))

    def in_support(self, x: Tensor) -> bool:
        return bool(((x >= 0) & (x <= 1)).all())

    def _output_for_mean(self, mean: Tensor) -> Tensor:
        # The continuous Bernoulli's mean is increasing in the logit but has no closed-form
        # inverse: bisect, 40 halvings. It nears 0 and 1 only like 1/|logit|, and in float32
        # torch's formula saturates beyond |logit| = 15, so means outside about [0.067, 0.933]
        # (the means at -15 and 15) start at the nearest end.
        low, high = torch.full_like(mean, -15.0), torch.full_like(mean, 15.0)
        for _ in range(40):
            mid = (low + high) / 2
            below = dist.ContinuousBernoulli(logits=mid).mean < mean
            low, high = torch.where(below, mid, low), torch.where(below, high, mid)
        return (low + high) / 2


class _LocationScaleLikelihood(Likelihood):
    """Shared part of Normal and Laplace: location from the net, scale fixed or learned per pixel."""

    family: type[dist.Distribution]

    def __init__(self, net: nn.Module, event_shape: tuple[int, ...] | torch.Size,
                 scale: float | None = None, init_scale: float = 0.1) -> None:
        super().__init__(net, event_shape)
        self.fixed_scale = scale
        if scale is None:
            # One learned scale per pixel, kept positive through softplus.
            init = math.log(math.expm1(init_scale))
            self.raw_scale = nn.Parameter(torch.full(self.event_shape, init))
        elif scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")

    def scale(self) -> Tensor | float:
        """Observation scale: the fixed float, or the learned per-pixel tensor ``event_shape``."""
        if self.fixed_scale is not None:
            return self.fixed_scale
        return F.softplus(self.raw_scale) + 1e-4

    def forward(self, z: Tensor, context: Tensor | None = None) -> dist.Distribution:
        loc = self.params(z, context)
        scale = self.scale()
        if not torch.is_tensor(scale):
            scale = torch.full_like(loc, scale)
        return self.family(loc, scale.expand_as(loc)).to_event(len(self.event_shape))

    def mean(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return self.params(z, context)


class NormalLikelihood(_LocationScaleLikelihood):
    """p(x | z) = Normal(net(z), sigma), sigma fixed (``scale=0.1``) or learned per pixel (``scale=None``)."""

    family = dist.Normal


class LaplaceLikelihood(_LocationScaleLikelihood):
    """p(x | z) = Laplace(net(z), b), b fixed or learned per pixel; robust to outlying pixels."""

    family = dist.Laplace


__all__ = [
    "Likelihood",
    "BernoulliLikelihood",
    "ContinuousBernoulliLikelihood",
    "NormalLikelihood",
    "LaplaceLikelihood",
]
