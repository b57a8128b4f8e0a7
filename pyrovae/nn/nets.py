"""Plain torch networks: an MLP and a small convolutional encoder/decoder pair for 28x28 images.

Nothing here is probabilistic: these modules map tensors to tensors, and the likelihoods,
encoders and priors wrap them into distributions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from pyrovae.nn.rebuild import Rebuildable

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "softplus": nn.Softplus,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
}


def make_activation(name: str) -> nn.Module:
    """Build an activation module by name (one of ``ACTIVATIONS``)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


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


class ConvEncoderNet(Rebuildable, nn.Module):
    """Two stride-2 convolutions and a linear layer: ``(*batch, C, 28, 28) -> (*batch, out_features)``."""

    def __init__(self, in_channels: int, out_features: int, channels: int = 32, hidden: int = 256,
                 activation: str = "relu") -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, channels, 4, stride=2, padding=1),  # 28 -> 14
            make_activation(activation),
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),  # 14 -> 7
            make_activation(activation),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * channels * 7 * 7, hidden), make_activation(activation),
            nn.Linear(hidden, out_features),
        )
        self.in_channels = in_channels
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[:-3]
        h = self.head(self.conv(x.reshape(-1, *x.shape[-3:])))
        return h.reshape(*batch, self.out_features)


class ConvDecoderNet(Rebuildable, nn.Module):
    """Mirror of :class:`ConvEncoderNet`: ``(*batch, in_features) -> (*batch, C, 28, 28)`` logits/means."""

    def __init__(self, in_features: int, out_channels: int, channels: int = 32, hidden: int = 256,
                 activation: str = "relu") -> None:
        super().__init__()
        self.channels = channels
        self.head = nn.Sequential(
            nn.Linear(in_features, hidden), make_activation(activation),
            nn.Linear(hidden, 2 * channels * 7 * 7), make_activation(activation),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1),  # 7 -> 14
            make_activation(activation),
            nn.ConvTranspose2d(channels, out_channels, 4, stride=2, padding=1),  # 14 -> 28
        )
        self.in_features = in_features
        self.out_features = out_channels * 28 * 28

    def forward(self, z: Tensor) -> Tensor:
        batch = z.shape[:-1]
        h = self.head(z.reshape(-1, z.shape[-1])).reshape(-1, 2 * self.channels, 7, 7)
        out = self.deconv(h)
        return out.reshape(*batch, *out.shape[1:])


def num_parameters(module: nn.Module) -> int:
    """Number of trainable scalars in ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["MLP", "ConvEncoderNet", "ConvDecoderNet", "make_activation", "num_parameters", "ACTIVATIONS"]
