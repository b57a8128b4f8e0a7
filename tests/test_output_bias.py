"""``Likelihood.init_output_bias``: the decoder starts at the data's mean image.

Oracle: with the last layer's weights set to zero the network's output is its bias alone, so
after ``init_output_bias(x)`` the likelihood's mean must equal the per-pixel mean of ``x``
(per channel for a transposed convolution), whatever z is.
"""

import pytest
import torch

from pyrovae import MLP, BernoulliLikelihood, ContinuousBernoulliLikelihood, NormalLikelihood
from pyrovae.nn import ConvDecoderNet

# (likelihood, the range of means it can start at)
LIKELIHOODS = [(BernoulliLikelihood, (1e-3, 1 - 1e-3)), (ContinuousBernoulliLikelihood, (0.0667, 0.9333)),
               (lambda net, shape: NormalLikelihood(net, shape, scale=0.1), (-1e9, 1e9))]


def zero_last_weight(net: torch.nn.Module) -> None:
    layers = [m for m in net.modules() if isinstance(getattr(m, "weight", None), torch.nn.Parameter)]
    with torch.no_grad():
        layers[-1].weight.zero_()


@pytest.mark.parametrize("make, limits", LIKELIHOODS, ids=["bernoulli", "cbernoulli", "normal"])
def test_mlp_decoder_starts_at_the_pixel_means(make, limits):
    torch.manual_seed(0)
    x = torch.rand(500, 1, 4, 4) * torch.linspace(0.05, 0.95, 16).reshape(1, 1, 4, 4)
    likelihood = make(MLP(3, [8], 16), (1, 4, 4))
    assert likelihood.init_output_bias(x)
    zero_last_weight(likelihood.net)
    mean = likelihood.mean(torch.randn(7, 3))
    expected = x.mean(0).clamp(*limits).expand(7, 1, 4, 4)
    torch.testing.assert_close(mean, expected, atol=1e-4, rtol=0)


def test_bernoulli_clamps_constant_pixels_to_a_finite_logit():
    x = torch.zeros(10, 1, 2, 2)
    x[:, :, 0, 0] = 1.0
    likelihood = BernoulliLikelihood(MLP(2, [4], 4), (1, 2, 2))
    likelihood.init_output_bias(x)
    bias = likelihood.net.layers[-1].bias
    assert torch.isfinite(bias).all()
    torch.testing.assert_close(torch.sigmoid(bias[0]), torch.tensor(0.999))
    torch.testing.assert_close(torch.sigmoid(bias[1]), torch.tensor(0.001))


def test_conv_decoder_gets_each_channels_mean():
    torch.manual_seed(0)
    x = torch.rand(50, 1, 28, 28) * 0.3
    likelihood = BernoulliLikelihood(ConvDecoderNet(5, 1), (1, 28, 28))
    assert likelihood.init_output_bias(x)
    zero_last_weight(likelihood.net)
    mean = likelihood.mean(torch.randn(2, 5))
    torch.testing.assert_close(mean, torch.full_like(mean, x.mean().item()), atol=1e-5, rtol=0)


def test_a_net_without_a_usable_bias_is_left_as_it_was():
    net = torch.nn.Sequential(torch.nn.Linear(3, 16, bias=False))
    likelihood = BernoulliLikelihood(net, (1, 4, 4))
    before = net[0].weight.clone()
    assert not likelihood.init_output_bias(torch.rand(5, 1, 4, 4))
    assert torch.equal(net[0].weight, before)
    wrong_shape = torch.rand(5, 1, 3, 3)
    assert not BernoulliLikelihood(MLP(3, [8], 16), (1, 4, 4)).init_output_bias(wrong_shape)
