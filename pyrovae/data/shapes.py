"""Shapes drawn on the spot from known factors: a dSprites-like set and a colour variant.

dSprites (Matthey, Higgins, Hassabis and Lerchner, "dSprites: Disentanglement testing Sprites
dataset", DeepMind 2017, Apache-2.0) is every combination of five factors drawn once as a
64x64 binary image: shape (square, ellipse, heart), scale (6 values, 0.5 to 1), orientation
(40 values, 0 to 2 pi), position x and y (32 values each, 0 to 1): 737,280 images. The
original file cannot be downloaded on every machine, so :func:`dsprites` re-draws the same
factor grid with its own renderer; the images are *dSprites-like* (the heart and the exact
pixel sizes differ from DeepMind's bitmaps), the factor grid is the published one.

How images are made, and why no 3 GB file is needed: the 720 sprites of every (shape, scale,
orientation) are drawn once into a 32x32 window (4x4 supersampling, kept where at least half
of a pixel is covered), which takes well under a second. Every image is then one of those
sprites pasted into a blank 64x64 canvas at a whole-pixel offset given by its position
factors, so image ``i`` is computed from its index alone, in any order, in constant memory:
a data set of 737,280 images costs a few megabytes and streams through a ``DataLoader``.
Positions step by whole pixels, so the 32 positions span 31 pixels (the sprite's centre moves
from pixel 16 to 47) and no sprite is ever cut by the border.

:func:`colour_shapes` adds the object's hue and the background's hue as two further factors
(3 channels, the object bright and saturated, the background darker, so the object stays
visible when the hues agree) on a coarser geometric grid so that the set keeps a size that
one epoch can visit.

The factors are the labels: :attr:`GeneratedShapes.factors` names them and lists their values,
:meth:`GeneratedShapes.factor_codes` gives each image's index into every factor's values, and
:meth:`GeneratedShapes.index_of` inverts it, which is what disentanglement metrics need (fix
one factor, vary the others, find the images).

Example:
    >>> shapes = dsprites()
    >>> len(shapes), shapes.image_shape
    (737280, (1, 64, 64))
    >>> codes = shapes.sample_codes(8, np.random.default_rng(0))   # (8, 5) factor indices
    >>> images = shapes.images(shapes.index_of(codes))              # uint8 (8, 1, 64, 64)
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

SHAPE_NAMES = ("square", "ellipse", "heart")

#: Size of the canvas and of the window a sprite is drawn in (pixels).
CANVAS = 64
WINDOW = 32
#: Half-width of the square at scale 1, in pixels: a rotated square (half-diagonal 10 * sqrt 2
#: = 14.1) fits the 32-pixel window around its centre, so nothing is ever clipped.
HALF_SIZE = 10.0
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class Factor:
    """One generative factor: its name and the values it takes, in order.

    Attributes:
        name: e.g. ``"orientation"``.
        values: float array ``(size,)``; a factor code ``k`` means ``values[k]``. For ``shape``
            the values are ``0, 1, 2`` standing for :data:`SHAPE_NAMES`.
    """

    name: str
    values: np.ndarray

    @property
    def size(self) -> int:
        """Number of values the factor takes."""
        return len(self.values)


class GeneratedShapes(torch.utils.data.Dataset):
    """Every combination of a grid of factors, one image each, drawn from its index on demand.

    Image ``i`` has the factor codes of ``i`` written in mixed radix over :attr:`factor_sizes`
    (the first factor varies slowest, as in dSprites' ``latents_classes``). As a torch
    ``Dataset`` an item is ``(image, codes)``: image float32 ``(C, 64, 64)`` in ``[0, 1]``,
    codes int64 ``(num_factors,)``. Use :func:`dsprites` or :func:`colour_shapes` to build one.

    Args:
        factors: The factors in index order; the first five must be shape, scale, orientation,
            pos_x and pos_y; colour sets add ``object_hue`` and ``background_hue``.
        position_step: Pixels between neighbouring position values (1 for 32 positions,
            2 for 16), so that the centre always runs over pixels 16 to 47.
        name: Name of the set, e.g. ``"dsprites"``.
    """

    def __init__(self, factors: tuple[Factor, ...], position_step: int, name: str) -> None:
        names = tuple(f.name for f in factors)
        if names[:5] != ("shape", "scale", "orientation", "pos_x", "pos_y"):
            raise ValueError(f"the first factors must be shape, scale, orientation, pos_x, pos_y; got {names}")
        self.factors = factors
        self.position_step = position_step
        self.name = name
        self.colour = "object_hue" in names
        self._radix = np.cumprod((1,) + self.factor_sizes[::-1])[::-1][1:].astype(np.int64)
        self._sprites: np.ndarray | None = None  # drawn on first use, in each worker process

    # -- the factor grid --------------------------------------------------------------------

    @property
    def factor_names(self) -> tuple[str, ...]:
        """Names of the factors in index order."""
        return tuple(f.name for f in self.factors)

    @property
    def factor_sizes(self) -> tuple[int, ...]:
        """Number of values of each factor, e.g. ``(3, 6, 40, 32, 32)`` for dSprites."""
        return tuple(f.size for f in self.factors)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, 64, 64)`` with ``C`` 1 (binary) or 3 (colour)."""
        return (3 if self.colour else 1, CANVAS, CANVAS)

    def __len__(self) -> int:
        return int(np.prod(self.factor_sizes))

    def factor_codes(self, indices: np.ndarray | Tensor | int) -> np.ndarray:
        """Factor codes of images: int64 ``(n, num_factors)``, entry ``[j, k]`` indexes ``factors[k].values``."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"image indices must lie in 0..{len(self) - 1}")
        return (indices[:, None] // self._radix) % np.asarray(self.factor_sizes)

    def factor_values(self, indices: np.ndarray | Tensor | int) -> np.ndarray:
        """Factor values of images: float64 ``(n, num_factors)``, e.g. the orientation in radians."""
        codes = self.factor_codes(indices)
        return np.stack([f.values[codes[:, k]] for k, f in enumerate(self.factors)], axis=1)

    def index_of(self, codes: np.ndarray) -> np.ndarray:
        """The image index of each row of factor codes ``(n, num_factors)``; inverse of :meth:`factor_codes`."""
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, len(self.factors))
        if (codes < 0).any() or (codes >= np.asarray(self.factor_sizes)).any():
            raise IndexError(f"factor codes must lie below the factor sizes {self.factor_sizes}")
        return codes @ self._radix

    def sample_codes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` factor codes ``(n, num_factors)``, each factor uniform over its values."""
        return np.stack([rng.integers(0, size, n) for size in self.factor_sizes], axis=1)

    # -- drawing ------------------------------------------------------------------------------

    def images(self, indices: np.ndarray | Tensor | int) -> np.ndarray:
        """The images of ``indices``: uint8 ``(n, C, 64, 64)``, binary 0/255 or RGB 0..255."""
        codes = self.factor_codes(indices)
        sprites = self._sprite_bank()
        n = codes.shape[0]
        masks = np.zeros((n, CANVAS, CANVAS), dtype=bool)
        window = sprites[codes[:, 0], codes[:, 1], codes[:, 2]]  # (n, WINDOW, WINDOW)
        top = codes[:, 4] * self.position_step
        left = codes[:, 3] * self.position_step
        for j in range(n):  # a paste per image: a 32x32 copy, cheap beside any network step
            masks[j, top[j]:top[j] + WINDOW, left[j]:left[j] + WINDOW] = window[j]
        if not self.colour:
            return (masks[:, None] * np.uint8(255)).astype(np.uint8)
        names = self.factor_names
        object_rgb = _hue_colours(self.factors[names.index("object_hue")].values, 0.9, 0.95)
        background_rgb = _hue_colours(self.factors[names.index("background_hue")].values, 0.6, 0.4)
        fg = object_rgb[codes[:, names.index("object_hue")]][:, :, None, None]
        bg = background_rgb[codes[:, names.index("background_hue")]][:, :, None, None]
        return np.where(masks[:, None], fg, bg).astype(np.uint8)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image = torch.from_numpy(self.images(index)[0]).float().div_(255.0)
        return image, torch.from_numpy(self.factor_codes(index)[0])

    def _sprite_bank(self) -> np.ndarray:
        """Boolean ``(3, num_scales, num_orientations, 32, 32)``: every sprite, centred in its window."""
        if self._sprites is None:
            scales, orientations = self.factors[1].values, self.factors[2].values
            bank = np.zeros((3, len(scales), len(orientations), WINDOW, WINDOW), dtype=bool)
            for shape in range(3):
                for a, scale in enumerate(scales):
                    bank[shape, a] = draw_sprites(shape, float(scale), orientations)
            self._sprites = bank
        return self._sprites

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_sprites"] = None  # each DataLoader worker redraws the bank instead of receiving it
        return state


def draw_sprites(shape: int, scale: float, orientations: np.ndarray) -> np.ndarray:
    """One shape at one scale in every orientation: boolean ``(len(orientations), 32, 32)``.

    The shape's centre sits at the window's centre (pixel corner 16, 16); a pixel is on when at
    least half of its 4x4 sub-samples fall inside the rotated shape. Coordinates are in units of
    ``HALF_SIZE * scale`` pixels; rows grow downwards, angles turn anticlockwise on screen.

    Args:
        shape: 0 square (half-width 1), 1 ellipse (semi-axes 1 and 0.5), 2 heart (about 2 wide).
        scale: Size factor, 0.5 to 1 in dSprites.
        orientations: Angles in radians, ``(num_orientations,)``.
    """
    offsets = (np.arange(WINDOW * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - WINDOW / 2
    dx = offsets[None, None, :] / (HALF_SIZE * scale)      # columns, rightwards
    dy = -offsets[None, :, None] / (HALF_SIZE * scale)     # rows, upwards
    theta = np.asarray(orientations, dtype=np.float64)[:, None, None]
    u = np.cos(theta) * dx + np.sin(theta) * dy
    v = -np.sin(theta) * dx + np.cos(theta) * dy
    if shape == 0:
        inside = np.maximum(np.abs(u), np.abs(v)) <= 1.0
    elif shape == 1:
        inside = u**2 + (v / 0.5) ** 2 <= 1.0
    elif shape == 2:
        # (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 spans y in [-1, 1.25]; shifted so the heart is centred.
        x, y = u * 1.1, v * 1.1 + 0.12
        inside = (x**2 + y**2 - 1.0) ** 3 - x**2 * y**3 <= 0.0
    else:
        raise ValueError(f"shape must be 0 (square), 1 (ellipse) or 2 (heart), got {shape}")
    coverage = inside.reshape(len(theta), WINDOW, _SUPERSAMPLE, WINDOW, _SUPERSAMPLE).mean(axis=(2, 4))
    return coverage >= 0.5


def _hue_colours(hues: np.ndarray, saturation: float, value: float) -> np.ndarray:
    """uint8 RGB ``(len(hues), 3)`` of the given hues at one saturation and brightness."""
    rgb = [colorsys.hsv_to_rgb(float(h), saturation, value) for h in hues]
    return np.round(np.asarray(rgb) * 255).astype(np.uint8)


def _geometry(num_orientations: int, num_positions: int, full_turn: bool) -> tuple[Factor, ...]:
    orientation = (np.linspace(0.0, 2 * math.pi, num_orientations) if full_turn
                   else np.arange(num_orientations) * (2 * math.pi / num_orientations))
    return (
        Factor("shape", np.arange(3, dtype=np.float64)),
        Factor("scale", np.linspace(0.5, 1.0, 6)),
        Factor("orientation", orientation),
        Factor("pos_x", np.linspace(0.0, 1.0, num_positions)),
        Factor("pos_y", np.linspace(0.0, 1.0, num_positions)),
    )


def dsprites() -> GeneratedShapes:
    """dSprites' factor grid (Matthey et al. 2017), re-drawn: 737,280 binary 64x64 images.

    Factors, slowest first: shape 3 (square, ellipse, heart), scale 6 (0.5 to 1), orientation 40
    (``linspace(0, 2 pi, 40)``, both ends included as in the original), pos_x 32 and pos_y 32
    (0 to 1). Images are drawn on demand (see the module docstring); nothing is downloaded.
    """
    return GeneratedShapes(_geometry(40, 32, full_turn=True), position_step=1, name="dsprites")


def colour_shapes() -> GeneratedShapes:
    """A colour variant of :func:`dsprites`: 1,105,920 RGB 64x64 images.

    Factors, slowest first: shape 3, scale 6 (0.5 to 1), orientation 10 (a step of 36 degrees),
    pos_x 16 and pos_y 16 (0 to 1, two pixels apart), object_hue 6 (0 to 5/6 of the hue circle,
    saturation 0.9, value 0.95) and background_hue 4 (1/8 to 7/8, saturation 0.6, value 0.4).
    """
    factors = _geometry(10, 16, full_turn=False) + (
        Factor("object_hue", np.arange(6) / 6.0),
        Factor("background_hue", np.arange(4) / 4.0 + 1.0 / 8.0),
    )
    return GeneratedShapes(factors, position_step=2, name="colour-shapes")


__all__ = ["CANVAS", "Factor", "GeneratedShapes", "SHAPE_NAMES", "colour_shapes", "draw_sprites", "dsprites"]
