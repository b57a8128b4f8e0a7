"""Gaussian mixture prior p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)), marginalized or enumerated."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyrovae.priors.mixture_fit import MixtureFit, fit_diagonal_gmm, fit_to_partition
from pyrovae.priors.base import Prior


class GaussianMixturePrior(Prior):
    """A mixture of ``K`` diagonal Gaussians with learned means, scales and weights.

    One class serves both forms, which differ only in how the model draws ``z``:

    * ``enumerate=False`` (marginalized): the model samples ``z`` from the mixture density
      itself (``MixtureSameFamily``), so any ELBO (``Trace_ELBO``, ``TraceMeanField_ELBO``
      with a sampled KL) trains it and no component site appears.
    * ``enumerate=True`` (enumerated, as in VaDE / GMVAE, Jiang et al. 2017, Dilokthanakul
      et al. 2016): the model first draws the component ``c`` at site ``f"{name}_component"``,
      marked for parallel enumeration, then ``z ~ N(mu_c, sigma_c^2)``. Train it with
      ``TraceEnum_ELBO(max_plate_nesting=1)``, which sums ``c`` out exactly; the guide needs no
      site for ``c``. Under ``Trace_ELBO`` the component would be sampled instead, giving a
      looser (but still valid) bound.

    The two forms have the same parameters and ``state_dict`` keys, so a model trained one way
    loads into the other, and ``forward``, ``log_prob``, ``sample``, ``cluster`` and
    ``component_posterior`` behave identically. A flag keeps that sharing visible in one place
    rather than splitting it across two classes that would differ in one method.

    Args:
        latent_dim: size of ``z``.
        num_components: number of components ``K``.
        enumerate: draw an enumerated component site in the model (see above).
        init_scale: initial standard deviation of every component.
        init_spread: standard deviation of the random initial means (``N(0, init_spread^2)``).

    Attributes:
        loc: ``(K, latent_dim)`` component means.
        raw_scale: ``(K, latent_dim)``; the scales are ``softplus(raw_scale) + 1e-4``.
        logits: ``(K,)`` unnormalized log mixture weights.
    """

    def __init__(self, latent_dim: int, num_components: int, enumerate: bool = False,
                 init_scale: float = 1.0, init_spread: float = 1.0) -> None:
        super().__init__()
        if num_components < 1:
            raise ValueError(f"num_components must be at least 1, got {num_components}")
        if init_scale <= 0:
            raise ValueError(f"init_scale must be positive, got {init_scale}")
        self.latent_dim = latent_dim
        self.num_components = num_components
        self.enumerate = enumerate
        self.loc = nn.Parameter(init_spread * torch.randn(num_components, latent_dim))
        self.raw_scale = nn.Parameter(torch.full((num_components, latent_dim), math.log(math.expm1(init_scale))))
        self.logits = nn.Parameter(torch.zeros(num_components))

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, num_components={self.num_components}, enumerate={self.enumerate}"

    # -- the parts --------------------------------------------------------------------------

    @property
    def scale(self) -> Tensor:
        """Component standard deviations, ``(K, latent_dim)``."""
        return F.softplus(self.raw_scale) + 1e-4

    def mixing(self) -> dist.Categorical:
        """``p(c)``, a Categorical over the ``K`` components."""
        return dist.Categorical(logits=self.logits)

    def components(self) -> dist.Distribution:
        """All component densities ``p(z | c)`` at once: batch shape ``(K,)``, event ``(latent_dim,)``."""
        return dist.Normal(self.loc, self.scale).to_event(1)

    def component(self, k: int | Tensor) -> dist.Distribution:
        """``p(z | c = k)``; ``k`` an int or a LongTensor of any shape (the batch shape)."""
        if isinstance(k, int) and not 0 <= k < self.num_components:
            raise ValueError(f"component index {k} is out of range: choose 0 to {self.num_components - 1}")
        return dist.Normal(self.loc[k], self.scale[k]).to_event(1)

    def forward(self, context: Tensor | None = None) -> dist.Distribution:
        """The marginal ``p(z) = sum_k pi_k N(z; mu_k, sigma_k^2)`` (``MixtureSameFamily``)."""
        return dist.MixtureSameFamily(self.mixing(), self.components())

    # -- inference hooks --------------------------------------------------------------------

    def model_sample(self, name: str, context: Tensor | None = None) -> Tensor:
        """Marginalized: ``z ~ p(z)``. Enumerated: ``c ~ Cat(pi)`` at ``f"{name}_component"``, then
        ``z ~ N(mu_c, sigma_c^2)``; under enumeration ``c`` has shape ``(K, 1)``, so
        ``p(z | c)`` has batch shape ``(K, 1)`` and broadcasts against the data plate."""
        if not self.enumerate:
            return pyro.sample(name, self(context))
        c = pyro.sample(f"{name}_component", self.mixing(), infer={"enumerate": "parallel"})
        return pyro.sample(name, self.component(c))

    @torch.no_grad()
    def fit_to(self, z: Tensor, iterations: int = 200, restarts: int = 3,
               generator: torch.Generator | None = None) -> MixtureFit:
        """Set the weights, means and scales to a mixture fitted by EM to the codes ``z``
        ``(N, latent_dim)``, as VaDE starts its prior from a pretrained encoder's codes (see
        :mod:`pyrovae.priors.mixture_fit` and :func:`pyrovae.clustering.mixture_start.pretrain_mixture_prior`).
        Returns the fit."""
        self._check_codes(z)
        return self.load_fit(fit_diagonal_gmm(z, self.num_components, iterations, restarts, generator=generator))

    @torch.no_grad()
    def fit_to_partition(self, z: Tensor, labels: Tensor) -> MixtureFit:
        """Set the weights, means and scales to those of a hard partition of the codes ``z``
        ``(N, latent_dim)``: ``labels`` ``(N,)`` in ``[0, num_components)``, e.g. from
        :func:`pyrovae.clustering.umap_start.umap_partition`. Returns the fit."""
        self._check_codes(z)
        return self.load_fit(fit_to_partition(z, labels, self.num_components))

    def _check_codes(self, z: Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"codes must be (N, {self.latent_dim}), got shape {tuple(z.shape)}")

    @torch.no_grad()
    def load_fit(self, fit: MixtureFit) -> MixtureFit:
        """Copy a :class:`~pyrovae.priors.mixture_fit.MixtureFit` (``K`` weights, ``(K, D)`` means and
        scales) into the parameters. Returns it."""
        self.logits.copy_(fit.weights.log())
        self.loc.copy_(fit.means)
        # invert scale = softplus(raw) + 1e-4; softplus^-1(y) = y + log(-expm1(-y))
        target = (fit.scales - 1e-4).clamp_min(1e-6)
        self.raw_scale.copy_(target + torch.log(-torch.expm1(-target)))
        return fit

    # -- using the mixture ------------------------------------------------------------------

    def component_log_joint(self, z: Tensor) -> Tensor:
        """``log pi_k + log N(z; mu_k, sigma_k^2)`` for every ``k``.

        Args:
            z: ``(*batch, latent_dim)``.

        Returns:
            ``(*batch, K)``.
        """
        log_pi = torch.log_softmax(self.logits, dim=-1)
        return log_pi + self.components().log_prob(z.unsqueeze(-2))

    def component_posterior(self, z: Tensor) -> Tensor:
        """``p(c = k | z)`` by Bayes' rule, ``(*batch, K)`` probabilities summing to one.

        Args:
            z: ``(*batch, latent_dim)``.
        """
        return torch.softmax(self.component_log_joint(z), dim=-1)

    def cluster(self, z: Tensor) -> Tensor:
        """The most probable component for each ``z``: ``argmax_k p(c = k | z)``, a LongTensor ``(*batch,)``."""
        return self.component_log_joint(z).argmax(dim=-1)

    def sample_component(self, k: int, num_samples: int) -> Tensor:
        """``num_samples`` draws from component ``k`` alone, ``(num_samples, latent_dim)``."""
        return self.component(k).sample((num_samples,))


__all__ = ["GaussianMixturePrior"]
