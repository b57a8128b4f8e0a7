"""One resolution of ``--dataset`` for every command: a name, an ``.npz`` file or a folder of images.

:func:`open_data` turns what a user typed into the train and test data, in memory when they
fit (:class:`~pyrovae.data.datasets.ImageData`, today's fast path) or as a stream
(:class:`StreamedData`) when they do not. :func:`canonical_dataset` makes a path absolute so
that a checkpoint names its data the same way from any working directory.

The rule for memory: a source read from many files or drawn on demand (an image folder, CelebA,
the generated shapes) is held in memory when its train and test images as float32 take at most
:data:`IN_MEMORY_LIMIT_BYTES`; a larger one (CelebA at 64x64, a shape set with a large
``--train-size``) streams its training images through a ``DataLoader`` and keeps only the first
:data:`STREAMED_TEST_LIMIT` test images in memory for the per-epoch test ELBO. Array sources
(``.npz``, MNIST and its kin, CIFAR-10, SVHN) are loaded whole by NumPy and stay in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from pyrovae.data.datasets import DATASET_NAMES, DatasetError, ImageData, default_root, from_arrays, load_dataset, load_npz

#: Float32 bytes of train + test images above which a data set streams instead of living in memory.
IN_MEMORY_LIMIT_BYTES = 1_500_000_000
#: Test images kept in memory for a streamed data set's per-epoch test ELBO (and training images
#: for its train ELBO): the ELBO of a whole batch like this is the largest transient of a run.
STREAMED_TEST_LIMIT = 1000
#: Share of a folder's images held out as its test split (drawn with the run's seed).
FOLDER_TEST_FRACTION = 0.1
#: Generated shape sets: training images when no --train-size is given, and test images. The
#: images are drawn at random from the whole grid with seed 0 (the same rule and defaults as
#: pyrovae.factors.data.load_shapes, so both name the same images).
SHAPES_TRAIN_SIZE = 20_000
SHAPES_TEST_SIZE = 2_000

GENERATED_SETS = ("dsprites", "colour-shapes")
VISION_NAMES = ("cifar10", "svhn", "celeba")


def known_names() -> tuple[str, ...]:
    """Every data set name ``--dataset`` accepts besides a path."""
    return DATASET_NAMES + VISION_NAMES + GENERATED_SETS


@dataclass(frozen=True)
class StreamedData:
    """A training set read from disk or drawn on demand, and a test set in memory.

    Attributes:
        name: The data set's name or absolute path.
        train: Items ``(image float32 (C, H, W) in [0, 1], label)``; wrap it in
            :class:`~pyrovae.data.streaming.StreamingImages` to train on it.
        test: The whole test split, items like ``train``.
        test_images: float32 ``(N_test, C, H, W)``, its first :data:`STREAMED_TEST_LIMIT` images at most.
        test_labels: int64 ``(N_test,)`` or ``None``.
        num_classes: Number of classes, or ``None``.
        image_shape: ``(C, H, W)``.
    """

    name: str
    train: Dataset
    test: Dataset
    test_images: Tensor
    test_labels: Tensor | None
    num_classes: int | None
    image_shape: torch.Size


def canonical_dataset(dataset: str) -> str:
    """A known name unchanged; anything else is a path, returned absolute (``~`` expanded).

    Stored in the checkpoint, so ``evaluate``, ``sample`` and ``--resume`` find the data from
    any working directory.
    """
    if dataset in known_names():
        return dataset
    return str(Path(dataset).expanduser().resolve())


def open_data(dataset: str, root: str | Path | None = None, download: bool = True, image_size: int | None = None,
              grayscale: bool = False, seed: int = 0, stream: bool | None = None,
              train_size: int | None = None) -> ImageData | StreamedData:
    """The train and test data ``dataset`` names, in memory or streamed.

    Args:
        dataset: A name of :func:`known_names`, a path to an ``.npz`` file (keys
            ``train_images``, optionally ``test_images``, ``train_labels``, ``test_labels``) or a
            folder of images (class subfolders become labels).
        root: Folder of the torchvision sets (default ``~/.cache/pyrovae``).
        download: Let torchvision download a missing set.
        image_size: Resize (shorter side) and centre-crop every image to this square size
            (folders and CelebA; CelebA defaults to 64).
        grayscale: Read a folder's images as one grey channel (folders only).
        seed: Seed of the test split of folders and ``.npz`` files without test images.
        stream: ``True`` or ``False`` to force the choice; ``None`` streams exactly the file
            and generated sources above :data:`IN_MEMORY_LIMIT_BYTES`.
        train_size: Keep only the first ``train_size`` training images.

    Raises:
        DatasetError: For an unknown name, a missing file or folder (named), unreadable images,
            mixed image sizes without ``image_size``, or arrays of the wrong shape.
    """
    name = canonical_dataset(dataset)
    root_path = Path(root).expanduser() if root is not None else default_root()
    if image_size is not None and not (Path(name).is_dir() or name == "celeba"):
        raise DatasetError(f"--image-size applies to image folders and celeba, not to {dataset}; drop --image-size")
    if grayscale and not Path(name).is_dir():
        raise DatasetError(f"--grayscale applies to image folders, not to {dataset}; drop --grayscale")
    if name in GENERATED_SETS:
        return _generated(name, stream, train_size)
    if name == "celeba":
        from pyrovae.data.vision_sets import celeba_files

        train, test = celeba_files(root_path, download, image_size or 64)
        return _from_datasets(name, train, test, None, stream, train_size)
    if name in ("cifar10", "svhn"):
        from pyrovae.data import vision_sets

        arrays = getattr(vision_sets, f"load_{name}")(root_path, download)
        data = from_arrays(**arrays, name=name)
        return _in_memory_or_stream(data, stream, train_size)
    if name in DATASET_NAMES:
        return _in_memory_or_stream(load_dataset(name, root=root_path, download=download), stream, train_size)
    path = Path(name)
    if path.is_dir():
        return _folder(path, image_size, grayscale, seed, stream, train_size)
    if path.suffix == ".npz" or path.is_file():
        return _in_memory_or_stream(load_npz(path, seed=seed), stream, train_size)
    raise DatasetError(f"--dataset {dataset}: no such file or folder ({path}), and not one of "
                       f"{', '.join(known_names())}; point --dataset at the data")


def _fits(num_images: int, image_shape: tuple[int, ...]) -> bool:
    return num_images * int(np.prod(image_shape)) * 4 <= IN_MEMORY_LIMIT_BYTES


class _Tensors(Dataset):
    """Items ``(image, label)`` of tensors already in memory (``stream=True`` on a small set)."""

    def __init__(self, images: Tensor, labels: Tensor | None) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], -1 if self.labels is None else int(self.labels[index])


def _in_memory_or_stream(data: ImageData, stream: bool | None, train_size: int | None) -> ImageData | StreamedData:
    if train_size is not None:
        data = ImageData(data.name, data.train_images[:train_size],
                         None if data.train_labels is None else data.train_labels[:train_size],
                         data.test_images, data.test_labels, data.num_classes)
    if not stream:
        return data
    return StreamedData(data.name, _Tensors(data.train_images, data.train_labels),
                        _Tensors(data.test_images, data.test_labels),
                        data.test_images[:STREAMED_TEST_LIMIT],
                        None if data.test_labels is None else data.test_labels[:STREAMED_TEST_LIMIT],
                        data.num_classes, data.image_shape)


def _folder(folder: Path, image_size: int | None, grayscale: bool, seed: int, stream: bool | None,
            train_size: int | None) -> ImageData | StreamedData:
    from pyrovae.data.folders import ImageFiles, list_image_folder, scan_images

    paths, labels, classes = list_image_folder(folder)
    if len(paths) < 2:
        raise DatasetError(f"image folder {folder} holds one image; a run needs at least two (one to train on, "
                           "one to test)")
    channels, height, width = scan_images(paths, image_size, grayscale)
    order = np.random.default_rng(seed).permutation(len(paths))
    num_test = max(1, int(round(len(paths) * FOLDER_TEST_FRACTION)))
    test_index, train_index = order[:num_test], order[num_test:]
    files = ImageFiles(paths, labels, channels, image_size)
    return _from_datasets(str(folder), Subset(files, train_index.tolist()), Subset(files, test_index.tolist()),
                          len(classes) or None, stream, train_size)


def _from_datasets(name: str, train: Dataset, test: Dataset, num_classes: int | None, stream: bool | None,
                   train_size: int | None) -> ImageData | StreamedData:
    if train_size is not None and train_size < len(train):
        train = Subset(train, range(train_size))
    image_shape = tuple(train[0][0].shape)
    if stream is None:
        stream = not _fits(len(train) + len(test), image_shape)
    test_images, test_labels = _stack(test, limit=STREAMED_TEST_LIMIT if stream else None)
    if stream:
        return StreamedData(name, train, test, test_images, test_labels, num_classes, torch.Size(image_shape))
    train_images, train_labels = _stack(train)
    return ImageData(name, train_images, train_labels, test_images, test_labels, num_classes)


def _stack(dataset: Dataset, limit: int | None = None) -> tuple[Tensor, Tensor | None]:
    """All items (or the first ``limit``) as ``(images, labels or None)``, decoded in this process."""
    count = len(dataset) if limit is None else min(limit, len(dataset))
    items = [dataset[i] for i in range(count)]
    images = torch.stack([image for image, _ in items])
    labels = torch.as_tensor([int(label) for _, label in items], dtype=torch.int64)
    return images, (None if bool((labels < 0).all()) else labels)


def _generated(name: str, stream: bool | None, train_size: int | None) -> ImageData | StreamedData:
    from pyrovae.data.shapes import colour_shapes, dsprites

    shapes = dsprites() if name == "dsprites" else colour_shapes()
    train_size = SHAPES_TRAIN_SIZE if train_size is None else train_size
    if train_size + SHAPES_TEST_SIZE > len(shapes):
        raise DatasetError(f"{name} holds {len(shapes)} images, {SHAPES_TEST_SIZE} of them for testing; "
                           f"--train-size {train_size} is too many: pass at most {len(shapes) - SHAPES_TEST_SIZE}")
    # Random images from the whole grid: its first images all share one shape and scale.
    chosen = np.random.default_rng(0).choice(len(shapes), train_size + SHAPES_TEST_SIZE, replace=False)
    # Not sorted: the trainer's evaluation points and evaluate --limit take a prefix, and a sorted
    # slice begins with small squares only (the grid's order is by shape, then scale).
    train = _ShapeLabels(Subset(shapes, chosen[:train_size].tolist()))
    test = _ShapeLabels(Subset(shapes, chosen[train_size:].tolist()))
    return _from_datasets(name, train, test, 3, stream, None)


class _ShapeLabels(Dataset):
    """Generated shapes with the shape factor (0 square, 1 ellipse, 2 heart) as the label."""

    def __init__(self, subset: Subset) -> None:
        self.subset = subset

    def __len__(self) -> int:
        return len(self.subset)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, codes = self.subset[index]
        return image, int(codes[0])


def load_split(dataset: str, root: str | Path | None = None, download: bool = True, image_size: int | None = None,
               grayscale: bool = False, seed: int = 0, split: str = "test",
               limit: int | None = None, train_size: int | None = None) -> tuple[Tensor, Tensor | None]:
    """The images and labels of one split in memory (at most ``limit`` images), for ``pyrovae evaluate``.

    Same resolution and split as :func:`open_data` with the same arguments, so a checkpoint is
    evaluated on the images its run held out.
    """
    data = open_data(dataset, root, download, image_size, grayscale, seed, train_size=train_size)
    if isinstance(data, ImageData):
        images, labels = (data.test_images, data.test_labels) if split == "test" else \
            (data.train_images, data.train_labels)
        return images[:limit], None if labels is None else labels[:limit]
    return _stack(data.test if split == "test" else data.train, limit)


__all__ = ["GENERATED_SETS", "IN_MEMORY_LIMIT_BYTES", "STREAMED_TEST_LIMIT", "StreamedData", "VISION_NAMES",
           "canonical_dataset", "known_names", "load_split", "open_data"]
