"""The shortcut scores in pyrovae.fast.distributions equal torch's Normal.log_prob, values and gradients."""

import pyro.distributions as dist
import torch

import pyro
from pyro import poutine
from pyro.infer import Trace_ELBO

from pyrovae import MLP, BernoulliLikelihood, DiagonalNormalEncoder, StandardNormalPrior, VAE
from pyrovae.fast.distributions import BernoulliImage, FastDistributions, NoiseCachingNormal


def test_own_draw_scored_from_its_noise_equals_the_normal_density_and_its_gradient():
    loc = torch.randn(5, 3, requires_grad=True)
    raw = torch.randn(5, 3, requires_grad=True)
    grads = []
    for family in (NoiseCachingNormal, dist.Normal):
        torch.manual_seed(0)
        d = family(loc, torch.nn.functional.softplus(raw))
        z = d.rsample((2,))
        # z also enters a second term, as it does in the ELBO through log p(x | z).
        total = d.log_prob(z).sum() + (z ** 3).sum()
        grads.append((z.detach(), total.detach(), *torch.autograd.grad(total, (loc, raw))))
    for ours, torchs in zip(*grads):
        torch.testing.assert_close(ours, torchs, rtol=1e-5, atol=1e-5)


def test_other_values_take_the_general_path():
    d = NoiseCachingNormal(torch.zeros(3), torch.full((3,), 2.0))
    d.rsample()
    other = torch.tensor([0.5, -1.0, 3.0])
    torch.testing.assert_close(d.log_prob(other), dist.Normal(0.0, 2.0).log_prob(other))


def test_bernoulli_image_scores_as_independent_bernoulli_on_grey_and_binary_pixels():
    logits = torch.randn(3, 4, 1, 5, 5, requires_grad=True)
    grey = torch.rand(4, 1, 5, 5)  # broadcasts against the leading particle dim
    for value in (grey, (grey > 0.5).float()):
        ours = BernoulliImage(dist.Bernoulli(logits=logits, validate_args=False), 3).log_prob(value)
        pyros = dist.Bernoulli(logits=logits, validate_args=False).to_event(3).log_prob(value)
        assert ours.shape == (3, 4)
        torch.testing.assert_close(ours, pyros)
        torch.testing.assert_close(torch.autograd.grad(ours.sum(), logits)[0],
                                   torch.autograd.grad(pyros.sum(), logits)[0])
    expanded = BernoulliImage(dist.Bernoulli(logits=logits[0], validate_args=False), 3).expand((2, 4))
    assert isinstance(expanded, BernoulliImage) and expanded.log_prob(grey).shape == (2, 4)


def test_the_messenger_swaps_the_plain_sites_and_changes_neither_loss_nor_gradient():
    vae = VAE(DiagonalNormalEncoder(MLP((1, 4, 4), (8,), 4), 2), BernoulliLikelihood(MLP(2, (8,), 16), (1, 4, 4)),
              StandardNormalPrior(2))
    x = torch.rand(5, 1, 4, 4)
    results = []
    for fast in (False, True):
        pyro.set_rng_seed(0)
        with FastDistributions() if fast else poutine.block(hide=[]):
            guide_trace = poutine.trace(vae.guide).get_trace(x)
            model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x)
            pyro.set_rng_seed(0)
            loss = Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
        grads = torch.autograd.grad(loss, list(vae.parameters()))
        results.append((loss.detach(), *grads))
        expected = (NoiseCachingNormal, BernoulliImage) if fast else (dist.Normal, dist.Independent)
        assert type(guide_trace.nodes["z"]["fn"].base_dist) is expected[0]
        assert type(model_trace.nodes["x"]["fn"]) is expected[1]
    for fast, plain in zip(*results):
        torch.testing.assert_close(fast, plain, rtol=1e-6, atol=1e-6)
