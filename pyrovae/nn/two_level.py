"""The decoder network of VQ-VAE-2: reads a top and a bottom code map, flattened and concatenated."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pyrovae.nn.conv import ConvDecoderNet
from pyrovae.nn.rebuild import Rebuildable


class TwoLevelDecoderNet(Rebuildable, nn.Module):
    """``cat(z_top, z_bottom)`` (both flattened channel-first) to an image.

    The top map is brought up to the bottom map's size by transposed convolutions, concatenated
    with the bottom map along the channels, and decoded (Razavi et al. 2019, figure 2a).

    Args:
        top_shape: ``(D, h_t, w_t)``.
        bottom_shape: ``(D, h_b, w_b)``, each side the top's doubled (as ``ConvEncoderNet``
            halves it: ``h_t = h_b // 2``).
        out_shape: ``(C, H, W)`` of the output.
        channels: stage widths of the decoder from the bottom map to the image.
        res_blocks: residual blocks at the bottom map.

    Shapes:
        input ``(batch, prod(top_shape) + prod(bottom_shape))``; output ``(batch, C, H, W)``.
    """

    def __init__(self, top_shape: tuple[int, int, int], bottom_shape: tuple[int, int, int],
                 out_shape: tuple[int, int, int], channels: tuple[int, ...], res_blocks: int = 0) -> None:
        super().__init__()
        self.top_shape, self.bottom_shape = tuple(top_shape), tuple(bottom_shape)
        self.top_size = top_shape[0] * top_shape[1] * top_shape[2]
        self.upsample = ConvDecoderNet(self.top_shape, self.bottom_shape, (self.top_shape[0],))
        merged = (self.top_shape[0] + self.bottom_shape[0], *self.bottom_shape[1:])
        self.decoder = ConvDecoderNet(merged, out_shape, channels, res_blocks=res_blocks)

    def forward(self, z: Tensor) -> Tensor:
        top = z[..., : self.top_size].reshape(-1, *self.top_shape)
        bottom = z[..., self.top_size :].reshape(-1, *self.bottom_shape)
        out = self.decoder(torch.cat([self.upsample(top), bottom], dim=1))
        return out.reshape(*z.shape[:-1], *out.shape[1:])


__all__ = ["TwoLevelDecoderNet"]
