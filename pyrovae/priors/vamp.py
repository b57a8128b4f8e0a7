"""VampPrior: p(z) = (1/K) sum_k q(z | u_k), the encoder's posteriors at K learned pseudo-inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro.distributions as dist
import torch
from torch import Tensor, nn

from pyrovae.priors.base import Prior


class _ExpandedMixture(dist.MixtureSameFamily):
    """``MixtureSameFamily`` that hands every component a ``z`` of the full shape ``(*batch, K, D)``.

    The stock version passes ``z`` as ``(*batch, 1, D)`` and relies on broadcasting inside the
    component's ``log_prob``. An encoder whose density inverts a flow conditioned on ``h(u_k)``
    (``IAFEncoder``) cannot broadcast that way, so the value is expanded explicitly; for the
    Gaussian encoders this changes nothing but memory. It overrides torch's private ``_pad``
    (stable since torch 1.8); ``tests/test_vamp_prior.py`` checks it against a hand-written
    mixture for every guide, so a change in torch shows there.
    """

    def _pad(self, x: Tensor) -> Tensor:
        x = x.unsqueeze(-1 - self._event_ndims)
        shape = list(x.shape)
        shape[-1 - self._event_ndims] = self._num_component
        return x.expand(shape)

    def expand(self, batch_shape, _instance=None):
        # Remember the (K,)-batched components: a plate expands them to (*batch, K), and the
        # fast log_prob below wants one (K, D) table, not a broadcast copy per data point.
        new = super().expand(batch_shape, _instance)
        new._unexpanded_components = getattr(self, "_unexpanded_components", self.component_distribution)
        return new

    def log_prob(self, value: Tensor) -> Tensor:
        """``log (1/K) sum_k q(value | u_k)``, shape ``value.shape[:-1]``.

        For diagonal Normal components (the default encoder) the squared distances to all K
        components come from three matrix products instead of a ``(*batch, K, D)`` tensor:
        ``sum_d (z_d - m_kd)^2 / s_kd^2 = z^2 . p_k - 2 z . (m_k p_k) + m_k^2 . p_k`` with
        ``p = 1 / s^2``. That is much faster for the paper's K = 500 and
        needs ``O(batch * K)`` memory. The expansion runs in float64, where the cancellation
        between its terms costs nothing at float32 precision. Other encoders take the general
        path.
        """
        components = getattr(self, "_unexpanded_components", self.component_distribution)
        base = getattr(components, "base_dist", None)
        if not (isinstance(components, dist.Independent) and isinstance(base, dist.Normal)
                and components.reinterpreted_batch_ndims == 1 and base.loc.dim() == 2):
            return super().log_prob(value)
        loc, scale = base.loc.double(), base.scale.double()  # (K, D)
        z = value.double()  # (..., D)
        precision = scale.pow(-2)
        squared = z.pow(2) @ precision.T - 2 * z @ (loc * precision).T + (loc.pow(2) * precision).sum(-1)
        log_normal = -0.5 * squared - scale.log().sum(-1) - 0.5 * loc.shape[-1] * math.log(2 * math.pi)
        log_weights = torch.log_softmax(self.mixture_distribution.logits.double(), dim=-1)
        log_weights = log_weights.reshape(-1, log_weights.shape[-1])[0]  # equal rows after an expand
        result = torch.logsumexp(log_normal + log_weights, dim=-1).to(value.dtype)
        return result.expand(torch.broadcast_shapes(result.shape, self.batch_shape))


class VampPrior(Prior):
    """Variational mixture of posteriors prior (Tomczak and Welling, 2018).

    ``p(z) = (1/K) sum_k q(z | u_k)`` where ``q`` is the VAE's own encoder and ``u_1..u_K`` are
    learned pseudo-inputs. The encoder is a shared submodule: pass the same object to the VAE,
    so ``vae.parameters()`` lists each encoder weight once and the prior moves with it.

    Pseudo-inputs stay in the data range ``(0, 1)`` through a sigmoid,
    ``u_k = sigmoid(raw_k)``; the paper uses a hardtanh, but that passes no gradient to pixels
    sitting exactly at 0 or 1, which most MNIST pixels are when initialised from data.

    Args:
        encoder: ``q(z | x)``, a module with ``forward(x) -> distribution`` of batch shape
            ``(K,)`` for ``K`` inputs and event shape ``(latent_dim,)``, and ``latent_dim``.
            It must not need a context.
        num_pseudo_inputs: ``K``.
        input_shape: shape of one data point, e.g. ``(1, 28, 28)``.
        init: ``(K, *input_shape)`` data points in ``[0, 1]`` to start from (e.g. a random
            training subset), or None for random grey pixels ``sigmoid(raw)`` with
            ``raw ~ N(0, 0.1^2)``, i.e. close to 0.5.

    Attributes:
        raw_pseudo_inputs: ``(K, *input_shape)``, the unconstrained pseudo-inputs.
    """

    def __init__(self, encoder: nn.Module, num_pseudo_inputs: int, input_shape: Sequence[int],
                 init: Tensor | None = None) -> None:
        super().__init__()
        if num_pseudo_inputs < 1:
            raise ValueError(f"num_pseudo_inputs must be at least 1, got {num_pseudo_inputs}")
        if getattr(encoder, "context_dim", 0):
            raise ValueError("VampPrior needs an encoder without a context (context_dim=0): the "
                             "pseudo-inputs carry no label")
        self.encoder = encoder
        self.latent_dim = encoder.latent_dim
        self.num_pseudo_inputs = num_pseudo_inputs
        self.input_shape = torch.Size(input_shape)
        shape = (num_pseudo_inputs, *self.input_shape)
        if init is None:
            raw = 0.1 * torch.randn(shape)
        else:
            init = torch.as_tensor(init, dtype=torch.get_default_dtype())
            if init.shape != shape:
                raise ValueError(f"init has shape {tuple(init.shape)} but the pseudo-inputs need {shape}: "
                                 f"pass {num_pseudo_inputs} data points of shape {tuple(self.input_shape)}")
            if not ((init >= 0) & (init <= 1)).all():
                raise ValueError("init must hold values in [0, 1] (the pseudo-inputs live in the data "
                                 "range); rescale your data points first")
            eps = 1e-3
            raw = torch.logit(init.clamp(eps, 1 - eps))
        self.raw_pseudo_inputs = nn.Parameter(raw)

    def extra_repr(self) -> str:
        return f"num_pseudo_inputs={self.num_pseudo_inputs}, input_shape={tuple(self.input_shape)}"

    @property
    def pseudo_inputs(self) -> Tensor:
        """The pseudo-inputs ``u_k`` in ``(0, 1)``, shape ``(K, *input_shape)``."""
        return torch.sigmoid(self.raw_pseudo_inputs)

    def forward(self, context: Tensor | None = None) -> dist.Distribution:
        """``MixtureSameFamily`` with uniform weights over ``q(z | u_k)``, event ``(latent_dim,)``."""
        components = self.encoder(self.pseudo_inputs)
        k = self.num_pseudo_inputs
        weights = torch.full((k,), -math.log(k), device=self.raw_pseudo_inputs.device,
                             dtype=self.raw_pseudo_inputs.dtype)
        return _ExpandedMixture(dist.Categorical(logits=weights), components)


__all__ = ["VampPrior"]
