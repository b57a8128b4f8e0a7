"""``Trace_ELBO`` whose differentiable loss never reads a value back to the host.

Pyro's ``Trace_ELBO.differentiable_loss`` returns ``loss + (surrogate - surrogate.item())`` and
adds up the per-site ELBO with ``.item()``: on a GPU that is several host-device
synchronisations per training step, on a CPU a few dozen microseconds of Python. When every
guide site is reparameterized the surrogate *is* the loss (the score-function terms vanish and
each site's entropy term is its scaled log-density), so the surrogate can be returned as it
is: same value, same gradient, no synchronisation.

With one particle and Pyro's validation off (the trainer's steps after the first of each
epoch), such a guide is scored in one pass without Pyro's trace objects either: a small
messenger records the sites while guide and model run (the model replaying the guide's
values), and the log-densities are added afterwards in the trace path's order, so both paths
give the same bits. That takes Pyro's tracing, pruning and per-site bookkeeping off every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.infer.util import is_identically_zero, is_validation_enabled, torch_item
from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample
from pyro.util import warn_if_nan
from torch import Tensor, nn

from pyrovae.infer.importance import site_log_prob


class SyncFreeTrace_ELBO(Trace_ELBO):
    """``Trace_ELBO`` (Wingate and Weber 2013; Ranganath et al. 2014) with a lazy loss.

    ``loss`` and ``loss_and_grads`` are Pyro's own. ``differentiable_loss`` returns, per
    particle, ``sum_model log p - sum_guide log q`` summed as tensors: identical in value and
    gradient to ``Trace_ELBO().differentiable_loss`` for reparameterized guides, and without a
    host synchronisation. A guide with a non-reparameterized site (a discrete latent sampled in
    the guide) takes Pyro's own surrogate path for that particle, ``.item()`` included.
    Pyro's NaN warning on the loss, which itself synchronises, runs only while Pyro validation
    is enabled. With one particle and validation off, a reparameterized guide is scored in one
    pass without traces (module notes); bit for bit the same loss and gradient.

    Example::

        loss = SyncFreeTrace_ELBO().differentiable_loss(vae.model, vae.guide, x)
        loss.backward()
    """

    #: Its differentiable loss reads no value back to Python (for reparameterized guides), so
    #: :class:`~pyrovae.fast.traced_loss.TracedLoss` may record it into one graph.
    traceable = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lean_refused: set[Callable] = set()  # guides found to need Pyro's own path

    def differentiable_loss(self, model: Callable, guide: Callable, *args, **kwargs) -> Tensor:
        """Negative ELBO estimate, differentiable; a 0-d tensor on the data's device."""
        if self.num_particles == 1 and not is_validation_enabled() and self._lean_ok(guide):
            particle = _lean_negative_elbo(model, guide, args, kwargs)
            if particle is not None:
                return 0.0 + particle / self.num_particles  # as below, to the last bit
            self._lean_refused.add(guide)
        loss: Tensor | float = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            surrogate_elbo: Tensor | float = 0.0
            for site in model_trace.nodes.values():
                if site["type"] == "sample":
                    surrogate_elbo = surrogate_elbo + site["log_prob_sum"]
            reparameterized = True
            for site in guide_trace.nodes.values():
                if site["type"] == "sample":
                    _, score_function_term, entropy_term = site["score_parts"]
                    if not is_identically_zero(score_function_term):
                        reparameterized = False
                        break
                    if not is_identically_zero(entropy_term):
                        surrogate_elbo = surrogate_elbo - entropy_term.sum()
            if reparameterized:
                particle = -surrogate_elbo
            else:
                value, surrogate = self._differentiable_loss_particle(model_trace, guide_trace)
                particle = value + (surrogate - torch_item(surrogate))
            loss = loss + particle / self.num_particles
        if is_validation_enabled():
            warn_if_nan(loss, "loss")
        return loss

    def _lean_ok(self, guide: Callable) -> bool:
        """Whether the one-pass path may be tried for ``guide`` (not a ``GuideMessenger``, and
        not found to have a non-reparameterized site before)."""
        return guide not in self._lean_refused and not isinstance(poutine.unwrap(guide), Messenger)


class ELBOLoss(nn.Module):
    """The training loss as a module: ``forward(x, context)`` is the negative objective per data
    point, differentiable, for the wrapped ``model`` and ``guide``.

    Being an ``nn.Module`` that owns ``module``'s parameters, it can be wrapped as a whole by
    ``DistributedDataParallel`` or traced (:class:`~pyrovae.fast.traced_loss.TracedLoss`).
    """

    def __init__(self, module: nn.Module, model: Callable, guide: Callable, objective: Any) -> None:
        super().__init__()
        self.module = module
        self.model = model
        self.guide = guide
        self.objective = objective

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Negative objective per data point, a 0-d tensor; ``x`` is ``(batch, *event_shape)``."""
        return self.objective.differentiable_loss(self.model, self.guide, x, context) / x.shape[0]


class _SiteRecorder(Messenger):
    """Records the sample sites of one run of a model or guide, as ``poutine.trace`` would,
    without building a trace.

    Guide pass (``replay=None``): keeps every site's value (the plates' subsample indices too,
    so that the model sees the same ones, as ``poutine.replay`` does) and flags a site that is
    observed, not reparameterized or enumerated. Model pass: replays the guide's values at
    unobserved sites, like ``poutine.replay``; a latent site the guide lacks is drawn from the
    model, as under ``Trace_ELBO``.
    """

    def __init__(self, replay: dict[str, Tensor] | None = None) -> None:
        super().__init__()
        self.replay = replay
        self.values: dict[str, Tensor] = {}
        self.sites: list[dict] = []
        self.unsupported = False

    def _pyro_sample(self, msg) -> None:
        if self.replay is None or msg["is_observed"] or msg["name"] not in self.replay:
            return
        msg["value"] = self.replay[msg["name"]]
        msg["done"] = True

    def _postprocess_message(self, msg) -> None:
        if msg["type"] != "sample":
            return
        self.values[msg["name"]] = msg["value"]
        if isinstance(msg["fn"], _Subsample):
            return
        if self.replay is None and (msg["is_observed"] or not msg["fn"].has_rsample
                                    or msg["infer"].get("enumerate")):
            self.unsupported = True
        self.sites.append({key: msg[key] for key in ("fn", "value", "args", "kwargs", "scale", "mask")})


def _lean_negative_elbo(model: Callable, guide: Callable, args: tuple, kwargs: dict) -> Tensor | None:
    """``-(sum_model log p - sum_guide log q)`` at one draw from the guide: ``Trace_ELBO``'s
    one-particle estimate for a fully reparameterized guide, without trace objects. None when
    the guide has a site this cannot score (an observed, non-reparameterized or enumerated one).

    The log-densities are computed after both runs and added up in the order of
    :meth:`SyncFreeTrace_ELBO.differentiable_loss` on Pyro's traces (model sites, then guide
    sites, each in the order they ran), so that autograd accumulates the gradient in the same
    order: the value and the gradient are bit for bit those of the trace-based path, and a
    step that runs with Pyro's validation (which takes that path) changes nothing.
    """
    guide_run = _SiteRecorder()
    with guide_run:
        guide(*args, **kwargs)
    if guide_run.unsupported:
        return None
    model_run = _SiteRecorder(replay=guide_run.values)
    with model_run:
        model(*args, **kwargs)
    model_sums = [site_log_prob(site).sum() for site in model_run.sites]
    guide_terms = [site_log_prob(site) for site in guide_run.sites]
    surrogate_elbo: Tensor | float = 0.0
    for term in model_sums:
        surrogate_elbo = surrogate_elbo + term
    for term in guide_terms:
        surrogate_elbo = surrogate_elbo - term.sum()
    return -surrogate_elbo


__all__ = ["ELBOLoss", "SyncFreeTrace_ELBO"]
