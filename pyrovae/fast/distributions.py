"""Distributions that score a VAE step's common cases with fewer tensor operations, swapped in
at the sample sites of a plain model and guide from outside (:class:`FastDistributions`).

A VAE step scores the guide's own draw, ``log q(z | x)`` at ``z = loc + scale * eps``, and an
image under a Bernoulli decoder. Written out, each is shorter than the general ``log_prob``:

* ``log q(loc + scale * eps) = -eps^2 / 2 - log scale - log(2 pi) / 2`` exactly, as a function
  of ``loc``, ``scale`` and ``eps``: the same value and the same gradient (the total derivative,
  path and score parts together), without recomputing ``(z - loc) / scale``;
* ``log Bernoulli(x; logits)`` summed over an image is minus the summed cross-entropy: negated
  once per image instead of once per pixel, and, inside a compiled graph, written in the form
  inductor fuses into one pass.

Each saves a few elementwise operations and their backward nodes per step; everything else
(sampling, shapes, KL registrations, ``expand``) is Pyro's. The model and guide themselves
return plain ``Normal(...).to_event(1)`` and ``Bernoulli(logits=...).to_event(n)``.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor
from pyro.poutine.messenger import Messenger
from torch.distributions.utils import _standard_normal, broadcast_all

from pyrovae.fast import compiled

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class NoiseCachingNormal(dist.Normal):
    """``Normal(loc, scale)`` that remembers the noise of its last ``rsample`` and scores that
    very tensor from it: ``log_prob(z) = -eps^2 / 2 - log scale - log(2 pi) / 2``.

    Any other value is scored by ``Normal.log_prob``. The draws are the ones ``Normal.rsample``
    makes (same random stream), so seeded runs are unchanged.
    """

    _draw: tuple[Tensor, Tensor] | None = None

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        eps = _standard_normal(shape, dtype=self.loc.dtype, device=self.loc.device)
        value = self.loc + eps * self.scale
        self._draw = (value, eps)
        return value

    def log_prob(self, value: Tensor) -> Tensor:
        if self._draw is not None and value is self._draw[0]:
            eps = self._draw[1]
            return -0.5 * eps * eps - self.scale.log() - HALF_LOG_2PI
        return super().log_prob(value)


class BernoulliImage(dist.Independent):
    """``Bernoulli(logits).to_event(n)``, built as ``BernoulliImage(Bernoulli(logits=...), n)``,
    whose ``log_prob`` sums the binary cross-entropy over the ``n`` event dims first and negates
    the per-image sum.

    Grey values in [0, 1] are scored by the same cross-entropy (Pyro's Bernoulli does the same
    with validation off); the base distribution must be built with ``logits``.
    """

    def log_prob(self, value: Tensor) -> Tensor:
        if compiled.active():  # evaluation: one fused pass over the (k, batch, pixels) logits
            return compiled.call(_bernoulli_image_log_prob, self.base_dist.logits, value,
                                 self.reinterpreted_batch_ndims)
        if compiled.fused_forms():  # inside a graph that is compiled as a whole
            return _bernoulli_image_log_prob(self.base_dist.logits, value, self.reinterpreted_batch_ndims)
        logits, value = broadcast_all(self.base_dist.logits, value)
        bce = F.binary_cross_entropy_with_logits(logits, value, reduction="none")
        return -bce.sum(dim=list(range(-self.reinterpreted_batch_ndims, 0)))


def _bernoulli_image_log_prob(logits: Tensor, value: Tensor, event_dims: int) -> Tensor:
    """``sum(x * l - softplus(l))`` over the last ``event_dims`` dims: minus the cross-entropy,
    written for ``torch.compile`` to fuse into one pass (softplus in the form it vectorizes).

    With gradients off (evaluation), ``softplus(l) = max(l, 0) + log(1 + exp(-|l|))`` and the
    logarithms are taken of products over blocks of up to 120 pixels instead of pixel by pixel:
    each factor lies in (1, 2], so a block's product stays below 2^120, inside float32's
    range, and the pass takes one ``log`` per block instead of one per pixel (a few percent of
    an evaluation pass of the tutorial VAE). The product's rounding, about 1e-7 relative per
    factor, is the same as summing the logarithms.
    """
    pixels = math.prod(logits.shape[-event_dims:]) if event_dims else 1
    block = _product_block(pixels)
    if torch.is_grad_enabled() or block is None or logits.dtype not in (torch.float32, torch.float64):
        return (value * logits - compiled.softplus(logits)).sum(dim=list(range(-event_dims, 0)))
    logits, value = logits.flatten(-event_dims), value.flatten(-event_dims)
    linear = (value * logits - logits.clamp_min(0)).sum(-1)
    tails = (1 + torch.exp(-logits.abs())).unflatten(-1, (pixels // block, block)).prod(-1)
    return linear - tails.log().sum(-1)


class FastDistributions(Messenger):
    """Swap the distribution at each sample site for its shortcut form, where it has one.

    ``Normal(loc, scale).to_event(n)`` becomes the same with :class:`NoiseCachingNormal`, and
    ``Bernoulli(logits=...).to_event(n)`` becomes :class:`BernoulliImage`; other sites are left
    alone. The swap happens before the site draws its value, so the guide's draw is the one its
    shortcut scores; values, gradients and the random stream are those of the plain
    distributions. A messenger, as ``poutine.scale`` is::

        with FastDistributions():
            loss = SyncFreeTrace_ELBO().differentiable_loss(vae.model, vae.guide, x)
    """

    def _process_message(self, msg: dict) -> None:
        fn = msg["fn"]
        if msg["type"] != "sample" or type(fn) is not dist.Independent:
            return
        base, dims = fn.base_dist, fn.reinterpreted_batch_ndims
        if type(base) is dist.Normal:
            fast = NoiseCachingNormal(base.loc, base.scale, validate_args=base._validate_args)
            msg["fn"] = dist.Independent(fast, dims, validate_args=fn._validate_args)
        elif type(base) is dist.Bernoulli and "logits" in base.__dict__:
            msg["fn"] = BernoulliImage(base, dims, validate_args=fn._validate_args)


def _product_block(pixels: int) -> int | None:
    """The largest divisor of ``pixels`` from 16 to 120 (112 for 784), or None."""
    return next((b for b in range(min(pixels, 120), 15, -1) if pixels % b == 0), None)


__all__ = ["FastDistributions", "NoiseCachingNormal", "BernoulliImage"]
