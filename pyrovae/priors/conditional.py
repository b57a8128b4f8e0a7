"""Conditional prior p(z | y): one learned diagonal Gaussian per class label."""

from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyrovae.priors.base import Prior


class ConditionalNormalPrior(Prior):
    """``p(z | y) = N(mu_y, diag(sigma_y^2))`` with a learned mean and scale per class.

    The label is the ``context`` passed to ``vae.model(x, context)``, either as class indices
    (an integer tensor ``(*batch,)``) or as one-hot / soft label vectors (a float tensor
    ``(*batch, num_classes)``). Soft labels ``w`` mix the per-class parameters linearly,
    ``mu = w @ mu_classes`` (likewise the raw scales), which for one-hot vectors is exactly
    the class's Gaussian.

    Args:
        latent_dim: size of ``z``.
        num_classes: number of labels.
        init_spread: standard deviation of the random initial class means.

    Attributes:
        loc: ``(num_classes, latent_dim)``.
        raw_scale: ``(num_classes, latent_dim)``; scales are ``softplus(raw_scale) + 1e-4``.
    """

    def __init__(self, latent_dim: int, num_classes: int, init_spread: float = 1.0) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.loc = nn.Parameter(init_spread * torch.randn(num_classes, latent_dim))
        # softplus(0.5413) = 1
        self.raw_scale = nn.Parameter(torch.full((num_classes, latent_dim), 0.5413))

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, num_classes={self.num_classes}"

    def forward(self, context: Tensor | None = None) -> dist.Distribution:
        """``p(z | y)``: batch shape ``(*batch,)`` of the labels, event shape ``(latent_dim,)``."""
        if context is None:
            raise ValueError("ConditionalNormalPrior needs the labels: call vae.model(x, labels) "
                             "with labels as class indices (batch,) or one-hot (batch, num_classes)")
        if context.dtype in (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
            labels = context.long()
            if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise ValueError(f"labels must lie in 0..{self.num_classes - 1}, got values from "
                                 f"{labels.min().item()} to {labels.max().item()}")
            loc, raw_scale = self.loc[labels], self.raw_scale[labels]
        else:
            if context.shape[-1] != self.num_classes:
                raise ValueError(f"a float context must be one-hot of size {self.num_classes} in its "
                                 f"last dimension, got shape {tuple(context.shape)}; pass class indices "
                                 "as an integer tensor instead")
            loc, raw_scale = context @ self.loc, context @ self.raw_scale
        return dist.Normal(loc, F.softplus(raw_scale) + 1e-4).to_event(1)

    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        """One draw per label, ``(num_samples, latent_dim)``; ``context`` holds ``num_samples`` labels."""
        if context is not None and context.shape[0] != num_samples:
            raise ValueError(f"pass one label per sample: got {context.shape[0]} labels for "
                             f"{num_samples} samples")
        return self(context).sample()


__all__ = ["ConditionalNormalPrior"]
