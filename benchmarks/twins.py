"""The contenders that ``speed.py`` times against pyrovae, written without pyrovae.

* :class:`PlainTwin`: the same networks and the same one-sample ELBO estimator in plain
  PyTorch, one ``torch.optim.Adam``.
* :class:`PyroStyle`: Pyro's ``examples/vae/vae.py`` way: model and guide functions calling
  ``pyro.module``, ``SVI(model, guide, pyro.optim.Adam, Trace_ELBO())``, ``svi.step`` per batch.
* :class:`PlainMixture`: a learnable diagonal Gaussian mixture ``p(z)`` for both, the
  counterpart of ``--prior gmm`` (pyrovae's marginalized ``GaussianMixturePrior``).
* :func:`gemm_seconds`: measured ``torch.matmul`` time of a list of GEMM shapes, the floor.
* :func:`reference_log_likelihood`: a minimal vectorized, chunked importance-sampled
  ``log p(x)`` in plain PyTorch, the reference for the evaluation timing.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer import SVI, Trace_ELBO
from torch import Tensor, nn

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def encoder_net(pixels: int, hidden: int, latent_dim: int) -> nn.Module:
    """784-400-(50, 50) with softplus, as in Pyro's VAE example (loc and raw scale in one output)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden), nn.Softplus(),
                         nn.Linear(hidden, 2 * latent_dim))


def decoder_net(pixels: int, hidden: int, latent_dim: int) -> nn.Module:
    """50-400-784 with softplus; outputs Bernoulli logits."""
    return nn.Sequential(nn.Linear(latent_dim, hidden), nn.Softplus(), nn.Linear(hidden, pixels))


class PlainMixture(nn.Module):
    """``p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2))`` with ``sigma = softplus(raw) + 1e-4``,
    the parametrisation of pyrovae's ``GaussianMixturePrior``."""

    def __init__(self, latent_dim: int, num_components: int = 10) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.randn(num_components, latent_dim))
        self.raw_scale = nn.Parameter(torch.full((num_components, latent_dim), math.log(math.expm1(1.0))))
        self.logits = nn.Parameter(torch.zeros(num_components))

    def log_prob(self, z: Tensor) -> Tensor:
        """``log p(z)`` for ``z`` of shape ``(*batch, latent_dim)``; returns ``(*batch,)``."""
        return mixture_log_prob(z, self.loc, F.softplus(self.raw_scale) + 1e-4, self.logits)

    def distribution(self) -> dist.Distribution:
        """The same density as a Pyro distribution (for :class:`PyroStyle`)."""
        components = dist.Normal(self.loc, F.softplus(self.raw_scale) + 1e-4).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), components)


def mixture_log_prob(z: Tensor, loc: Tensor, scale: Tensor, logits: Tensor) -> Tensor:
    """``logsumexp_k [log pi_k + log N(z; loc_k, scale_k^2)]``; ``z`` ``(*batch, D)``, ``loc`` and
    ``scale`` ``(K, D)``, ``logits`` ``(K,)``; returns ``(*batch,)``."""
    u = (z.unsqueeze(-2) - loc) / scale
    log_n = -(0.5 * u * u + scale.log() + HALF_LOG_2PI).sum(-1)
    return torch.logsumexp(torch.log_softmax(logits, -1) + log_n, dim=-1)


class PlainTwin(nn.Module):
    """Hand-written VAE step: reparameterized ``z``, Bernoulli log-likelihood on logits through
    BCE-with-logits, and the one-sample Monte Carlo KL ``log q(z|x) - log p(z)`` that
    ``Trace_ELBO`` uses (not the analytic KL), averaged over the batch. ``mixture``: a
    :class:`PlainMixture` as ``p(z)`` instead of the standard Normal."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int,
                 optimizer_kwargs: dict | None = None, mixture: PlainMixture | None = None) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = encoder
        self.decoder = decoder
        self.mixture = mixture
        self.optimizer = torch.optim.Adam(self.parameters(), **(optimizer_kwargs or {"lr": 1e-3}))

    def loss(self, x: Tensor) -> Tensor:
        """Negative ELBO per data point; ``x`` is ``(batch, 1, 28, 28)``."""
        loc, raw_scale = self.encoder(x).split(self.latent_dim, dim=-1)
        scale = F.softplus(raw_scale) + 1e-4
        eps = torch.randn_like(loc)
        z = loc + scale * eps
        logits = self.decoder(z).flatten(1)
        log_lik = -F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="none").sum(-1)
        log_p = -(0.5 * z * z + HALF_LOG_2PI).sum(-1) if self.mixture is None else self.mixture.log_prob(z)
        # log q(z|x) at z = loc + scale * eps is exactly this; same value and gradient.
        log_q = -(0.5 * eps * eps + scale.log() + HALF_LOG_2PI).sum(-1)
        return -(log_lik + log_p - log_q).mean()

    def step(self, x: Tensor) -> Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(x)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def epoch(self, data: Tensor, batch_size: int, generator: torch.Generator) -> float:
        """One shuffled pass over ``data`` held in memory; returns the mean loss."""
        order = torch.randperm(data.shape[0], generator=generator, device=generator.device).to(data.device)
        total = torch.zeros((), device=data.device)
        batches = math.ceil(data.shape[0] / batch_size)
        for b in range(batches):
            total += self.step(data.index_select(0, order[b * batch_size:(b + 1) * batch_size]))
        return total.item() / batches


class PyroStyle(nn.Module):
    """Pyro's VAE example, logits instead of probabilities so the arithmetic matches the others;
    ``mixture``: a :class:`PlainMixture` as ``p(z)`` (registered with ``pyro.module`` too)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int, tag: str = "style",
                 mixture: PlainMixture | None = None) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.tag = tag
        self.encoder = encoder
        self.decoder = decoder
        self.mixture = mixture
        self.svi = SVI(self.model, self.guide, pyro.optim.Adam({"lr": 1e-3}), loss=Trace_ELBO())

    def model(self, x: Tensor) -> None:
        pyro.module(f"{self.tag}_decoder", self.decoder)
        if self.mixture is not None:
            pyro.module(f"{self.tag}_prior", self.mixture)
        with pyro.plate("data", x.shape[0]):
            if self.mixture is None:
                zeros = x.new_zeros(x.shape[0], self.latent_dim)
                z = pyro.sample("latent", dist.Normal(zeros, 1.0 + zeros).to_event(1))
            else:
                z = pyro.sample("latent", self.mixture.distribution())
            logits = self.decoder(z).flatten(1)
            pyro.sample("obs", dist.Bernoulli(logits=logits, validate_args=False).to_event(1),
                        obs=x.flatten(1))

    def guide(self, x: Tensor) -> None:
        pyro.module(f"{self.tag}_encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            loc, raw_scale = self.encoder(x).split(self.latent_dim, dim=-1)
            pyro.sample("latent", dist.Normal(loc, F.softplus(raw_scale) + 1e-4).to_event(1))

    def epoch(self, data: Tensor, batch_size: int, generator: torch.Generator) -> float:
        order = torch.randperm(data.shape[0], generator=generator, device=generator.device).to(data.device)
        total = 0.0
        for b in range(math.ceil(data.shape[0] / batch_size)):
            total += self.svi.step(data.index_select(0, order[b * batch_size:(b + 1) * batch_size]))
        return total / data.shape[0]


def linear_gemms(layers: list[tuple[int, int]], rows: int, backward: bool, first_input_grad: bool = False
                 ) -> list[tuple[int, int, int]]:
    """GEMM shapes ``(m, k, n)`` (an ``m x k`` by ``k x n`` product) of linear layers applied to
    ``rows`` inputs: the forward product and, with ``backward``, the weight gradient and the
    input gradient (skipped for the first layer unless ``first_input_grad``: the data needs none)."""
    shapes = []
    for i, (fan_in, fan_out) in enumerate(layers):
        shapes.append((rows, fan_in, fan_out))
        if backward:
            shapes.append((fan_out, rows, fan_in))
            if i > 0 or first_input_grad:
                shapes.append((rows, fan_out, fan_in))
    return shapes


def gemm_flops(shapes: list[tuple[int, int, int]]) -> float:
    return float(sum(2 * m * k * n for m, k, n in shapes))


def gemm_seconds(shapes: list[tuple[int, int, int]], repeats: int = 7, inner: int = 20) -> float:
    """Median over ``repeats`` of the time of one ``torch.matmul`` of every shape (summed)."""
    operands = [(torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)) for m, k, n in shapes]
    return _median_seconds([lambda a=a, b=b, out=out: torch.matmul(a, b, out=out) for a, b, out in operands],
                           repeats, inner)


def onednn_gemm_seconds(shapes: list[tuple[int, int, int]], repeats: int = 7, inner: int = 20) -> float:
    """As :func:`gemm_seconds`, with oneDNN's linear (no bias), the kernel pyrovae's compiled
    evaluation runs its linear layers with (``pyrovae.fast.onednn``)."""
    operands = [(torch.randn(m, k), torch.randn(n, k)) for m, k, n in shapes]
    linear = torch.ops.mkldnn._linear_pointwise
    return _median_seconds([lambda x=x, w=w: linear(x, w, None, "none", [], "") for x, w in operands],
                           repeats, inner)


def _median_seconds(products: list[Callable[[], object]], repeats: int, inner: int) -> float:
    """Median over ``repeats`` of the time of one call of every product, after one warm-up call."""
    for product in products:
        product()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            for product in products:
                product()
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


@torch.no_grad()
def reference_log_likelihood(encoder: nn.Module, decoder: nn.Module, latent_dim: int, data: Tensor,
                             num_samples: int = 5000, chunk_size: int = 500, batch_size: int = 100,
                             log_prior: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Importance-sampled ``log p(x)`` with ``q(z|x)`` as proposal, in plain PyTorch.

    ``log p(x) ~ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K``; particles
    ``chunk_size`` at a time for ``batch_size`` images, combined by a running logsumexp.
    ``log_prior`` maps ``z`` ``(..., latent_dim)`` to ``log p(z)`` ``(...)``; default the
    standard Normal.

    Returns:
        ``(N,)`` estimates in nats.
    """
    out = []
    for start in range(0, data.shape[0], batch_size):
        images = data[start:start + batch_size]
        x = images.flatten(1)
        loc, raw_scale = encoder(images).split(latent_dim, dim=-1)
        scale = F.softplus(raw_scale) + 1e-4
        log_w_total = torch.full((x.shape[0],), -math.inf)
        for done in range(0, num_samples, chunk_size):
            k = min(chunk_size, num_samples - done)
            eps = torch.randn(k, *loc.shape)
            z = loc + scale * eps
            logits = decoder(z).flatten(2)
            log_lik = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
            log_p = -0.5 * (z * z).sum(-1) if log_prior is None else log_prior(z) + latent_dim * HALF_LOG_2PI
            log_w = log_lik + log_p + 0.5 * (eps * eps).sum(-1) + scale.log().sum(-1)
            log_w_total = torch.logaddexp(log_w_total, torch.logsumexp(log_w, dim=0))
        out.append(log_w_total - math.log(num_samples))
    return torch.cat(out)


__all__ = ["PlainMixture", "PlainTwin", "PyroStyle", "mixture_log_prob", "linear_gemms", "gemm_flops", "gemm_seconds", "reference_log_likelihood"]
