"""Builders for ``--model m2`` and ``--model cvae``: the command-line names of their parts,
reusing the tables of :mod:`pyrovae.cli.registry`."""

from __future__ import annotations

import math

from pyrovae.cli.config import ConfigError, TrainConfig
from pyrovae.cli.registry import LIKELIHOODS, PRIORS, _lookup, build_corruption
from pyrovae.guides.corrupted import CorruptedInput
from pyrovae.guides.diagonal import DiagonalNormalEncoder
from pyrovae.likelihoods.elementwise import BernoulliLikelihood
from pyrovae.nn import MLP
from pyrovae.models import M2, ConditionalVAE, MaskedBaseline

Shape = tuple[int, ...]


def _mlp_only(config: TrainConfig) -> None:
    if config.network != "mlp":
        raise ConfigError(f"--model {config.model} is built from MLPs only; use --network mlp")


def build_m2(config: TrainConfig, image_shape: Shape, num_classes: int) -> M2:
    """M2 with MLPs of one hidden layer of ``config.hidden`` units (Pyro's SS-VAE tutorial shape)."""
    _mlp_only(config)
    d, h, k, pixels = config.latent_dim, config.hidden, num_classes, math.prod(image_shape)
    encoder = DiagonalNormalEncoder(MLP(pixels + k, [h], 2 * d, config.activation), d, context_dim=k)
    likelihood = _lookup(LIKELIHOODS, config.likelihood, "--likelihood")(
        MLP(d + k, [h], pixels, config.activation), tuple(image_shape))
    prior = _lookup(PRIORS, config.prior, "--prior")(config, encoder, tuple(image_shape))
    if config.corrupt:  # denoising: q(z | x, y) reads a corrupted x; the classifier q(y | x) the clean one
        encoder = CorruptedInput(encoder, build_corruption(config.corrupt))
    return M2(MLP(image_shape, [h], k, config.activation), encoder, likelihood, k, prior=prior,
              alpha=config.alpha)


def build_cvae(config: TrainConfig, image_shape: Shape) -> ConditionalVAE:
    """CVAE and baseline with two hidden layers of ``config.hidden`` ReLU units (the CVAE tutorial's);
    the likelihood is Bernoulli on grey pixels, as in the tutorial."""
    _mlp_only(config)
    if config.likelihood != "bernoulli":
        raise ConfigError("--model cvae scores hidden pixels by binary cross-entropy; use --likelihood bernoulli")
    d, hidden, pixels = config.latent_dim, [config.hidden, config.hidden], math.prod(image_shape)
    return ConditionalVAE(
        DiagonalNormalEncoder(MLP(image_shape, hidden, 2 * d, "relu"), d),
        DiagonalNormalEncoder(MLP(image_shape, hidden, 2 * d, "relu"), d),
        BernoulliLikelihood(MLP(d + pixels, hidden, pixels, "relu"), tuple(image_shape)),
        baseline=MaskedBaseline(MLP(image_shape, hidden, pixels, "relu")),
    )


__all__ = ["build_m2", "build_cvae"]
