"""The vector quantizer of VQ-VAE as a guide: nearest-code assignment with a straight-through gradient.

How VQ-VAE becomes a Pyro model and guide
-----------------------------------------
The encoder maps ``x`` to a map ``z_e(x)`` of ``D``-dim vectors, ``(D, h, w)``; every position
takes the nearest of ``K`` codebook vectors, giving the code map ``z_q(x)`` and its indices
(van den Oord et al. 2017, "Neural Discrete Representation Learning"). In pyrovae:

* the **model** draws the code map from a prior over indices (uniform while the autoencoder
  trains, a PixelCNN afterwards) and the decoder reads the chosen code vectors;
* the **guide** is this quantizer: a point mass (``Delta``) at the nearest-code map. Its
  entropy is 0, so the ELBO of one data point is ``log p(x | z_q(x)) + log p(z_q(x))``, and
  under the uniform prior ``KL(q || p) = h * w * log K``, a constant;
* the straight-through estimator ``z_q = z_e + sg(e - z_e)`` makes the value the code vector and
  the gradient the decoder's gradient at ``z_q``, handed to the encoder unchanged.

The extra loss terms and why the bound stays honest
---------------------------------------------------
The codebook does not receive a gradient from the ELBO (the point mass sits on it through a
stop-gradient) and the encoder is not pulled towards its codes. Two terms do that:

* the **commitment** term ``beta * ||z_e - sg(e)||^2`` (``beta = 0.25``);
* either the **codebook loss** ``||sg(z_e) - e||^2`` (``ema=False``) or, the default, codebook
  vectors that are **exponential moving averages** of the encoder outputs assigned to them
  (decay 0.99, Laplace-smoothed counts; appendix of van den Oord et al. 2017), updated in the
  forward pass in training mode, so that no loss term is needed for them.

The sum of these terms per data point is :attr:`Quantized.penalty`. :class:`~pyrovae.models.vqvae.VQVAE`
adds it to the objective explicitly, in training mode only, as the ``log_density`` of the guide's
point mass: ``pyro.sample("z", Delta(z_q, log_density=penalty))``. That is what
``pyro.factor("penalty", penalty, has_rsample=True)`` in the guide would do (a guide-side term
adds to ``log q``, which the ELBO subtracts), so the loss that ``Trace_ELBO`` minimises is
``-ELBO + penalty``; carried by the latent site itself, it keeps the guide free of observed
sites, which pyrovae's one-pass ELBO (:class:`~pyrovae.infer.elbo.SyncFreeTrace_ELBO`) needs
to score the guide in a single run (a second run would move the EMA codebook twice). The
penalty is not part of ``log p(x)``: it is a regulariser on where the codes sit. In
evaluation mode the point mass has log-density 0, so every figure that pyrovae reports (the
per-epoch test ELBO, ``pyrovae evaluate``) is the plain bound
``log p(x | z_q) + log p(z_q) <= log p(x)``, whatever the penalty was.

Scale. Pyro's likelihoods sum over pixels, whereas the published ``beta = 0.25`` was tuned
against a *mean* squared error (pythae's issue 124 is this mismatch). Here the penalty is
likewise a *sum* over latent elements (``D * h * w`` per image), so both sides are sums and their
ratio stays near the published one (e.g. 784 pixels against ``16 * 7 * 7 = 784`` latent elements
on MNIST).

Dead codes are restarted: a code no encoder output has chosen for ``restart_after`` training
steps is moved to a random encoder output of the current batch (Dhariwal et al. 2020, Jukebox;
Zeghidour et al. 2021). Codes start out dead, so the first training batch moves every code that
no output chose onto an encoder output: the codebook starts at the encoder's scale.
"""

from __future__ import annotations

from typing import NamedTuple

import pyro.distributions as dist
import torch
from torch import Tensor, nn

from pyrovae.errors import InputError
from pyrovae.guides.diagonal import Encoder
from pyrovae.nn.rebuild import Rebuildable


class Quantized(NamedTuple):
    """The quantizer's output for a batch of maps.

    Attributes:
        z_e: encoder output, ``(batch, D, h, w)``.
        indices: nearest-code indices, ``(batch, h, w)``, long.
        z_q: straight-through code map, ``(batch, D, h, w)``: the code vectors' values, the
            encoder's gradient.
        penalty: commitment (and, without EMA, codebook) term summed over latent elements, ``(batch,)``.
    """

    z_e: Tensor
    indices: Tensor
    z_q: Tensor
    penalty: Tensor


class VectorQuantizer(Rebuildable, nn.Module):
    """A codebook of ``K`` vectors of size ``D`` and the nearest-code assignment.

    Args:
        codebook_size: ``K``, at least 2.
        code_dim: ``D``.
        commitment: ``beta``, the weight of ``||z_e - sg(e)||^2``.
        ema: learn the codebook by exponential moving averages (default); False: by the codebook
            loss ``||sg(z_e) - e||^2`` and the optimizer.
        decay: EMA decay ``gamma``.
        epsilon: Laplace smoothing of the EMA counts.
        restart_after: training steps without any assignment after which a code is restarted at a
            random encoder output of the batch; None never restarts.

    EMA (bias-corrected, so the first step sets a used code to the mean of its batch vectors):
    ``N_k <- gamma N_k + (1 - gamma) n_k`` and ``S_k <- gamma S_k + (1 - gamma) sum_{i->k} z_e,i``;
    with ``c = 1 - gamma^t`` after ``t`` steps, ``N = N / c``, ``S = S / c``,
    ``N~_k = (N_k + eps) / (sum N + K eps) * sum N`` and ``e_k = S_k / N~_k`` for every code with
    ``N_k > 0`` (a code never used keeps its vector).

    Buffers ``usage`` (assignments per code since :meth:`reset_usage`) feed the per-epoch
    perplexity and fraction of codes used (:meth:`usage_figures`).
    """

    def __init__(self, codebook_size: int, code_dim: int, commitment: float = 0.25, ema: bool = True,
                 decay: float = 0.99, epsilon: float = 1e-5, restart_after: int | None = 100) -> None:
        super().__init__()
        if codebook_size < 2:
            raise InputError(f"the codebook needs at least 2 codes, got --codebook-size {codebook_size}")
        if code_dim < 1:
            raise InputError(f"code vectors need at least 1 dimension, got --code-dim {code_dim}")
        if not 0.0 < decay < 1.0:
            raise InputError(f"the EMA decay must lie in (0, 1), got {decay}")
        self.codebook_size = codebook_size
        self.code_dim = code_dim
        self.commitment = commitment
        self.ema = ema
        self.decay = decay
        self.epsilon = epsilon
        self.restart_after = restart_after
        codebook = torch.randn(codebook_size, code_dim)
        if ema:
            self.register_buffer("codebook", codebook)
            self.register_buffer("ema_count", torch.zeros(codebook_size))
            self.register_buffer("ema_sum", torch.zeros(codebook_size, code_dim))
            self.register_buffer("ema_steps", torch.zeros((), dtype=torch.long))
        else:
            self.codebook = nn.Parameter(codebook)
        # Every code starts as dead: the first training batch places the codes nobody chose at
        # random encoder outputs, a data-dependent start at the encoder's scale.
        self.register_buffer("idle_steps", torch.full((codebook_size,), restart_after or 0, dtype=torch.long))
        self.register_buffer("usage", torch.zeros(codebook_size))

    # -- assignment -------------------------------------------------------------------------

    def nearest(self, vectors: Tensor) -> Tensor:
        """Index of the nearest code (Euclidean) for each of ``(..., D)`` vectors, shape ``(...)``."""
        flat = vectors.reshape(-1, self.code_dim)
        e = self.codebook.detach()
        distances = (flat.pow(2).sum(-1, keepdim=True) - 2 * flat @ e.T + e.pow(2).sum(-1))
        return distances.argmin(-1).reshape(vectors.shape[:-1])

    def lookup(self, indices: Tensor) -> Tensor:
        """Code maps ``(..., D, h, w)`` for index maps ``(..., h, w)``."""
        return self.codebook[indices].movedim(-1, -3)

    def forward(self, z_e: Tensor) -> Quantized:
        """Quantize a batch of maps ``(batch, D, h, w)``; in training mode also update the codebook
        (EMA), the restarts and the usage counts."""
        if z_e.dim() != 4 or z_e.shape[1] != self.code_dim:
            raise InputError(f"the quantizer expects maps of shape (batch, {self.code_dim}, h, w), "
                             f"got {tuple(z_e.shape)}")
        vectors = z_e.movedim(1, -1)  # (batch, h, w, D)
        indices = self.nearest(vectors.detach())
        e = self.codebook[indices]
        penalty = self.commitment * (vectors - e.detach()).pow(2)
        if not self.ema:
            penalty = penalty + (vectors.detach() - e).pow(2)
        z_q = vectors + (e - vectors).detach()
        if self.training:
            self._learn(vectors.detach().reshape(-1, self.code_dim), indices.reshape(-1))
        return Quantized(z_e, indices, z_q.movedim(-1, 1), penalty.flatten(1).sum(-1))

    # -- learning the codebook --------------------------------------------------------------

    @torch.no_grad()
    def _learn(self, vectors: Tensor, indices: Tensor) -> None:
        counts = torch.bincount(indices, minlength=self.codebook_size).to(vectors.dtype)
        self.usage += counts
        if self.ema:
            sums = torch.zeros_like(self.ema_sum).index_add_(0, indices, vectors)
            self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
            self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            self.ema_steps += 1
            self.codebook.copy_(self.ema_codebook())
        if self.restart_after is not None:
            self.idle_steps += 1
            self.idle_steps[counts > 0] = 0
            self.restart(self.idle_steps >= self.restart_after, vectors)

    def _bias_correction(self) -> float:
        return 1 - self.decay ** int(self.ema_steps)

    def ema_codebook(self) -> Tensor:
        """The codebook the EMA statistics give, ``(K, D)`` (see the class docstring)."""
        c = self._bias_correction()
        count, total = self.ema_count / c, self.ema_sum / c
        n = count.sum()
        smoothed = (count + self.epsilon) / (n + self.codebook_size * self.epsilon) * n
        return torch.where((count > 0).unsqueeze(-1), total / smoothed.unsqueeze(-1), self.codebook)

    @torch.no_grad()
    def restart(self, dead: Tensor, vectors: Tensor) -> None:
        """Move the codes where ``dead`` (``(K,)`` bool) is True to random rows of ``vectors``
        ``(n, D)``; their EMA statistics become those of one assignment of that vector."""
        num_dead = int(dead.sum())
        if num_dead == 0:
            return
        picks = vectors[torch.randint(vectors.shape[0], (num_dead,), device=vectors.device)]
        self.codebook.data[dead] = picks
        self.idle_steps[dead] = 0
        if self.ema:
            c = self._bias_correction()
            self.ema_count[dead] = c
            self.ema_sum[dead] = picks * c

    # -- usage over an epoch ----------------------------------------------------------------

    def reset_usage(self) -> None:
        self.usage.zero_()

    def usage_figures(self) -> dict[str, float]:
        """Codebook perplexity ``exp(H(p))`` of the assignment frequencies ``p`` counted since the
        last :meth:`reset_usage`, and the fraction of codes used at least once."""
        total = self.usage.sum()
        if total == 0:
            return {"perplexity": float("nan"), "codes_used": float("nan")}
        p = self.usage / total
        entropy = -(p * p.clamp_min(1e-30).log()).sum()
        return {"perplexity": entropy.exp().item(), "codes_used": (self.usage > 0).float().mean().item()}


class QuantizingEncoder(Encoder):
    """The VQ-VAE guide's encoder: ``q(z | x)`` is a point mass at the nearest-code map.

    The latent ``z`` is the code map flattened channel-first to ``(batch, D * h * w)``, so that it
    fits the rest of pyrovae (the data plate, likelihoods reading a vector) unchanged.

    Args:
        net: maps ``(batch, *event_shape)`` to ``(batch, D, h, w)``.
        quantizer: the codebook.
        map_shape: ``(h, w)`` of the code map ``net`` produces.
    """

    def __init__(self, net: nn.Module, quantizer: VectorQuantizer, map_shape: tuple[int, int]) -> None:
        super().__init__()
        self.net = net
        self.quantizer = quantizer
        self.map_shape = tuple(map_shape)
        self.latent_dim = quantizer.code_dim * self.map_shape[0] * self.map_shape[1]

    def quantize(self, x: Tensor, context: Tensor | None = None) -> Quantized:
        """Encode and quantize ``x`` ``(batch, *event_shape)``."""
        return self.quantizer(self.net(x))

    def forward(self, x: Tensor, context: Tensor | None = None) -> dist.Distribution:
        """``Delta(z_q(x))`` over the flattened code map, event shape ``(D * h * w,)``."""
        return dist.Delta(self.quantize(x).z_q.flatten(1), event_dim=1)

    def mean(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.quantize(x).z_q.flatten(1)


__all__ = ["Quantized", "QuantizingEncoder", "VectorQuantizer"]
