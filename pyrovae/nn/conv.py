"""Convolutional encoder and decoder networks for images."""

from __future__ import annotations

from torch import Tensor, nn

from pyrovae.nn.nets import make_activation


class ConvEncoderNet(nn.Module):
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


class ConvDecoderNet(nn.Module):
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


__all__ = ["ConvEncoderNet", "ConvDecoderNet"]
