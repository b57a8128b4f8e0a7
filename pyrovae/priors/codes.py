"""Priors over code maps for VQ-VAE: a distribution over index maps, seen as code vectors by the model.

The latent ``z`` of a VQ-VAE (:mod:`pyrovae.guides.quantizer`) is a ``(D, h, w)`` map of codebook
vectors flattened to ``(D * h * w,)``. A code prior is a distribution over the ``(h, w)`` map of
indices; :class:`CodeVectors` presents it over the vectors, reading the index of each position
back as its nearest code (exact: the values are codebook vectors). The prior shares the
quantizer's module (as :class:`~pyrovae.priors.VampPrior` shares the encoder), so
``vae.parameters()`` lists the codebook once.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor

from pyrovae.priors.base import Prior

if TYPE_CHECKING:  # the prior is handed the guide's codebook; it needs no import of it
    from pyrovae.guides.quantizer import VectorQuantizer


class CodePrior(Prior):
    """Base class of ``p(code map [| context])``. Subclasses implement :meth:`index_log_prob`
    and :meth:`sample_indices`.

    Args:
        quantizer: the codebook (shared with the encoder).
        map_shape: ``(h, w)``.

    Attributes:
        latent_dim: ``D * h * w``, the size of the flattened code map.
    """

    def __init__(self, quantizer: VectorQuantizer, map_shape: tuple[int, int]) -> None:
        super().__init__()
        self.quantizer = quantizer
        self.map_shape = tuple(map_shape)
        self.latent_dim = quantizer.code_dim * self.map_shape[0] * self.map_shape[1]

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    def index_log_prob(self, indices: Tensor, context: Tensor | None = None) -> Tensor:
        """``log p(indices)`` of ``(n, h, w)`` index maps, shape ``(n,)``."""
        raise NotImplementedError

    def sample_indices(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        """``(num_samples, h, w)`` index maps drawn from the prior."""
        raise NotImplementedError

    def indices(self, z: Tensor) -> Tensor:
        """Index maps ``(..., h, w)`` of flattened code maps ``(..., D * h * w)``."""
        maps = z.reshape(*z.shape[:-1], self.quantizer.code_dim, *self.map_shape)
        return self.quantizer.nearest(maps.movedim(-3, -1))

    def vectors(self, indices: Tensor) -> Tensor:
        """Flattened code maps ``(..., D * h * w)`` of index maps ``(..., h, w)``."""
        return self.quantizer.lookup(indices).flatten(-3)

    def forward(self, context: Tensor | None = None) -> CodeVectors:
        batch = () if context is None else context.shape[:1]
        return CodeVectors(self, context, torch.Size(batch))

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        lead = z.shape[:-1]
        flat_context = None if context is None else context.reshape(-1, context.shape[-1])
        return self.index_log_prob(self.indices(z).reshape(-1, *self.map_shape), flat_context).reshape(lead)

    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        return self.vectors(self.sample_indices(num_samples, context))


class CodeVectors(TorchDistribution):
    """A code prior as a distribution over flattened code maps, event shape ``(D * h * w,)``.

    ``log_prob(z)`` is the prior's ``log p(indices(z))``; ``sample`` draws index maps and looks
    their vectors up. Not reparameterized (the guide's point mass carries the gradient).
    """

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, prior: CodePrior, context: Tensor | None, batch_shape: tuple[int, ...] = ()) -> None:
        self.prior = prior
        self.context = context
        super().__init__(torch.Size(batch_shape), torch.Size([prior.latent_dim]), validate_args=False)

    def expand(self, batch_shape, _instance=None) -> CodeVectors:
        return CodeVectors(self.prior, self.context, torch.Size(batch_shape))

    def log_prob(self, value: Tensor) -> Tensor:
        lead = value.shape[:-1]
        context = self.context
        if context is not None:
            context = context.expand(*lead, context.shape[-1])
        return self.prior.log_prob(value, context)  # shape value.shape[:-1]; Pyro broadcasts it to the plate

    def sample(self, sample_shape: tuple[int, ...] = ()) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        if self.context is not None:
            if torch.Size(sample_shape) != torch.Size():
                raise ValueError("a conditional code prior draws one map per context row")
            return self.prior.sample(self.context.shape[0], self.context)
        return self.prior.sample(math.prod(shape)).reshape(shape + self.event_shape)


class UniformCodePrior(CodePrior):
    """Every code equally likely at every position: ``log p(map) = -h * w * log K``.

    The prior of the autoencoder stage: ``KL(delta || p) = h * w * log K``, a constant.
    """

    def index_log_prob(self, indices: Tensor, context: Tensor | None = None) -> Tensor:
        return self._uniform(indices.shape[:-2], indices.device)

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return self._uniform(z.shape[:-1], z.device)  # the same for every map: no need to find the indices

    def _uniform(self, shape: torch.Size, device: torch.device) -> Tensor:
        h, w = self.map_shape
        value = -h * w * math.log(self.codebook_size)
        return torch.full(shape, value, dtype=self.quantizer.codebook.dtype, device=device)

    def sample_indices(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        return torch.randint(self.codebook_size, (num_samples, *self.map_shape), device=self.quantizer.codebook.device)


__all__ = ["CodePrior", "CodeVectors", "UniformCodePrior"]
