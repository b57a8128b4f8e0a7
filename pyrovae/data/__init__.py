"""Data sources (bundled, torchvision, arrays, generated shapes), mini-batches and binarization."""

from pyrovae.data.batches import InMemoryBatches, binarize_once, dynamic_binarize
from pyrovae.data.shapes import Factor, GeneratedShapes, colour_shapes, dsprites
from pyrovae.data.datasets import DATASET_NAMES, DatasetError, ImageData, from_arrays, load_dataset, load_npz
from pyrovae.data.sources import StreamedData, open_data
from pyrovae.data.streaming import StreamingImages

__all__ = [
    "DATASET_NAMES",
    "DatasetError",
    "Factor",
    "GeneratedShapes",
    "ImageData",
    "InMemoryBatches",
    "StreamedData",
    "StreamingImages",
    "binarize_once",
    "colour_shapes",
    "dsprites",
    "dynamic_binarize",
    "from_arrays",
    "load_dataset",
    "load_npz",
    "open_data",
]
