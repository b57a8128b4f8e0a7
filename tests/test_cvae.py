"""Conditional VAE: completions keep the visible pixels, only hidden pixels are scored, the
importance-sampled conditional log-likelihood bounds the ELBO from above, the baseline learns."""

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyrovae import MLP, BernoulliLikelihood, DiagonalNormalEncoder
from pyrovae.data.quadrants import hide_quadrants, visible_mask
from pyrovae.models import ConditionalVAE, MaskedBaseline, conditional_nll, fit_baseline

SHAPE, D = (1, 8, 8), 3


def tiny_cvae(baseline=True, generation_sees_context=True):
    net = lambda out, inp=SHAPE: MLP(inp, (16,), out, "relu")  # noqa: E731
    return ConditionalVAE(DiagonalNormalEncoder(net(2 * D), D), DiagonalNormalEncoder(net(2 * D), D),
                          BernoulliLikelihood(net(64, D + 64 * generation_sees_context), SHAPE),
                          baseline=MaskedBaseline(net(64)) if baseline else None,
                          generation_sees_context=generation_sees_context)


def data(n=6, num_visible=1):
    images = torch.rand(n, *SHAPE)
    return hide_quadrants(images, num_visible), images


@pytest.mark.parametrize("sees_context", [True, False])
@pytest.mark.parametrize("num_visible", [1, 2, 3])
def test_predictions_have_the_image_shape_and_keep_visible_pixels(num_visible, sees_context):
    cvae = tiny_cvae(generation_sees_context=sees_context)
    context, images = data(num_visible=num_visible)
    for mean in (True, False):
        samples = cvae.predict(context, num_samples=4, mean=mean)
        assert samples.shape == (4, *images.shape)
        visible = visible_mask(SHAPE, num_visible)
        assert torch.equal(samples[:, :, visible], images[:, visible].expand(4, -1, -1))
        assert bool(((samples >= 0) & (samples <= 1)).all())
    assert not torch.equal(samples[0], samples[1])  # z makes completions differ


def test_a_generation_network_without_context_sees_only_z():
    blind, seeing = tiny_cvae(generation_sees_context=False), tiny_cvae()
    context, _ = data()
    other_context = hide_quadrants(torch.rand(6, *SHAPE), 1)
    z = torch.randn(6, D)
    # same hidden quadrants, different visible pixels: only z decides the completion's distribution
    assert torch.equal(blind.generate(z, context).mean, blind.generate(z, other_context).mean)
    assert not torch.equal(seeing.generate(z, context).mean,
                           seeing.generate(z, other_context).mean)


def test_only_hidden_pixels_are_scored():
    cvae = tiny_cvae()
    context, images = data()
    changed = images.clone()
    changed[:, visible_mask(SHAPE, 1)] = 0.5
    pyro.set_rng_seed(1)
    a = cvae.log_weights(context, images, 5)
    pyro.set_rng_seed(1)
    b = cvae.log_weights(context, changed, 5)
    assert torch.allclose(a, b)


def test_importance_sampled_likelihood_is_above_the_elbo():
    cvae = tiny_cvae()
    context, images = data(n=20)
    log_lik = cvae.conditional_log_likelihood(context, images, num_samples=2000)
    elbo = cvae.conditional_elbo(context, images, num_samples=2000)
    assert bool((log_lik >= elbo - 0.05).all())
    assert float((log_lik - elbo).mean()) > 0.01  # the bound is not tight for an untrained model
    # the per-example ELBO agrees with Pyro's Trace_ELBO on the model and guide
    pyro_elbo = -Trace_ELBO(num_particles=4000, vectorize_particles=True).loss(
        cvae.model, cvae.guide, context, images) / 20
    assert float(elbo.mean()) == pytest.approx(pyro_elbo, abs=0.1)
    nll = conditional_nll(cvae, context, images, num_samples=200, batch_size=7)
    assert nll == pytest.approx(-float(cvae.conditional_log_likelihood(context, images, 200).mean()), abs=0.1)


def test_model_and_guide_run_under_svi_and_train_every_cvae_part():
    cvae = tiny_cvae()
    context, images = data()
    loss = Trace_ELBO().differentiable_loss(cvae.model, cvae.guide, context, images)
    loss.backward()
    for name, p in cvae.named_parameters():
        if name.startswith("baseline"):
            assert p.grad is None, name  # the baseline only feeds the prior network
        else:
            assert p.grad is not None, name


def test_baseline_fits_and_early_stopping_keeps_best_weights():
    baseline = MaskedBaseline(MLP(SHAPE, (16,), 64, "relu"))
    images = (torch.rand(200, *SHAPE) > 0.5).float()
    images[:, :, 4:, :] = images[:, :, :4, :]  # the bottom half repeats the top half
    context = hide_quadrants(images, 3)
    record = fit_baseline(baseline, context[:150], images[:150], epochs=30, lr=1e-2,
                          validation=(context[150:], images[150:]), patience=3)
    vals = [h["val_nll"] for h in record.history]
    assert vals[-1] < vals[0]
    final = -baseline.log_likelihood(context[150:], images[150:]).mean().item()
    assert final == pytest.approx(min(vals), rel=1e-5)
