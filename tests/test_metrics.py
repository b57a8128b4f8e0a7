"""``elbo_parts`` against analytic answers: the reconstruction term of a Gaussian model, and a
KL part that is exactly zero when the guide equals the prior (both parts from one draw)."""

import math

import pyro
import pyro.distributions as dist
import torch

from pyrovae.infer.metrics import elbo_parts


def model(x, context=None):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0]), 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=x)


def guide_equal_to_prior(x, context=None):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(torch.zeros(x.shape[0]), 1.0))


def test_kl_part_is_exactly_zero_when_the_guide_is_the_prior():
    parts = elbo_parts(model, guide_equal_to_prior, torch.full((500,), 0.5), batch_size=100)
    assert abs(parts["kl"]) < 1e-6
    assert parts["elbo"] == parts["recon"] - parts["kl"]


def test_reconstruction_matches_its_gaussian_expectation():
    # E_{z ~ N(0,1)} log N(x | z, 1) = -log(2 pi)/2 - (x^2 + 1)/2; per-point sd is sqrt(x^2 + 1/2).
    x, n = 0.5, 40_000
    expected = -0.5 * math.log(2 * math.pi) - 0.5 * (x**2 + 1)
    parts = elbo_parts(model, guide_equal_to_prior, torch.full((n,), x), batch_size=10_000)
    standard_error = math.sqrt(x**2 + 0.5) / math.sqrt(n)
    assert abs(parts["recon"] - expected) < 4 * standard_error
