"""Plain torch networks (no distributions): the encoders' and decoders' function approximators."""

from pyrovae.nn.conv import (
    IMAGE_SIZES,
    ConvDecoderNet,
    ConvEncoderNet,
    ResidualBlock,
    check_image_shape,
    default_channels,
)
from pyrovae.nn.mlp import MLP
from pyrovae.nn.nets import make_activation, num_parameters

__all__ = ["MLP", "ConvEncoderNet", "ConvDecoderNet", "ResidualBlock", "IMAGE_SIZES", "check_image_shape",
           "default_channels", "make_activation", "num_parameters"]
