"""8-bit likelihoods: each is a probability mass function over the 256 values of a sub-pixel
(or the joint values of a coupled pixel), agrees with hand formulas at the edges, and plugs into
a VAE; bits/dim against hand values."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyrovae import VAE, CategoricalLikelihood, DiagonalNormalEncoder, DiscretizedLogisticMixtureLikelihood
from pyrovae.infer.bits import bits_per_dim
from pyrovae.likelihoods.discrete import (
    Categorical256,
    DiscretizedLogisticMixture,
    discretized_logistic_log_prob,
    to_levels,
)
from pyrovae.nn import MLP, ConvDecoderNet, ConvEncoderNet
from pyrovae.priors import StandardNormalPrior

LEVELS = torch.arange(256, dtype=torch.float64) / 255


def random_mixture(batch: int, channels: int, k: int, coupled: bool, generator: torch.Generator
                   ) -> DiscretizedLogisticMixture:
    """Random parameters, including centres beyond [-1, 1] and scales from very narrow to very wide."""
    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    loc = randn(batch, channels, k) * 0.8
    log_scale = randn(batch, channels, k) * 3 - 2  # includes values below the clamp at -7
    if coupled:
        pairs = channels * (channels - 1) // 2
        return DiscretizedLogisticMixture(randn(batch, k) * 2, loc, log_scale, torch.tanh(randn(batch, pairs, k)), 1)
    return DiscretizedLogisticMixture(randn(batch, channels, k) * 2, loc, log_scale, None, 1)


def test_logistic_mixture_sums_to_one_over_the_256_values_of_a_sub_pixel() -> None:
    mixture = random_mixture(200, 1, 5, coupled=False, generator=torch.Generator().manual_seed(0))
    log_p = mixture.log_prob(LEVELS.view(256, 1, 1))  # (256 values, 200 random parameter sets)
    assert log_p.shape == (256, 200)
    torch.testing.assert_close(torch.logsumexp(log_p, 0), torch.zeros(200, dtype=torch.float64), atol=1e-9, rtol=0)


def test_coupled_logistic_mixture_sums_to_one_over_the_joint_values_of_a_pixel() -> None:
    mixture = random_mixture(3, 2, 4, coupled=True, generator=torch.Generator().manual_seed(1))
    pixels = torch.cartesian_prod(LEVELS, LEVELS)  # all 65,536 values of a two-channel pixel
    log_p = mixture.log_prob(pixels.unsqueeze(1))
    torch.testing.assert_close(torch.logsumexp(log_p, 0), torch.zeros(3, dtype=torch.float64), atol=1e-9, rtol=0)


def test_categorical_sums_to_one_over_the_256_values_of_a_sub_pixel() -> None:
    logits = torch.randn(100, 1, 256, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 5
    log_p = Categorical256(logits, 1).log_prob(LEVELS.view(256, 1, 1))
    torch.testing.assert_close(torch.logsumexp(log_p, 0), torch.zeros(100, dtype=torch.float64), atol=1e-9, rtol=0)


def test_discretized_logistic_matches_the_cdf_by_hand_at_the_edges_and_inside() -> None:
    loc, scale = torch.tensor(0.3, dtype=torch.float64), 0.2
    cdf = lambda y: torch.sigmoid((torch.tensor(y, dtype=torch.float64) - loc) / scale)  # noqa: E731
    log_scale = torch.tensor(math.log(scale), dtype=torch.float64)
    for k, p in [(0, cdf(-1 + 1 / 255)), (255, 1 - cdf(1 - 1 / 255)),
                 (200, cdf(2 * 200 / 255 - 1 + 1 / 255) - cdf(2 * 200 / 255 - 1 - 1 / 255))]:
        torch.testing.assert_close(discretized_logistic_log_prob(torch.tensor(k), loc, log_scale), p.log())


def test_far_tails_stay_finite_with_finite_gradients() -> None:
    """A bin 1e4 scales away from the centre has a probability far below float32's range: the
    log of the CDF difference must still be finite (PixelCNN++ needed a fallback here)."""
    loc = torch.tensor([-1.0, 0.0, 1.0], requires_grad=True)
    log_scale = torch.full((3,), -7.0, requires_grad=True)
    log_p = discretized_logistic_log_prob(torch.tensor([255, 0, 128]), loc, log_scale)
    log_p.sum().backward()
    assert torch.isfinite(log_p).all() and (log_p < -100).all()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(log_scale.grad).all()


def test_samples_lie_on_the_grid_and_follow_the_probabilities() -> None:
    torch.manual_seed(3)
    mixture = random_mixture(1, 1, 3, coupled=False, generator=torch.Generator().manual_seed(3))
    x = mixture.sample((100_000,))
    assert torch.equal(x * 255, (x * 255).round())
    frequencies = torch.bincount(to_levels(x).reshape(-1), minlength=256).double() / x.numel()
    p = mixture.log_prob(LEVELS.view(256, 1, 1)).exp().reshape(-1)
    assert (frequencies - p).abs().sum() / 2 < 0.03  # total variation; about 0.01 from sampling alone


KWARGS = {"categorical": {}, "logistic-mixture": {"num_components": 3},
          "logistic-mixture-rgb": {"num_components": 3, "coupled": True}}


@pytest.mark.parametrize("name", KWARGS)
@pytest.mark.parametrize("network", ["mlp", "conv"])
def test_vae_with_an_8bit_likelihood_scores_samples_and_trains_every_parameter(name: str, network: str) -> None:
    pyro.clear_param_store()
    shape, latent = (3, 16, 16), 2
    cls = CategoricalLikelihood if name == "categorical" else DiscretizedLogisticMixtureLikelihood
    out_shape = cls.output_shape(shape, **KWARGS[name])
    if network == "mlp":
        encoder_net, decoder_net = MLP(shape, (16,), 2 * latent), MLP(latent, (16,), math.prod(out_shape))
    else:
        encoder_net = ConvEncoderNet(shape, 2 * latent, channels=(4,), hidden=8)
        decoder_net = ConvDecoderNet(latent, out_shape, channels=(4,), hidden=8)
    likelihood = cls(decoder_net, shape, **KWARGS[name])
    vae = VAE(DiagonalNormalEncoder(encoder_net, latent), likelihood, StandardNormalPrior(latent))
    x = torch.randint(0, 256, (5, *shape)).float() / 255
    assert likelihood.in_support(x) and not likelihood.in_support(x + 0.3 / 255)
    p = likelihood(torch.randn(4, 5, latent))
    assert p.batch_shape == (4, 5) and p.event_shape == shape
    assert p.log_prob(x).shape == (4, 5)
    sample = p.sample()
    assert sample.shape == (4, 5, *shape) and torch.equal(sample * 255, (sample * 255).round())
    mean = vae.decode(torch.randn(5, latent))
    assert mean.shape == (5, *shape) and 0 <= mean.min() and mean.max() <= 1
    with pyro.validation_enabled():
        Trace_ELBO(num_particles=2, vectorize_particles=True).differentiable_loss(vae.model, vae.guide, x).backward()
    for pname, param in vae.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("network", ["mlp", "conv"])
def test_categorical_starts_at_the_data_histogram(network: str) -> None:
    """With zero weights the decoder's output is its bias: after init_output_bias, the mean image is the data's."""
    shape = (1, 16, 16)
    out_shape = CategoricalLikelihood.output_shape(shape)
    if network == "mlp":
        net = MLP(2, (8,), math.prod(out_shape))
    else:
        net = ConvDecoderNet(2, out_shape, channels=(4,), hidden=8)
    likelihood = CategoricalLikelihood(net, shape)
    x = torch.randint(0, 256, (50, *shape)).float() / 255
    assert likelihood.init_output_bias(x)
    last = [m for m in net.modules() if hasattr(m, "weight")][-1]
    torch.nn.init.zeros_(last.weight)
    mean = likelihood.mean(torch.zeros(1, 2))[0]
    expected = x.mean(0) if network == "mlp" else x.mean().expand(shape)  # per sub-pixel, or per channel
    torch.testing.assert_close(mean, expected, atol=0.02, rtol=0)  # the one smoothing count pulls a little to 0.5


@pytest.mark.parametrize("coupled", [False, True])
@pytest.mark.parametrize("network", ["mlp", "conv"])
def test_logistic_mixture_starts_at_the_data_quantiles(network: str, coupled: bool) -> None:
    """With zero weights the decoder's output is its bias: after init_output_bias, component j's
    centre is the data's (j + 1/2)/K quantile (per sub-pixel, or per channel), with equal weights."""
    shape, k = (3, 4, 4), 2
    out_shape = DiscretizedLogisticMixtureLikelihood.output_shape(shape, num_components=k, coupled=coupled)
    if network == "mlp":
        net = MLP(2, (8,), math.prod(out_shape))
    else:
        net = ConvDecoderNet(2, out_shape, channels=(4,), hidden=8)
    likelihood = DiscretizedLogisticMixtureLikelihood(net, shape, num_components=k, coupled=coupled)
    x = torch.randint(0, 256, (40, *shape)).float() / 255
    assert likelihood.init_output_bias(x)
    last = [m for m in net.modules() if hasattr(m, "weight")][-1]
    torch.nn.init.zeros_(last.weight)
    p = likelihood(torch.zeros(1, 2))
    y = 2 * x - 1
    if network == "conv":
        y = y.transpose(0, 1).reshape(3, -1).T.reshape(-1, 3, 1, 1)
    quantiles = torch.quantile(y, torch.tensor([0.25, 0.75]), dim=0).movedim(0, -1)  # (3, 4 or 1, 4 or 1, K)
    torch.testing.assert_close(p.loc[0], quantiles.expand(3, 4, 4, k))
    torch.testing.assert_close(p.logits, torch.zeros_like(p.logits))
    if coupled:
        torch.testing.assert_close(p.coeffs, torch.zeros_like(p.coeffs))


def test_bits_per_dim_against_hand_values() -> None:
    assert bits_per_dim(1000.0, (3, 32, 32)) == pytest.approx(0.4696272919560428, rel=1e-12)
    # A uniform categorical spends exactly 8 bits on every sub-pixel.
    x = torch.randint(0, 256, (2, 3, 4, 4)).float() / 255
    nll = -Categorical256(torch.zeros(2, 3, 4, 4, 256), 3).log_prob(x)
    assert bits_per_dim(nll[0].item(), x.shape[1:]) == pytest.approx(8.0, rel=1e-6)
