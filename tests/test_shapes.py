"""Tests of the generated shapes: the factor grid, exact areas and shifts, colours, determinism."""

import math
import pickle

import numpy as np
import pytest
import torch

from pyrovae.data.shapes import HALF_SIZE, colour_shapes, dsprites


@pytest.fixture(scope="module")
def sprites():
    return dsprites()


@pytest.fixture(scope="module")
def colours():
    return colour_shapes()


def test_dsprites_has_the_published_factor_grid(sprites):
    assert len(sprites) == 737_280
    assert sprites.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert sprites.factor_sizes == (3, 6, 40, 32, 32)
    values = {f.name: f.values for f in sprites.factors}
    np.testing.assert_allclose(values["scale"], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert values["orientation"][0] == 0.0 and values["orientation"][-1] == pytest.approx(2 * math.pi)
    assert values["pos_x"][0] == 0.0 and values["pos_x"][-1] == 1.0
    assert sprites.image_shape == (1, 64, 64)


@pytest.mark.parametrize("make", [dsprites, colour_shapes])
def test_codes_and_indices_are_inverse(make):
    shapes = make()
    rng = np.random.default_rng(0)
    indices = rng.integers(0, len(shapes), 500)
    codes = shapes.factor_codes(indices)
    assert codes.shape == (500, len(shapes.factors))
    np.testing.assert_array_equal(shapes.index_of(codes), indices)
    # the first factor varies slowest, the last fastest (dSprites' latents_classes order)
    np.testing.assert_array_equal(shapes.factor_codes([0, 1])[1], [0] * (len(shapes.factors) - 1) + [1])
    assert shapes.factor_codes(len(shapes) - 1)[0].tolist() == [s - 1 for s in shapes.factor_sizes]
    with pytest.raises(IndexError):
        shapes.factor_codes(len(shapes))
    with pytest.raises(IndexError):
        shapes.index_of(np.asarray(shapes.factor_sizes)[None])


def image_of(shapes, **codes):
    row = [codes.get(name, 0) for name in shapes.factor_names]
    return shapes.images(shapes.index_of(np.asarray([row])))[0]


def test_areas_match_the_drawn_geometry(sprites):
    """An unrotated square of half-width 10 * scale pixels centred on a pixel corner covers
    exactly (20 * scale)^2 pixels; an ellipse with semi-axes 10 and 5 about pi * 50."""
    square = image_of(sprites, shape=0, scale=5) > 0
    assert square.sum() == (2 * HALF_SIZE) ** 2
    rows, cols = np.nonzero(square[0])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (6, 25, 6, 25)  # centre at pixel corner 16
    assert (image_of(sprites, shape=0, scale=0) > 0).sum() == HALF_SIZE**2
    ellipse = (image_of(sprites, shape=1, scale=5) > 0).sum()
    assert ellipse == pytest.approx(math.pi * HALF_SIZE * HALF_SIZE / 2, rel=0.03)
    heart = (image_of(sprites, shape=2, scale=5) > 0)[0, :32, :32]  # the window around pixel corner 16
    assert 150 < heart.sum() < 400
    np.testing.assert_array_equal(heart, np.flip(heart, axis=1))  # upright: mirror-symmetric
    assert not np.array_equal(heart, np.flip(heart, axis=0))      # but not upside-down symmetric


def test_images_are_binary_and_shift_by_whole_pixels(sprites):
    rng = np.random.default_rng(1)
    images = sprites.images(rng.integers(0, len(sprites), 64))
    assert images.dtype == np.uint8 and images.shape == (64, 1, 64, 64)
    assert set(np.unique(images)) <= {0, 255}
    assert (images.reshape(64, -1) > 0).any(axis=1).all()  # never an empty canvas
    base = image_of(sprites, shape=2, scale=3, orientation=7, pos_x=4, pos_y=9)
    moved = image_of(sprites, shape=2, scale=3, orientation=7, pos_x=7, pos_y=10)
    np.testing.assert_array_equal(np.roll(base, (1, 3), axis=(1, 2)), moved)
    # orientation 0 and 2 pi are both in the grid (as in dSprites) and draw the same image
    np.testing.assert_array_equal(image_of(sprites, shape=2, scale=5, orientation=0),
                                  image_of(sprites, shape=2, scale=5, orientation=39))
    # no sprite touches the border at the extreme positions and largest scale
    for pos in (0, 31):
        for orientation in range(40):
            image = image_of(sprites, shape=0, scale=5, orientation=orientation, pos_x=pos, pos_y=pos)[0]
            assert image.sum() > 0 and not (image[0].any() and image[-1].any())


def test_colour_images_have_one_object_and_one_background_colour(colours):
    assert colours.image_shape == (3, 64, 64)
    assert colours.factor_names[-2:] == ("object_hue", "background_hue")
    assert len(colours) == int(np.prod(colours.factor_sizes)) == 1_105_920
    image = image_of(colours, shape=0, scale=5, object_hue=2, background_hue=1)
    pixels = {tuple(p) for p in image.reshape(3, -1).T}
    assert len(pixels) == 2
    background = tuple(image[:, 0, 0])
    other_object = image_of(colours, shape=0, scale=5, object_hue=4, background_hue=1)
    assert tuple(other_object[:, 0, 0]) == background and not np.array_equal(other_object, image)
    mask = image_of(dsprites(), shape=0, scale=5)[0] > 0  # the same geometry in both sets
    np.testing.assert_array_equal((image != np.asarray(background)[:, None, None]).any(axis=0), mask)


def test_drawing_is_deterministic_and_pickles_small(sprites):
    indices = np.arange(0, len(sprites), 9973)
    fresh = dsprites()
    np.testing.assert_array_equal(sprites.images(indices), fresh.images(indices))
    restored = pickle.loads(pickle.dumps(sprites))  # as a DataLoader worker receives it
    assert restored._sprites is None
    np.testing.assert_array_equal(restored.images(indices), fresh.images(indices))
    assert len(pickle.dumps(sprites)) < 100_000


def test_dataset_items_are_unit_floats_with_factor_codes(sprites):
    image, codes = sprites[12345]
    assert image.dtype == torch.float32 and image.shape == (1, 64, 64)
    assert float(image.max()) == 1.0 and float(image.min()) == 0.0
    assert codes.dtype == torch.int64 and codes.tolist() == sprites.factor_codes(12345)[0].tolist()
    values = sprites.factor_values([12345])[0]
    assert values[1] == pytest.approx(sprites.factors[1].values[codes[1]])
