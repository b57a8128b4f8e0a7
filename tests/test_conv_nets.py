"""The conv encoder/decoder built from (C, H, W): shapes at every supported size, gradients, refusals."""

from __future__ import annotations

import pytest
import torch

from pyrovae.errors import InputError
from pyrovae.nn import ConvDecoderNet, ConvEncoderNet, check_image_shape, default_channels

SHAPES = [(1, 16, 16), (3, 16, 16), (1, 28, 28), (3, 28, 28), (1, 32, 32), (3, 32, 32), (3, 64, 64), (1, 64, 64),
          (3, 128, 128), (3, 17, 30)]
SMALL = dict(channels=(4, 8), hidden=8)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_vector_pair_shapes(shape: tuple[int, int, int]) -> None:
    encoder = ConvEncoderNet(shape, 6, **SMALL, res_blocks=1)
    decoder = ConvDecoderNet(3, shape, **SMALL, res_blocks=1)
    x = torch.rand(2, 5, *shape)  # two batch dimensions
    assert encoder(x).shape == (2, 5, 6)
    assert decoder(torch.randn(4, 2, 3)).shape == (4, 2, *shape)
    assert encoder.map_shape == (8, shape[1] // 4, shape[2] // 4)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_map_pair_shapes(shape: tuple[int, int, int]) -> None:
    encoder = ConvEncoderNet(shape, None, channels=(4, 8), out_channels=5)
    assert encoder.map_shape == encoder.out_shape == (5, shape[1] // 4, shape[2] // 4)
    decoder = ConvDecoderNet(encoder.map_shape, shape, channels=(4, 8))
    x = torch.rand(3, *shape)
    code = encoder(x)
    assert code.shape == (3, *encoder.map_shape)
    assert decoder(code).shape == (3, *shape)


def test_map_output_without_out_channels_is_the_last_stage() -> None:
    encoder = ConvEncoderNet((3, 32, 32), None, channels=(4, 8, 16))
    assert encoder(torch.rand(2, 3, 32, 32)).shape == (2, 16, 4, 4)


@pytest.mark.parametrize("map_input", [False, True])
def test_every_parameter_gets_a_gradient(map_input: bool) -> None:
    shape = (3, 32, 32)
    encoder = ConvEncoderNet(shape, None if map_input else 6, **SMALL, res_blocks=2,
                             out_channels=5 if map_input else None)
    decoder = ConvDecoderNet(encoder.map_shape if map_input else 6, shape, **SMALL, res_blocks=2)
    decoder(encoder(torch.rand(2, *shape))).square().sum().backward()
    for name, p in [*encoder.named_parameters(), *decoder.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_default_channels_bring_the_map_to_at_most_8() -> None:
    assert default_channels(28, 28) == (32, 64)
    assert default_channels(32, 32) == (32, 64)
    assert default_channels(16, 16) == (32,)
    assert default_channels(64, 64) == (32, 64, 128)
    assert default_channels(128, 128) == (32, 64, 128, 256)
    assert ConvEncoderNet((3, 128, 128), 4).map_shape == (256, 8, 8)


def test_the_28x28_pair_keeps_its_parameter_names_and_shapes() -> None:
    """The original pair (two stages of 32 and 64, a 256-unit head): old checkpoints load."""
    encoder, decoder = ConvEncoderNet(1, 20), ConvDecoderNet(10, 1)
    assert {k: tuple(v.shape) for k, v in encoder.state_dict().items()} == {
        "conv.0.weight": (32, 1, 4, 4), "conv.0.bias": (32,), "conv.2.weight": (64, 32, 4, 4), "conv.2.bias": (64,),
        "head.1.weight": (256, 64 * 7 * 7), "head.1.bias": (256,), "head.3.weight": (20, 256), "head.3.bias": (20,)}
    assert {k: tuple(v.shape) for k, v in decoder.state_dict().items()} == {
        "head.0.weight": (256, 10), "head.0.bias": (256,), "head.2.weight": (64 * 7 * 7, 256),
        "head.2.bias": (64 * 7 * 7,), "deconv.0.weight": (64, 32, 4, 4), "deconv.0.bias": (32,),
        "deconv.2.weight": (32, 1, 4, 4), "deconv.2.bias": (1,)}


@pytest.mark.parametrize("shape", [(3, 8, 8), (1, 15, 28), (3, 129, 129), (3, 256, 256), (784,), (1, 28)])
def test_unsupported_image_shapes_are_refused_naming_the_sizes(shape: tuple[int, ...]) -> None:
    with pytest.raises(InputError, match="16 to 128 pixels|shape \\(C, H, W\\)") as error:
        check_image_shape(shape)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 28, 28), (3, 64, 64), (1, 128, 128)])
def test_supported_image_shapes_pass(shape: tuple[int, int, int]) -> None:
    check_image_shape(shape)


def test_too_many_stages_for_the_size_is_refused() -> None:
    with pytest.raises(InputError, match="cannot halve a 16x16 image"):
        ConvEncoderNet((1, 16, 16), 4, channels=(4, 4, 4, 4, 4))


def test_a_decoder_map_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(InputError, match=r"give \(D, 8, 8\)"):
        ConvDecoderNet((5, 4, 4), (3, 32, 32), channels=(4, 8))
