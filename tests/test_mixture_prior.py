"""Gaussian mixture prior: both forms give the same ELBO, and clusters follow Bayes' rule."""

from __future__ import annotations

import math

import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from prior_guide_parts import LATENT, build_vae, toy_data

import pyrovae
from pyrovae import GaussianMixturePrior, LatentScale


def _spread(prior: GaussianMixturePrior) -> None:
    """Move the prior away from its initial values so that a wrong formula shows."""
    with torch.no_grad():
        prior.loc.mul_(3.0)
        prior.raw_scale.uniform_(-1.0, 1.0)
        prior.logits.uniform_(-2.0, 2.0)


def _bayes_posterior(prior: GaussianMixturePrior, z: torch.Tensor) -> torch.Tensor:
    """p(c | z) written out with the Normal density formula, independently of the prior's code."""
    loc, scale = prior.loc.detach(), prior.scale.detach()  # (K, D)
    diff = (z.unsqueeze(-2) - loc) / scale  # (N, K, D)
    log_normal = (-0.5 * diff**2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    weights = prior.logits.detach().exp() / prior.logits.detach().exp().sum()
    joint = weights.log() + log_normal
    return (joint - joint.logsumexp(-1, keepdim=True)).exp()


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_the_two_forms_agree_under_a_kl_weight(beta):
    """beta-VAE / warm-up scale the component site too; enumeration must still sum it out
    exactly, giving the marginalized form's beta-weighted bound."""
    x, _ = toy_data(32)
    vae = build_vae("gmm_enum")
    _spread(vae.prior)
    scale = LatentScale(beta)
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    fixed_guide = scale(poutine.replay(vae.guide, trace=guide_trace))
    enumerated = TraceEnum_ELBO(max_plate_nesting=1).loss(scale(vae.model), fixed_guide, x)
    vae.prior.enumerate = False
    marginalized = Trace_ELBO().loss(scale(vae.model), fixed_guide, x)
    assert enumerated == pytest.approx(marginalized, rel=1e-5, abs=1e-3)


def test_enumerated_and_marginalized_mixtures_give_the_same_elbo():
    x, _ = toy_data(32)
    vae = build_vae("gmm_enum")
    _spread(vae.prior)
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    fixed_guide = poutine.replay(vae.guide, trace=guide_trace)

    vae.prior.enumerate = True
    enumerated = TraceEnum_ELBO(max_plate_nesting=1).loss(vae.model, fixed_guide, x)
    vae.prior.enumerate = False
    marginalized = Trace_ELBO().loss(vae.model, fixed_guide, x)
    assert enumerated == pytest.approx(marginalized, rel=1e-5, abs=1e-3)

    # The same number by hand: log p(x|z) + log sum_k pi_k N(z; mu_k, s_k) - log q(z|x).
    z = guide_trace.nodes["z"]["value"]
    loc, scale = vae.prior.loc.detach(), vae.prior.scale.detach()
    diff = (z.unsqueeze(-2) - loc) / scale
    log_normal = (-0.5 * diff**2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_pz = (torch.log_softmax(vae.prior.logits.detach(), -1) + log_normal).logsumexp(-1)
    assert torch.allclose(vae.prior.log_prob(z).detach(), log_pz, atol=1e-4)
    log_px = vae.likelihood(z).log_prob(x).detach()
    log_q = guide_trace.nodes["z"]["fn"].log_prob(z).detach()
    assert -(log_px + log_pz - log_q).sum().item() == pytest.approx(marginalized, rel=1e-5)


@pytest.mark.filterwarnings("ignore:Found vars in model but not guide")
def test_enumerated_elbo_differs_from_sampling_the_component():
    """Guard against an enumeration that silently does nothing: a sampled component gives a
    different (looser on average) number than the exact sum."""
    x, _ = toy_data(32)
    vae = build_vae("gmm_enum")
    _spread(vae.prior)
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    fixed_guide = poutine.replay(vae.guide, trace=guide_trace)
    exact = TraceEnum_ELBO(max_plate_nesting=1).loss(vae.model, fixed_guide, x)
    sampled = [Trace_ELBO().loss(vae.model, fixed_guide, x) for _ in range(20)]
    assert sum(sampled) / len(sampled) > exact


def test_component_posterior_and_cluster_follow_bayes_rule():
    prior = GaussianMixturePrior(LATENT, 5)
    _spread(prior)
    z = 3 * torch.randn(200, LATENT)
    expected = _bayes_posterior(prior, z)
    posterior = prior.component_posterior(z).detach()
    assert posterior.shape == (200, 5)
    assert torch.allclose(posterior.sum(-1), torch.ones(200))
    assert torch.allclose(posterior, expected, atol=1e-5)
    labels = prior.cluster(z)
    assert labels.dtype == torch.long and labels.shape == (200,)
    assert torch.equal(labels, expected.argmax(-1))
    assert len(labels.unique()) > 1  # the check above is not trivially about one component


def test_samples_of_one_component_come_from_it():
    prior = GaussianMixturePrior(2, 3)
    with torch.no_grad():
        prior.loc.copy_(torch.tensor([[-10.0, 0.0], [0.0, 10.0], [10.0, 0.0]]))
    samples = prior.sample_component(2, 4000)
    assert samples.shape == (4000, 2)
    assert torch.allclose(samples.mean(0), prior.loc[2].detach(), atol=0.1)
    assert torch.allclose(samples.std(0), prior.scale[2].detach(), atol=0.1)
    assert (prior.cluster(samples) == 2).all()
    with pytest.raises(ValueError, match="out of range"):
        prior.sample_component(3, 1)


def test_cluster_of_a_vae_uses_the_encoder_point_estimate():
    x, _ = toy_data(20)
    vae = build_vae("gmm_enum")
    _spread(vae.prior)
    labels = pyrovae.cluster(vae, x, batch_size=7)
    assert torch.equal(labels, vae.prior.cluster(vae.encoder.mean(x)))
    probs = pyrovae.component_probabilities(vae, x, batch_size=7)
    assert probs.shape == (20, 4)
    assert torch.equal(probs.argmax(-1), labels)


def test_cluster_refuses_a_prior_without_components():
    x, _ = toy_data(4)
    with pytest.raises(ValueError, match="mixture prior"):
        pyrovae.cluster(build_vae("standard"), x)


def test_both_forms_share_state_dict_keys():
    a = GaussianMixturePrior(LATENT, 4, enumerate=False)
    b = GaussianMixturePrior(LATENT, 4, enumerate=True)
    b.load_state_dict(a.state_dict())
    z = torch.randn(6, LATENT)
    assert torch.equal(a.log_prob(z), b.log_prob(z))
