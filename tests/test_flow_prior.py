"""Flow prior: its log-density is normalized and equals the change-of-variables formula."""

from __future__ import annotations

import math

import pytest
import torch

from pyrovae import FlowPrior


def _perturbed(kind: str, latent_dim: int = 2, num_layers: int = 2) -> FlowPrior:
    """A flow far from the identity, so that a wrong Jacobian term would show. (Splines get a
    smaller push: a larger one makes bins so steep that a 401-point grid no longer resolves
    the density.)"""
    prior = FlowPrior(latent_dim, num_layers=num_layers, hidden_dims=(8,), kind=kind)
    noise = 0.5 if kind == "affine" else 0.2
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(noise * torch.randn_like(p))
    return prior


@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_flow_density_integrates_to_one_in_2d(kind):
    prior = _perturbed(kind)
    n, half = 401, 10.0
    axis = torch.linspace(-half, half, n)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        density = prior.log_prob(grid).exp()
    cell = (2 * half / (n - 1)) ** 2
    assert density.sum().item() * cell == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_flow_log_prob_matches_change_of_variables(kind):
    """log p(z) = log N(g(z); 0, I) + log |det dg/dz| with g = the layers applied to z, the
    Jacobian taken by autograd."""
    d = 3
    prior = _perturbed(kind, latent_dim=d)

    def to_base(z: torch.Tensor) -> torch.Tensor:
        for layer in prior.layers:
            z = layer(z)
        return z

    z = prior.sample(5).detach()
    for zi in z:
        jac = torch.autograd.functional.jacobian(to_base, zi)
        u = to_base(zi)
        expected = (-0.5 * u.pow(2).sum() - 0.5 * d * math.log(2 * math.pi)
                    + torch.linalg.slogdet(jac).logabsdet)
        assert prior.log_prob(zi).item() == pytest.approx(expected.item(), abs=1e-4)


def test_samples_follow_the_density():
    """The sample mean under the flow agrees with the density-weighted mean on a grid."""
    prior = _perturbed("affine")
    n, half = 301, 10.0
    axis = torch.linspace(-half, half, n)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        weights = prior.log_prob(grid).exp()
        grid_mean = (weights[:, None] * grid).sum(0) / weights.sum()
        sample_mean = prior.sample(20000).mean(0)
    assert torch.allclose(sample_mean, grid_mean, atol=0.1)


def test_unknown_flow_kind_is_refused():
    with pytest.raises(ValueError, match="unknown flow kind"):
        FlowPrior(2, kind="planar")
