"""SyncFreeTrace_ELBO's one-pass path (no trace objects) against Pyro's Trace_ELBO: the same
value and the same gradient for every prior and guide it takes, under a KL weight, a
subsampled plate and a mask; and Pyro's own path for the guides it cannot take."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyrovae import LatentScale
from pyrovae.infer.elbo import SyncFreeTrace_ELBO, _lean_negative_elbo
from prior_guide_parts import GUIDES, PRIORS, build_vae, context_for, toy_data
from test_training_fast_path import discrete_latent_pair

PAIRS = [(prior, "diagonal") for prior in PRIORS if prior != "gmm_enum"] + [
    ("standard", guide) for guide in GUIDES if guide != "diagonal"]


def loss_and_grads(objective, model, guide, params, *args, seed=0):
    for p in params:
        p.grad = None
    pyro.set_rng_seed(seed)
    with pyro.validation_enabled(False):  # the one-pass path runs only with validation off
        loss = objective.differentiable_loss(model, guide, *args)
    loss.backward()
    return loss.detach(), [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]


def assert_same(ours, pyros):
    torch.testing.assert_close(ours[0], pyros[0], rtol=1e-6, atol=1e-5)
    for a, b in zip(ours[1], pyros[1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("prior, guide", PAIRS, ids=[f"{p}-{g}" for p, g in PAIRS])
@pytest.mark.parametrize("weight", [1.0, 0.3])
def test_one_pass_path_equals_trace_elbo(prior, guide, weight):
    vae = build_vae(prior, guide)
    x, _ = toy_data(10)
    context = context_for(prior, 10)
    scale = LatentScale(weight)
    model, guide_fn = scale(vae.model), scale(vae.guide)
    params = list(vae.parameters())
    lean = SyncFreeTrace_ELBO()
    lean._get_traces = None  # Pyro's trace-based path would fail: the one-pass path must be taken
    assert_same(loss_and_grads(lean, model, guide_fn, params, x, context, seed=1),
                loss_and_grads(Trace_ELBO(), model, guide_fn, params, x, context, seed=1))


def test_subsampled_plate_mask_and_a_model_only_latent_are_scored_as_trace_elbo_does():
    loc = torch.nn.Parameter(torch.zeros(6))
    log_scale = torch.nn.Parameter(torch.zeros(6))
    shift = torch.nn.Parameter(torch.tensor(0.5))
    data = torch.randn(6)
    keep = torch.tensor([True, False, True, True, False, True])

    def model(x):
        w = pyro.sample("w", dist.Normal(shift, 1.0))  # in the model only: drawn and scored there
        with pyro.plate("data", 6, subsample_size=3) as idx:
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            with pyro.poutine.mask(mask=keep[idx]):
                pyro.sample("x", dist.Normal(z + w, 1.0), obs=x[idx])

    def guide(x):
        with pyro.plate("data", 6, subsample_size=3) as idx:
            pyro.sample("z", dist.Normal(loc[idx], log_scale[idx].exp()))

    params = [loc, log_scale, shift]
    lean = SyncFreeTrace_ELBO()
    lean._get_traces = None
    assert_same(loss_and_grads(lean, model, guide, params, data, seed=4),
                loss_and_grads(Trace_ELBO(), model, guide, params, data, seed=4))


def test_a_non_reparameterized_guide_takes_pyros_path_and_is_remembered():
    model, guide, theta = discrete_latent_pair()
    x = torch.tensor(0.7)
    assert _lean_negative_elbo(model, guide, (x,), {}) is None
    objective = SyncFreeTrace_ELBO()
    loss_and_grads(objective, model, guide, [theta], x, seed=3)  # tries, refuses, falls back
    assert guide in objective._lean_refused
    # From then on Pyro's own path directly: the same draws as Trace_ELBO's.
    assert_same(loss_and_grads(objective, model, guide, [theta], x, seed=5),
                loss_and_grads(Trace_ELBO(), model, guide, [theta], x, seed=5))


@pytest.mark.parametrize("prior, guide", PAIRS, ids=[f"{p}-{g}" for p, g in PAIRS])
def test_one_pass_path_is_bit_for_bit_the_trace_path(prior, guide):
    """A trainer validates the first step of every epoch (the trace path) and not the others:
    both paths must give identical bits, or a resumed run would drift from an unbroken one."""
    vae = build_vae(prior, guide)
    x, _ = toy_data(10)
    context = context_for(prior, 10)
    params = list(vae.parameters())
    results = []
    for validation in (False, True):
        for p in params:
            p.grad = None
        pyro.set_rng_seed(2)
        with pyro.validation_enabled(validation):
            loss = SyncFreeTrace_ELBO().differentiable_loss(vae.model, vae.guide, x, context)
        loss.backward()
        results.append([loss.detach()] + [p.grad for p in params if p.grad is not None])
    for a, b in zip(*results):
        assert torch.equal(a, b)
