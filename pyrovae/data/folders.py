"""Image files on disk as a torch ``Dataset``: a user's folder of PNG/JPEG images, and CelebA's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pyrovae.data.datasets import DatasetError

#: File name endings read as images (case-insensitive); PIL decodes them.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


class ImageFiles(torch.utils.data.Dataset):
    """Images decoded from files on demand: item ``i`` is ``(image, label)``.

    ``image`` is float32 ``(C, H, W)`` in ``[0, 1]``, ``label`` an int (``-1`` when unlabelled).
    With ``image_size`` every image is resized so that its shorter side is ``image_size``
    (bilinear) and then centre-cropped to ``image_size x image_size``.

    Args:
        paths: The image files.
        labels: One class index per file, or ``None``.
        channels: 1 (decoded as grey, ``"L"``) or 3 (``"RGB"``; an alpha channel is dropped).
        image_size: Side of the square output, or ``None`` to keep each file's size (then all
            files must share one size, see :func:`scan_images`).
    """

    def __init__(self, paths: Sequence[Path], labels: Sequence[int] | None, channels: int,
                 image_size: int | None) -> None:
        self.paths = [str(p) for p in paths]
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.channels = channels
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        array = decode_image(self.paths[index], self.channels, self.image_size)
        image = torch.from_numpy(array).float().div_(255.0)
        return image, -1 if self.labels is None else int(self.labels[index])


def decode_image(path: str | Path, channels: int, image_size: int | None) -> np.ndarray:
    """One image file as uint8 ``(C, H, W)``; resized and centre-cropped when ``image_size`` is given.

    Raises:
        DatasetError: If the file is not a readable image (corrupt or truncated).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if image_size is not None:
                image = _resize_and_crop(image, image_size)
            array = np.array(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        raise DatasetError(f"image {path} cannot be read ({type(error).__name__}: {error}); "
                           "remove or replace that file") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy()


def _resize_and_crop(image, size: int):
    from PIL import Image

    width, height = image.size
    factor = size / min(width, height)
    if factor != 1.0:
        image = image.resize((max(size, round(width * factor)), max(size, round(height * factor))),
                             Image.Resampling.BILINEAR)
    width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def list_image_folder(folder: Path) -> tuple[list[Path], list[int] | None, list[str]]:
    """The image files under ``folder`` and their labels, as torchvision's ``ImageFolder`` finds them.

    With class subfolders (``folder/cat/1.png``, ``folder/dog/2.png``) the sorted subfolder names
    are the classes and every image under one (at any depth) gets its index; without subfolders
    the images directly in ``folder`` are read, unlabelled.

    Returns:
        ``(paths, labels or None, class names)``, paths sorted.

    Raises:
        DatasetError: If the folder does not exist or holds no image file.
    """
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist; pass --dataset with a folder of PNG/JPEG files")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths: list[Path] = []
    labels: list[int] = []
    if classes:
        for k, name in enumerate(classes):
            found = sorted(p for p in (folder / name).rglob("*") if _is_image(p))
            paths += found
            labels += [k] * len(found)
    else:
        paths = sorted(p for p in folder.iterdir() if _is_image(p))
    if not paths:
        raise DatasetError(f"image folder {folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)}), "
                           "neither directly nor in class subfolders; point --dataset at a folder of images")
    return paths, (labels if classes else None), classes


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def scan_images(paths: Sequence[Path], image_size: int | None, grayscale: bool) -> tuple[int, int, int]:
    """Read every file's header (not its pixels) and return the common image shape ``(C, H, W)``.

    ``C`` is 1 with ``grayscale`` or when every file is grey, else 3.

    Raises:
        DatasetError: For a file that is not an image, or, without ``image_size``, files of
            different sizes (naming two of them and the fix).
    """
    from PIL import Image, UnidentifiedImageError

    sizes: dict[tuple[int, int], Path] = {}
    all_grey = True
    for path in paths:
        try:
            with Image.open(path) as image:
                size, mode = image.size, image.mode
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
            raise DatasetError(f"image {path} cannot be read ({type(error).__name__}); remove or replace "
                               "that file") from None
        sizes.setdefault(size, path)
        all_grey = all_grey and mode in _GREY_MODES
        if image_size is None and len(sizes) > 1:
            (a, first), (b, second) = list(sizes.items())[:2]
            raise DatasetError(f"images have different sizes ({first} is {a[0]}x{a[1]}, {second} is "
                               f"{b[0]}x{b[1]}); pass --image-size N to resize and centre-crop them all to NxN")
    channels = 1 if grayscale or all_grey else 3
    if image_size is not None:
        return channels, image_size, image_size
    width, height = next(iter(sizes))
    return channels, height, width


__all__ = ["IMAGE_EXTENSIONS", "ImageFiles", "decode_image", "list_image_folder", "scan_images"]
