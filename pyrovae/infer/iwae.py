"""The importance-weighted bound (IWAE) as Pyro's ``RenyiELBO(alpha=0)`` with a differentiable loss.

``L_k = E[ log (1/k) sum_k p(x, z_k) / q(z_k | x) ]``, ``z_1..z_k ~ q(z | x)`` (Burda, Grosse
and Salakhutdinov, "Importance Weighted Autoencoders", 2015). ``L_1`` is the ELBO and
``L_k`` rises towards ``log p(x)`` as ``k`` grows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from pyro.infer import RenyiELBO
from torch import Tensor

from pyrovae.infer.importance import guess_max_plate_nesting, importance_traces, log_weights_from_traces


class IWAE(RenyiELBO):
    """``RenyiELBO(alpha=0)``, i.e. the IWAE bound, plus the ``differentiable_loss`` Pyro 1.9 lacks.

    ``RenyiELBO`` only offers ``loss`` and ``loss_and_grads`` (which calls ``backward`` itself),
    so it cannot drive a torch optimizer or :class:`pyrovae.train.trainer.Trainer`. Here the
    log-weights come from the one routine the evaluation and :class:`~pyrovae.infer.dreg.DReG`
    use too (:mod:`pyrovae.infer.importance`: the guide in a vectorized particle plate, the
    model replayed against it) and the bound is returned as a tensor:
    ``-sum_n logmeanexp_k log w_{k,n}``. Its gradient, ``-sum_k w~_k grad log w_k`` with
    ``w~`` the normalized weights, is exactly the gradient of ``RenyiELBO``'s surrogate for
    reparameterized guide sites, and the value equals ``RenyiELBO.loss`` on the same samples.

    Args:
        num_particles: ``k``, samples per data point.
        max_plate_nesting: plates nested in the model; guessed on the first call when left out.
        vectorize_particles: draw the ``k`` particles in one vectorized pass (default) instead
            of a Python loop of one-particle passes.

    Limits:
        Guide sites must be reparameterizable: ``RenyiELBO``'s score-function term vanishes at
        ``alpha=0``, so a discrete guide site would get a biased gradient; this class refuses it.
        Every latent model site needs a guide site of the same name (enumerated sites are not
        summed out: use ``TraceEnum_ELBO`` for those).
    """

    def __init__(self, num_particles: int = 5, max_plate_nesting: float = float("inf"),
                 vectorize_particles: bool = True) -> None:
        if num_particles < 1:
            raise ValueError(f"num_particles must be at least 1, got {num_particles}")
        super().__init__(alpha=0.0, num_particles=num_particles, max_plate_nesting=max_plate_nesting,
                         vectorize_particles=vectorize_particles)

    def log_weights(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> Tensor:
        """``log w = log p(x, z) - log q(z | x)`` per particle and data point, shape
        ``(num_particles, num_points)``, differentiable."""
        if self.max_plate_nesting == float("inf"):
            self.max_plate_nesting = guess_max_plate_nesting(model, guide, *args, **kwargs)
        nesting = int(self.max_plate_nesting)
        passes = [self.num_particles] if self.vectorize_particles else [1] * self.num_particles
        weights = []
        for k in passes:
            model_trace, guide_trace = importance_traces(model, guide, *args, num_particles=k,
                                                         max_plate_nesting=nesting, **kwargs)
            for name, site in guide_trace.nodes.items():
                if site["type"] == "sample" and not site["is_observed"] and not site["fn"].has_rsample:
                    raise ValueError(
                        f"guide site {name!r} is not reparameterizable; IWAE/DReG need rsample "
                        "in the guide (use TraceEnum_ELBO or Trace_ELBO for discrete guide sites)"
                    )
            weights.append(log_weights_from_traces(model_trace, guide_trace, nesting))
        return torch.cat(weights)

    def differentiable_loss(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> Tensor:
        """Negative IWAE bound summed over the data batch, a differentiable scalar."""
        log_w = self.log_weights(model, guide, *args, **kwargs)
        bound = torch.logsumexp(log_w, dim=0) - math.log(self.num_particles)
        return -bound.sum()

    @torch.no_grad()
    def loss(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> float:
        """Negative IWAE bound summed over the data batch, as a float."""
        return self.differentiable_loss(model, guide, *args, **kwargs).item()


__all__ = ["IWAE"]
