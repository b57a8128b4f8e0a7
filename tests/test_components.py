"""Contract tests: every likelihood, encoder and prior returns a well-shaped distribution,
passes gradients to every parameter, and survives a state_dict round trip."""

import io
import math

import pytest
import torch

from pyrovae import (
    MLP,
    BernoulliLikelihood,
    ContinuousBernoulliLikelihood,
    ConvDecoderNet,
    ConvEncoderNet,
    DiagonalNormalEncoder,
    LaplaceLikelihood,
    LearnedNormalPrior,
    NormalLikelihood,
    StandardNormalPrior,
)

BATCH, LATENT = 5, 3
SHAPE = (1, 28, 28)

LIKELIHOODS = {
    "bernoulli": lambda: BernoulliLikelihood(MLP(LATENT, [8], 784), SHAPE),
    "cbernoulli": lambda: ContinuousBernoulliLikelihood(MLP(LATENT, [8], 784), SHAPE),
    "normal-fixed": lambda: NormalLikelihood(MLP(LATENT, [8], 784), SHAPE, scale=0.1),
    "normal-learned": lambda: NormalLikelihood(MLP(LATENT, [8], 784), SHAPE, scale=None),
    "laplace-learned": lambda: LaplaceLikelihood(MLP(LATENT, [8], 784), SHAPE, scale=None),
    "bernoulli-conv": lambda: BernoulliLikelihood(ConvDecoderNet(LATENT, 1, channels=4, hidden=8), SHAPE),
}
ENCODERS = {
    "mlp": lambda: DiagonalNormalEncoder(MLP(SHAPE, [8], 2 * LATENT), LATENT),
    "conv": lambda: DiagonalNormalEncoder(ConvEncoderNet(1, 2 * LATENT, channels=4, hidden=8), LATENT),
}
PRIORS = {
    "standard": lambda: StandardNormalPrior(LATENT),
    "learned": lambda: LearnedNormalPrior(LATENT),
}


def roundtrip(module: torch.nn.Module, fresh: torch.nn.Module) -> torch.nn.Module:
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    return fresh


def assert_every_parameter_has_gradient(module: torch.nn.Module) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reached {name}"


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_likelihood_contract(name):
    likelihood = LIKELIHOODS[name]()
    z = torch.randn(BATCH, LATENT)
    p = likelihood(z)
    assert p.batch_shape == (BATCH,) and p.event_shape == SHAPE
    x = p.sample()
    assert x.shape == (BATCH, *SHAPE)
    assert likelihood.mean(z).shape == (BATCH, *SHAPE)
    x = torch.rand(BATCH, *SHAPE)
    log_p = likelihood(z).log_prob(x)
    assert log_p.shape == (BATCH,) and torch.isfinite(log_p).all()
    log_p.sum().backward()
    assert_every_parameter_has_gradient(likelihood)
    with torch.no_grad():
        again = roundtrip(likelihood, LIKELIHOODS[name]())(z).log_prob(x)
        assert torch.allclose(again, likelihood(z).log_prob(x))


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_encoder_contract(name):
    encoder = ENCODERS[name]()
    x = torch.rand(BATCH, *SHAPE)
    q = encoder(x)
    assert q.batch_shape == (BATCH,) and q.event_shape == (LATENT,)
    z = q.rsample()
    assert z.shape == (BATCH, LATENT)
    assert encoder.mean(x).shape == (BATCH, LATENT)
    (q.log_prob(z).sum() + z.sum()).backward()
    assert_every_parameter_has_gradient(encoder)
    with torch.no_grad():
        again = roundtrip(encoder, ENCODERS[name]())(x)
        assert torch.allclose(again.mean, encoder(x).mean)


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_prior_contract(name):
    prior = PRIORS[name]()
    assert prior.latent_dim == LATENT
    z = prior.sample(BATCH)
    assert z.shape == (BATCH, LATENT)
    log_p = prior.log_prob(torch.randn(BATCH, LATENT))
    assert log_p.shape == (BATCH,)
    if any(True for _ in prior.parameters()):
        log_p.sum().backward()
        assert_every_parameter_has_gradient(prior)
    with torch.no_grad():
        z = torch.randn(BATCH, LATENT)
        again = roundtrip(prior, PRIORS[name]())
        assert torch.allclose(again.log_prob(z), prior.log_prob(z))


def test_standard_normal_prior_matches_formula():
    z = torch.randn(7, LATENT)
    expected = -0.5 * (z**2).sum(-1) - 0.5 * LATENT * torch.log(torch.tensor(2 * torch.pi))
    assert torch.allclose(StandardNormalPrior(LATENT).log_prob(z), expected)


def test_bernoulli_on_grey_pixels_is_binary_cross_entropy():
    likelihood = LIKELIHOODS["bernoulli"]()
    z, x = torch.randn(BATCH, LATENT), torch.rand(BATCH, *SHAPE)
    logits = likelihood.params(z)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    assert torch.allclose(likelihood(z).log_prob(x), -bce.flatten(1).sum(-1), atol=1e-4)
    assert likelihood.in_support(x) and not likelihood.in_support(x + 1.5)


@pytest.mark.parametrize("scale, expected", [("softplus", math.log(2.0)), ("exp", 1.0)])
def test_encoder_scale_maps_a_zero_raw_output_to_its_known_value(scale, expected):
    class Zeros(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 2 * LATENT)

    encoder = DiagonalNormalEncoder(Zeros(), LATENT, scale=scale, min_scale=0.0)
    assert torch.allclose(encoder(torch.rand(3, *SHAPE)).base_dist.scale, torch.full((3, LATENT), expected))


def test_encoder_scale_name_is_checked():
    with pytest.raises(ValueError, match="softplus, exp"):
        DiagonalNormalEncoder(torch.nn.Identity(), LATENT, scale="relu")
