"""Autoencoders as a guide swap and denoising as an input swap, against hand-computed objectives."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.poutine.util import site_is_subsample

from pyrovae import (
    MLP,
    VAE,
    BernoulliLikelihood,
    DiagonalNormalEncoder,
    StandardNormalPrior,
    Trainer,
)
from pyrovae.guides import CorruptedInput, DeltaEncoder, GaussianNoise, MaskingNoise
from pyrovae.infer.reconstruction import reconstruction_error
from pyrovae.likelihoods.elementwise import Likelihood
from pyrovae.models import autoencoder, fit_ex_post_mixture
from pyrovae.priors import FlatPrior, GaussianMixturePrior

LATENT, SHAPE = 3, (1, 4, 4)


def small_ae(prior=None, corruption=None):
    return autoencoder(MLP(SHAPE, [8], LATENT), BernoulliLikelihood(MLP(LATENT, [8], 16), SHAPE), LATENT,
                       prior=prior, corruption=corruption)


def hand_log_likelihood(ae, x):
    """sum_n log p(x_n | f(x_n)) for a Bernoulli decoder, written out as binary cross-entropy."""
    code = ae.encoder.net(x)
    logits = ae.likelihood.net(code).reshape(x.shape)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="sum"), code


def test_map_autoencoder_objective_is_log_likelihood_plus_log_prior_at_the_code():
    ae, x = small_ae(prior=StandardNormalPrior(LATENT)), torch.rand(5, *SHAPE)
    log_lik, code = hand_log_likelihood(ae, x)
    log_prior = (-0.5 * code**2 - 0.5 * math.log(2 * math.pi)).sum()
    loss = Trace_ELBO().differentiable_loss(ae.model, ae.guide, x)
    assert torch.allclose(-loss, log_lik + log_prior, atol=1e-4)


def test_flat_prior_leaves_the_plain_reconstruction_objective():
    ae, x = small_ae(), torch.rand(5, *SHAPE)
    assert isinstance(ae.prior, FlatPrior) and isinstance(ae.encoder, DeltaEncoder)
    log_lik, _ = hand_log_likelihood(ae, x)
    loss = Trace_ELBO().differentiable_loss(ae.model, ae.guide, x)
    assert torch.allclose(-loss, log_lik, atol=1e-4)
    loss.backward()  # every weight, encoder and decoder, gets a gradient through the point mass
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ae.parameters())
    # the same figure as reconstruction_error's, which decodes the code directly
    assert reconstruction_error(ae, x)["recon_nll"] == pytest.approx(loss.item() / 5, rel=1e-5)


def test_flat_prior_cannot_be_sampled_and_says_what_to_do():
    with pytest.raises(NotImplementedError, match="fit_ex_post_mixture"):
        small_ae().sample(4)


class RecordingLikelihood(Likelihood):
    """A Bernoulli decoder that records every value its distribution is asked to score."""

    def __init__(self):
        super().__init__(MLP(LATENT, [8], 16), SHAPE)
        self.scored = []

    def forward(self, z, context=None):
        scored = self.scored

        class Recording(dist.Independent):
            def log_prob(self, value):
                scored.append(value)
                return super().log_prob(value)

        return Recording(dist.Bernoulli(logits=self.net(z).reshape(z.shape[:-1] + SHAPE), validate_args=False), len(SHAPE))


class RecordingEncoder(DeltaEncoder):
    def __init__(self):
        super().__init__(MLP(SHAPE, [8], LATENT), LATENT)
        self.seen = []

    def forward(self, x, context=None):
        self.seen.append(x)
        return super().forward(x, context)


@pytest.mark.parametrize("guide", ["delta", "diagonal"])
def test_denoising_guide_reads_the_corrupted_input_and_the_likelihood_scores_the_clean_one(guide):
    x = 0.1 + 0.8 * torch.rand(6, *SHAPE)  # no zeros, so every masked pixel shows
    inner = RecordingEncoder() if guide == "delta" else DiagonalNormalEncoder(MLP(SHAPE, [8], 2 * LATENT), LATENT)
    if guide == "diagonal":
        inner.seen = []
        inner.register_forward_pre_hook(lambda module, args: inner.seen.append(args[0]))
    likelihood = RecordingLikelihood()
    model = VAE(CorruptedInput(inner, MaskingNoise(0.5)), likelihood, StandardNormalPrior(LATENT))
    Trace_ELBO().differentiable_loss(model.model, model.guide, x)
    (seen,), (scored,) = inner.seen, likelihood.scored
    assert torch.equal(scored, x)
    masked = seen == 0
    assert 0.3 < masked.float().mean() < 0.7 and torch.equal(seen[~masked], x[~masked])
    model.eval()  # evaluation: the encoder reads the clean input
    Trace_ELBO().differentiable_loss(model.model, model.guide, x)
    assert torch.equal(inner.seen[-1], x) and torch.equal(likelihood.scored[-1], x)


def test_corruptions_draw_what_they_say():
    x = torch.ones(200_000)
    assert (MaskingNoise(0.25)(x) == 0).float().mean().item() == pytest.approx(0.25, abs=0.005)
    assert (GaussianNoise(0.3)(x) - 1).std().item() == pytest.approx(0.3, rel=0.01)
    assert torch.equal(MaskingNoise(0.0)(x), x)


@pytest.mark.parametrize("make", [lambda: MaskingNoise(1.0), lambda: MaskingNoise(-0.1), lambda: GaussianNoise(0.0),
                                  lambda: GaussianNoise(float("nan"))])
def test_bad_corruption_settings_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_autoencoder_trains_with_svi_and_the_trainer_and_samples_from_an_ex_post_mixture():
    pyro.set_rng_seed(1)
    x = (torch.rand(64, *SHAPE) > 0.5).float()
    ae = small_ae(corruption=GaussianNoise(0.1))
    svi = SVI(ae.model, ae.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    first = svi.step(x)
    for _ in range(50):
        last = svi.step(x)
    assert last < first
    pyro.clear_param_store()
    other = small_ae()
    before = reconstruction_error(other, x)["recon_nll"]
    Trainer(other, lr=1e-2, batch_size=16, progress=False).fit(x, epochs=10)
    assert reconstruction_error(other, x)["recon_nll"] < before
    mixture = fit_ex_post_mixture(other, x, num_components=4, restarts=1)
    assert isinstance(mixture, GaussianMixturePrior) and mixture.num_components == 4
    assert other.decode(mixture.sample(7)).shape == (7, *SHAPE)


def test_ex_post_mixture_recovers_well_separated_codes():
    """Codes in two far-apart clusters: the fitted mixture puts a component on each, weights 1/4 and 3/4."""
    ae = small_ae()
    ae.encoder.net = torch.nn.Sequential(torch.nn.Flatten(), _FirstColumns(LATENT))
    x = torch.zeros(400, *SHAPE)
    x.view(400, -1)[:100, :LATENT] = 5.0
    x.view(400, -1)[:, :LATENT] += 0.01 * torch.randn(400, LATENT)
    mixture = fit_ex_post_mixture(ae, x, num_components=2, restarts=2)
    order = mixture.loc[:, 0].argsort()
    weights = torch.softmax(mixture.logits, -1)[order]
    assert torch.allclose(weights, torch.tensor([0.75, 0.25]), atol=1e-3)
    assert torch.allclose(mixture.loc[order], torch.tensor([[0.0] * LATENT, [5.0] * LATENT]), atol=0.01)


class _FirstColumns(torch.nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        return x[..., : self.k]


def test_map_autoencoder_code_penalty_is_scaled_by_beta():
    """LatentScale(beta) weighs log p(f(x)) and leaves the reconstruction alone: beta = 0 is the plain AE."""
    from pyrovae.infer.objectives import LatentScale

    ae, x = small_ae(prior=StandardNormalPrior(LATENT)), torch.rand(5, *SHAPE)
    log_lik, _ = hand_log_likelihood(ae, x)
    scale = LatentScale(0.0)
    loss = Trace_ELBO().differentiable_loss(scale(ae.model), scale(ae.guide), x)
    assert torch.allclose(-loss, log_lik, atol=1e-4)
    trace = poutine.trace(ae.guide).get_trace(x)
    assert trace.nodes["z"]["fn"].log_prob(trace.nodes["z"]["value"]).abs().sum() == 0


ENCODERS = {
    "delta": lambda: DeltaEncoder(MLP(SHAPE, [8], LATENT), LATENT),
    "corrupted_delta": lambda: CorruptedInput(DeltaEncoder(MLP(SHAPE, [8], LATENT), LATENT), GaussianNoise(0.3)),
    "corrupted_diagonal": lambda: CorruptedInput(DiagonalNormalEncoder(MLP(SHAPE, [8], 2 * LATENT), LATENT),
                                                 MaskingNoise(0.25)),
}


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_encoder_contract_shapes_gradients_and_save_load(name, tmp_path):
    encoder, x = ENCODERS[name](), torch.rand(7, *SHAPE)
    q = encoder(x)
    assert q.batch_shape == (7,) and q.event_shape == (LATENT,) and q.has_rsample
    z = q.rsample()
    assert z.shape == (7, LATENT) and z.requires_grad and q.log_prob(z).shape == (7,)
    assert encoder.mean(x).shape == (7, LATENT) and encoder.latent_dim == LATENT
    z.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())
    torch.save(encoder.state_dict(), tmp_path / "enc.pt")
    again = ENCODERS[name]()
    again.load_state_dict(torch.load(tmp_path / "enc.pt"))
    encoder.eval(), again.eval()  # no corruption noise: the outputs must agree exactly
    assert torch.equal(encoder.mean(x), again.mean(x))
    ae = VAE(encoder, BernoulliLikelihood(MLP(LATENT, [8], 16), SHAPE), FlatPrior(LATENT))
    guide_trace = poutine.trace(ae.guide).get_trace(x)  # a flat prior cannot be sampled: replay the guide
    model_trace = poutine.trace(poutine.replay(ae.model, trace=guide_trace)).get_trace(x)
    sites = [{n for n, s in t.nodes.items() if s["type"] == "sample" and not s["is_observed"]
              and not site_is_subsample(s)} for t in (model_trace, guide_trace)]
    assert sites[0] == sites[1] == {"z"}
