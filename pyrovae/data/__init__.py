"""Data sources (bundled, torchvision, arrays, generated shapes), mini-batches and binarization."""

from pyrovae.data.batches import InMemoryBatches, binarize_once, dynamic_binarize
from pyrovae.data.shapes import Factor, GeneratedShapes, colour_shapes, dsprites
from pyrovae.data.datasets import DATASET_NAMES, DatasetError, ImageData, from_arrays, load_dataset, load_npz

__all__ = [
    "DATASET_NAMES",
    "DatasetError",
    "Factor",
    "GeneratedShapes",
    "ImageData",
    "InMemoryBatches",
    "binarize_once",
    "colour_shapes",
    "dsprites",
    "dynamic_binarize",
    "from_arrays",
    "load_dataset",
    "load_npz",
]
