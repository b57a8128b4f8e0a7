"""Plain torch networks (no distributions): the encoders' and decoders' function approximators."""

from pyrovae.nn.conv import ConvDecoderNet, ConvEncoderNet
from pyrovae.nn.mlp import MLP
from pyrovae.nn.nets import make_activation, num_parameters

__all__ = ["MLP", "ConvEncoderNet", "ConvDecoderNet", "make_activation", "num_parameters"]
