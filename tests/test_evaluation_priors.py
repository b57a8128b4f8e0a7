"""Evaluation with the structured priors: enumerated mixtures in marginal form, extra guide sites, flows."""

import pyro
import pytest
import torch

from pyrovae import MLP, VAE, BernoulliLikelihood, DiagonalNormalEncoder, IAFEncoder
from pyrovae.infer.dreg import DReG
from pyrovae.infer.evaluation import evaluate_vae, log_likelihood
from pyrovae.infer.iwae import IWAE
from pyrovae.priors import FlowPrior, GaussianMixturePrior, HierarchicalPrior, StandardNormalPrior

D, LATENT = 12, 3


def _vae(prior, encoder=None, name="vae"):
    encoder = encoder or DiagonalNormalEncoder(MLP(D, [16], 2 * LATENT), LATENT)
    return VAE(encoder, BernoulliLikelihood(MLP(LATENT, [16], D), (D,)), prior, name=name)


def _data(n=10):
    return torch.bernoulli(torch.full((n, D), 0.4))


def test_enumerated_mixture_is_scored_in_marginal_form_and_matches_the_marginalized_prior():
    torch.manual_seed(0)
    enumerated = _vae(GaussianMixturePrior(LATENT, 4, enumerate=True), name="enum")
    marginalized = _vae(GaussianMixturePrior(LATENT, 4, enumerate=False), name="marg")
    marginalized.load_state_dict(enumerated.state_dict())
    x = _data()
    pyro.set_rng_seed(1)
    a = log_likelihood(enumerated.marginal_model, enumerated.guide, x, num_samples=64)
    pyro.set_rng_seed(1)
    b = log_likelihood(marginalized.model, marginalized.guide, x, num_samples=64)
    torch.testing.assert_close(a, b)
    figures = evaluate_vae(enumerated, x, labels=torch.arange(10) % 4, num_samples=32)
    assert figures["model_form"] == "marginal_model"
    assert 0.0 < figures["cluster_accuracy"] <= 1.0
    assert "kl_per_dimension_error" in figures  # a mixture does not factorize over dimensions


@pytest.mark.parametrize("make", [
    lambda: _vae(HierarchicalPrior(LATENT, top_dim=2)),
    lambda: _vae(FlowPrior(LATENT)),
    lambda: _vae(StandardNormalPrior(LATENT), encoder=IAFEncoder(MLP(D, [16], 2 * LATENT + 8), LATENT, 8)),
], ids=["hierarchical", "flow-prior", "iaf-guide"])
def test_log_likelihood_and_bounds_run_for_structured_models(make):
    vae = make()
    x = _data()
    ll = log_likelihood(vae.model, vae.guide, x, num_samples=200, chunk_size=50, batch_size=4)
    assert ll.shape == (10,) and torch.isfinite(ll).all()
    pyro.set_rng_seed(2)
    iwae = IWAE(num_particles=4, max_plate_nesting=1).loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(2)
    dreg = DReG(num_particles=4, max_plate_nesting=1).differentiable_loss(vae.model, vae.guide, x)
    assert dreg.item() == pytest.approx(iwae, rel=1e-5)
    dreg.backward()
    assert all(p.grad is not None for p in vae.parameters() if p.requires_grad)
