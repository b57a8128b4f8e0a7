"""Small rebuildable glue between networks: a flat code read as a map, a chain, a 1x1 convolution.

They exist so that models assembled by factories (VQ-VAE, dVAE) are made of parts whose
constructor arguments :mod:`pyrovae.nn.rebuild` records, and so save and load like every other
model; ``nn.Sequential`` of anonymous layers could not be rebuilt from a checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from pyrovae.nn.rebuild import Rebuildable


class MapFromVector(Rebuildable, nn.Module):
    """Read ``(*batch, D * h * w)`` as a ``(*batch, D, h, w)`` map, then apply ``net`` to it.

    Args:
        net: a network that takes a map, e.g. :class:`~pyrovae.nn.conv.ConvDecoderNet` built for
            ``(D, h, w)`` input.
        map_shape: ``(D, h, w)``.
    """

    def __init__(self, net: nn.Module, map_shape: Sequence[int]) -> None:
        super().__init__()
        self.net = net
        self.map_shape = tuple(int(s) for s in map_shape)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.reshape(*z.shape[:-1], *self.map_shape))


class Chain(Rebuildable, nn.Sequential):
    """``nn.Sequential`` of rebuildable modules, itself rebuildable: ``Chain(a, b)(x) = b(a(x))``."""

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__(*modules)


class PointwiseConv(Rebuildable, nn.Conv2d):
    """A 1x1 convolution: ``(*, in_channels, h, w) -> (*, out_channels, h, w)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 1)


__all__ = ["MapFromVector", "Chain", "PointwiseConv"]
