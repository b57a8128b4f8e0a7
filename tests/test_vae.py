"""The VAE as a Pyro model and guide: site names, SVI, the param store, beta scaling, the API."""

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from pyro.poutine.util import site_is_subsample

from pyrovae import (
    MLP,
    VAE,
    BernoulliLikelihood,
    DiagonalNormalEncoder,
    LatentScale,
    LearnedNormalPrior,
    StandardNormalPrior,
    linear_warmup,
)

LATENT, SHAPE = 4, (1, 6, 6)


def small_vae(prior=None, name="vae") -> VAE:
    encoder = DiagonalNormalEncoder(MLP(SHAPE, [16], 2 * LATENT), LATENT)
    likelihood = BernoulliLikelihood(MLP(LATENT, [16], 36), SHAPE)
    return VAE(encoder, likelihood, prior or StandardNormalPrior(LATENT), name=name)


def latent_sites(trace) -> set[str]:
    return {n for n, s in trace.nodes.items()
            if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)}


@pytest.mark.parametrize("prior", [StandardNormalPrior(LATENT), LearnedNormalPrior(LATENT)])
def test_model_and_guide_name_the_same_latent_sites(prior):
    vae, x = small_vae(prior), torch.rand(8, *SHAPE)
    model_trace = poutine.trace(vae.model).get_trace(x)
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    assert latent_sites(model_trace) == latent_sites(guide_trace) == {"z"}
    assert model_trace.nodes["x"]["is_observed"]


def test_users_own_svi_loop_trains_the_vae():
    vae = small_vae()
    x = (torch.rand(64, *SHAPE) > 0.5).float()
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    first = sum(svi.step(x) for _ in range(5)) / 5
    for _ in range(200):
        svi.step(x)
    last = sum(svi.step(x) for _ in range(5)) / 5
    assert last < first - 5, (first, last)
    # SVI trained the module's own tensors, not copies in the param store.
    assert all(pyro.get_param_store()[f"vae$$${n}"] is p for n, p in vae.named_parameters())


def test_two_models_with_one_name_are_refused():
    x = torch.rand(4, *SHAPE)
    first, second = small_vae(), small_vae()
    poutine.trace(first.model).get_trace(x)
    with pytest.raises(ValueError, match="another model uses the name 'vae'"):
        poutine.trace(second.model).get_trace(x)
    third = small_vae(name="other")
    poutine.trace(third.model).get_trace(x)  # a distinct name is fine


def test_latent_scale_weights_exactly_the_kl_term():
    """With analytic KL, loss(beta) = -recon + beta * KL, so loss(b) is affine in b."""
    vae, x = small_vae(), torch.rand(8, *SHAPE)
    elbo = TraceMeanField_ELBO()

    def loss(beta: float) -> float:
        pyro.set_rng_seed(1)  # the same z sample for every beta
        scale = LatentScale(beta)
        return elbo.loss(scale(vae.model), scale(vae.guide), x)

    kl = torch.distributions.kl_divergence(vae.posterior(x), vae.prior()).sum().item()
    assert loss(0.0) + kl == pytest.approx(loss(1.0), rel=1e-5)
    assert loss(0.0) + 0.3 * kl == pytest.approx(loss(0.3), rel=1e-5)


def test_linear_warmup_schedule():
    schedule = linear_warmup(beta=2.0, warmup_steps=4)
    assert [schedule(s) for s in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert linear_warmup(1.0, 0)(0) == 1.0


def test_encode_decode_reconstruct_sample_interpolate_shapes():
    vae, x = small_vae(), torch.rand(6, *SHAPE)
    assert vae.encode(x).shape == (6, LATENT)
    assert vae.decode(torch.randn(6, LATENT)).shape == (6, *SHAPE)
    recon = vae.reconstruct(x)
    assert recon.shape == x.shape and ((recon >= 0) & (recon <= 1)).all()
    assert vae.sample(5).shape == (5, *SHAPE)
    strip = vae.interpolate(x[:2], x[2:4], steps=7)
    assert strip.shape == (2, 7, *SHAPE)
    assert torch.allclose(strip[:, 0], vae.reconstruct(x[:2]), atol=1e-6)
    assert torch.allclose(strip[:, -1], vae.reconstruct(x[2:4]), atol=1e-6)
