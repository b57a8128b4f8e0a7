"""Plain torch networks (no distributions): the encoders' and decoders' function approximators."""

from pyrovae.nn.nets import MLP, ConvDecoderNet, ConvEncoderNet, make_activation, num_parameters

__all__ = ["MLP", "ConvEncoderNet", "ConvDecoderNet", "make_activation", "num_parameters"]
