"""CIFAR-10, SVHN and CelebA read from torchvision's on-disk formats, downloaded by torchvision.

torchvision's dataset classes check the MD5 sum of every file before reading it, so they read
only the published files. These readers take the same files at the same paths (what
torchvision's ``download=True`` leaves under the root) and check their structure instead, which
lets a test write a tiny copy in the same format. A missing file is fetched by torchvision's
own class with ``download=True`` when downloading is allowed.

Formats (root is ``--data-root``):

- CIFAR-10: ``root/cifar-10-batches-py/data_batch_1`` .. ``data_batch_5`` and ``test_batch``,
  each a pickled dict with ``data`` uint8 ``(N, 3072)`` (channel-major 3x32x32) and ``labels``.
- SVHN: ``root/train_32x32.mat`` and ``root/test_32x32.mat`` (MATLAB), ``X`` uint8
  ``(32, 32, 3, N)`` and ``y`` ``(N, 1)`` with digit 0 stored as 10.
- CelebA: ``root/celeba/img_align_celeba/*.jpg`` (178x218 aligned faces) and
  ``root/celeba/list_eval_partition.txt``, lines ``000001.jpg 0`` (0 train, 1 valid, 2 test).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from pyrovae.data.datasets import DatasetError
from pyrovae.data.folders import ImageFiles

VISION_SETS = ("cifar10", "svhn", "celeba")
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


def _download(name: str, root: Path, download: bool, missing: Path) -> None:
    """Let torchvision fetch ``name`` into ``root``, or say which file is missing and how to fix it."""
    hint = {"cifar10": f"{_CIFAR_FOLDER}/", "svhn": "train_32x32.mat and test_32x32.mat",
            "celeba": "celeba/img_align_celeba/ and celeba/list_eval_partition.txt"}[name]
    if not download:
        raise DatasetError(f"{name}: {missing} does not exist and downloading is off; pass --data-root "
                           f"pointing at a folder holding {hint}, or allow --download")
    import torchvision.datasets as tv

    try:
        if name == "cifar10":
            tv.CIFAR10(str(root), train=True, download=True)
        elif name == "svhn":
            tv.SVHN(str(root), split="train", download=True)
            tv.SVHN(str(root), split="test", download=True)
        else:
            tv.CelebA(str(root), split="all", target_type=[], download=True)
    except Exception as error:  # noqa: BLE001 - URLError, RuntimeError, OSError, gdown's errors, ...
        raise DatasetError(f"{name}: {missing} does not exist and the download failed ({type(error).__name__}); "
                           f"pass --data-root pointing at a folder holding {hint}") from None


def load_cifar10(root: Path, download: bool) -> dict[str, np.ndarray]:
    """CIFAR-10 (Krizhevsky 2009): 50,000 + 10,000 colour images, uint8 ``(N, 3, 32, 32)``, 10 classes."""
    folder = root / _CIFAR_FOLDER
    if not all((folder / f).is_file() for f in _CIFAR_TRAIN + ("test_batch",)):
        _download("cifar10", root, download, folder / "test_batch")
    arrays: dict[str, np.ndarray] = {}
    for split, files in (("train", _CIFAR_TRAIN), ("test", ("test_batch",))):
        images, labels = [], []
        for name in files:
            try:
                with open(folder / name, "rb") as f:
                    entry = pickle.load(f, encoding="latin1")
                images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                labels += list(entry["labels"])
            except Exception as error:  # noqa: BLE001 - any damage means the same fix
                raise DatasetError(f"cifar10: {folder / name} is not a CIFAR-10 batch ({type(error).__name__}); "
                                   "delete the folder to download it again") from None
        arrays[f"{split}_images"] = np.concatenate(images)
        arrays[f"{split}_labels"] = np.asarray(labels, dtype=np.int64)
    return arrays


def load_svhn(root: Path, download: bool) -> dict[str, np.ndarray]:
    """SVHN (Netzer et al. 2011), cropped digits: 73,257 + 26,032 colour images ``(N, 3, 32, 32)``."""
    import scipy.io

    files = {"train": root / "train_32x32.mat", "test": root / "test_32x32.mat"}
    missing = [p for p in files.values() if not p.is_file()]
    if missing:
        _download("svhn", root, download, missing[0])
    arrays: dict[str, np.ndarray] = {}
    for split, path in files.items():
        try:
            mat = scipy.io.loadmat(str(path))
            images = np.asarray(mat["X"], dtype=np.uint8).transpose(3, 2, 0, 1)
            labels = np.asarray(mat["y"], dtype=np.int64).reshape(-1)
        except Exception as error:  # noqa: BLE001
            raise DatasetError(f"svhn: {path} is not an SVHN .mat file ({type(error).__name__}); "
                               "delete it to download it again") from None
        arrays[f"{split}_images"] = np.ascontiguousarray(images)
        arrays[f"{split}_labels"] = np.where(labels == 10, 0, labels)
    return arrays


def celeba_files(root: Path, download: bool, image_size: int) -> tuple[ImageFiles, ImageFiles]:
    """CelebA's aligned faces (Liu et al. 2015) as train and test :class:`ImageFiles`, unlabelled.

    Each 178x218 face is resized to ``image_size`` on its shorter side and centre-cropped to
    ``image_size x image_size`` (64 by default). The published partition gives 162,770 training
    and 19,962 test images; the validation part (19,867) is left out.
    """
    folder = root / "celeba"
    partition = folder / "list_eval_partition.txt"
    images = folder / "img_align_celeba"
    if not partition.is_file() or not images.is_dir():
        _download("celeba", root, download, partition if not partition.is_file() else images)
    splits: dict[int, list[Path]] = {0: [], 1: [], 2: []}
    for number, line in enumerate(partition.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DatasetError(f"celeba: line {number} of {partition} is not '<file> <0|1|2>'; "
                               "delete the folder to download it again")
        splits[int(parts[1])].append(images / parts[0])
    for path in splits[0][:1] + splits[2][:1]:
        if not path.is_file():
            raise DatasetError(f"celeba: {path} is listed in {partition.name} but missing; "
                               "delete the folder to download it again")
    if not splits[0] or not splits[2]:
        raise DatasetError(f"celeba: {partition} lists no training or no test images; delete the folder "
                           "to download it again")
    return (ImageFiles(splits[0], None, 3, image_size), ImageFiles(splits[2], None, 3, image_size))


__all__ = ["VISION_SETS", "celeba_files", "load_cifar10", "load_svhn"]
