"""Conditional VAE for structured prediction (Sohn, Lee and Yan, 2015): predict a target (the
hidden part of an image) from a context (its visible part), with a latent ``z`` that lets the
prediction be multi-modal.

Model::

    z ~ p(z | context)                 (prior network)
    target ~ p(target | z, context)     (generation network; hidden pixels only)

Guide::

    z ~ q(z | context, target)         (recognition network), or p(z | context) without a target

The prior network sees the context with its hidden pixels filled by the supervised baseline's
prediction, as in Pyro's CVAE tutorial; the recognition network sees the whole image.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from pyrovae.nn.rebuild import Rebuildable
from pyrovae.data.quadrants import fill_hidden, hidden_pixels
from pyrovae.guides.diagonal import Encoder
from pyrovae.likelihoods.elementwise import Likelihood
from pyrovae.models.cvae_baseline import MaskedBaseline


def _hidden_only(p: dist.Distribution, hidden: Tensor) -> dist.Distribution:
    """``p`` (an image-wide ``Independent``) with the visible pixels' log-density set to 0."""
    if not isinstance(p, dist.Independent):
        raise TypeError("the CVAE needs a likelihood whose distribution is an Independent over pixels")
    return p.base_dist.mask(hidden).to_event(p.reinterpreted_batch_ndims)


class ConditionalVAE(Rebuildable, nn.Module):
    """A CVAE written as a Pyro ``model(context, target=None)`` and ``guide(context, target=None)``.

    Args:
        prior_net: ``p(z | context)``, an encoder applied to the (baseline-filled) context image.
        recognition_net: ``q(z | context, target)``, an encoder applied to the whole image
            (the context with its hidden pixels filled by the target).
        likelihood: ``p(target | z, context)``; its network takes ``latent_dim + C*H*W`` inputs
            (the flattened context is its conditioning vector), or ``latent_dim`` inputs when
            ``generation_sees_context`` is False.
        baseline: a trained :class:`MaskedBaseline` whose prediction fills the hidden pixels
            before the prior network; None leaves them at -1. Only its output is used, under
            ``torch.no_grad``, so training the CVAE leaves it unchanged.
        name: prefix of the parameters in Pyro's param store.
        generation_sees_context: feed the context to the generation network as well as to the
            prior network (Sohn et al.'s p(target | z, context)). False gives Pyro's tutorial
            design, p(target | z): every completion must pass through z, so the generation
            network cannot learn to ignore it (the cause of a near-zero KL otherwise).

    Shapes:
        ``context`` and ``target`` are ``(batch, C, H, W)``; hidden context pixels hold -1; the
        target's visible pixels are ignored.
    """

    def __init__(self, prior_net: Encoder, recognition_net: Encoder, likelihood: Likelihood,
                 baseline: MaskedBaseline | None = None, name: str = "cvae",
                 generation_sees_context: bool = True) -> None:
        super().__init__()
        self.generation_sees_context = generation_sees_context
        self.prior_net = prior_net
        self.recognition_net = recognition_net
        self.likelihood = likelihood
        self.baseline = baseline
        self.name = name

    @property
    def latent_dim(self) -> int:
        return self.prior_net.latent_dim

    # -- the generative story and its approximate posterior ------------------------------------

    def model(self, context: Tensor, target: Tensor | None = None) -> None:
        """z ~ p(z | context);  target ~ p(target | z, context) on the hidden pixels."""
        pyro.module(self.name, self)
        with pyro.plate("data", context.shape[0]):
            z = pyro.sample("z", self.prior(context))
            pyro.sample("target", self.generate(z, context), obs=target)

    def guide(self, context: Tensor, target: Tensor | None = None) -> None:
        """z ~ q(z | context, target); without a target, z ~ p(z | context)."""
        pyro.module(self.name, self)
        with pyro.plate("data", context.shape[0]):
            q = self.prior(context) if target is None else self.posterior(context, target)
            pyro.sample("z", q)

    # -- the three networks as distributions -----------------------------------------------

    def prior(self, context: Tensor) -> dist.Distribution:
        """``p(z | context)``, batch shape ``(batch,)``."""
        if self.baseline is not None:
            with torch.no_grad():
                guess = torch.sigmoid(self.baseline(context))
            context = fill_hidden(context, guess)
        return self.prior_net(context)

    def posterior(self, context: Tensor, target: Tensor) -> dist.Distribution:
        """``q(z | context, target)``, batch shape ``(batch,)``."""
        return self.recognition_net(fill_hidden(context, target))

    def generate(self, z: Tensor, context: Tensor) -> dist.Distribution:
        """``p(target | z, context)`` over the hidden pixels; ``z`` is ``(*sample, batch, latent_dim)``."""
        p = self.likelihood(z, self._generation_input(context))
        return _hidden_only(p, hidden_pixels(context))

    def _generation_input(self, context: Tensor) -> Tensor | None:
        """The conditioning vector of the generation network: the flattened context, or none."""
        return context.flatten(1) if self.generation_sees_context else None

    # -- using a trained model ---------------------------------------------------------------

    @torch.no_grad()
    def predict(self, context: Tensor, num_samples: int = 1, mean: bool = True) -> Tensor:
        """Completed images: hidden pixels from ``z ~ p(z | context)``, visible ones untouched.

        Args:
            context: ``(batch, C, H, W)``.
            num_samples: completions per context.
            mean: fill in ``E[target | z, context]`` (grey values); otherwise a draw.

        Returns:
            ``(num_samples, batch, C, H, W)``.
        """
        z = self.prior(context).sample((num_samples,))
        if mean:
            filled = self.likelihood.mean(z, self._generation_input(context))
        else:
            filled = self.likelihood(z, self._generation_input(context)).sample()
        return fill_hidden(context.expand_as(filled), filled)

    @torch.no_grad()
    def log_weights(self, context: Tensor, target: Tensor, num_samples: int) -> Tensor:
        """``log p(target | z_k, ctx) + log p(z_k | ctx) - log q(z_k | ctx, target)`` for
        ``z_k ~ q``, shape ``(num_samples, batch)``."""
        q = self.posterior(context, target)
        z = q.sample((num_samples,))
        return self.generate(z, context).log_prob(target) + self.prior(context).log_prob(z) - q.log_prob(z)

    @torch.no_grad()
    def conditional_log_likelihood(self, context: Tensor, target: Tensor, num_samples: int = 100,
                                   chunk: int = 50) -> Tensor:
        """Importance-sampled ``log p(target | context) ~ logmeanexp_k log_w_k``, shape ``(batch,)``.

        A stochastic lower bound that tightens to the true value as ``num_samples`` grows
        (Burda et al. 2015); with one sample it is the conditional ELBO.
        """
        parts = []
        for start in range(0, num_samples, chunk):
            parts.append(self.log_weights(context, target, min(chunk, num_samples - start)))
        log_w = torch.cat(parts)
        return torch.logsumexp(log_w, 0) - math.log(num_samples)

    @torch.no_grad()
    def conditional_elbo(self, context: Tensor, target: Tensor, num_samples: int = 100) -> Tensor:
        """Monte Carlo conditional ELBO ``E_q[log_w]`` averaged over ``num_samples``, ``(batch,)``."""
        return self.log_weights(context, target, num_samples).mean(0)


def conditional_nll(cvae: ConditionalVAE, context: Tensor, target: Tensor, num_samples: int = 100,
                    batch_size: int = 500) -> float:
    """Mean negative conditional log-likelihood in nats per image (importance sampling)."""
    total = 0.0
    for start in range(0, context.shape[0], batch_size):
        c, t = context[start : start + batch_size], target[start : start + batch_size]
        total -= cvae.conditional_log_likelihood(c, t, num_samples).sum().item()
    return total / context.shape[0]


__all__ = ["ConditionalVAE", "conditional_nll"]
