"""Evaluating a trained VAE: importance-sampled log p(x), KL per latent dimension, active units.

``log p(x) ~ logmeanexp_k [log p(x, z_k) - log q(z_k | x)]``, ``z_k ~ q(z | x)``, is the
estimator of Burda et al. (2015) used for every published MNIST log-likelihood; it is a
stochastic lower bound that tightens as ``k`` grows (``k = 1`` is the ELBO).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from pyrovae.fast import onednn
from pyrovae.fast.compiled import compiled_kernels
from pyrovae.fast.distributions import FastDistributions
from pyrovae.fast.steps import registered_once
from pyrovae.fast.traced_loss import TracedLoss
from pyrovae.infer.importance import guess_max_plate_nesting, log_importance_weights


def _slice(context: Tensor | None, start: int, stop: int) -> Tensor | None:
    return None if context is None else context[start:stop]


@torch.no_grad()
def log_likelihood(
    model: Callable, guide: Callable, data: Tensor, context: Tensor | None = None,
    num_samples: int = 5000, chunk_size: int | None = None, batch_size: int = 100, compile: bool | None = None,
    progress: bool | Callable[[int], None] = False,
) -> Tensor:
    """Importance-sampled ``log p(x_n)`` for every data point, in nats.

    The ``num_samples`` particles are drawn ``chunk_size`` at a time (vectorized) for
    ``batch_size`` data points at a time, and combined by a running ``logsumexp``, so memory
    is bounded by one chunk: about ``chunk_size * batch_size`` decoder outputs (500 x 100 on
    a 784-pixel MLP decoder is about 0.5 GB at peak, whatever ``num_samples`` is).

    Args:
        model, guide: Pyro callables taking ``(x, context)``, e.g. ``vae.model``, ``vae.guide``.
            Every latent model site must be in the guide: a prior with an enumerated component
            site is evaluated in its marginalized form, ``log_likelihood(vae.marginal_model,
            vae.guide, ...)``.
        data: ``(N, *event_shape)`` on the model's device.
        context: ``(N, ...)`` or None.
        num_samples: ``k``, importance samples per data point.
        chunk_size: particles per vectorized pass. None: 100 on a CPU, where a pass of 100 x 100
            decoder outputs stays in cache better and runs about 15% faster than 500 x 100
            (benchmarks/README.md, evaluation), and 500 on a GPU, which wants large passes.
        batch_size: data points per pass.
        compile: compile the computation of the importance weights (a few seconds once per
            call; benchmarks/README.md, evaluation, has the speed). When ``model`` and
            ``guide`` are methods of an ``nn.Module`` (``vae.model``, ``vae.marginal_model``,
            ``vae.guide``) or carry it as ``.module``, one pass of particles is traced once and
            compiled as one graph (:class:`~pyrovae.TracedLoss`), its linear layers run by
            oneDNN on a CPU (:mod:`pyrovae.fast.onednn`); otherwise, or where the pair cannot be
            traced (one warning says why), the likelihood's network and its log-density are
            compiled apart (:mod:`pyrovae.fast.compiled`). Each batch's first pass runs outside the
            graph, with Pyro's checks as set, and so does a last pass of fewer than
            ``chunk_size`` particles. None: when the work is large, ``num_samples * N`` of ten
            million or more (k = 1000 on the 10,000 test images), where compiling pays for
            itself.
        progress: True for a progress bar over the data points (on stderr), or a function
            called after each batch with the number of data points it held (as
            ``tqdm.update`` is).

    Returns:
        ``(N,)`` estimates of ``log p(x_n)`` on ``data``'s device.
    """
    if chunk_size is None:
        chunk_size = 100 if data.device.type == "cpu" else 500
    if num_samples < 1 or chunk_size < 1 or batch_size < 1:
        raise ValueError(f"num_samples, chunk_size and batch_size must be positive, got "
                         f"{num_samples}, {chunk_size}, {batch_size}")
    n = data.shape[0]
    if n == 0:
        raise ValueError("cannot evaluate the log-likelihood of an empty data set")
    nesting = guess_max_plate_nesting(model, guide, data[:1], _slice(context, 0, 1))
    if compile is None:
        compile = num_samples * n >= 10_000_000
    pair = _LogWeights(model, guide, nesting)
    weights: nn.Module = pair
    if compile and pair.owners is not None:
        on_cpu = data.device.type == "cpu" and onednn.available()
        weights = TracedLoss(pair, key=lambda: pair.num_particles, purpose="evaluating",
                             rewrite=onednn.route_linears_to_onednn if on_cpu else None)
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"log p(x), k={num_samples}", unit="point")
        progress = bar.update
    try:
        with compiled_kernels(compile, module=pair.owners):
            return _log_likelihood(weights, pair, data, context, num_samples, chunk_size, batch_size,
                                   progress or None)
    finally:
        if bar is not None:
            bar.close()


def _log_likelihood(weights: nn.Module, pair: _LogWeights, data: Tensor, context: Tensor | None,
                    num_samples: int, chunk_size: int, batch_size: int,
                    progress: Callable[[int], None] | None) -> Tensor:
    """The loop of :func:`log_likelihood`; ``weights`` is ``pair`` or ``pair`` traced."""
    n = data.shape[0]
    out = []
    for start in range(0, n, batch_size):
        x, c = data[start : start + batch_size], _slice(context, start, start + batch_size)
        total = torch.full((x.shape[0],), -math.inf, dtype=x.dtype, device=x.device)
        done = 0
        while done < num_samples:
            k = min(chunk_size, num_samples - done)
            pair.num_particles = k
            # Each batch's first pass runs with Pyro's checks as the caller set them (it checks
            # the data against the model); the passes after it repeat the same work unchecked.
            with ExitStack() as checks:
                if done > 0:
                    checks.enter_context(pyro.validation_enabled(False))
                log_w = weights(x, c)
            if log_w.shape[1] != x.shape[0]:
                raise ValueError(f"the model's data plate holds {log_w.shape[1]} points for a batch of "
                                 f"{x.shape[0]}; put every site inside one plate over the data")
            total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
            done += k
        out.append(total - math.log(num_samples))
        if progress is not None:
            progress(x.shape[0])
    return torch.cat(out)


def _module_of(fn: Callable) -> nn.Module | None:
    """The ``nn.Module`` a model or guide belongs to: the owner of a bound method, or the
    ``.module`` a function carries; None for any other callable."""
    owner = getattr(fn, "__self__", None)
    if not isinstance(owner, nn.Module):
        owner = getattr(fn, "module", None)
    return owner if isinstance(owner, nn.Module) else None


class _LogWeights(nn.Module):
    """``log_importance_weights`` of a model/guide pair as a module that owns the pair's
    parameters, so that :class:`~pyrovae.TracedLoss` can record it with the parameters as
    inputs.

    ``forward(x, context)`` returns ``(num_particles, batch)``; set ``num_particles`` before a
    call. ``owners`` is None when model or guide belongs to no module (then it is not traced).
    """

    def __init__(self, model: Callable, guide: Callable, nesting: int) -> None:
        super().__init__()
        self.model, self.guide, self.nesting, self.num_particles = model, guide, nesting, 1
        found = [_module_of(model), _module_of(guide)]
        self.owners = None if None in found else nn.ModuleList(dict.fromkeys(found))

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        with ExitStack() as stack:
            for owner in self.owners or ():
                # No per-call pyro.module: nothing is trained here, the store needs nothing.
                stack.enter_context(registered_once(owner, register=False))
            stack.enter_context(FastDistributions())
            return log_importance_weights(self.model, self.guide, x, context, num_particles=self.num_particles,
                                          max_plate_nesting=self.nesting)


def marginal_model(vae: Any) -> Callable:
    """``vae.marginal_model``: the model with ``z`` scored by the prior's marginal ``p(z)``
    (:meth:`pyrovae.VAE.marginal_model`)."""
    return vae.marginal_model


@torch.no_grad()
def kl_per_dimension(vae: Any, data: Tensor, context: Tensor | None = None, num_samples: int = 1,
                     batch_size: int = 500) -> Tensor:
    """Average KL(q(z_d | x) || p(z_d)) of each latent dimension over the data, in nats.

    Analytic when ``q(z | x)`` is a diagonal Normal (``Independent(Normal)``) and the prior is
    a diagonal Normal too; otherwise a Monte Carlo estimate of ``E_q[log q(z_d|x) - log p(z_d)]``
    with ``num_samples`` draws, which needs both to factorize over dimensions (their
    ``base_dist`` must be a per-dimension distribution). Sums to the total KL in either case.

    Returns:
        ``(latent_dim,)``.
    """
    total = None
    for start in range(0, data.shape[0], batch_size):
        x, c = data[start : start + batch_size], _slice(context, start, start + batch_size)
        q = vae.posterior(x, c)
        p = vae.prior(c)
        if not (isinstance(q, torch.distributions.Independent) and isinstance(p, torch.distributions.Independent)):
            raise ValueError("KL per dimension needs a guide and a prior that factorize over latent dimensions "
                             f"(Independent distributions); got {type(q).__name__} and {type(p).__name__}")
        q_base, p_base = q.base_dist, p.base_dist
        if isinstance(q_base, dist.Normal) and isinstance(p_base, dist.Normal):
            kl = torch.distributions.kl_divergence(q_base, p_base)
        else:
            z = q_base.rsample((num_samples,))
            kl = (q_base.log_prob(z) - p_base.log_prob(z)).mean(0)
        kl = kl.expand(x.shape[0], -1).sum(0)
        total = kl if total is None else total + kl
    return total / data.shape[0]


@torch.no_grad()
def active_units(vae: Any, data: Tensor, context: Tensor | None = None, threshold: float = 0.01,
                 batch_size: int = 1000) -> tuple[int, Tensor]:
    """Active latent units: dimensions whose posterior mean varies across data (Burda et al. 2015).

    ``A_d = Cov_x(E_{q(z|x)}[z_d])``; a unit is active when ``A_d > threshold`` (0.01 in the paper).

    Returns:
        ``(number_active, activity)`` with ``activity`` of shape ``(latent_dim,)``.
    """
    means = torch.cat([vae.encode(data[s : s + batch_size], _slice(context, s, s + batch_size))
                       for s in range(0, data.shape[0], batch_size)])
    activity = means.var(dim=0, unbiased=False)
    return int((activity > threshold).sum()), activity


def evaluate_vae(
    vae: Any, data: Tensor, context: Tensor | None = None, labels: Tensor | None = None,
    num_samples: int = 5000, chunk_size: int | None = None, batch_size: int = 100, compile: bool | None = None,
    progress: bool | Callable[[int], None] = False,
) -> dict[str, Any]:
    """Every figure of merit of a trained VAE on one data set, as a JSON-friendly dict.

    * ``log_likelihood``: mean importance-sampled ``log p(x)`` (``num_samples`` samples), and
      ``log_likelihood_sem``, its standard error over data points; ``nll`` is its negative.
      Priors whose model has sites the guide lacks (an enumerated mixture) are scored through
      ``vae.marginal_model``.
    * ``elbo``, ``recon``, ``kl``: the ELBO split (one sample per point, Trace_ELBO).
    * ``kl_per_dimension``, ``active_units``, ``activity`` (when the guide and prior factorize
      over dimensions; otherwise left out and ``kl_per_dimension_error`` says why).
    * ``cluster_accuracy`` when ``labels`` are given and the prior has a ``cluster(z)`` method
      returning integer component ids for latent codes (mixture priors).

    Args:
        vae: a :class:`~pyrovae.VAE`.
        data: ``(N, *event_shape)`` on the model's device.
        context: ``(N, ...)`` or None.
        labels: ``(N,)`` integer class labels or None.
        num_samples, chunk_size, batch_size, compile, progress: as in :func:`log_likelihood`
            (the progress is that of the log-likelihood, which takes nearly all the time).
    """
    from pyrovae.clustering.accuracy import cluster_accuracy
    from pyrovae.infer.importance import ImportanceError
    from pyrovae.infer.metrics import elbo_parts

    was_training = vae.training
    vae.eval()
    figures: dict[str, Any] = {"num_points": int(data.shape[0]), "num_samples": num_samples}
    model, figures["model_form"] = vae.model, "model"
    try:  # one cheap pass tells whether the model has sites (an enumerated component) the guide lacks
        log_importance_weights(model, vae.guide, data[:1], _slice(context, 0, 1), num_particles=1)
    except ImportanceError:
        model, figures["model_form"] = vae.marginal_model, "marginal_model"
    ll = log_likelihood(model, vae.guide, data, context, num_samples, chunk_size, batch_size, compile, progress)
    figures["log_likelihood"] = ll.mean().item()
    figures["nll"] = -figures["log_likelihood"]
    figures["log_likelihood_sem"] = (ll.std().item() / math.sqrt(ll.numel())) if ll.numel() > 1 else float("nan")
    try:
        figures.update(elbo_parts(model, vae.guide, data, context))
    except (ValueError, NotImplementedError) as error:
        figures["elbo_error"] = str(error)
    try:
        figures["kl_per_dimension"] = kl_per_dimension(vae, data, context).tolist()
    except (ValueError, NotImplementedError) as error:
        figures["kl_per_dimension_error"] = str(error)
    figures["active_units"], activity = active_units(vae, data, context)
    figures["activity"] = activity.tolist()
    if labels is not None and hasattr(vae.prior, "cluster"):
        with torch.no_grad():
            ids = torch.cat([vae.prior.cluster(vae.encode(data[s : s + 1000], _slice(context, s, s + 1000)))
                             for s in range(0, data.shape[0], 1000)])
        figures["cluster_accuracy"] = cluster_accuracy(ids, labels)
    vae.train(was_training)
    return figures


__all__ = ["log_likelihood", "marginal_model", "kl_per_dimension", "active_units", "evaluate_vae"]
