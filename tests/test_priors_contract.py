"""Contract every prior keeps, and every guide with it: shapes, gradients, save/load, site names."""

from __future__ import annotations

import pyro
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from prior_guide_parts import (
    GUIDES,
    INTRACTABLE,
    LATENT,
    PRIORS,
    build_vae,
    context_for,
    objective_for,
    toy_data,
)


@pytest.mark.parametrize("prior_name", sorted(PRIORS))
def test_sample_and_log_prob_shapes(prior_name):
    vae = build_vae(prior_name)
    prior = vae.prior
    context = context_for(prior_name, 7)
    z = prior.sample(7, context)
    assert z.shape == (7, LATENT)
    assert torch.isfinite(z).all()
    if prior_name in INTRACTABLE:
        with pytest.raises(NotImplementedError, match="intractable|closed-form"):
            prior.log_prob(z, context)
        return
    log_p = prior.log_prob(z, context)
    assert log_p.shape == (7,)
    assert torch.isfinite(log_p).all()
    # a leading sample dimension broadcasts
    z2 = torch.randn(2, 7, LATENT)
    assert prior.log_prob(z2, context).shape == (2, 7)


def _latent_sites(trace: poutine.Trace, skip_enumerated: bool) -> set[str]:
    names = set()
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
            continue
        if skip_enumerated and site["infer"].get("enumerate") == "parallel":
            continue
        names.add(name)
    return names


GRID = [(p, "diagonal") for p in sorted(PRIORS)] + [
    (p, g) for g in sorted(GUIDES) if g != "diagonal" for p in ("standard", "gmm_enum", "vamp", "hierarchical")
]


@pytest.mark.parametrize("prior_name,guide_name", GRID)
def test_gradients_reach_every_parameter(prior_name, guide_name):
    x, _ = toy_data(16)
    vae = build_vae(prior_name, guide_name)
    loss = objective_for(prior_name).differentiable_loss(vae.model, vae.guide, x, context_for(prior_name, 16))
    loss.backward()
    for name, p in vae.named_parameters():
        assert p.grad is not None, f"no gradient reached {name}"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"zero gradient at {name}"


@pytest.mark.parametrize("prior_name,guide_name", GRID)
def test_model_and_guide_name_the_same_latent_sites(prior_name, guide_name):
    x, _ = toy_data(8)
    context = context_for(prior_name, 8)
    vae = build_vae(prior_name, guide_name)
    guide_trace = poutine.trace(vae.guide).get_trace(x, context)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x, context)
    guide_sites = _latent_sites(guide_trace, skip_enumerated=False)
    model_sites = _latent_sites(model_trace, skip_enumerated=True)
    assert model_sites == guide_sites
    assert "z" in model_sites
    if prior_name == "gmm_enum":
        assert model_trace.nodes["z_component"]["infer"]["enumerate"] == "parallel"
        assert "z_component" not in guide_trace.nodes
    if prior_name == "hierarchical":
        assert model_sites == {"z", "z_top"}


@pytest.mark.parametrize("prior_name,guide_name", GRID)
def test_state_dict_round_trip_gives_the_same_output(prior_name, guide_name, tmp_path):
    x, _ = toy_data(8)
    context = context_for(prior_name, 8)
    vae = build_vae(prior_name, guide_name)
    path = tmp_path / "vae.pt"
    torch.save(vae.state_dict(), path)
    pyro.set_rng_seed(123)  # a different initialisation for the copy
    copy = build_vae(prior_name, guide_name)
    copy.load_state_dict(torch.load(path))
    z = torch.randn(5, LATENT)
    for a, b in ((vae, copy),):
        if prior_name not in INTRACTABLE:
            c5 = context_for(prior_name, 5)
            assert torch.allclose(a.prior.log_prob(z, c5), b.prior.log_prob(z, c5))
        objective = objective_for(prior_name)
        pyro.set_rng_seed(7)
        loss_a = objective.loss(a.model, a.guide, x, context)
        pyro.clear_param_store()
        pyro.set_rng_seed(7)
        loss_b = objective.loss(b.model, b.guide, x, context)
        assert loss_a == pytest.approx(loss_b, rel=1e-5)
        assert torch.allclose(a.encode(x), b.encode(x))
