"""beta-TC-VAE: the ELBO with the total correlation of the aggregate posterior weighted by beta.

Chen et al., "Isolating Sources of Disentanglement in Variational Autoencoders" (NeurIPS 2018),
split the ELBO's KL into index-code mutual information, total correlation (TC) and
dimension-wise KL (:mod:`pyrovae.infer.total_correlation`) and weight only the TC::

    L_beta-TC = E_q[log p(x | z)] - I_q(z; n) - beta * TC(q(z)) - sum_j KL(q(z_j) || p(z_j))
              = ELBO - (beta - 1) * TC(q(z))

The second form is what is computed: Pyro's ELBO on the model and guide as they are (so it works
with any prior, though the split above holds for a factorized one), minus ``(beta - 1)`` times
a minibatch estimate of the TC of ``q(z)`` from the guide's latent site. Being an objective,
not a model, it trains any :class:`~pyrovae.VAE` with a diagonal Normal guide, through
:class:`~pyrovae.train.trainer.Trainer` or a plain loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyro.infer import Trace_ELBO
from pyro.infer.util import is_identically_zero
from torch import Tensor

from pyrovae.infer.total_correlation import ESTIMATORS, diagonal_normal_parts, total_correlation


class BetaTCELBO(Trace_ELBO):
    """``ELBO - (beta - 1) * TC`` (Chen et al. 2018) with the TC of the batch's aggregate posterior.

    Args:
        beta: weight of the total correlation; 1 gives the ELBO, Chen et al. use about 6 on dSprites.
        dataset_size: ``N``, the number of training points the minibatches are drawn from (the
            estimator weights the batch by it). May be set later, before the first step, as the
            attribute ``dataset_size``; ``pyrovae train`` sets it from the training data.
        estimator: ``"mss"`` (minibatch stratified sampling, default) or ``"mws"`` (minibatch
            weighted sampling); see :mod:`pyrovae.infer.total_correlation`.
        site: name of the latent site whose guide distribution is a diagonal Normal.
        num_particles: samples of ``z`` per data point (a loop over particles, each with its own TC).

    The loss returned is summed over the batch (as Pyro's objectives are): ``-sum_i elbo_i +
    (beta - 1) * B * TC``. The per-batch TC uses the sample ``z_i`` and the posterior of every
    point of the batch, so batches of a few dozen points or more are needed for a useful estimate.
    A KL weight applied from outside (the trainer's ``beta`` and warm-up,
    :class:`~pyrovae.infer.objectives.LatentScale`) scales the ELBO's KL part only, not the TC term.

    Example::

        objective = BetaTCELBO(beta=6.0, dataset_size=len(train))
        loss = objective.differentiable_loss(vae.model, vae.guide, x)
        loss.backward()
    """

    def __init__(self, beta: float = 6.0, dataset_size: int | None = None, estimator: str = "mss",
                 site: str = "z", num_particles: int = 1, max_plate_nesting: float = float("inf")) -> None:
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
        if beta < 0:
            raise ValueError(f"beta must be non-negative, got {beta}")
        super().__init__(num_particles=num_particles, max_plate_nesting=max_plate_nesting)
        self.beta = beta
        self.dataset_size = dataset_size
        self.estimator = estimator
        self.site = site

    def differentiable_loss(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> Tensor:
        """Negative beta-TC objective summed over the batch, differentiable (a 0-d tensor)."""
        loss: Tensor | float = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            elbo: Tensor | float = 0.0
            for node in model_trace.nodes.values():
                if node["type"] == "sample":
                    elbo = elbo + node["log_prob_sum"]
            for name, node in guide_trace.nodes.items():
                if node["type"] == "sample":
                    _, score_function_term, entropy_term = node["score_parts"]
                    if not is_identically_zero(score_function_term):
                        raise ValueError(f"guide site {name!r} is not reparameterized; BetaTCELBO needs "
                                         "a reparameterized guide")
                    if not is_identically_zero(entropy_term):
                        elbo = elbo - entropy_term.sum()
            loss = loss + (-elbo + (self.beta - 1.0) * self._batch_tc(guide_trace)) / self.num_particles
        return loss

    def _batch_tc(self, guide_trace: Any) -> Tensor:
        """``B * TC`` of the batch's aggregate posterior at the guide's draw of the latent site."""
        if self.site not in guide_trace.nodes:
            raise ValueError(f"the guide has no sample site {self.site!r}; pass site= to BetaTCELBO")
        node = guide_trace.nodes[self.site]
        loc, scale = diagonal_normal_parts(node["fn"])
        z = node["value"]
        batch_size = z.shape[-2]
        dataset_size = self.dataset_size
        if dataset_size is None:
            raise ValueError("BetaTCELBO needs the training-set size: BetaTCELBO(dataset_size=len(train)) "
                             "or set objective.dataset_size before training")
        return batch_size * total_correlation(z, loc, scale, max(dataset_size, batch_size), self.estimator)

    def loss(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> float:
        """Negative beta-TC objective summed over the batch, as a float."""
        return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> float:
        """For ``SVI``: backward through :meth:`differentiable_loss`, return its value."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()


__all__ = ["BetaTCELBO"]
