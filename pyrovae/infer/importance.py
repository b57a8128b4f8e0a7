"""Importance weights log p(x, z_k) - log q(z_k | x), one per particle and data point, from Pyro traces.

Everything here works on any model/guide pair written in Pyro: the guide runs once inside a
vectorized particle plate, the model is replayed against it, and each site's log-density is
summed down to one number per particle and data point. The IWAE and DReG objectives
(:mod:`pyrovae.infer.iwae`, :mod:`pyrovae.infer.dreg`) and the importance-sampled log-likelihood
(:mod:`pyrovae.infer.evaluation`) are all built on :func:`log_importance_weights`.

Requirements on the pair, checked with a one-line error naming the fix:

* every unobserved model site has a guide site of the same name and vice versa (a model site
  that the guide lacks, e.g. an enumerated mixture component, would be drawn from its prior and
  its density would not cancel; evaluate such models in their marginalized form, see
  :meth:`pyrovae.VAE.marginal_model`);
* every site lies inside the data plate(s); the data plate is found as the plate(s) shared by
  all sample sites, so a global latent variable outside it is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import prune_subsample_sites
from torch import Tensor

PARTICLE_PLATE = "num_particles_vectorized"


class ImportanceError(ValueError):
    """A model/guide pair cannot be scored by importance sampling; the message says how to fix it."""


def guess_max_plate_nesting(model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> int:
    """Number of nested plates in a model/guide pair, found by running both once (no particles).

    Assumes the structure of the pair does not change from call to call, as Pyro's ELBOs do.
    """
    with poutine.block():
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    guide_trace, model_trace = prune_subsample_sites(guide_trace), prune_subsample_sites(model_trace)
    dims = [
        -frame.dim
        for trace in (model_trace, guide_trace)
        for site in trace.nodes.values()
        if site["type"] == "sample"
        for frame in site["cond_indep_stack"]
        if frame.vectorized
    ]
    return max(dims, default=0)


def in_particles(fn: Callable, num_particles: int, max_plate_nesting: int) -> Callable:
    """``fn`` run inside a vectorized particle plate one dim left of its own plates."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with pyro.plate(PARTICLE_PLATE, num_particles, dim=-(max_plate_nesting + 1)):
            return fn(*args, **kwargs)

    return wrapped


def _latent_sites(trace: poutine.Trace) -> dict[str, dict]:
    return {name: site for name, site in trace.nodes.items()
            if site["type"] == "sample" and not site["is_observed"]}


def _check_match(model_trace: poutine.Trace, guide_trace: poutine.Trace) -> None:
    model_latent = set(_latent_sites(model_trace))
    guide_latent = set(_latent_sites(guide_trace))
    if model_latent - guide_latent:
        missing = sorted(model_latent - guide_latent)
        raise ImportanceError(
            f"model site(s) {missing} have no guide site, so their density would not cancel in the "
            "importance weight; for an enumerated prior evaluate its marginalized form "
            "(vae.marginal_model) or add the sites to the guide"
        )
    if guide_latent - model_latent:
        extra = sorted(guide_latent - model_latent)
        raise ImportanceError(f"guide site(s) {extra} are not in the model; remove them from the guide")


def _data_plate_dims(sites: list[dict]) -> list[int]:
    """Dims (negative) of the plates shared by every sample site, the particle plate excluded."""
    common: set | None = None
    for site in sites:
        frames = {(f.name, f.dim) for f in site["cond_indep_stack"] if f.vectorized and f.name != PARTICLE_PLATE}
        common = frames if common is None else common & frames
    return sorted(dim for _, dim in (common or set()))


def _per_point(log_prob: Tensor, max_plate_nesting: int, keep: list[int]) -> Tensor:
    """Sum a site's log-density over every plate dim except the particle dim and ``keep``.

    Returns ``(num_particles, *[size of each kept dim])``.
    """
    width = max_plate_nesting + 1
    if log_prob.dim() < width:
        log_prob = log_prob.reshape((1,) * (width - log_prob.dim()) + log_prob.shape)
    drop = [d for d in range(-max_plate_nesting, 0) if d not in keep]
    if drop:
        log_prob = log_prob.sum(dim=drop, keepdim=True)
    return log_prob.reshape(log_prob.shape[0], *[log_prob.shape[d] for d in keep])


def site_log_prob(site: dict) -> Tensor:
    """A sample site's log-density at its value, scaled and masked as ``Trace.compute_log_prob``
    does; ``site`` is a trace node or a recorded message (``fn``, ``value``, ``args``,
    ``kwargs``, ``scale``, ``mask``)."""
    log_prob = site["fn"].log_prob(site["value"], *site["args"], **site["kwargs"])
    return scale_and_mask(log_prob, site["scale"], site["mask"])


def with_values(trace: poutine.Trace, values: dict[str, Tensor]) -> poutine.Trace:
    """A shallow copy of ``trace`` whose named sites hold the given values (for replay)."""
    copy = trace.copy()
    for name, value in values.items():
        copy.nodes[name] = dict(trace.nodes[name], value=value)
    return copy


def latent_values(trace: poutine.Trace) -> dict[str, Tensor]:
    """Values of the unobserved sample sites of ``trace``, by name."""
    return {name: site["value"] for name, site in _latent_sites(trace).items()}


def importance_traces(
    model: Callable, guide: Callable, *args: Any, num_particles: int, max_plate_nesting: int,
    **kwargs: Any,
) -> tuple[poutine.Trace, poutine.Trace]:
    """Run the guide inside a particle plate and replay the model against it.

    Args:
        model, guide: Pyro callables taking ``*args, **kwargs``.
        num_particles: ``k``, samples of the latent sites per data point.
        max_plate_nesting: plates nested in the pair (see :func:`guess_max_plate_nesting`);
            the particle plate goes one dim further left.

    Returns:
        ``(model_trace, guide_trace)``.
    """
    guide_trace = poutine.trace(in_particles(guide, num_particles, max_plate_nesting)).get_trace(*args, **kwargs)
    guide_trace = prune_subsample_sites(guide_trace)
    model_trace = replay_model(model, guide_trace, *args, num_particles=num_particles,
                               max_plate_nesting=max_plate_nesting, **kwargs)
    return model_trace, guide_trace


def replay_model(model: Callable, guide_trace: poutine.Trace, *args: Any, num_particles: int,
                 max_plate_nesting: int, **kwargs: Any) -> poutine.Trace:
    """Trace ``model`` in the particle plate at the guide's latent values; checks that the sites match."""
    model_trace = poutine.trace(
        poutine.replay(in_particles(model, num_particles, max_plate_nesting), trace=guide_trace)
    ).get_trace(*args, **kwargs)
    model_trace = prune_subsample_sites(model_trace)
    _check_match(model_trace, guide_trace)
    return model_trace


def data_dims(*traces: poutine.Trace) -> list[int]:
    """Dims of the plates shared by every sample site of the traces (the data plates)."""
    return _data_plate_dims([s for t in traces for s in t.nodes.values() if s["type"] == "sample"])


def trace_log_density(trace: poutine.Trace, max_plate_nesting: int, keep: list[int],
                      latent_only: bool = False) -> Tensor:
    """Sum of the (scaled, masked) log-densities of a trace's sample sites at their values.

    Returns:
        ``(num_particles, num_points)`` where ``num_points`` is the product of the sizes of the
        ``keep`` dims.
    """
    total: Tensor | float = 0.0
    for site in trace.nodes.values():
        if site["type"] == "sample" and not (latent_only and site["is_observed"]):
            total = total + _per_point(site_log_prob(site), max_plate_nesting, keep)
    if not torch.is_tensor(total):
        raise ImportanceError("the trace has no sample sites; there is nothing to weigh")
    return total.reshape(total.shape[0], -1)


def log_weights_from_traces(model_trace: poutine.Trace, guide_trace: poutine.Trace,
                            max_plate_nesting: int) -> Tensor:
    """Per-particle, per-point ``log w = log p(x, z) - log q(z | x)`` from replayed traces.

    Returns:
        ``(num_particles, num_points)``; ``num_points`` is the product of the data plates'
        sizes (1 if no plate is shared by all sites).
    """
    keep = data_dims(model_trace, guide_trace)
    log_p = trace_log_density(model_trace, max_plate_nesting, keep)
    log_q = trace_log_density(guide_trace, max_plate_nesting, keep, latent_only=True)
    return log_p - log_q


def log_importance_weights(
    model: Callable, guide: Callable, *args: Any, num_particles: int,
    max_plate_nesting: int | None = None, **kwargs: Any,
) -> Tensor:
    """``log w_k = log p(x, z_k) - log q(z_k | x)`` for ``z_k ~ q(z | x)``, vectorized over ``k``.

    Args:
        model, guide: Pyro callables, e.g. ``vae.model`` and ``vae.guide``, taking ``*args``.
        num_particles: ``k``.
        max_plate_nesting: plates nested in the pair; guessed by one extra run when None.

    Returns:
        ``(num_particles, num_points)``, differentiable with respect to the parameters
        (through the reparameterized samples where the guide's sites allow it).
    """
    if num_particles < 1:
        raise ValueError(f"num_particles must be at least 1, got {num_particles}")
    if max_plate_nesting is None:
        max_plate_nesting = guess_max_plate_nesting(model, guide, *args, **kwargs)
    model_trace, guide_trace = importance_traces(
        model, guide, *args, num_particles=num_particles, max_plate_nesting=max_plate_nesting, **kwargs)
    return log_weights_from_traces(model_trace, guide_trace, max_plate_nesting)


__all__ = [
    "ImportanceError",
    "guess_max_plate_nesting",
    "importance_traces",
    "in_particles",
    "replay_model",
    "with_values",
    "latent_values",
    "data_dims",
    "trace_log_density",
    "log_weights_from_traces",
    "log_importance_weights",
]
