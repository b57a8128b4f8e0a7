"""Factory functions for convolutional VQ-VAE and VQ-VAE-2 on images of any size, CPU-sized by default.

``conv_vqvae((1, 28, 28), BernoulliLikelihood)`` gives a VQ-VAE with a 7x7 map of 16-dim codes
from a codebook of 256 (the MNIST starting point of the issue); ``codebook_size=512,
code_dim=64`` on ``(3, 32, 32)`` gives the 8x8 map of van den Oord et al. 2017's CIFAR setting.
The code map is the image halved a whole number of times by :class:`~pyrovae.nn.ConvEncoderNet`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from pyrovae.errors import InputError
from pyrovae.guides.categorical import (
    CategoricalCodeEncoder,
    CodeEmbedding,
    UniformOneHotPrior,
)
from pyrovae.guides.quantizer import QuantizingEncoder, VectorQuantizer
from pyrovae.likelihoods.elementwise import Likelihood
from pyrovae.models.vae import VAE
from pyrovae.models.vqvae import VQVAE, VQVAE2, TwoLevelQuantizingEncoder
from pyrovae.nn.conv import ConvDecoderNet, ConvEncoderNet
from pyrovae.nn.glue import Chain, MapFromVector, PointwiseConv
from pyrovae.nn.two_level import TwoLevelDecoderNet
from pyrovae.priors.pixelcnn import PixelCNNPrior

Shape = tuple[int, ...]
MakeLikelihood = Callable[[nn.Module, Shape], Likelihood]


def code_map_stages(image_shape: Sequence[int], map_size: int | None) -> int:
    """How many stride-2 halvings take an image of ``(C, H, W)`` to a ``map_size`` map (by height).

    ``None`` means a quarter of the height (two halvings), as in van den Oord et al. 2017.

    Raises:
        InputError: if the map is larger than one halving of the image, or no whole number of
            halvings reaches it.
    """
    if len(image_shape) != 3:
        raise InputError(f"a VQ-VAE needs images of shape (C, H, W), got data points of shape {tuple(image_shape)}")
    height = int(image_shape[1])
    if map_size is None:
        map_size = max(height // 4, 1)
    if map_size < 1 or map_size > height // 2:
        raise InputError(f"a {map_size}x{map_size} code map is larger than a {height}-pixel-high image allows "
                         f"(at most {height // 2}, one halving); choose --code-map {height // 2} or smaller")
    sizes = [height >> s for s in range(1, height.bit_length())]
    if map_size not in sizes:
        raise InputError(f"--code-map {map_size} is not the image height {height} halved a whole number of "
                         f"times; choose one of {', '.join(map(str, sizes))}")
    return sizes.index(map_size) + 1


def _widths(channels: Sequence[int] | None, stages: int) -> tuple[int, ...]:
    if channels is None:
        return tuple(min(32 * 2 ** i, 128) for i in range(stages))
    if len(channels) != stages:
        raise InputError(f"the code map needs {stages} stride-2 stages, so --channels must list {stages} "
                         f"widths, got {tuple(channels)}")
    return tuple(channels)


def conv_vqvae(image_shape: Sequence[int], make_likelihood: MakeLikelihood, *, codebook_size: int = 256,
               code_dim: int = 16, map_size: int | None = None, channels: Sequence[int] | None = None,
               res_blocks: int = 0, ema: bool = True, commitment: float = 0.25, restart_after: int | None = 100,
               prior_channels: int = 32, prior_layers: int = 5, decoder_out_shape: Shape | None = None) -> VQVAE:
    """A convolutional VQ-VAE with a gated PixelCNN prior (uniform until fitted).

    Args:
        image_shape: ``(C, H, W)``.
        make_likelihood: ``(decoder net, image_shape) -> Likelihood``, e.g. ``BernoulliLikelihood``.
        codebook_size, code_dim: ``K`` and ``D``.
        map_size: height of the code map (see :func:`code_map_stages`).
        channels: widths of the encoder's stride-2 stages (one per halving).
        res_blocks: residual blocks at the code map's resolution in encoder and decoder.
        ema, commitment, restart_after: see :class:`~pyrovae.guides.quantizer.VectorQuantizer`.
        prior_channels, prior_layers: the PixelCNN's size.
        decoder_out_shape: the decoder's output shape when the likelihood has several
            parameters per value; default ``image_shape``.
    """
    image_shape = tuple(int(s) for s in image_shape)
    widths = _widths(channels, code_map_stages(image_shape, map_size))
    encoder_net = ConvEncoderNet(image_shape, None, widths, res_blocks=res_blocks, out_channels=code_dim)
    map_shape = encoder_net.map_shape[1:]
    quantizer = VectorQuantizer(codebook_size, code_dim, commitment=commitment, ema=ema, restart_after=restart_after)
    decoder_net = MapFromVector(ConvDecoderNet((code_dim, *map_shape), decoder_out_shape or image_shape, widths,
                                               res_blocks=res_blocks), (code_dim, *map_shape))
    prior = PixelCNNPrior(quantizer, map_shape, channels=prior_channels, num_layers=prior_layers)
    return VQVAE(QuantizingEncoder(encoder_net, quantizer, map_shape), make_likelihood(decoder_net, image_shape), prior)


def conv_vqvae2(image_shape: Sequence[int], make_likelihood: MakeLikelihood, *, codebook_size: int = 256,
                code_dim: int = 16, map_size: int | None = None, channels: Sequence[int] | None = None,
                res_blocks: int = 0, ema: bool = True, commitment: float = 0.25, restart_after: int | None = 100,
                prior_channels: int = 32, prior_layers: int = 5, decoder_out_shape: Shape | None = None) -> VQVAE2:
    """A convolutional VQ-VAE-2: a bottom map of height ``map_size`` and a top map of half that.

    For 32x32 images the maps are 8x8 and 4x4, for 64x64 16x16 and 8x8 (default ``map_size``:
    a quarter of the height). Arguments as in :func:`conv_vqvae`; both levels share ``K`` and ``D``.

    Raises:
        InputError: if the top map would be smaller than 2x2 (images too small for two levels).
    """
    image_shape = tuple(int(s) for s in image_shape)
    widths = _widths(channels, code_map_stages(image_shape, map_size))
    bottom_net = ConvEncoderNet(image_shape, None, widths, res_blocks=res_blocks)
    features, h_b, w_b = bottom_net.map_shape
    if min(h_b, w_b) // 2 < 2:
        raise InputError(f"{image_shape[1]}x{image_shape[2]} images are too small for two levels of codes: the "
                         f"{h_b}x{w_b} bottom map halves to a top map under 2x2; use images of at least 16 pixels "
                         "a side with a bottom --code-map of 4 or more, or --model vqvae")
    top_net = ConvEncoderNet(bottom_net.map_shape, None, (features,), out_channels=code_dim)
    top_shape = top_net.map_shape[1:]
    top_to_bottom = ConvDecoderNet((code_dim, *top_shape), (features, h_b, w_b), (features,))
    bottom_head = PointwiseConv(2 * features, code_dim)
    top_q = VectorQuantizer(codebook_size, code_dim, commitment=commitment, ema=ema, restart_after=restart_after)
    bottom_q = VectorQuantizer(codebook_size, code_dim, commitment=commitment, ema=ema, restart_after=restart_after)
    encoder = TwoLevelQuantizingEncoder(bottom_net, top_net, top_to_bottom, bottom_head, top_q, bottom_q,
                                        top_shape, (h_b, w_b))
    decoder_net = TwoLevelDecoderNet((code_dim, *top_shape), (code_dim, h_b, w_b), decoder_out_shape or image_shape,
                                     widths, res_blocks=res_blocks)
    top_prior = PixelCNNPrior(top_q, top_shape, channels=prior_channels, num_layers=prior_layers)
    bottom_prior = PixelCNNPrior(bottom_q, (h_b, w_b), channels=prior_channels, num_layers=prior_layers,
                                 context_shape=(code_dim, *top_shape))
    return VQVAE2(encoder, make_likelihood(decoder_net, image_shape), top_prior, bottom_prior)


def conv_dvae(image_shape: Sequence[int], make_likelihood: MakeLikelihood, *, codebook_size: int = 256,
              code_dim: int = 16, map_size: int | None = None, channels: Sequence[int] | None = None,
              res_blocks: int = 0, temperature: float = 1.0, decoder_out_shape: Shape | None = None) -> VAE:
    """The variational cousin of :func:`conv_vqvae`: a categorical posterior per position with a
    straight-through Gumbel-softmax gradient and a uniform prior (:mod:`pyrovae.guides.categorical`),
    a plain :class:`~pyrovae.VAE` that ``Trace_ELBO`` or ``TraceMeanField_ELBO`` (analytic KL) trains.

    Arguments as in :func:`conv_vqvae`; ``temperature`` is the Gumbel-softmax ``tau``.
    """
    image_shape = tuple(int(s) for s in image_shape)
    widths = _widths(channels, code_map_stages(image_shape, map_size))
    encoder_net = ConvEncoderNet(image_shape, None, widths, res_blocks=res_blocks, out_channels=codebook_size)
    map_shape = encoder_net.map_shape[1:]
    decoder_net = Chain(CodeEmbedding(codebook_size, code_dim, map_shape),
                        ConvDecoderNet((code_dim, *map_shape), decoder_out_shape or image_shape, widths,
                                       res_blocks=res_blocks))
    encoder = CategoricalCodeEncoder(encoder_net, codebook_size, map_shape, temperature)
    prior = UniformOneHotPrior(map_shape[0] * map_shape[1], codebook_size)
    return VAE(encoder, make_likelihood(decoder_net, image_shape), prior, name="dvae")


__all__ = ["code_map_stages", "conv_dvae", "conv_vqvae", "conv_vqvae2"]
