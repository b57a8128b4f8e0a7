"""Guides beyond the diagonal Normal: drop-in encoders with the right shapes and densities."""

from __future__ import annotations

import pytest
import torch
from prior_guide_parts import GUIDES, LATENT, PIXELS, toy_data

from pyrovae import MLP, FullCovarianceNormalEncoder, IAFEncoder, LowRankNormalEncoder


@pytest.mark.parametrize("guide_name", sorted(GUIDES))
def test_encoder_interface(guide_name):
    encoder = GUIDES[guide_name]()
    x, _ = toy_data(7)
    q = encoder(x)
    assert q.batch_shape == (7,) and q.event_shape == (LATENT,)
    assert q.has_rsample
    z = q.rsample()
    assert z.shape == (7, LATENT) and z.requires_grad
    assert q.log_prob(z).shape == (7,)
    assert encoder.mean(x).shape == (7, LATENT)
    assert encoder.latent_dim == LATENT


def test_iaf_scores_its_own_samples_and_foreign_values_alike():
    """The density of a fresh sample comes from the flow's cache; scoring a copy of the value
    forces the inverse pass. Both must agree, and differ from the base density."""
    encoder = GUIDES["iaf"]()
    with torch.no_grad():
        for flow in encoder.flows:
            for p in flow.parameters():
                p.add_(0.3 * torch.randn_like(p))
    x, _ = toy_data(5)
    q = encoder(x)
    z = q.rsample()
    cached = q.log_prob(z)
    inverted = encoder(x).log_prob(z.detach().clone())
    assert torch.allclose(cached, inverted, atol=1e-4)
    q0, _ = encoder.base(x)
    assert not torch.allclose(inverted, q0.log_prob(z.detach()), atol=1e-3)


def test_iaf_mean_is_the_flow_of_the_base_mean():
    encoder = GUIDES["iaf"]()
    x, _ = toy_data(4)
    q0, h = encoder.base(x)
    z = q0.mean
    for flow in encoder.flows:
        z = flow.condition(h)(z)
    assert torch.allclose(encoder.mean(x), z)
    assert not torch.allclose(encoder.mean(x), q0.mean)


def test_low_rank_covariance_is_factor_times_factor_plus_diagonal():
    encoder = LowRankNormalEncoder(MLP(PIXELS, (16,), LowRankNormalEncoder.output_size(LATENT, 2)), LATENT, 2)
    x, _ = toy_data(3)
    q = encoder(x)
    w = q.cov_factor
    assert w.shape == (3, LATENT, 2)
    expected = w @ w.transpose(-1, -2) + torch.diag_embed(q.cov_diag)
    assert torch.allclose(q.covariance_matrix, expected, atol=1e-5)
    assert (q.cov_diag > 0).all()


def test_full_covariance_factor_is_lower_triangular_with_positive_diagonal():
    encoder = FullCovarianceNormalEncoder(MLP(PIXELS, (16,), FullCovarianceNormalEncoder.output_size(LATENT)),
                                          LATENT)
    x, _ = toy_data(3)
    tril = encoder(x).scale_tril
    assert torch.equal(tril, tril.tril())
    assert (tril.diagonal(dim1=-2, dim2=-1) > 0).all()
    assert not torch.allclose(tril, torch.diag_embed(tril.diagonal(dim1=-2, dim2=-1)))


@pytest.mark.parametrize("make", [
    lambda: IAFEncoder(MLP(PIXELS + 3, (16,), IAFEncoder.output_size(LATENT, 4)), LATENT, 4, context_dim=3),
    lambda: LowRankNormalEncoder(MLP(PIXELS + 3, (16,), LowRankNormalEncoder.output_size(LATENT, 1)), LATENT, 1,
                                 context_dim=3),
    lambda: FullCovarianceNormalEncoder(MLP(PIXELS + 3, (16,), FullCovarianceNormalEncoder.output_size(LATENT)),
                                        LATENT, context_dim=3),
])
def test_conditional_guides_read_the_context(make):
    encoder = make()
    x, _ = toy_data(4)
    a = encoder.mean(x, torch.eye(3)[[0, 1, 2, 0]])
    b = encoder.mean(x, torch.eye(3)[[1, 2, 0, 1]])
    assert a.shape == (4, LATENT)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="pass a context of size 3"):
        encoder(x)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="rank must be at least 1"):
        LowRankNormalEncoder(MLP(PIXELS, (4,), 4), 2, 0)
    with pytest.raises(ValueError, match="num_flows must be at least 1"):
        IAFEncoder(MLP(PIXELS, (4,), 8), 2, 4, num_flows=0)
