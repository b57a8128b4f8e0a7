"""Likelihoods for 8-bit images: a discretized logistic mixture and a 256-way categorical per sub-pixel.

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
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import constraints

from pyrovae.likelihoods.elementwise import Likelihood

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
