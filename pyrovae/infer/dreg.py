"""Doubly-reparameterized gradients (DReG) for the IWAE bound, for any reparameterized Pyro guide.

Tucker, Lawson, Gu and Maddison, "Doubly Reparameterized Gradient Estimators for Monte Carlo
Objectives", 2018. Pyro has no DReG estimator (open feature request pyro-ppl/pyro#2598, "FR:
IWAE_DReG importance weighted VAE with doubly reparametrized gradients", which notes that torch
distributions lack a ``.detach()``); this module adds one on top of Pyro's traces without needing
one, see :class:`DReG`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from pyro import poutine
from pyro.infer import ELBO
from pyro.poutine.util import prune_subsample_sites

from pyrovae.infer.importance import (
    data_dims,
    guess_max_plate_nesting,
    in_particles,
    latent_values,
    replay_model,
    trace_log_density,
    with_values,
)


class DReG(ELBO):
    """IWAE bound with the doubly-reparameterized gradient estimator for the guide.

    The value is the IWAE bound ``sum_n logmeanexp_k log w_{k,n}`` (same particles, same number
    as :class:`pyrovae.infer.iwae.IWAE`); only the gradient differs:

    * model parameters theta: ``sum_k w~_k grad_theta log p(x, z_k)`` (the IWAE gradient);
    * guide parameters phi: ``sum_k w~_k^2 (d log w_k / d z_k) (d z_k / d phi)`` where ``log q`` in
      ``log w`` is evaluated with the distribution's parameters held fixed (stop-gradient), so
      only the path derivative through the samples remains; its variance does not grow with
      ``k`` the way the IWAE encoder gradient's signal-to-noise problem does.

    How it is built from traces, for any guide (no ``Distribution.detach`` needed): the guide
    runs once inside a vectorized particle plate to draw ``z = z(eps, phi)``; it is then
    replayed twice, once on autograd *aliases* ``z'`` of its samples (a view each, same values)
    and once on the samples detached, and the model is replayed on the aliases. In the
    surrogate ``sum_k w~_k [log p(x, z'_k) - log q_phi(z'_k) + log q_phi(stop z_k)]`` the direct
    dependence on phi of the two guide densities cancels exactly, so for phi only the
    derivative through the values is left, i.e. ``log q`` with its parameters stopped; for a
    conditional guide site ``q(z2 | z1)`` the dependence of its parameters on ``z1`` counts as
    a dependence on the value ``z1``, as it must. A hook on each alias multiplies the gradient
    reaching it by one more ``w~_k``; the aliases feed the model and the densities only, not
    the guide's sampling graph, so no path is scaled twice.

    A Pyro ``ELBO``: ``SVI(model, guide, optim, DReG(k))`` works, as does
    :class:`pyrovae.train.trainer.Trainer`.

    Args:
        num_particles: ``k`` (at least 2 for the estimator to differ from the ELBO's).
        max_plate_nesting: plates nested in the model; guessed on the first call when None.

    Limits:
        Every guide site must be reparameterizable (``has_rsample``); no enumerated sites and
        no model latent site missing from the guide (an enumerated mixture prior must be
        trained in its marginalized form or with ``TraceEnum_ELBO``). The gradient is right for
        one ``backward`` of the returned loss; scaling the loss by a constant is fine, but
        adding other terms that reuse the same graph would have their gradients to the
        latent values scaled too.
    """

    def __init__(self, num_particles: int = 5, max_plate_nesting: int | None = None) -> None:
        if num_particles < 1:
            raise ValueError(f"num_particles must be at least 1, got {num_particles}")
        super().__init__(num_particles=num_particles)
        # Own particle plate, so Pyro's vectorization bookkeeping is not used; None means "guess".
        self.max_plate_nesting = max_plate_nesting

    def differentiable_loss(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> Tensor:
        """Negative IWAE bound summed over the data batch; its gradient is the DReG estimator."""
        if self.max_plate_nesting is None:
            self.max_plate_nesting = guess_max_plate_nesting(model, guide, *args, **kwargs)
        k, nesting = self.num_particles, self.max_plate_nesting
        particle_guide = in_particles(guide, k, nesting)
        sampled = prune_subsample_sites(poutine.trace(particle_guide).get_trace(*args, **kwargs))
        values = latent_values(sampled)
        for name in values:
            if not sampled.nodes[name]["fn"].has_rsample:
                raise ValueError(f"guide site {name!r} is not reparameterizable; DReG needs rsample "
                                 "in the guide (use IWAE or Trace_ELBO instead)")
        # The guide replayed on aliases of its own samples: every later site's distribution is
        # built from the aliases, so log q's whole dependence on the values goes through them.
        aliases = {name: value.view_as(value) for name, value in values.items()}
        guide_trace = prune_subsample_sites(poutine.trace(
            poutine.replay(particle_guide, trace=with_values(sampled, aliases))).get_trace(*args, **kwargs))
        # ... and on detached samples: its log q depends on the guide's parameters directly only.
        detached = {name: value.detach() for name, value in values.items()}
        stopped_trace = prune_subsample_sites(poutine.trace(
            poutine.replay(particle_guide, trace=with_values(sampled, detached))).get_trace(*args, **kwargs))
        model_trace = replay_model(model, guide_trace, *args, num_particles=k, max_plate_nesting=nesting, **kwargs)
        keep = data_dims(model_trace, guide_trace)
        log_w = (trace_log_density(model_trace, nesting, keep)
                 - trace_log_density(guide_trace, nesting, keep, latent_only=True))
        log_q_direct = trace_log_density(stopped_trace, nesting, keep, latent_only=True)
        bound = (torch.logsumexp(log_w.detach(), dim=0) - math.log(k)).sum()
        normalized = torch.softmax(log_w.detach(), dim=0)  # (k, points)
        surrogate = (normalized * (log_w + log_q_direct)).sum()
        if surrogate.requires_grad:
            for name, alias in aliases.items():
                if alias.requires_grad:
                    weight = self._broadcast(normalized, sampled.nodes[name])
                    alias.register_hook(lambda grad, w=weight: grad * w)
        return -(bound + surrogate - surrogate.detach())

    def _broadcast(self, normalized: Tensor, site: dict) -> Tensor:
        """Normalized weights ``(k, points)`` shaped to broadcast against a site's value.

        The points axis is laid out over the site's data-plate dims, which hold every plate
        dim of size > 1 in the value's batch shape except the particle dim.
        """
        fn = site["fn"]
        batch_shape = site["value"].shape[: site["value"].dim() - fn.event_dim]
        width = self.max_plate_nesting + 1
        batch_shape = torch.Size((1,) * (width - len(batch_shape))) + batch_shape
        shape = [normalized.shape[0]] + [1] * self.max_plate_nesting
        data_dims = [f.dim for f in site["cond_indep_stack"] if f.vectorized and f.dim >= -self.max_plate_nesting]
        for d in data_dims:
            shape[d] = batch_shape[d]
        if math.prod(shape[1:]) != normalized.shape[1]:
            # A latent shared by several data points has no weight of its own; DReG is per point.
            raise ValueError(f"guide site {site['name']!r} is not inside every data plate; DReG needs "
                             "each latent site to be local to a data point")
        return normalized.reshape(shape).reshape(*shape, *([1] * fn.event_dim))

    def _get_trace(self, model: Callable, guide: Callable, args: Any, kwargs: Any) -> Any:
        raise NotImplementedError("DReG draws its particles itself; call differentiable_loss")

    def loss_and_grads(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> float:
        """Backpropagate the DReG estimator and return the negative bound, as Pyro's ``SVI`` expects."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()

    @torch.no_grad()
    def loss(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> float:
        """Negative IWAE bound summed over the data batch, as a float."""
        return self.differentiable_loss(model, guide, *args, **kwargs).item()


__all__ = ["DReG"]
