"""A fully connected network of any depth."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from pyrovae.nn.nets import make_activation
from pyrovae.nn.rebuild import Rebuildable


class MLP(Rebuildable, nn.Module):
    """Fully connected network that flattens a structured input, e.g. an image, first.

    Args:
        in_shape: shape of one input, e.g. ``784``, ``(784,)`` or ``(1, 28, 28)``.
        hidden: sizes of the hidden layers, e.g. ``(400,)``.
        out_features: size of the output.
        activation: name of the nonlinearity between layers (none after the last).

    Shapes:
        input ``(*batch, *in_shape)``, output ``(*batch, out_features)``.
    """

    def __init__(
        self, in_shape: int | Sequence[int], hidden: Sequence[int], out_features: int,
        activation: str = "softplus",
    ) -> None:
        super().__init__()
        self.in_shape = (in_shape,) if isinstance(in_shape, int) else tuple(in_shape)
        self.in_features = math.prod(self.in_shape)
        sizes = [self.in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(make_activation(activation))
        self.layers = nn.Sequential(*layers)
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        if len(self.in_shape) > 1:
            x = x.reshape(*x.shape[: x.dim() - len(self.in_shape)], self.in_features)
        return self.layers(x)


__all__ = ["MLP"]
