"""Denoising: an encoder that reads a corrupted copy of the data while the likelihood scores the clean data.

A denoising autoencoder (Vincent et al. 2008) encodes ``x~ ~ C(x~ | x)``, a corrupted input, and
is trained to reconstruct the clean ``x``. For a VAE the same swap gives the denoising criterion
of Im et al. (2017): ``E_{C(x~|x)} E_{q(z|x~)}[log p(x, z) - log q(z | x~)]``. For each ``x~`` the
inner term is an ELBO of the clean ``x`` (``q(z | x~)`` is just another distribution over
``z``), so the criterion is still a lower bound on ``log p(x)``.

In Pyro this is a change of the guide only: :class:`CorruptedInput` wraps any encoder and
corrupts what it is given, and the model's ``pyro.sample("x", ..., obs=x)`` still sees the
clean batch. The corruption acts in training mode only (``module.train()``); in evaluation mode
(``module.eval()``, which :class:`~pyrovae.Trainer` sets for its per-epoch figures and which
``pyrovae evaluate`` uses) the encoder reads the clean input, as Vincent et al. use the trained
encoder, so test figures, codes and samples describe the model, not the noise. To score
denoising, corrupt test inputs explicitly (``corruption(x)``, see
:func:`pyrovae.infer.reconstruction.reconstruction_error`).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch import Tensor, nn

from pyrovae.guides.diagonal import Encoder
from pyrovae.nn.rebuild import Rebuildable


class GaussianNoise(Rebuildable, nn.Module):
    """``x~ = x + scale * eps``, ``eps ~ N(0, I)``: additive isotropic Gaussian noise (not clipped).

    Args:
        scale: standard deviation of the noise, positive.
    """

    def __init__(self, scale: float) -> None:
        super().__init__()
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"the Gaussian noise scale must be a positive number, got {scale}")
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.scale * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class MaskingNoise(Rebuildable, nn.Module):
    """``x~ = x * m``, ``m_i ~ Bernoulli(1 - fraction)`` independently per element: a random
    ``fraction`` of the pixels set to 0 (Vincent et al. 2008's masking noise).

    Args:
        fraction: probability that a pixel is masked, in ``[0, 1)``.
    """

    def __init__(self, fraction: float) -> None:
        super().__init__()
        if not (math.isfinite(fraction) and 0 <= fraction < 1):
            raise ValueError(f"the masked fraction must lie in [0, 1), got {fraction}")
        self.fraction = fraction

    def forward(self, x: Tensor) -> Tensor:
        keep = torch.rand_like(x) >= self.fraction
        return x * keep

    def extra_repr(self) -> str:
        return f"fraction={self.fraction}"


class CorruptedInput(Encoder):
    """``q(z | x~)`` with ``x~ = corruption(x)`` in training mode; ``q(z | x)`` in evaluation mode.

    Use it wherever an encoder goes: ``VAE(CorruptedInput(encoder, MaskingNoise(0.25)), ...)``.
    A fresh corruption is drawn at every call.

    Args:
        encoder: any :class:`~pyrovae.guides.Encoder` (diagonal, flow, point mass, ...).
        corruption: a module mapping ``x`` to a corrupted ``x~`` of the same shape, e.g.
            :class:`GaussianNoise` or :class:`MaskingNoise`.

    Shapes:
        as ``encoder``: ``x`` is ``(*batch, *event_shape)``, the distribution has event shape
        ``(latent_dim,)``.
    """

    def __init__(self, encoder: Encoder, corruption: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.corruption = corruption
        self.latent_dim = encoder.latent_dim
        self.context_dim = getattr(encoder, "context_dim", 0)

    def corrupt(self, x: Tensor) -> Tensor:
        """``corruption(x)`` in training mode, ``x`` itself in evaluation mode."""
        return self.corruption(x) if self.training else x

    def forward(self, x: Tensor, context: Tensor | None = None) -> dist.Distribution:
        return self.encoder(self.corrupt(x), context)

    def mean(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.encoder.mean(self.corrupt(x), context)


__all__ = ["CorruptedInput", "GaussianNoise", "MaskingNoise"]
