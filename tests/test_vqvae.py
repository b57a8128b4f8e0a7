"""VQ-VAE and VQ-VAE-2 as Pyro models: the honest bound, the penalty term, the builders, training."""

import math

import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from torch import nn

from pyrovae.errors import InputError
from pyrovae.guides.quantizer import QuantizingEncoder, VectorQuantizer
from pyrovae.infer.elbo import SyncFreeTrace_ELBO
from pyrovae.infer.metrics import elbo_parts
from pyrovae.likelihoods.elementwise import BernoulliLikelihood, NormalLikelihood
from pyrovae.models.vq_builders import conv_vqvae, conv_vqvae2
from pyrovae.models.vqvae import VQVAE
from pyrovae.priors.codes import UniformCodePrior
from pyrovae.train.code_priors import fit_code_priors
from pyrovae.train.trainer import Trainer


def tiny_vqvae(num_codes=8, ema=True, restart_after=100):
    """8x8 images, a 2x2 map of 4-dim codes, one-layer conv nets."""
    q = VectorQuantizer(num_codes, 4, ema=ema, restart_after=restart_after)
    encoder = QuantizingEncoder(nn.Conv2d(1, 4, 4, stride=4), q, (2, 2))
    decoder = nn.Sequential(nn.Unflatten(-1, (4, 2, 2)), nn.ConvTranspose2d(4, 1, 4, stride=4))
    return VQVAE(encoder, BernoulliLikelihood(decoder, (1, 8, 8)), UniformCodePrior(q, (2, 2)))


def binary_images(n=6, side=8):
    return torch.rand(n, 1, side, side).round()


def test_uniform_prior_kl_is_h_w_log_k():
    vq = tiny_vqvae(num_codes=8).eval()
    parts = elbo_parts(vq.model, vq.guide, binary_images())
    assert parts["kl"] == pytest.approx(2 * 2 * math.log(8), rel=1e-5)


def test_evaluation_mode_scores_exactly_the_bound():
    vq = tiny_vqvae().eval()
    x = binary_images()
    loss = Trace_ELBO().differentiable_loss(vq.model, vq.guide, x)
    bound = vq.bound(x)
    z = vq.encode(x)
    assert torch.allclose(bound, vq.likelihood(z).log_prob(x) - 4 * math.log(8))
    assert loss.item() == pytest.approx(-bound.sum().item(), rel=1e-5)


@pytest.mark.parametrize("objective", [Trace_ELBO(), SyncFreeTrace_ELBO()])
@pytest.mark.parametrize("validate", [True, False])  # SyncFreeTrace_ELBO's one-pass path runs without validation
def test_training_loss_is_minus_the_bound_plus_the_penalty(objective, validate):
    vq = tiny_vqvae(ema=False, restart_after=None)  # nothing moves in the forward pass
    x = binary_images()
    with pyro.validation_enabled(validate):
        loss = objective.differentiable_loss(vq.model, vq.guide, x)
    penalty = vq.encoder.quantize(x).penalty
    assert loss.item() == pytest.approx((-vq.bound(x) + penalty).sum().item(), rel=1e-5)


def test_one_training_step_moves_the_ema_codebook_once():
    """The guide runs once per loss (no observed site sends SyncFreeTrace_ELBO back to a second run)."""
    vq = tiny_vqvae(restart_after=None)
    x = binary_images()
    with pyro.validation_enabled(False):
        SyncFreeTrace_ELBO().differentiable_loss(vq.model, vq.guide, x)
    assert vq.encoder.quantizer.ema_steps == 1


def test_gradients_reach_encoder_decoder_and_codebook_loss():
    vq = tiny_vqvae(ema=False, restart_after=None)
    loss = Trace_ELBO().differentiable_loss(vq.model, vq.guide, binary_images())
    loss.backward()
    for name, p in vq.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_svi_with_pyro_optim_trains_a_tiny_vqvae():
    vq = tiny_vqvae()
    x = binary_images(32)
    svi = SVI(vq.model, vq.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    losses = [svi.step(x) for _ in range(40)]
    assert sum(losses[-5:]) < sum(losses[:5])


@pytest.mark.parametrize("shape,map_size", [((1, 28, 28), 7), ((3, 32, 32), 8)])
def test_defaults_train_on_28_and_32_pixel_images(shape, map_size):
    torch.manual_seed(0)
    likelihood = BernoulliLikelihood if shape[0] == 1 else (lambda net, s: NormalLikelihood(net, s, scale=0.1))
    vq = conv_vqvae(shape, likelihood)
    assert vq.encoder.map_shape == (map_size, map_size)
    # smooth blobs, so that there is something to learn
    base = torch.nn.functional.interpolate(torch.rand(256, shape[0], 4, 4), size=shape[1:], mode="bilinear")
    data = base if shape[0] == 3 else base.round()
    trainer = Trainer(vq, lr=2e-3, batch_size=32, progress=False)
    record = trainer.fit(data[:224], data[224:], epochs=3)
    recon = [h["test_recon"] for h in record.history]
    assert recon[-1] > recon[0]
    assert record.history[-1]["test_kl"] == pytest.approx(map_size ** 2 * math.log(256), rel=1e-5)
    assert vq.encoder.quantizer.usage.gt(0).float().mean() > 0.05


def test_vqvae2_levels_shapes_bound_and_prior_stage():
    torch.manual_seed(0)
    vq = conv_vqvae2((3, 32, 32), lambda net, s: NormalLikelihood(net, s, scale=0.1), codebook_size=16,
                     code_dim=4, prior_channels=8, prior_layers=2)
    assert vq.encoder.top_shape == (4, 4) and vq.encoder.map_shape == (8, 8)
    x = torch.rand(8, 3, 32, 32)
    Trainer(vq, batch_size=4, progress=False).fit(x, x, epochs=1)
    vq.eval()
    top, bottom = vq.codes(x)
    assert top.shape == (8, 4, 4) and bottom.shape == (8, 8, 8)
    uniform = vq.bound(x)
    assert torch.allclose(-Trace_ELBO().loss(vq.model, vq.guide, x) / 8 * torch.ones(()), uniform.mean(), rtol=1e-4)
    records = fit_code_priors(vq, x, x, epochs=2, batch_size=4)
    assert len(records) == 2
    assert vq.top_prior.fitted and vq.prior.fitted
    assert (vq.bound(x) > uniform).all()  # a fitted prior beats the uniform one on its training codes
    assert vq.sample(3).shape == (3, 3, 32, 32)
    assert vq.reconstruct_top(x[:2]).shape == (2, 3, 32, 32)


def test_code_map_larger_than_the_image_allows_is_refused():
    with pytest.raises(InputError, match="larger than"):
        conv_vqvae((1, 28, 28), BernoulliLikelihood, map_size=28)
    with pytest.raises(InputError, match="halved a whole number"):
        conv_vqvae((1, 28, 28), BernoulliLikelihood, map_size=5)


def test_vqvae2_on_images_too_small_for_two_levels_is_refused():
    with pytest.raises(InputError, match="too small for two levels"):
        conv_vqvae2((1, 12, 12), BernoulliLikelihood)
