"""The gated PixelCNN prior over code maps: causal, normalized, uniform until fitted, trainable."""

import itertools
import math

import torch

from pyrovae.guides.quantizer import VectorQuantizer
from pyrovae.priors.pixelcnn import CodeMapModel, PixelCNNPrior
from pyrovae.train.trainer import Trainer


def fitted_prior(num_codes=3, map_shape=(2, 2), context_shape=None, layers=3):
    prior = PixelCNNPrior(VectorQuantizer(num_codes, 2), map_shape, channels=8, num_layers=layers,
                          context_shape=context_shape)
    prior.start_fit()
    for p in prior.net.parameters():  # weights large enough that every dependence shows
        torch.nn.init.normal_(p, std=0.5)
    return prior


def test_distribution_at_each_position_ignores_that_position_and_later_ones():
    prior = fitted_prior(num_codes=4, map_shape=(4, 5), layers=4)
    h, w = prior.map_shape
    codes = torch.randint(4, (1, h, w))
    inputs = prior.net.embed(codes).detach().requires_grad_(True)
    for i, j in itertools.product(range(h), range(w)):
        # run the net from the embedded codes so that the gradient w.r.t. each input position shows
        x = inputs.movedim(-1, 1)
        v, hh = x, x
        for layer in prior.net.layers:
            v, hh = layer(v, hh, None)
        logits = prior.net.head(hh)[0, :, i, j]
        (grad,) = torch.autograd.grad(logits.log_softmax(0)[codes[0, i, j]], inputs)
        seen = grad[0].abs().sum(-1) > 0
        later = torch.arange(h * w).reshape(h, w) >= i * w + j
        assert not seen[later].any(), f"position {(i, j)} depends on itself or a later position"
        if i * w + j > 0:
            assert seen[~later].any()


def test_probabilities_of_all_maps_sum_to_one():
    prior = fitted_prior(num_codes=3, map_shape=(2, 2))
    maps = torch.tensor(list(itertools.product(range(3), repeat=4))).reshape(81, 2, 2)
    total = prior.index_log_prob(maps).exp().sum()
    assert abs(total.item() - 1) < 1e-5


def test_conditional_probabilities_sum_to_one_for_every_context():
    prior = fitted_prior(num_codes=3, map_shape=(2, 2), context_shape=(2, 1, 1))
    maps = torch.tensor(list(itertools.product(range(3), repeat=4))).reshape(81, 2, 2)
    for _ in range(2):
        context = torch.randn(1, 2).expand(81, 2)
        assert abs(prior.index_log_prob(maps, context).exp().sum().item() - 1) < 1e-5


def test_uniform_until_fitted():
    prior = PixelCNNPrior(VectorQuantizer(5, 2), (3, 4), channels=8, num_layers=2)
    maps = torch.randint(5, (6, 3, 4))
    assert torch.allclose(prior.index_log_prob(maps), torch.full((6,), -12 * math.log(5)))
    assert prior.sample_indices(2).shape == (2, 3, 4)


def test_trainer_fits_the_prior_to_a_skewed_code_distribution():
    prior = PixelCNNPrior(VectorQuantizer(4, 2), (2, 2), channels=16, num_layers=2)
    # every map is a copy of one of two patterns: the fitted prior should approach log(1/2)
    patterns = torch.tensor([[[0, 1], [2, 3]], [[3, 3], [0, 0]]])
    codes = patterns[torch.randint(2, (256,))]
    trainer = Trainer(CodeMapModel(prior), lr=1e-2, batch_size=64, progress=False)
    record = trainer.fit(codes, codes[:64], epochs=30)
    assert record.history[-1]["test_elbo"] > -0.9  # uniform would be 4 log 4 = -5.5
    samples = prior.sample_indices(20)
    assert all(any(torch.equal(s, p) for p in patterns) for s in samples)
