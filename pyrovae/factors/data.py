"""Generated shapes with their factors, as an in-memory data set for training and for the metrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from pyrovae.data import DatasetError, ImageData, colour_shapes, dsprites
from pyrovae.data.sources import SHAPES_TEST_SIZE, SHAPES_TRAIN_SIZE

#: Names of the generated sets with known factors, and their builders (pyrovae.data.shapes).
SHAPES = {"dsprites": dsprites, "colour-shapes": colour_shapes}

#: Factors whose values are unordered classes.
CATEGORICAL_FACTORS = ("shape",)

#: Training images when no size is given, and test images: the same slice rule as ``--dataset
#: dsprites`` (pyrovae.data.sources), so the metrics score the images a run was trained and tested on.
DEFAULT_TRAIN_SIZE = SHAPES_TRAIN_SIZE
DEFAULT_TEST_SIZE = SHAPES_TEST_SIZE


@dataclass(frozen=True)
class FactorImageData(ImageData):
    """:class:`~pyrovae.data.ImageData` whose images come with the factors that generated them.

    Attributes:
        factor_names: ``K`` names, e.g. ``("shape", "scale", "orientation", "pos_x", "pos_y")``.
        train_factors, test_factors: float ``(N, K)`` factor values of the images.
        train_indices, test_indices: int64 ``(N,)`` the images' indices in the full grid.
    """

    factor_names: tuple[str, ...] = ()
    train_factors: Tensor | None = None
    test_factors: Tensor | None = None
    train_indices: Tensor | None = None
    test_indices: Tensor | None = None

    @property
    def categorical(self) -> list[bool]:
        """Per factor, whether its values are unordered classes (shape)."""
        return categorical_factors(self.factor_names)


def categorical_factors(factor_names: tuple[str, ...]) -> list[bool]:
    """Per factor name, whether its values are unordered classes (:data:`CATEGORICAL_FACTORS`)."""
    return [name in CATEGORICAL_FACTORS for name in factor_names]


def _slice(name: str, train_size: int | None, test_size: int, seed: int) -> tuple[object, np.ndarray, np.ndarray]:
    """The shapes grid and the grid indices of the training and test images (random order)."""
    if name not in SHAPES:
        raise DatasetError(f"unknown generated data set {name!r}; choose one of {', '.join(SHAPES)}")
    shapes = SHAPES[name]()
    train_size = DEFAULT_TRAIN_SIZE if train_size is None else train_size
    if train_size < 1 or test_size < 1 or train_size + test_size > len(shapes):
        raise DatasetError(f"{name} holds {len(shapes)} images; asked for {train_size} training and "
                           f"{test_size} test images: choose a smaller --train-size")
    # In random order, not sorted: the grid's order is by shape, then scale, so any prefix of a
    # sorted slice (the trainer's evaluation points, --limit) would be all small squares.
    chosen = np.random.default_rng(seed).choice(len(shapes), train_size + test_size, replace=False)
    return shapes, chosen[:train_size], chosen[train_size:]


def load_shapes_split(name: str, split: str = "test", train_size: int | None = None, limit: int | None = None,
                      test_size: int = DEFAULT_TEST_SIZE, seed: int = 0) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """One split of :func:`load_shapes`'s slice, drawing only its first ``limit`` images.

    Returns:
        ``(images (n, C, 64, 64) float32 in [0, 1], factors (n, K) float32, factor names)``.
    """
    shapes, train, test = _slice(name, train_size, test_size, seed)
    indices = (test if split == "test" else train)[:limit]
    return (torch.from_numpy(shapes.images(indices)).float().div_(255.0),
            torch.from_numpy(shapes.factor_values(indices)).float(), shapes.factor_names)


def load_shapes(name: str = "dsprites", train_size: int | None = None, test_size: int = DEFAULT_TEST_SIZE,
                seed: int = 0) -> FactorImageData:
    """Random disjoint training and test images from a generated shapes grid, with their factors.

    The images are drawn uniformly without replacement from the whole grid, in random order (so
    that the first ``n`` of either split are a uniform sample too), with a fixed ``seed`` so that
    runs with different model seeds see the same images.

    Args:
        name: ``"dsprites"`` or ``"colour-shapes"``.
        train_size: training images (default :data:`DEFAULT_TRAIN_SIZE`).
        test_size: test images.
        seed: seed of the choice of images.

    Returns:
        Images float32 ``(N, C, 64, 64)`` in ``[0, 1]``, labels the shape class, and the factors.

    Raises:
        DatasetError: for an unknown name or sizes the grid cannot hold.
    """
    shapes, train, test = _slice(name, train_size, test_size, seed)

    def images(indices: np.ndarray) -> Tensor:
        return torch.from_numpy(shapes.images(indices)).float().div_(255.0)

    def factors(indices: np.ndarray) -> Tensor:
        return torch.from_numpy(shapes.factor_values(indices)).float()

    shape_index = shapes.factor_names.index("shape")
    return FactorImageData(
        name=name, train_images=images(train), train_labels=factors(train)[:, shape_index].long(),
        test_images=images(test), test_labels=factors(test)[:, shape_index].long(), num_classes=3,
        factor_names=shapes.factor_names, train_factors=factors(train), test_factors=factors(test),
        train_indices=torch.from_numpy(train), test_indices=torch.from_numpy(test),
    )


__all__ = ["CATEGORICAL_FACTORS", "DEFAULT_TEST_SIZE", "DEFAULT_TRAIN_SIZE", "FactorImageData", "SHAPES",
           "categorical_factors", "load_shapes", "load_shapes_split"]
