"""The speed benchmark's hand-written contenders estimate the same losses as pyrovae's models.

``benchmarks/speed.py`` compares pyrovae's step against twins written without pyrovae; a
ratio only means something if both compute the same thing. With the weights copied across,
the one-sample estimates of the two must agree in mean within Monte Carlo error.
"""

import math
import sys
from pathlib import Path

import pyro
import torch
from pyro.infer import Trace_ELBO

import pyrovae
from pyrovae.models import M2
from pyrovae.train.semisupervised import SemiSupervisedLoss

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from twins import PlainMixture, PlainTwin, PyroStyle, decoder_net, encoder_net  # noqa: E402
from twins_m2 import PlainM2Twin, PyroStyleM2  # noqa: E402

LATENT, HIDDEN, DRAWS = 3, 8, 400


def agree(a: list[float], b: list[float]) -> None:
    """Means of two lists of independent draws agree within five standard errors."""
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    se = math.sqrt(ta.var() / len(a) + tb.var() / len(b))
    assert abs(ta.mean() - tb.mean()) < 5 * se + 1e-6, (ta.mean().item(), tb.mean().item(), se)


def images(n: int) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def test_plain_and_pyro_style_vae_with_a_mixture_prior_match_pyrovae():
    x = images(4)
    vae = pyrovae.VAE(
        pyrovae.DiagonalNormalEncoder(pyrovae.MLP((1, 28, 28), (HIDDEN,), 2 * LATENT), LATENT),
        pyrovae.BernoulliLikelihood(pyrovae.MLP(LATENT, (HIDDEN,), 784), (1, 28, 28)),
        pyrovae.GaussianMixturePrior(LATENT, 3))
    mixture = PlainMixture(LATENT, 3)
    mixture.load_state_dict(vae.prior.state_dict())
    enc, dec = encoder_net(784, HIDDEN, LATENT), decoder_net(784, HIDDEN, LATENT)
    enc[1].load_state_dict(vae.encoder.net.layers[0].state_dict())  # enc[0] flattens
    enc[3].load_state_dict(vae.encoder.net.layers[2].state_dict())
    dec.load_state_dict(vae.likelihood.net.layers.state_dict())
    plain = PlainTwin(enc, dec, LATENT, mixture=mixture)
    style = PyroStyle(enc, dec, LATENT, mixture=mixture)
    with torch.no_grad():
        ours = [Trace_ELBO().differentiable_loss(vae.model, vae.guide, x).item() / 4 for _ in range(DRAWS)]
        twin = [plain.loss(x).item() for _ in range(DRAWS)]
        pyro_style = [Trace_ELBO().loss(style.model, style.guide, x) / 4 for _ in range(DRAWS)]
    agree(ours, twin)
    agree(ours, pyro_style)


def test_m2_twins_match_pyrovae_m2():
    k = 10
    x_l, x_u = images(3), images(5).flip(0)
    y_l = torch.tensor([0, 4, 9])
    m2 = M2(pyrovae.MLP((1, 28, 28), (HIDDEN,), k),
            pyrovae.DiagonalNormalEncoder(pyrovae.MLP(784 + k, (HIDDEN,), 2 * LATENT), LATENT, context_dim=k),
            pyrovae.BernoulliLikelihood(pyrovae.MLP(LATENT + k, (HIDDEN,), 784), (1, 28, 28)), k, alpha=5.0)
    plain, style = PlainM2Twin(LATENT, HIDDEN, 5.0), PyroStyleM2(LATENT, HIDDEN, 5.0)
    for twin in (plain, style):
        twin.classifier.load_state_dict(m2.classifier.layers.state_dict())
        twin.encoder.load_state_dict(m2.encoder.net.layers.state_dict())
        twin.decoder.load_state_dict(m2.likelihood.net.layers.state_dict())
    loss = SemiSupervisedLoss(m2)
    enum_elbo = pyro.infer.TraceEnum_ELBO(max_plate_nesting=1)
    labelled = [loss.labelled(x_l, y_l).item() for _ in range(DRAWS)]  # needs grad: differentiable_loss
    unlabelled = [loss.unlabelled(x_u).item() for _ in range(DRAWS)]
    with torch.no_grad():
        twin = [plain.loss(x_l, y_l, x_u).item() for _ in range(DRAWS)]
        # One Pyro-style pass sums the loss over both batches' images.
        pyro_style = [enum_elbo.loss(style.model, style.guide, x_l, y_l, x_u) for _ in range(DRAWS)]
    agree([a + b for a, b in zip(labelled, unlabelled)], twin)  # per-image means, as SemiSupervisedLoss
    agree([3 * a + 5 * b for a, b in zip(labelled, unlabelled)], pyro_style)
