"""Scaling of the latent sites for beta-VAE and KL warm-up, and the schedule that sets it.

``ELBO = E_q[log p(x | z)] - KL(q(z | x) || p(z))``. Multiplying the log-density of every
*unobserved* site, in the model and in the guide alike, by ``beta`` turns the single-sample
estimate ``log p(x|z) + log p(z) - log q(z|x)`` into ``log p(x|z) - beta * (log q - log p)``,
i.e. the beta-weighted bound (Higgins et al. 2017), for any prior and guide, including their
extra sites, and analytic KL terms under ``TraceMeanField_ELBO`` are scaled the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from pyro.poutine.messenger import Messenger


class LatentScale(Messenger):
    """Multiply the log-density of every unobserved sample site by ``weight``.

    The weight is a plain attribute, so a trainer can change it between steps (warm-up)
    without re-wrapping the model and guide.

    Example::

        scale = LatentScale(0.5)
        loss = Trace_ELBO().differentiable_loss(scale(vae.model), scale(vae.guide), x)
    """

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    def __call__(self, fn: Callable) -> Callable:
        """Wrap ``fn`` so that it runs under this scale; while ``weight`` is exactly 1 the
        wrapper calls ``fn`` directly, leaving this messenger off Pyro's stack (it would
        change nothing, and each messenger on the stack costs time at every site)."""
        scaled = super().__call__(fn)

        @functools.wraps(fn)
        def maybe_scaled(*args, **kwargs):
            return fn(*args, **kwargs) if self.weight == 1.0 else scaled(*args, **kwargs)

        return maybe_scaled

    def _process_message(self, msg: dict) -> None:
        if msg["type"] == "sample" and not msg["is_observed"] and self.weight != 1.0:
            msg["scale"] = msg["scale"] * self.weight


def linear_warmup(beta: float, warmup_steps: int) -> Callable[[int], float]:
    """KL weight schedule: rises linearly from 0 to ``beta`` over ``warmup_steps``, then stays.

    Args:
        beta: final weight on the KL term (1 is the ELBO).
        warmup_steps: number of optimisation steps of the ramp; 0 means no warm-up.

    Returns:
        A function from the global step (0-based) to the weight.
    """
    if warmup_steps <= 0:
        return lambda step: beta
    return lambda step: beta * min(1.0, (step + 1) / warmup_steps)


__all__ = ["LatentScale", "linear_warmup"]
