"""VampPrior: the mixture of the encoder's posteriors at the pseudo-inputs, kept in the data range."""

from __future__ import annotations

import math

import pytest
import torch
from prior_guide_parts import GUIDES, LATENT, PIXELS, build_vae

from pyrovae import VampPrior


@pytest.mark.parametrize("guide_name", sorted(GUIDES))
def test_log_prob_is_the_uniform_mixture_of_encoder_posteriors(guide_name):
    vae = build_vae("vamp", guide_name)
    prior = vae.prior
    z = torch.randn(6, LATENT)
    u = prior.pseudo_inputs
    per_component = torch.stack([vae.encoder(u[k : k + 1]).log_prob(z) for k in range(u.shape[0])], -1)
    expected = per_component.logsumexp(-1) - math.log(u.shape[0])
    assert torch.allclose(prior.log_prob(z), expected, atol=1e-4)


def test_the_encoder_is_shared_not_copied():
    vae = build_vae("vamp")
    assert vae.prior.encoder is vae.encoder
    names = [n for n, _ in vae.named_parameters()]
    assert len(names) == len({id(p) for p in vae.parameters()})
    assert not any(n.startswith("prior.encoder") for n in names)


def test_pseudo_inputs_start_from_data_and_stay_in_range():
    vae = build_vae("vamp")
    data = torch.rand(5, PIXELS)
    data[0, :4] = torch.tensor([0.0, 1.0, 0.0, 1.0])
    prior = VampPrior(vae.encoder, 5, (PIXELS,), init=data)
    assert torch.allclose(prior.pseudo_inputs, data, atol=2e-3)
    with torch.no_grad():
        prior.raw_pseudo_inputs.mul_(100.0)
    assert ((prior.pseudo_inputs >= 0) & (prior.pseudo_inputs <= 1)).all()


def test_bad_init_is_refused_with_the_fix():
    encoder = build_vae("vamp").encoder
    with pytest.raises(ValueError, match="shape"):
        VampPrior(encoder, 5, (PIXELS,), init=torch.rand(4, PIXELS))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        VampPrior(encoder, 2, (PIXELS,), init=2 * torch.ones(2, PIXELS))


def test_plate_expanded_log_prob_and_gradients_match_the_hand_written_mixture():
    # Inside a plate the mixture is expanded to (batch,); the fast diagonal-Normal path must
    # give the same density and the same gradients as the per-component sum.
    vae = build_vae("vamp")
    prior = vae.prior
    z = torch.randn(7, LATENT)
    fast = prior().expand((7,)).log_prob(z)
    assert fast.shape == (7,)
    fast.sum().backward()
    fast_grads = [p.grad.clone() for p in vae.parameters() if p.grad is not None]
    vae.zero_grad()
    u = prior.pseudo_inputs
    per_component = torch.stack([vae.encoder(u[k : k + 1]).log_prob(z) for k in range(u.shape[0])], -1)
    expected = per_component.logsumexp(-1) - math.log(u.shape[0])
    expected.sum().backward()
    slow_grads = [p.grad.clone() for p in vae.parameters() if p.grad is not None]
    assert torch.allclose(fast, expected, atol=1e-4)
    assert len(fast_grads) == len(slow_grads) > 0
    for a, b in zip(fast_grads, slow_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-3)
