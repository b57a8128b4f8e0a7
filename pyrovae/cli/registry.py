"""The one table from command-line names to library objects; library code never sees these names."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO
from torch import nn

from pyrovae.cli.config import ConfigError, TrainConfig
from pyrovae.infer.dreg import DReG
from pyrovae.infer.elbo import SyncFreeTrace_ELBO
from pyrovae.guides.diagonal import DiagonalNormalEncoder, Encoder
from pyrovae.guides import FullCovarianceNormalEncoder, IAFEncoder, LowRankNormalEncoder
from pyrovae.infer.iwae import IWAE
from pyrovae.infer.tcvae import BetaTCELBO
from pyrovae.likelihoods.elementwise import (
    BernoulliLikelihood,
    ContinuousBernoulliLikelihood,
    LaplaceLikelihood,
    Likelihood,
    NormalLikelihood,
)
from pyrovae.likelihoods.discrete import CategoricalLikelihood, DiscretizedLogisticMixtureLikelihood
from pyrovae.nn import MLP, ConvDecoderNet, ConvEncoderNet, check_image_shape
from pyrovae.priors import (
    FlowPrior,
    GaussianMixturePrior,
    HierarchicalPrior,
    LearnedNormalPrior,
    Prior,
    StandardNormalPrior,
    VampPrior,
)
from pyrovae.models.vae import VAE
# autoencoders and denoising (pyrovae.models.autoencoder, pyrovae.guides.corrupted)
from pyrovae.guides.corrupted import CorruptedInput, GaussianNoise, MaskingNoise
from pyrovae.guides.delta import DeltaEncoder
from pyrovae.priors.flat import FlatPrior
from pyrovae.cli.config import VQ_MODELS  # VQ-VAE (pyrovae.models.vq_builders)
from pyrovae.models.vq_builders import conv_vqvae, conv_vqvae2

Shape = tuple[int, ...]

#: name -> (encoder net, decoder net) builder: (config, image_shape, encoder_out, decoder_out_shape) -> modules;
#: the decoder's output shape is the image shape unless the likelihood has several parameters per value
NETWORKS: dict[str, Callable[..., tuple[nn.Module, nn.Module]]] = {
    "mlp": lambda c, shape, enc_out, out_shape=None: (
        MLP(shape, c.hidden_sizes, enc_out, c.activation),
        MLP(c.latent_dim, c.hidden_sizes, math.prod(out_shape or shape), c.activation),
    ),
    "conv": lambda c, shape, enc_out, out_shape=None: (
        ConvEncoderNet(shape, enc_out, c.channels, c.hidden_sizes, res_blocks=c.res_blocks),
        ConvDecoderNet(c.latent_dim, out_shape or shape, c.channels, c.hidden_sizes, res_blocks=c.res_blocks),
    ),
}

#: name -> likelihood class taking (decoder net, image shape)
LIKELIHOODS: dict[str, Callable[[nn.Module, Shape], Likelihood]] = {
    "bernoulli": BernoulliLikelihood,
    "cbernoulli": ContinuousBernoulliLikelihood,
    "normal": lambda net, shape: NormalLikelihood(net, shape, scale=None),
    "laplace": lambda net, shape: LaplaceLikelihood(net, shape, scale=None),
}

#: 8-bit image likelihoods (values k/255), several parameters per value: name -> (the decoder's output shape
#: for one data point, built from (config, image shape); the likelihood, built from (decoder net, image shape, config))
EIGHT_BIT_LIKELIHOODS: dict[str, tuple[Callable[[TrainConfig, Shape], Shape],
                                       Callable[[nn.Module, Shape, TrainConfig], Likelihood]]] = {
    "categorical": (lambda c, shape: CategoricalLikelihood.output_shape(shape),
                    lambda net, shape, c: CategoricalLikelihood(net, shape)),
    "logistic-mixture": (
        lambda c, shape: DiscretizedLogisticMixtureLikelihood.output_shape(shape, num_components=c.logistic_components),
        lambda net, shape, c: DiscretizedLogisticMixtureLikelihood(net, shape, c.logistic_components)),
    "logistic-mixture-rgb": (
        lambda c, shape: DiscretizedLogisticMixtureLikelihood.output_shape(
            shape, num_components=c.logistic_components, coupled=True),
        lambda net, shape, c: DiscretizedLogisticMixtureLikelihood(net, shape, c.logistic_components, coupled=True)),
}

#: name -> prior builder: (config, encoder, image shape) -> Prior
PRIORS: dict[str, Callable[[TrainConfig, nn.Module, Shape], Prior]] = {
    "normal": lambda c, encoder, shape: StandardNormalPrior(c.latent_dim),
    "learned": lambda c, encoder, shape: LearnedNormalPrior(c.latent_dim),
    "gmm": lambda c, encoder, shape: GaussianMixturePrior(c.latent_dim, c.num_components),
    "gmm-enum": lambda c, encoder, shape: GaussianMixturePrior(c.latent_dim, c.num_components, enumerate=True),
    "vamp": lambda c, encoder, shape: VampPrior(encoder, c.num_components, shape),
    "flow": lambda c, encoder, shape: FlowPrior(c.latent_dim, num_layers=c.num_flows),
    "hierarchical": lambda c, encoder, shape: HierarchicalPrior(c.latent_dim, top_dim=max(1, c.latent_dim // 2),
                                                                hidden=(c.hidden_sizes[0] // 4,)),
    "flat": lambda c, encoder, shape: FlatPrior(c.latent_dim),  # no code penalty: the plain autoencoder
}

#: name -> (network output size, encoder class taking (net, config)) for the guide q(z | x)
GUIDES: dict[str, tuple[Callable[[TrainConfig], int], Callable[[nn.Module, TrainConfig], Encoder]]] = {
    "diagonal": (lambda c: 2 * c.latent_dim, lambda net, c: DiagonalNormalEncoder(net, c.latent_dim, scale=c.encoder_scale)),
    "iaf": (lambda c: IAFEncoder.output_size(c.latent_dim, c.latent_dim),
            lambda net, c: IAFEncoder(net, c.latent_dim, c.latent_dim, num_flows=c.num_flows)),
    "lowrank": (lambda c: LowRankNormalEncoder.output_size(c.latent_dim, c.rank),
                lambda net, c: LowRankNormalEncoder(net, c.latent_dim, c.rank)),
    "fullcov": (lambda c: FullCovarianceNormalEncoder.output_size(c.latent_dim),
                lambda net, c: FullCovarianceNormalEncoder(net, c.latent_dim)),
}

#: name -> objective builder: config -> object with ``differentiable_loss``
OBJECTIVES: dict[str, Callable[[TrainConfig], Any]] = {
    # Trace_ELBO's estimator and gradient, without a host sync per step (pyrovae/infer/elbo.py).
    "elbo": lambda c: SyncFreeTrace_ELBO(num_particles=c.num_particles, vectorize_particles=c.num_particles > 1,
                                         max_plate_nesting=1),
    "meanfield": lambda c: TraceMeanField_ELBO(num_particles=c.num_particles,
                                               vectorize_particles=c.num_particles > 1,
                                               max_plate_nesting=1),
    "iwae": lambda c: IWAE(num_particles=c.num_particles, max_plate_nesting=1),
    "dreg": lambda c: DReG(num_particles=c.num_particles, max_plate_nesting=1),
    # factors: beta-TC-VAE, --beta weights the total correlation (kl_weight below keeps the KL at 1).
    "tcvae": lambda c: BetaTCELBO(beta=c.beta, num_particles=c.num_particles, max_plate_nesting=1),
}


def kl_weight(config: TrainConfig) -> float:
    """The trainer's weight on the whole KL: ``--beta``, except for objectives that weight a part
    of it themselves (``tcvae`` weights the total correlation and keeps the KL at 1)."""
    return 1.0 if config.objective == "tcvae" else config.beta


#: --model ae: the point-mass guide q(z | x) = delta(f(x)), in the form of a GUIDES entry
AUTOENCODER_GUIDE = (lambda c: c.latent_dim, lambda net, c: DeltaEncoder(net, c.latent_dim))

#: --corrupt NAME:VALUE -> the corruption the guide's input goes through in training
CORRUPTIONS: dict[str, Callable[[float], nn.Module]] = {
    "gaussian": GaussianNoise,  # VALUE: standard deviation of additive noise
    "mask": MaskingNoise,  # VALUE: fraction of pixels set to 0
}


def build_corruption(spec: str) -> nn.Module:
    """The corruption ``--corrupt NAME:VALUE`` names, e.g. ``gaussian:0.3`` or ``mask:0.25``."""
    name, _, value = spec.partition(":")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"--corrupt must be NAME:VALUE, e.g. gaussian:0.3 or mask:0.25, got {spec!r}") from None
    make = _lookup(CORRUPTIONS, name, "--corrupt kind")
    try:
        return make(number)
    except ValueError as e:
        raise ConfigError(f"--corrupt {spec}: {e}") from None


def _lookup(table: dict[str, Any], name: str, option: str) -> Any:
    try:
        return table[name]
    except KeyError:
        raise ConfigError(f"unknown {option} {name!r}; choose one of {', '.join(sorted(table))}") from None


def build_vae(config: TrainConfig, image_shape: Shape) -> VAE:
    """Build the VAE that ``config`` describes for data points of shape ``image_shape``."""
    if config.model in VQ_MODELS:
        return build_vq(config, image_shape)
    make_nets = _lookup(NETWORKS, config.network, "--network")
    make_likelihood = _lookup({**LIKELIHOODS, **EIGHT_BIT_LIKELIHOODS}, config.likelihood, "--likelihood")
    out_shape = tuple(image_shape)
    if config.likelihood in EIGHT_BIT_LIKELIHOODS:  # the decoder gives several parameters per value
        output_shape, make_eight_bit = make_likelihood
        out_shape = output_shape(config, out_shape)
        make_likelihood = lambda net, shape: make_eight_bit(net, shape, config)  # noqa: E731
    make_prior = _lookup(PRIORS, config.prior, "--prior")
    guide_size, make_guide = _lookup(GUIDES, config.guide, "--guide")
    if config.model == "ae":  # an autoencoder is a VAE with a point-mass guide
        guide_size, make_guide = AUTOENCODER_GUIDE
    if config.network == "conv":
        check_image_shape(image_shape)
    encoder_net, decoder_net = make_nets(config, tuple(image_shape), guide_size(config), out_shape)
    encoder = make_guide(encoder_net, config)
    likelihood = make_likelihood(decoder_net, tuple(image_shape))
    prior = make_prior(config, encoder, tuple(image_shape))
    if config.corrupt:  # denoising: the guide reads a corrupted input (the prior keeps the plain encoder)
        encoder = CorruptedInput(encoder, build_corruption(config.corrupt))
    return VAE(encoder, likelihood, prior)


#: --model name -> VQ-VAE builder (image shape, likelihood constructor, **settings) -> VQVAE
VQ_BUILDERS: dict[str, Callable[..., VAE]] = {"vqvae": conv_vqvae, "vqvae2": conv_vqvae2}


def build_vq(config: TrainConfig, image_shape: Shape) -> VAE:
    """The VQ-VAE or VQ-VAE-2 that ``config`` describes (conv nets, PixelCNN priors, uniform until fitted)."""
    make_likelihood = _lookup({**LIKELIHOODS, **EIGHT_BIT_LIKELIHOODS}, config.likelihood, "--likelihood")
    out_shape = tuple(image_shape)
    if config.likelihood in EIGHT_BIT_LIKELIHOODS:  # the decoder gives several parameters per value
        output_shape, make_eight_bit = make_likelihood
        out_shape = output_shape(config, out_shape)
        make_likelihood = lambda net, shape: make_eight_bit(net, shape, config)  # noqa: E731
    return VQ_BUILDERS[config.model](
        tuple(image_shape), make_likelihood, codebook_size=config.codebook_size, code_dim=config.code_dim,
        map_size=config.code_map, channels=config.channels, res_blocks=config.res_blocks, ema=config.ema,
        commitment=config.commitment, restart_after=config.restart_after or None, decoder_out_shape=out_shape)


def needs_enumeration(config: TrainConfig) -> bool:
    """Whether the model has an enumerated site, so that its ELBO must be ``TraceEnum_ELBO``."""
    return config.prior == "gmm-enum"


def build_objective(config: TrainConfig) -> Any:
    """The training objective that ``config.objective`` names (enumeration-aware for ``elbo``)."""
    if needs_enumeration(config):
        if config.objective != "elbo":
            raise ConfigError(f"--prior {config.prior} sums its component out with TraceEnum_ELBO; "
                              f"--objective {config.objective} cannot do that: use --objective elbo")
        return TraceEnum_ELBO(num_particles=config.num_particles, vectorize_particles=config.num_particles > 1,
                              max_plate_nesting=1)
    return _lookup(OBJECTIVES, config.objective, "--objective")(config)


def build_eval_objective(config: TrainConfig) -> Any:
    """The ELBO behind the per-epoch figures: one particle, enumeration where the model needs it."""
    return TraceEnum_ELBO(max_plate_nesting=1) if needs_enumeration(config) else Trace_ELBO()


def pick_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("--device mps was asked for but MPS is not available; use --device cpu")
    return torch.device(name)


__all__ = ["NETWORKS", "LIKELIHOODS", "EIGHT_BIT_LIKELIHOODS", "PRIORS", "GUIDES", "OBJECTIVES", "build_vae",
           "build_objective", "build_eval_objective", "needs_enumeration", "pick_device", "kl_weight",
           "CORRUPTIONS", "build_corruption", "VQ_BUILDERS", "build_vq"]
