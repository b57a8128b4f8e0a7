"""The dVAE cousin: a categorical posterior per position, straight-through, with a real KL."""

import math

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch.distributions import kl_divergence

from pyrovae.guides.categorical import OneHotMap, StraightThroughCategoricalMap
from pyrovae.likelihoods.elementwise import BernoulliLikelihood
from pyrovae.models.vq_builders import conv_dvae
from pyrovae.train.trainer import Trainer


def test_samples_are_one_hot_and_log_prob_is_the_categorical_mass():
    logits = torch.randn(3, 5, 4, requires_grad=True)
    q = StraightThroughCategoricalMap(logits, temperature=0.5)
    c = q.rsample()
    assert c.shape == (3, 20)
    one_hot = c.detach().reshape(3, 5, 4)
    assert torch.equal(one_hot.sum(-1), torch.ones(3, 5)) and set(one_hot.unique().tolist()) == {0.0, 1.0}
    expected = logits.log_softmax(-1).gather(-1, one_hot.argmax(-1, keepdim=True)).squeeze(-1).sum(-1)
    assert torch.allclose(q.log_prob(c), expected)
    (c * torch.randn(20)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0  # the straight-through path


def test_kl_to_the_uniform_prior_is_the_analytic_one_and_what_trace_elbo_estimates():
    logits = torch.randn(2, 3, 4)
    q, p = StraightThroughCategoricalMap(logits), OneHotMap(torch.zeros(3, 4))
    probs = logits.softmax(-1)
    analytic = (probs * (probs * 4).log()).sum((-1, -2))
    assert torch.allclose(kl_divergence(q, p), analytic, atol=1e-6)
    c = q.rsample((20000,))
    assert torch.allclose((q.log_prob(c) - p.log_prob(c)).mean(0), analytic, atol=0.05)


@pytest.mark.parametrize("objective", [Trace_ELBO(), TraceMeanField_ELBO()])
def test_dvae_trains_with_pyro_objectives_without_auxiliary_terms(objective):
    torch.manual_seed(0)
    vae = conv_dvae((1, 16, 16), BernoulliLikelihood, codebook_size=8, code_dim=4)
    x = torch.nn.functional.interpolate(torch.rand(64, 1, 4, 4), size=(16, 16), mode="bilinear").round()
    before = Trace_ELBO(num_particles=8).loss(vae.model, vae.guide, x) / 64
    Trainer(vae, objective=objective, lr=3e-3, batch_size=16, progress=False).fit(x, epochs=5)
    after = Trace_ELBO(num_particles=8).loss(vae.model, vae.guide, x) / 64
    assert after < before
    pyro.clear_param_store()
    assert vae.sample(3).shape == (3, 1, 16, 16)
    assert math.isfinite(after)
