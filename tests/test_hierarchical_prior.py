"""Hierarchical prior z2 -> z1: sites, sampling, and a clear refusal of the intractable marginal."""

from __future__ import annotations

import pytest
import torch
from pyro import poutine
from prior_guide_parts import LATENT, build_vae, toy_data


def test_marginal_log_prob_is_refused_clearly():
    prior = build_vae("hierarchical").prior
    with pytest.raises(NotImplementedError, match="no closed-form marginal"):
        prior.log_prob(torch.randn(4, LATENT))


def test_model_draws_top_then_bottom_and_guide_draws_top_from_bottom():
    x, _ = toy_data(6)
    vae = build_vae("hierarchical")
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x)
    z_top, z = guide_trace.nodes["z_top"]["value"], guide_trace.nodes["z"]["value"]
    assert z_top.shape == (6, 2) and z.shape == (6, LATENT)
    # q(z2 | z1) is fed the guide's z1; p(z1 | z2) the replayed z2.
    q_top = vae.prior.top_posterior(z)
    assert torch.allclose(guide_trace.nodes["z_top"]["fn"].log_prob(z_top), q_top.log_prob(z_top))
    p_z = vae.prior.conditional(z_top)
    assert torch.allclose(model_trace.nodes["z"]["fn"].log_prob(z), p_z.log_prob(z))
    order = [n for n, s in model_trace.nodes.items() if s["type"] == "sample"]
    assert order.index("z_top") < order.index("z") < order.index("x")


def test_ancestral_samples_have_the_marginal_moments():
    """With p(z1 | z2) fixed to N(A z2, s^2 I) the marginal is N(0, A A^T + s^2 I)."""
    prior = build_vae("hierarchical").prior
    a = torch.tensor([[1.0, 0.5], [0.0, 2.0], [-1.0, 0.0]])

    def linear_conditional(z2):
        return torch.distributions.Independent(torch.distributions.Normal(z2 @ a.T, 0.5), 1)

    prior.conditional = linear_conditional  # swap in a conditional with a known marginal
    samples = prior.sample(20000)
    cov = torch.cov(samples.T)
    assert torch.allclose(cov, a @ a.T + 0.25 * torch.eye(3), atol=0.15)
