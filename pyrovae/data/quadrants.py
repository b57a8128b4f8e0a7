"""MNIST quadrant completion (Pyro's CVAE tutorial task): some quadrants visible, the rest hidden.

The visible part of an image is its *context*: the image with every hidden pixel set to
:data:`HIDDEN` (-1, a value no pixel takes), so the mask travels with the data and needs no
second tensor. The *target* is the whole image; models score only its hidden pixels.

Layout (as in the tutorial): 1 visible quadrant = bottom left; 2 = the left half;
3 = everything but the bottom right.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Fill value of hidden pixels in a context image.
HIDDEN = -1.0


def visible_mask(image_shape: tuple[int, ...] | torch.Size, num_visible: int) -> Tensor:
    """Boolean mask ``image_shape`` (``(C, H, W)``), True where a pixel is visible.

    Raises:
        ValueError: unless ``num_visible`` is 1, 2 or 3.
    """
    if num_visible not in (1, 2, 3):
        raise ValueError(f"the number of visible quadrants must be 1, 2 or 3, got {num_visible}")
    h, w = image_shape[-2:]
    mask = torch.zeros(image_shape, dtype=torch.bool)
    mask[..., h // 2 :, : w // 2] = True
    if num_visible >= 2:
        mask[..., :, : w // 2] = True
    if num_visible == 3:
        mask[..., : h // 2, :] = True
    return mask


def hide_quadrants(images: Tensor, num_visible: int) -> Tensor:
    """Context images: ``images`` ``(N, C, H, W)`` with the hidden quadrants set to ``HIDDEN``."""
    mask = visible_mask(images.shape[1:], num_visible).to(images.device)
    return torch.where(mask, images, torch.full_like(images, HIDDEN))


def hidden_pixels(context: Tensor) -> Tensor:
    """Boolean tensor, shape of ``context``, True where a pixel is hidden (to be predicted)."""
    return context == HIDDEN


def fill_hidden(context: Tensor, values: Tensor) -> Tensor:
    """``context`` with its hidden pixels replaced by ``values`` (same shape)."""
    return torch.where(hidden_pixels(context), values, context)


__all__ = ["HIDDEN", "visible_mask", "hide_quadrants", "hidden_pixels", "fill_hidden"]
