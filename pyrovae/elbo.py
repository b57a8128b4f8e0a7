"""``Trace_ELBO`` whose differentiable loss never reads a value back to the host.

Pyro's ``Trace_ELBO.differentiable_loss`` returns ``loss + (surrogate - surrogate.item())`` and
adds up the per-site ELBO with ``.item()``: on a GPU that is several host-device
synchronisations per training step, on a CPU a few dozen microseconds of Python. When every
guide site is reparameterized the surrogate *is* the loss (the score-function terms vanish and
each site's entropy term is its scaled log-density), so the surrogate can be returned as it
is: same value, same gradient, no synchronisation.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer import Trace_ELBO
from pyro.infer.util import is_identically_zero, is_validation_enabled, torch_item
from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample
from pyro.util import warn_if_nan
from torch import Tensor, nn


class SyncFreeTrace_ELBO(Trace_ELBO):
    """``Trace_ELBO`` (Wingate and Weber 2013; Ranganath et al. 2014) with a lazy loss.

    ``loss`` and ``loss_and_grads`` are Pyro's own. ``differentiable_loss`` returns, per
    particle, ``sum_model log p - sum_guide log q`` summed as tensors: identical in value and
    gradient to ``Trace_ELBO().differentiable_loss`` for reparameterized guides, and without a
    host synchronisation. A guide with a non-reparameterized site (a discrete latent sampled in
    the guide) takes Pyro's own surrogate path for that particle, ``.item()`` included.
    Pyro's NaN warning on the loss, which itself synchronises, runs only while Pyro validation
    is enabled.

    Example::

        loss = SyncFreeTrace_ELBO().differentiable_loss(vae.model, vae.guide, x)
        loss.backward()
    """

    def differentiable_loss(self, model: Callable, guide: Callable, *args, **kwargs) -> Tensor:
        """Negative ELBO estimate, differentiable; a 0-d tensor on the data's device."""
        if self.num_particles == 1 and not is_validation_enabled() and self._lean_ok(guide):
            loss = _lean_negative_elbo(model, guide, args, kwargs)
            if loss is not None:
                return loss
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
        if not hasattr(self, "_lean_refused"):
            self._lean_refused: set[Callable] = set()
        return guide not in self._lean_refused and not isinstance(poutine.unwrap(guide), Messenger)


class _SiteScore(Messenger):
    """Adds up ``scale * mask * log_prob`` over the sample sites of one run, as
    ``Trace.compute_log_prob`` does, without building a trace.

    Guide pass (``replay=None``): records every site's value (the plates' subsample indices
    too, so that the model sees the same ones, as ``poutine.replay`` does) and flags a site
    that is not reparameterized or is enumerated. Model pass: replays the guide's values at
    unobserved sites, like ``poutine.replay``; a latent site the guide lacks is drawn from the
    model and scored, as under ``Trace_ELBO``.
    """

    def __init__(self, replay: dict[str, Tensor] | None = None) -> None:
        super().__init__()
        self.replay = replay
        self.values: dict[str, Tensor] = {}
        self.total: Tensor | float = 0.0
        self.unsupported = False

    def _pyro_sample(self, msg) -> None:
        if self.replay is None or msg["is_observed"] or msg["name"] not in self.replay:
            return
        msg["value"] = self.replay[msg["name"]]
        msg["done"] = True

    def _postprocess_message(self, msg) -> None:
        if msg["type"] != "sample":
            return
        fn = msg["fn"]
        if isinstance(fn, _Subsample):
            self.values[msg["name"]] = msg["value"]
            return
        if self.replay is None:
            if msg["is_observed"] or not fn.has_rsample or msg["infer"].get("enumerate"):
                self.unsupported = True
                return
            self.values[msg["name"]] = msg["value"]
        log_p = fn.log_prob(msg["value"], *msg["args"], **msg["kwargs"])
        self.total = self.total + scale_and_mask(log_p, msg["scale"], msg["mask"]).sum()


def _lean_negative_elbo(model: Callable, guide: Callable, args: tuple, kwargs: dict) -> Tensor | None:
    """``-(sum_model log p - sum_guide log q)`` at one draw from the guide: ``Trace_ELBO``'s
    one-particle estimate and gradient for a fully reparameterized guide, computed while model
    and guide run (no trace objects, no second pass over the sites). None when the guide has
    a site this cannot score (an observed, non-reparameterized or enumerated one)."""
    guide_pass = _SiteScore()
    with guide_pass:
        guide(*args, **kwargs)
    if guide_pass.unsupported:
        return None
    model_pass = _SiteScore(replay=guide_pass.values)
    with model_pass:
        model(*args, **kwargs)
    return -(model_pass.total - guide_pass.total)


class ELBOLoss(nn.Module):
    """The training loss as a module: ``forward(x, context)`` is the negative objective per data
    point, differentiable, for the wrapped ``model`` and ``guide``.

    Being an ``nn.Module`` that owns ``module``'s parameters, it can be wrapped as a whole by
    ``DistributedDataParallel`` or ``torch.compile``.

    When ``module`` offers ``without_registration()`` (a :class:`~pyrovae.VAE` does), model
    and guide run inside it: the parameters are optimised from ``module.parameters()``, so the
    per-call ``pyro.module`` registration in Pyro's param store is skipped. Call
    ``module.register_params()`` once if the store should list them (``Trainer`` does).
    """

    def __init__(self, module: nn.Module, model: Callable, guide: Callable, objective: Any) -> None:
        super().__init__()
        self.module = module
        self.model = model
        self.guide = guide
        self.objective = objective
        self._unregistered = getattr(module, "without_registration", nullcontext)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Negative objective per data point, a 0-d tensor; ``x`` is ``(batch, *event_shape)``."""
        with self._unregistered():
            return self.objective.differentiable_loss(self.model, self.guide, x, context) / x.shape[0]


__all__ = ["ELBOLoss", "SyncFreeTrace_ELBO"]
