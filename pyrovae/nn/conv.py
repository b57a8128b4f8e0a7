"""Convolutional encoder and decoder networks built from the data's shape ``(C, H, W)``.

Both nets are a stack of stride-2 stages (4x4 kernels, padding 1), each halving the height and
width (rounding down; the decoder's transposed convolutions restore odd sizes exactly), with
optional residual blocks at the smallest map. The encoder ends in a linear head (a vector, e.g.
the parameters of ``q(z | x)``) or stops at the feature map ``(D, h, w)`` (the code map of a
VQ-VAE); the decoder starts from either and mirrors the encoder.

Supported sizes: any ``H`` and ``W`` (square or not, odd or even) that the stages can halve
without reaching zero, i.e. ``H >> len(channels) >= 1`` and the same for ``W``. Images of 16 to
128 pixels a side (:data:`IMAGE_SIZES`) are the range the command line accepts and the tests
cover (16, 28, 32, 64, 128); :func:`check_image_shape` refuses the rest.

Shapes, for ``channels=(c_1, ..., c_s)`` and the map ``(h, w) = (H >> s, W >> s)``::

    ConvEncoderNet((C, H, W), out_features=F)               (*batch, C, H, W) -> (*batch, F)
    ConvEncoderNet((C, H, W), None, out_channels=D)         (*batch, C, H, W) -> (*batch, D, h, w)
    ConvDecoderNet(F, (C, H, W))                            (*batch, F)       -> (*batch, C, H, W)
    ConvDecoderNet((D, h, w), (C, H, W))                    (*batch, D, h, w) -> (*batch, C, H, W)

The 28x28 pair of the first releases is the configuration ``in_shape=C`` (an int: ``(C, 28,
28)``), ``channels=32`` (an int ``c``: ``(c, 2c)``), ``hidden=256``; its parameter names are
unchanged, so its checkpoints load.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from pyrovae.errors import InputError
from pyrovae.nn.nets import make_activation
from pyrovae.nn.rebuild import Rebuildable

#: Image sizes (pixels a side) that the command line accepts for ``--network conv``.
IMAGE_SIZES = range(16, 129)


def default_channels(height: int, width: int) -> tuple[int, ...]:
    """Stage widths 32, 64, 128, 256 (then 256 again), as many stages as bring the smaller side
    of an ``height x width`` image to 8 pixels or fewer: 28 -> 7 (two stages), 32 -> 8 (two),
    64 -> 8 (three), 128 -> 8 (four), 16 -> 8 (one)."""
    widths: list[int] = []
    size = min(height, width)
    while size > 8:
        widths.append(min(32 * 2 ** len(widths), 256))
        size //= 2
    return tuple(widths) or (32,)


def check_image_shape(shape: Sequence[int]) -> None:
    """Refuse data that ``--network conv`` does not handle, with a one-line message.

    Args:
        shape: one data point's shape; it must be ``(C, H, W)`` with ``H`` and ``W`` each in
            :data:`IMAGE_SIZES` (16 to 128 pixels).

    Raises:
        InputError: naming the shape and the supported sizes.
    """
    shape = tuple(shape)
    if len(shape) != 3:
        raise InputError(f"--network conv needs images of shape (C, H, W), got data points of shape {shape}; "
                         "use --network mlp for flat vectors")
    _, height, width = shape
    if height not in IMAGE_SIZES or width not in IMAGE_SIZES:
        raise InputError(f"--network conv takes images of 16 to 128 pixels a side (e.g. 28, 32, 64), got "
                         f"{height}x{width}; resize the images or use --network mlp")


def _stage_widths(channels: int | Sequence[int] | None, height: int, width: int) -> tuple[int, ...]:
    if channels is None:
        return default_channels(height, width)
    if isinstance(channels, int):
        return (channels, 2 * channels)
    widths = tuple(int(c) for c in channels)
    if not widths or min(widths) < 1:
        raise InputError(f"channels must list at least one positive stage width, got {channels}")
    return widths


def _sizes(height: int, width: int, stages: int) -> list[tuple[int, int]]:
    """Spatial sizes before each stage and after the last: ``[(H, W), (H//2, W//2), ...]``."""
    sizes = [(height, width)]
    for _ in range(stages):
        h, w = sizes[-1]
        sizes.append((h // 2, w // 2))
    if min(sizes[-1]) < 1:
        raise InputError(f"{len(sizes) - 1} stride-2 stages cannot halve a {height}x{width} image; give fewer "
                         f"channels (stages), at most {min(height, width).bit_length() - 1}")
    return sizes


def _as_shape(shape: int | Sequence[int]) -> tuple[int, int, int]:
    """An int ``C`` means ``(C, 28, 28)``: the original 28x28 configuration."""
    if isinstance(shape, int):
        return (shape, 28, 28)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"image shape must be (C, H, W) with positive sizes, got {shape}")
    return shape  # type: ignore[return-value]


def _linear_stack(sizes: Sequence[int], activation: str, last_activation: bool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(sizes) - 2:
            layers.append(make_activation(activation))
    return layers


def _hidden_sizes(hidden: int | Sequence[int] | None) -> tuple[int, ...]:
    if hidden is None:
        return ()
    return (hidden,) if isinstance(hidden, int) else tuple(hidden)


class ResidualBlock(nn.Module):
    """``x + conv1x1(act(conv3x3(act(x))))``, shape-preserving (the blocks of van den Oord et al.
    2017's VQ-VAE). Input and output ``(N, channels, h, w)``."""

    def __init__(self, channels: int, activation: str = "relu") -> None:
        super().__init__()
        self.body = nn.Sequential(
            make_activation(activation), nn.Conv2d(channels, channels, 3, padding=1),
            make_activation(activation), nn.Conv2d(channels, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _residual_stack(channels: int, blocks: int, activation: str) -> list[nn.Module]:
    """``blocks`` residual blocks and a final activation; nothing when ``blocks == 0``."""
    if blocks < 0:
        raise InputError(f"res_blocks must be 0 or more, got {blocks}")
    if blocks == 0:
        return []
    return [*(ResidualBlock(channels, activation) for _ in range(blocks)), make_activation(activation)]


class ConvEncoderNet(Rebuildable, nn.Module):
    """Stride-2 convolutions from an image down to a small map, then a linear head or the map itself.

    Layers: ``len(channels)`` stages ``Conv2d(4, stride 2, padding 1) + activation``, then
    ``res_blocks`` residual blocks; then either the head ``Flatten, Linear(hidden), ...,
    Linear(out_features)`` (a vector output) or, with ``out_features=None``, the map, passed
    through a 1x1 convolution to ``out_channels`` channels when that is given (the
    pre-quantization convolution of a VQ-VAE).

    Args:
        in_shape: ``(C, H, W)`` of one image; an int ``C`` means ``(C, 28, 28)``.
        out_features: size of the vector output, or None to stop at the feature map.
        channels: widths of the stride-2 stages, e.g. ``(32, 64, 128)``; an int ``c`` means
            ``(c, 2c)``; None picks :func:`default_channels` for the image size.
        hidden: widths of the head's hidden layers (an int for one, None or ``()`` for none).
        activation: name of the nonlinearity (:func:`~pyrovae.nn.make_activation`).
        res_blocks: residual blocks at the smallest map.
        out_channels: with ``out_features=None``, the map's channels after a 1x1 convolution;
            None keeps the last stage's width (and adds no convolution).

    Attributes:
        map_shape: ``(D, h, w)``, the feature map before the head (the output when
            ``out_features`` is None).
        out_shape: shape of one output, ``(out_features,)`` or ``map_shape``.

    Shapes:
        input ``(*batch, C, H, W)``; output ``(*batch, out_features)`` or ``(*batch, *map_shape)``.

    Raises:
        InputError: if the stages would halve the image to nothing (see the module docstring).
    """

    def __init__(
        self, in_shape: int | Sequence[int], out_features: int | None = None,
        channels: int | Sequence[int] | None = None, hidden: int | Sequence[int] | None = 256,
        activation: str = "relu", *, res_blocks: int = 0, out_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.in_shape = _as_shape(in_shape)
        c, height, width = self.in_shape
        widths = _stage_widths(channels, height, width)
        h, w = _sizes(height, width, len(widths))[-1]
        layers: list[nn.Module] = []
        for a, b in zip((c, *widths[:-1]), widths):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), make_activation(activation)]
        self.conv = nn.Sequential(*layers, *_residual_stack(widths[-1], res_blocks, activation))
        self.channels = widths
        if out_features is None:
            if out_channels is not None:
                self.head = nn.Conv2d(widths[-1], out_channels, 1)
            else:
                self.head = nn.Identity()
            self.map_shape = (out_channels or widths[-1], h, w)
            self.out_shape = self.map_shape
        else:
            if out_channels is not None:
                raise InputError("out_channels sets the channels of a map output; give out_features=None with it")
            self.map_shape = (widths[-1], h, w)
            self.head = nn.Sequential(nn.Flatten(), *_linear_stack(
                [widths[-1] * h * w, *_hidden_sizes(hidden), out_features], activation, last_activation=False))
            self.out_shape = (out_features,)
        self.in_channels = c
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[:-3]
        out = self.head(self.conv(x.reshape(-1, *x.shape[-3:])))
        return out.reshape(*batch, *self.out_shape)


class ConvDecoderNet(Rebuildable, nn.Module):
    """Mirror of :class:`ConvEncoderNet`: from a vector or a feature map up to an image.

    Layers: a vector input goes through ``Linear(hidden), ..., Linear(D * h * w)`` (each with
    the activation) and is reshaped to ``(D, h, w)``; a map input ``(D_in, h, w)`` goes through a
    3x3 convolution to ``D`` channels and the activation. Then ``res_blocks`` residual blocks
    and the transposed stride-2 stages in reverse order of ``channels``, the last one producing
    ``C`` channels with no activation (logits, means or any other parameters).

    Args:
        in_shape: ``in_features`` (an int) for a vector input, or ``(D_in, h, w)`` for a map,
            where ``(h, w)`` must be the encoder's map size for ``out_shape``.
        out_shape: ``(C, H, W)`` of one output; an int ``C`` means ``(C, 28, 28)``. For a
            likelihood with several parameters per sub-pixel, ``C`` counts them all.
        channels, hidden, activation, res_blocks: as in :class:`ConvEncoderNet` (``channels``
            in the encoder's order, e.g. ``(32, 64, 128)``, which this net runs backwards; the
            default is picked from ``out_shape``'s height and width).

    Shapes:
        input ``(*batch, in_features)`` or ``(*batch, D_in, h, w)``; output ``(*batch, C, H, W)``.

    Raises:
        InputError: if a map input's size does not match ``out_shape`` and the stages.
    """

    def __init__(
        self, in_shape: int | Sequence[int], out_shape: int | Sequence[int],
        channels: int | Sequence[int] | None = None, hidden: int | Sequence[int] | None = 256,
        activation: str = "relu", *, res_blocks: int = 0,
    ) -> None:
        super().__init__()
        self.out_shape = _as_shape(out_shape)
        c, height, width = self.out_shape
        widths = _stage_widths(channels, height, width)
        sizes = _sizes(height, width, len(widths))
        h, w = sizes[-1]
        self.map_shape = (widths[-1], h, w)
        if isinstance(in_shape, int):
            self.in_shape: tuple[int, ...] = (in_shape,)
            self.head = nn.Sequential(*_linear_stack(
                [in_shape, *_hidden_sizes(hidden), widths[-1] * h * w], activation, last_activation=True))
        else:
            self.in_shape = tuple(int(s) for s in in_shape)
            if len(self.in_shape) != 3 or self.in_shape[1:] != (h, w):
                raise InputError(f"a decoder to {height}x{width} images through {len(widths)} stages starts from a "
                                 f"map of {h}x{w}, got an input of shape {self.in_shape}; give (D, {h}, {w})")
            self.head = nn.Sequential(nn.Conv2d(self.in_shape[0], widths[-1], 3, padding=1),
                                      make_activation(activation))
        layers: list[nn.Module] = _residual_stack(widths[-1], res_blocks, activation)
        targets = sizes[:-1][::-1]  # the size each transposed stage must reach, smallest first
        outs = (*widths[::-1][1:], c)
        for i, (a, b, (th, tw), (sh, sw)) in enumerate(zip(widths[::-1], outs, targets, sizes[::-1])):
            padding = (th - 2 * sh, tw - 2 * sw)  # 1 where the encoder rounded an odd size down
            layers.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1, output_padding=padding))
            if i < len(widths) - 1:
                layers.append(make_activation(activation))
        self.deconv = nn.Sequential(*layers)
        self.channels = widths
        self.in_features = self.in_shape[0] if len(self.in_shape) == 1 else None
        self.out_features = c * height * width

    def forward(self, z: Tensor) -> Tensor:
        batch = z.shape[: z.dim() - len(self.in_shape)]
        h = self.head(z.reshape(-1, *self.in_shape)).reshape(-1, *self.map_shape)
        out = self.deconv(h)
        return out.reshape(*batch, *out.shape[1:])


__all__ = ["ConvEncoderNet", "ConvDecoderNet", "ResidualBlock", "IMAGE_SIZES", "check_image_shape",
           "default_channels"]
