"""Likelihoods for 8-bit images: a discretized logistic mixture and a 256-way categorical per sub-pixel.

The mass functions themselves are in :mod:`pyrovae.likelihoods.mass_functions`; the modules here
map a decoder's output to them.

Both are probability mass functions over the 256 intensities of every sub-pixel, so
``-log p(x)`` is a code length and ``nats / (D ln 2)`` is the bits/dim that image-model papers
report (:func:`pyrovae.infer.bits.bits_per_dim`), unlike the densities of
:mod:`pyrovae.likelihoods.elementwise`.

The data these likelihoods score are what pyrovae's loaders give for 8-bit images: float
``x = k / 255`` in ``[0, 1]`` with whole ``k`` in ``0..255`` (uint8 pixels divided by 255).
Values off that grid are refused (``in_support``); within ``1e-3 / 255`` of it they are rounded
to the nearest ``k``.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch import Tensor, nn

from pyrovae.likelihoods.mass_functions import (
    LEVELS,
    Categorical256,
    DiscretizedLogisticMixture,
    discretized_logistic_log_prob,
    eight_bit,
    to_levels,
)
from pyrovae.likelihoods.elementwise import Likelihood


class _EightBitLikelihood(Likelihood):
    """Shared part: the net gives ``params_per_channel`` values per sub-pixel position, laid out
    channel-major as ``(C * P, *event_shape[1:])`` (what a conv decoder with ``C * P`` output
    channels gives; an MLP's flat output of that size is reshaped to it)."""

    support_rule = "values k/255 for whole k in 0..255 (8-bit images scaled to [0, 1])"
    #: The likelihood is a probability mass function: -log p(x) in bits/dim is meaningful.
    discrete = True

    def __init__(self, net: nn.Module, event_shape: tuple[int, ...] | torch.Size) -> None:
        super().__init__(net, event_shape)
        if len(self.event_shape) < 1:
            raise ValueError("an 8-bit likelihood needs an event shape of at least one dim, e.g. (C, H, W)")

    @classmethod
    def output_shape(cls, event_shape: tuple[int, ...], **kwargs: int) -> tuple[int, ...]:
        """Shape of the decoder net's output for one data point, ``(C * P, *event_shape[1:])``."""
        return (cls.params_per_channel(event_shape[0], **kwargs) * event_shape[0], *event_shape[1:])

    @classmethod
    def params_per_channel(cls, channels: int, **kwargs: int) -> int:
        raise NotImplementedError

    @property
    def outputs_per_point(self) -> int:
        """Network outputs per data point: ``params_per_channel`` times the number of values,
        which sizes the batches of an evaluation (tens of times the image for these likelihoods)."""
        kwargs = {"num_components": self.num_components, "coupled": self.coupled} if hasattr(self, "coupled") else {}
        return math.prod(self.output_shape(tuple(self.event_shape), **kwargs))

    def raw_params(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Network output as ``(*batch, *event_shape[1:], C * P)`` (parameters last)."""
        h = z if context is None else torch.cat([z, context.expand(*z.shape[:-1], -1)], dim=-1)
        rest = tuple(self.event_shape[1:])
        out = self.net(h).reshape(z.shape[:-1] + (-1,) + rest)
        return out.movedim(len(z.shape) - 1, -1)

    def mean(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return self(z, context).mean

    def in_support(self, x: Tensor) -> bool:
        return bool(eight_bit.check(x).all())


class CategoricalLikelihood(_EightBitLikelihood):
    """p(x | z): a 256-way categorical over every sub-pixel's intensity, given logits from
    ``net(z)`` (van den Oord et al. 2016, PixelRNN's softmax output). Flexible (any shape of
    distribution per sub-pixel) but blind to the order of intensities, and the decoder's output
    is 256 times the image."""

    @classmethod
    def params_per_channel(cls, channels: int, **kwargs: int) -> int:
        return LEVELS

    def forward(self, z: Tensor, context: Tensor | None = None) -> dist.Distribution:
        out = self.raw_params(z, context)  # (*batch, *rest, C * 256)
        logits = out.unflatten(-1, (self.event_shape[0], LEVELS))
        logits = logits.movedim(-2, len(z.shape) - 1)  # (*batch, C, *rest, 256)
        return Categorical256(logits, len(self.event_shape))

    @torch.no_grad()
    def init_output_bias(self, x: Tensor, max_points: int = 5000) -> bool:
        """Start the decoder at the data's histogram: the last layer's bias set to the log
        frequencies of the intensities (one count spread over all 256 levels, so that none has
        probability 0), per sub-pixel when the bias has one entry per output value (an MLP), per
        channel when it has one per output channel (a transposed convolution); the first
        ``max_points`` data points are counted."""
        biased = [m for m in self.net.modules() if isinstance(getattr(m, "bias", None), nn.Parameter)]
        if not biased or x.shape[1:] != self.event_shape or not self.in_support(x):
            return False
        bias = biased[-1].bias
        k = to_levels(x[:max_points])  # (N, C, *rest)
        channels, positions = self.event_shape[0], math.prod(self.event_shape[1:])
        k = k.reshape(k.shape[0], channels, positions)
        if bias.numel() == channels * LEVELS * positions:
            cells = (torch.arange(channels, device=k.device).view(1, -1, 1) * LEVELS + k) * positions
            cells = cells + torch.arange(positions, device=k.device)
            shape = (channels * LEVELS * positions,)
        elif bias.numel() == channels * LEVELS:
            cells = torch.arange(channels, device=k.device).view(1, -1, 1) * LEVELS + k
            shape = (channels * LEVELS,)
        else:
            return False
        counts = torch.bincount(cells.reshape(-1), minlength=shape[0]).to(bias.dtype) + 1 / LEVELS
        per_cell = counts.reshape(channels, LEVELS, -1)
        bias.copy_((per_cell / per_cell.sum(1, keepdim=True)).log().reshape(-1))
        return True


class DiscretizedLogisticMixtureLikelihood(_EightBitLikelihood):
    """p(x | z): a mixture of ``num_components`` discretized logistics per sub-pixel (or, with
    ``coupled=True``, per pixel with PixelCNN++'s coupling of the channels), parameters from
    ``net(z)`` (Salimans et al. 2017). Smooth in the intensity, so it needs far fewer
    parameters than the categorical; the usual choice for 8-bit colour images.

    Net output per position: uncoupled, ``3K`` values per channel (logits, centres, log scales);
    coupled, ``K`` logits, ``2K`` per channel (centres, log scales) and ``K`` coefficients per
    pair of channels, ``K (1 + 2C + C (C - 1) / 2)`` in all, laid out as ``C * P`` with ``P``
    that total divided by ``C`` rounded up (the few extra outputs are ignored).

    Args:
        net: decoder net with output :meth:`output_shape` per data point.
        event_shape: ``(C, H, W)`` (any shape with channels first).
        num_components: ``K``.
        coupled: couple the channels of a pixel.
    """

    def __init__(self, net: nn.Module, event_shape: tuple[int, ...] | torch.Size, num_components: int = 5,
                 coupled: bool = False) -> None:
        super().__init__(net, event_shape)
        if num_components < 1:
            raise ValueError(f"num_components must be at least 1, got {num_components}")
        self.num_components, self.coupled = num_components, coupled

    @classmethod
    def params_per_channel(cls, channels: int, num_components: int = 5, coupled: bool = False) -> int:
        if not coupled:
            return 3 * num_components
        total = num_components * (1 + 2 * channels + channels * (channels - 1) // 2)
        return -(-total // channels)

    @torch.no_grad()
    def init_output_bias(self, x: Tensor, max_points: int = 5000) -> bool:
        """Start every mixture spread over the data: component ``j``'s centre at the data's
        ``(j + 1/2) / K`` quantile and its scale at the standard deviation over ``K``, equal
        weights, no coupling. Per sub-pixel when the net's last bias has one entry per output
        value (an MLP), per channel when it has one per output channel (a transposed
        convolution); from the first ``max_points`` data points.

        Without it the decoder starts with scales near 1 on the ``[-1, 1]`` scale of the
        intensities, and Adam's steps of about ``lr`` take thousands of steps to narrow them.

        Returns:
            Whether a bias was set.
        """
        biased = [m for m in self.net.modules() if isinstance(getattr(m, "bias", None), nn.Parameter)]
        if not biased or x.shape[1:] != self.event_shape or not self.in_support(x):
            return False
        bias = biased[-1].bias
        c, k = self.event_shape[0], self.num_components
        width = self.output_shape(self.event_shape, num_components=k, coupled=self.coupled)[0]
        positions = math.prod(self.event_shape[1:])
        y = 2 * x[:max_points].reshape(-1, c, positions).to(bias.dtype) - 1
        if bias.numel() == width:  # one bias per output channel: pool the positions
            y, positions = y.permute(0, 2, 1).reshape(-1, c, 1), 1
        elif bias.numel() != width * positions:
            return False
        y = y[: max(1, 2**24 // (c * positions) - 1)]  # torch.quantile's size limit
        levels = (torch.arange(k, dtype=y.dtype, device=y.device) + 0.5) / k
        centres = torch.quantile(y, levels, dim=0)  # (K, C, positions)
        log_scales = (y.std(0) / k).clamp_min(1 / (LEVELS - 1)).log() if y.shape[0] > 1 else torch.zeros_like(y[0])
        start = torch.zeros(width, positions, dtype=bias.dtype, device=bias.device)
        for channel in range(c):
            if self.coupled:
                loc_rows = k + channel * k + torch.arange(k)
                scale_rows = k + c * k + channel * k + torch.arange(k)
            else:
                loc_rows = channel * 3 * k + k + torch.arange(k)
                scale_rows = channel * 3 * k + 2 * k + torch.arange(k)
            start[loc_rows] = centres[:, channel]
            start[scale_rows] = log_scales[channel]
        bias.copy_(start.reshape(-1))
        return True

    def forward(self, z: Tensor, context: Tensor | None = None) -> dist.Distribution:
        out = self.raw_params(z, context)  # (*batch, *rest, C * P)
        c, k, event_dims = self.event_shape[0], self.num_components, len(self.event_shape)
        channel_axis = len(z.shape) - 1

        def per_channel(t: Tensor) -> Tensor:  # (*batch, *rest, C * K) -> (*batch, C, *rest, K)
            return t.unflatten(-1, (c, k)).movedim(-2, channel_axis)

        if not self.coupled:  # per channel: K logits, K centres, K log scales
            params = out[..., : 3 * c * k].unflatten(-1, (c, 3, k)).movedim(-3, channel_axis)
            logits, loc, log_scale = params.unbind(-2)
            return DiscretizedLogisticMixture(logits, loc, log_scale, None, event_dims)
        pairs = c * (c - 1) // 2
        logits, loc, log_scale, coeffs = out[..., : k * (1 + 2 * c + pairs)].split([k, c * k, c * k, pairs * k], dim=-1)
        coeffs = coeffs.unflatten(-1, (pairs, k)).movedim(-2, channel_axis)
        return DiscretizedLogisticMixture(logits, per_channel(loc), per_channel(log_scale), torch.tanh(coeffs),
                                          event_dims)


__all__ = [
    "CategoricalLikelihood",
    "DiscretizedLogisticMixtureLikelihood",
    "Categorical256",
    "DiscretizedLogisticMixture",
    "discretized_logistic_log_prob",
    "to_levels",
]
