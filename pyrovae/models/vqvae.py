"""VQ-VAE and VQ-VAE-2 as Pyro models: a prior over code maps, a decoder, and a quantizing guide.

VQ-VAE (van den Oord et al. 2017) is a :class:`~pyrovae.VAE` whose latent is a map of codebook
vectors: the model draws the map from a code prior (:mod:`pyrovae.priors.codes`,
:mod:`pyrovae.priors.pixelcnn`) and decodes it; the guide is the quantizer
(:mod:`pyrovae.guides.quantizer`), a point mass at the nearest-code map, plus, in training mode,
the commitment (and codebook) penalty as the point mass's log-density. How that penalty enters the
objective and why the reported bound ``log p(x | z_q(x)) + log p(z_q(x)) <= log p(x)`` stays
honest is explained in :mod:`pyrovae.guides.quantizer`.

VQ-VAE-2 (Razavi et al. 2019) has two code maps: a coarse top map and a finer bottom map whose
encoder reads the top codes; the prior is ``p(top) p(bottom | top)``, two PixelCNNs, and the
decoder reads both maps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from pyrovae.guides.diagonal import Encoder
from pyrovae.guides.quantizer import Quantized, QuantizingEncoder, VectorQuantizer
from pyrovae.likelihoods.elementwise import Likelihood
from pyrovae.models.vae import VAE
from pyrovae.priors.codes import CodePrior

T = TypeVar("T")


class VQVAE(VAE):
    """VQ-VAE: ``z ~ p(code map)``, ``x ~ p(x | z)``; guide ``z = z_q(x)`` (a point mass).

    ``SVI(vq.model, vq.guide, pyro.optim.Adam({"lr": 2e-4}), Trace_ELBO())`` trains it; in
    evaluation mode (``vq.eval()``) the same pair scores the bound
    ``log p(x | z_q) + log p(z_q)`` with nothing added.

    Args:
        encoder: a :class:`~pyrovae.guides.quantizer.QuantizingEncoder`.
        likelihood: ``p(x | z)`` reading the flattened code map ``(batch, D * h * w)``.
        prior: a :class:`~pyrovae.priors.codes.CodePrior` sharing the encoder's quantizer.
        name: prefix in Pyro's param store.
    """

    def __init__(self, encoder: QuantizingEncoder, likelihood: Likelihood, prior: CodePrior,
                 name: str = "vqvae") -> None:
        super().__init__(encoder, likelihood, prior, name=name)

    @property
    def quantizers(self) -> list[VectorQuantizer]:
        return [self.encoder.quantizer]

    def guide(self, x: Tensor, context: Tensor | None = None) -> None:
        """z = z_q(x), a point mass whose log-density is the penalty in training mode and 0 otherwise."""
        self.register_params()
        with pyro.plate("data", x.shape[0]):
            q = self.encoder.quantize(x)
            pyro.sample("z", self._point_mass(q.z_q, q.penalty))

    def _point_mass(self, z_q: Tensor, penalty: Tensor) -> dist.Delta:
        # The penalty is the point mass's log-density in training mode: it adds to log q, which
        # the ELBO subtracts, so the loss grows by the penalty; in evaluation mode it is 0.
        return dist.Delta(z_q.flatten(1), log_density=penalty if self.training else 0.0, event_dim=1)

    @torch.no_grad()
    def codes(self, x: Tensor) -> Tensor:
        """Index maps ``(batch, h, w)`` of ``x`` (evaluation mode: no codebook update)."""
        return self._frozen(lambda: self.encoder.quantize(x).indices)

    def _frozen(self, fn: Callable[[], T]) -> T:
        """``fn()`` in evaluation mode (no codebook update, no penalty), then the mode as before."""
        was_training = self.training
        self.eval()
        try:
            return fn()
        finally:
            self.train(was_training)

    @torch.no_grad()
    def bound(self, x: Tensor) -> Tensor:
        """``log p(x | z_q(x)) + log p(z_q(x))`` per data point, ``(batch,)``: a lower bound on
        ``log p(x)`` because the guide is a point mass (entropy 0)."""
        def score() -> Tensor:
            z = self.encoder.mean(x)
            return self.likelihood(z).log_prob(x) + self.prior.log_prob(z)

        return self._frozen(score)

    @torch.no_grad()
    def encode(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """The flattened code map ``z_q(x)``, evaluation mode."""
        return self._frozen(lambda: self.encoder.mean(x))


class TwoLevelQuantizingEncoder(Encoder):
    """VQ-VAE-2's encoder: a top code map from coarse features and a bottom map conditioned on it.

    ``h = bottom_net(x)``; ``top = quantize(top_net(h))``;
    ``bottom = quantize(bottom_head(cat(h, top_to_bottom(z_q_top))))``.

    Args:
        bottom_net: ``x -> (batch, C, h_b, w_b)``.
        top_net: ``(batch, C, h_b, w_b) -> (batch, D, h_t, w_t)``.
        top_to_bottom: ``(batch, D, h_t, w_t) -> (batch, C', h_b, w_b)``.
        bottom_head: ``(batch, C + C', h_b, w_b) -> (batch, D, h_b, w_b)``.
        top_quantizer, bottom_quantizer: the two codebooks.
        top_shape, bottom_shape: ``(h_t, w_t)`` and ``(h_b, w_b)``.
    """

    def __init__(self, bottom_net: nn.Module, top_net: nn.Module, top_to_bottom: nn.Module, bottom_head: nn.Module,
                 top_quantizer: VectorQuantizer, bottom_quantizer: VectorQuantizer,
                 top_shape: tuple[int, int], bottom_shape: tuple[int, int]) -> None:
        super().__init__()
        self.bottom_net, self.top_net = bottom_net, top_net
        self.top_to_bottom, self.bottom_head = top_to_bottom, bottom_head
        self.top_quantizer, self.quantizer = top_quantizer, bottom_quantizer
        self.top_shape, self.map_shape = tuple(top_shape), tuple(bottom_shape)
        self.top_dim = top_quantizer.code_dim * self.top_shape[0] * self.top_shape[1]
        self.latent_dim = self.top_dim + bottom_quantizer.code_dim * self.map_shape[0] * self.map_shape[1]

    def quantize_levels(self, x: Tensor) -> tuple[Quantized, Quantized]:
        h = self.bottom_net(x)
        top = self.top_quantizer(self.top_net(h))
        bottom = self.quantizer(self.bottom_head(torch.cat([h, self.top_to_bottom(top.z_q)], dim=1)))
        return top, bottom

    def mean(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Both code maps flattened and concatenated, ``(batch, top_dim + bottom_dim)``."""
        top, bottom = self.quantize_levels(x)
        return torch.cat([top.z_q.flatten(1), bottom.z_q.flatten(1)], dim=1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> dist.Distribution:
        return dist.Delta(self.mean(x), event_dim=1)


class VQVAE2(VQVAE):
    """VQ-VAE-2: ``z_top ~ p(top)``, ``z ~ p(bottom | z_top)``, ``x ~ p(x | z_top, z)``.

    The likelihood reads ``cat(z_top, z)``, the two flattened maps. The guide is
    :class:`TwoLevelQuantizingEncoder`'s two point masses plus both penalties in training mode.

    Args:
        encoder: a :class:`TwoLevelQuantizingEncoder`.
        likelihood: ``p(x | cat(z_top, z))``.
        top_prior: code prior of the top map.
        prior: code prior of the bottom map, conditioned on the flattened top map.
    """

    def __init__(self, encoder: TwoLevelQuantizingEncoder, likelihood: Likelihood, top_prior: CodePrior,
                 prior: CodePrior, name: str = "vqvae2") -> None:
        super().__init__(encoder, likelihood, prior, name=name)
        self.top_prior = top_prior

    @property
    def latent_dim(self) -> int:
        return self.encoder.latent_dim

    @property
    def quantizers(self) -> list[VectorQuantizer]:
        return [self.encoder.top_quantizer, self.encoder.quantizer]

    def model(self, x: Tensor, context: Tensor | None = None) -> None:
        """z_top ~ p(top);  z ~ p(bottom | z_top);  x ~ p(x | z_top, z)."""
        self.register_params()
        with pyro.plate("data", x.shape[0]):
            z_top = pyro.sample("z_top", self.top_prior())
            z = pyro.sample("z", self.prior(z_top))
            pyro.sample("x", self.likelihood(torch.cat([z_top, z], dim=-1)), obs=x)

    def guide(self, x: Tensor, context: Tensor | None = None) -> None:
        """z_top = z_q,top(x); z = z_q,bottom(x, z_top) (point masses); penalties in training mode."""
        self.register_params()
        with pyro.plate("data", x.shape[0]):
            top, bottom = self.encoder.quantize_levels(x)
            pyro.sample("z_top", self._point_mass(top.z_q, top.penalty))
            pyro.sample("z", self._point_mass(bottom.z_q, bottom.penalty))

    def split(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``cat(z_top, z_bottom)`` back into its two parts."""
        return z[..., : self.encoder.top_dim], z[..., self.encoder.top_dim :]

    @torch.no_grad()
    def codes(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Top and bottom index maps, ``(batch, h_t, w_t)`` and ``(batch, h_b, w_b)``."""
        def both() -> tuple[Tensor, Tensor]:
            top, bottom = self.encoder.quantize_levels(x)
            return top.indices, bottom.indices

        return self._frozen(both)

    @torch.no_grad()
    def bound(self, x: Tensor) -> Tensor:
        """``log p(x | z_q) + log p(z_q,top) + log p(z_q,bottom | z_q,top)`` per point, ``(batch,)``."""
        def score() -> Tensor:
            z = self.encoder.mean(x)
            z_top, z_bottom = self.split(z)
            return (self.likelihood(z).log_prob(x) + self.top_prior.log_prob(z_top)
                    + self.prior.log_prob(z_bottom, z_top))

        return self._frozen(score)

    @torch.no_grad()
    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        z_top = self.top_prior.sample(num_samples)
        return self.decode(torch.cat([z_top, self.prior.sample(num_samples, z_top)], dim=-1))

    @torch.no_grad()
    def reconstruct_top(self, x: Tensor) -> Tensor:
        """Decode the top code map of ``x`` alone, the bottom map set to zero vectors."""
        z_top, z_bottom = self.split(self.encode(x))
        return self.decode(torch.cat([z_top, torch.zeros_like(z_bottom)], dim=-1))


__all__ = ["VQVAE", "VQVAE2", "TwoLevelQuantizingEncoder"]
