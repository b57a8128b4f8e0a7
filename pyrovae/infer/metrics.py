"""Per-data-point ELBO and its split into reconstruction and KL, averaged over a data set."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pyro import poutine
from pyro.infer import ELBO, Trace_ELBO
from torch import Tensor

from pyrovae.infer.elbo import SyncFreeTrace_ELBO


def reconstruction_log_likelihood(model: Callable, guide: Callable, *args) -> Tensor:
    """One-sample estimate of ``sum_i E_q[log p(x_i | z_i)]``: the observed sites' log-density
    under ``z ~ q`` (a scalar)."""
    guide_trace = poutine.trace(guide).get_trace(*args)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args)
    total: Tensor | float = 0.0
    for site in model_trace.nodes.values():
        if site["type"] == "sample" and site["is_observed"]:
            total = total + site["fn"].log_prob(site["value"]).sum()
    return torch.as_tensor(total)


def shared_sample_parts(model: Callable, guide: Callable, *args) -> tuple[Tensor, Tensor]:
    """``(elbo, recon)`` sums over the batch from *one* draw ``z ~ q``: ``log p(x, z) - log q(z | x)``
    and ``log p(x | z)`` at the same ``z``, so ``recon - elbo`` is exactly ``log q(z|x) - log p(z)``
    at that draw, with no Monte Carlo noise of a second sample (Trace_ELBO's estimator)."""
    guide_trace = poutine.trace(guide).get_trace(*args)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args)
    model_trace.compute_log_prob()
    guide_trace.compute_log_prob()
    elbo = model_trace.log_prob_sum() - guide_trace.log_prob_sum()
    recon = sum((site["log_prob_sum"] for site in model_trace.nodes.values()
                 if site["type"] == "sample" and site["is_observed"]), torch.zeros(()))
    return elbo, recon


@torch.no_grad()
def elbo_parts(
    model: Callable,
    guide: Callable,
    data: Tensor,
    context: Tensor | None = None,
    objective: ELBO | None = None,
    batch_size: int = 1000,
) -> dict[str, float]:
    """Average ELBO per data point and its two parts, in nats.

    ``elbo = recon - kl`` where ``recon = E_q[log p(x | z)]`` is estimated with one sample and
    ``kl`` is *defined* as ``recon - elbo`` (the "rate"): for priors with extra or enumerated
    sites it is the KL of the whole latent part, and the two always add up. With a one-particle
    ``Trace_ELBO`` (the default) both come from the same draw of ``z``; other objectives
    (enumeration, several particles) score the ELBO themselves and the reconstruction uses a
    draw of its own.

    Args:
        model, guide: Pyro callables taking ``(x, context)``.
        data: ``(N, *event_shape)``.
        context: ``(N, ...)`` or None.
        objective: the ELBO that scores the model; ``TraceEnum_ELBO`` for enumerated priors.
            Default ``Trace_ELBO()``.
        batch_size: data points per evaluation batch (bounds memory).

    Returns:
        ``{"elbo": ..., "recon": ..., "kl": ...}`` averaged over the ``N`` data points.
    """
    objective = objective or Trace_ELBO()
    n = data.shape[0]
    if n == 0:
        raise ValueError("cannot evaluate the ELBO on an empty data set")
    shared = type(objective) in (Trace_ELBO, SyncFreeTrace_ELBO) and objective.num_particles == 1
    elbo_sum = 0.0
    recon_sum = 0.0
    for start in range(0, n, batch_size):
        x = data[start : start + batch_size]
        c = None if context is None else context[start : start + batch_size]
        if shared:
            elbo, recon = shared_sample_parts(model, guide, x, c)
            elbo_sum += elbo.item()
            recon_sum += recon.item()
        else:
            elbo_sum -= objective.loss(model, guide, x, c)
            recon_sum += reconstruction_log_likelihood(model, guide, x, c).item()
    elbo = elbo_sum / n
    recon = recon_sum / n
    return {"elbo": elbo, "recon": recon, "kl": recon - elbo}


__all__ = ["elbo_parts", "reconstruction_log_likelihood", "shared_sample_parts"]
