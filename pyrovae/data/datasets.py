"""Image datasets held in memory: the bundled MNIST subset, torchvision sets, and user arrays."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

DATASET_NAMES = ("mnist-small", "mnist", "fashion-mnist", "kmnist")

_TORCHVISION_CLASSES = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}
_BUNDLED_FILE = "mnist_small.npz"


class DatasetError(ValueError):
    """A dataset could not be loaded or its arrays are unusable; the message says how to fix it."""


@dataclass(frozen=True)
class ImageData:
    """Train and test images in memory: images float32 in [0, 1], shape (N, C, H, W) (or tabular (N, D)); labels int64 (N,).

    Attributes:
        name: Name of the dataset, e.g. ``"mnist-small"``.
        train_images: Training images, float32 in ``[0, 1]``, shape ``(N_train, C, H, W)``.
        train_labels: Training labels, int64, shape ``(N_train,)``, or ``None`` if unlabelled.
        test_images: Test images, float32 in ``[0, 1]``, shape ``(N_test, C, H, W)``.
        test_labels: Test labels, int64, shape ``(N_test,)``, or ``None`` if unlabelled.
        num_classes: Number of classes, or ``None`` if unlabelled.
    """

    name: str
    train_images: Tensor
    train_labels: Tensor | None
    test_images: Tensor
    test_labels: Tensor | None
    num_classes: int | None

    @property
    def image_shape(self) -> torch.Size:
        """Shape of one image, ``(C, H, W)``, e.g. ``(1, 28, 28)``; ``(D,)`` for tabular rows."""
        return self.train_images.shape[1:]


def default_root() -> Path:
    """Folder where torchvision datasets are kept when no root is given: ``~/.cache/pyrovae``."""
    return Path.home() / ".cache" / "pyrovae"


def load_dataset(name: str = "mnist-small", root: str | Path | None = None, download: bool = True) -> ImageData:
    """Load a dataset of 28x28 grey images into memory.

    ``"mnist-small"`` is a class-balanced subset of MNIST (10,000 training and 2,000 test
    digits) shipped inside the package, so it needs neither ``root`` nor a network.
    ``"mnist"``, ``"fashion-mnist"`` and ``"kmnist"`` are read by torchvision from
    ``root`` (e.g. ``root/MNIST/raw``), downloading them first if allowed.

    Args:
        name: One of :data:`DATASET_NAMES`.
        root: Folder holding torchvision's dataset folders; defaults to :func:`default_root`.
            Ignored for ``"mnist-small"``.
        download: Let torchvision download missing files.

    Returns:
        The train and test splits, images float32 ``(N, 1, 28, 28)`` in ``[0, 1]``,
        labels int64 ``(N,)``.

    Raises:
        DatasetError: If the name is unknown or the files are missing and cannot be downloaded.
    """
    if name not in DATASET_NAMES:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    if name == "mnist-small":
        return _load_bundled()
    root = Path(root).expanduser() if root is not None else default_root()
    train_images, train_labels = _load_torchvision(name, root, train=True, download=download)
    test_images, test_labels = _load_torchvision(name, root, train=False, download=download)
    return ImageData(
        name=name,
        train_images=_to_unit_float(train_images),
        train_labels=train_labels.long(),
        test_images=_to_unit_float(test_images),
        test_labels=test_labels.long(),
        num_classes=10,
    )


def _load_bundled() -> ImageData:
    from importlib import resources

    raw = resources.files("pyrovae.data").joinpath(_BUNDLED_FILE).read_bytes()
    with np.load(io.BytesIO(raw)) as arrays:
        return ImageData(
            name="mnist-small",
            train_images=_to_unit_float(torch.from_numpy(arrays["train_images"])),
            train_labels=torch.from_numpy(arrays["train_labels"]).long(),
            test_images=_to_unit_float(torch.from_numpy(arrays["test_images"])),
            test_labels=torch.from_numpy(arrays["test_labels"]).long(),
            num_classes=10,
        )


def _load_torchvision(name: str, root: Path, train: bool, download: bool) -> tuple[Tensor, Tensor]:
    import torchvision.datasets

    dataset_class = getattr(torchvision.datasets, _TORCHVISION_CLASSES[name])
    try:
        dataset = dataset_class(root=str(root), train=train, download=download)
    except Exception as error:  # torchvision raises RuntimeError, URLError, OSError, ...
        reason = "download failed" if download else "download not allowed"
        raise DatasetError(
            f"{name} not found under {root} ({reason}: {type(error).__name__}); "
            f"pass --data-root pointing at a folder with {dataset_class.__name__}/raw, or allow download"
        ) from None
    return torch.as_tensor(dataset.data), torch.as_tensor(dataset.targets)


def _to_unit_float(images: Tensor) -> Tensor:
    """uint8 ``(N, H, W)`` or ``(N, C, H, W)`` -> float32 ``(N, C, H, W)`` in ``[0, 1]``; ``(N, D)`` stays flat."""
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


def from_arrays(
    train_images: Tensor | np.ndarray,
    test_images: Tensor | np.ndarray | None = None,
    train_labels: Tensor | np.ndarray | None = None,
    test_labels: Tensor | np.ndarray | None = None,
    name: str = "custom",
    test_fraction: float = 0.1,
    seed: int = 0,
) -> ImageData:
    """Wrap user images as :class:`ImageData`, checking them and splitting off a test set if needed.

    Args:
        train_images: uint8 in ``0..255`` (divided by 255) or float in ``[0, 1]``, shape
            ``(N, H, W)``, ``(N, C, H, W)`` or ``(N, H, W, C)`` (channels last is recognised
            by a last axis of 1, 3 or 4 and moved first); or tabular rows ``(N, D)`` of any
            finite floats; a torch tensor or a NumPy array.
        test_images: Same format, or ``None`` to split ``test_fraction`` off the training images.
        train_labels: Integer labels, shape ``(N,)``, or ``None``.
        test_labels: Integer labels for ``test_images``, or ``None``. Ignored when
            ``test_images`` is ``None`` (the split takes labels from ``train_labels``).
        name: Name stored in the result.
        test_fraction: Fraction of the images held out when ``test_images`` is ``None``.
        seed: Seed of the random split.

    Returns:
        Images float32 ``(N, C, H, W)`` in ``[0, 1]``, labels int64 ``(N,)``;
        ``num_classes`` is ``max(label) + 1`` over both splits, or ``None`` without labels.

    Raises:
        DatasetError: For empty data, NaN or infinite values, floats outside ``[0, 1]``,
            a wrong number of dimensions, mismatched label counts or shapes, or a split
            that would leave either side empty.
    """
    train_x = _check_images(train_images, "train_images")
    train_y = _check_labels(train_labels, train_x.shape[0], "train_labels", "train_images")
    if test_images is None:
        if not 0.0 < test_fraction < 1.0:
            raise DatasetError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
        n = train_x.shape[0]
        num_test = int(round(n * test_fraction))
        if num_test < 1 or num_test >= n:
            raise DatasetError(
                f"cannot split {n} images with test_fraction={test_fraction}: one side would be empty; "
                "pass test_images or more data"
            )
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        test_index, train_index = order[:num_test], order[num_test:]
        test_x, train_x = train_x[test_index], train_x[train_index]
        test_y = train_y[test_index] if train_y is not None else None
        train_y = train_y[train_index] if train_y is not None else None
    else:
        test_x = _check_images(test_images, "test_images")
        test_y = _check_labels(test_labels, test_x.shape[0], "test_labels", "test_images")
        if test_x.shape[1:] != train_x.shape[1:]:
            raise DatasetError(
                f"test_images have shape {tuple(test_x.shape[1:])} per image but train_images "
                f"{tuple(train_x.shape[1:])}; give both splits the same image shape"
            )
        if (train_y is None) != (test_y is None):
            raise DatasetError("give labels for both train and test images, or for neither")
    labels = [y for y in (train_y, test_y) if y is not None and y.numel() > 0]
    num_classes = int(max(int(y.max()) for y in labels)) + 1 if labels else None
    return ImageData(name, train_x, train_y, test_x, test_y, num_classes)


def _as_tensor(array: Any, what: str) -> Tensor:
    if isinstance(array, Tensor):
        return array.detach().cpu()
    try:
        return torch.from_numpy(np.ascontiguousarray(array))
    except (TypeError, ValueError) as error:
        raise DatasetError(f"{what} must be a torch tensor or NumPy array of numbers ({error})") from None


def _check_images(images: Any, what: str) -> Tensor:
    x = _as_tensor(images, what)
    if x.dim() not in (2, 3, 4):
        raise DatasetError(f"{what} must have shape (N, D) (tabular), (N, H, W), (N, C, H, W) or (N, H, W, C), "
                           f"got {tuple(x.shape)}; reshape the array")
    if x.dim() == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.permute(0, 3, 1, 2).contiguous()  # channels last (N, H, W, C), as PIL and NumPy images come
    if x.numel() == 0:
        raise DatasetError(f"{what} is empty (shape {tuple(x.shape)}); pass at least one image")
    if x.dtype == torch.uint8:
        return _to_unit_float(x)
    if x.dtype == torch.bool or x.is_complex():
        raise DatasetError(f"{what} has dtype {x.dtype}; pass uint8 in 0..255 or float in [0, 1]")
    if not x.is_floating_point():
        raise DatasetError(
            f"{what} has integer dtype {x.dtype}; convert to uint8 (0..255) or float scaled to [0, 1]"
        )
    if not torch.isfinite(x).all():
        raise DatasetError(f"{what} contains NaN or infinite values; clean or drop those images")
    low, high = float(x.min()), float(x.max())
    if x.dim() > 2 and (low < 0.0 or high > 1.0):  # tabular rows (N, D) may hold any real values
        raise DatasetError(
            f"{what} has float values in [{low:g}, {high:g}], outside [0, 1]; divide by 255 or rescale"
        )
    return _to_unit_float(x)


def _check_labels(labels: Any, count: int, what: str, images_name: str) -> Tensor | None:
    if labels is None:
        return None
    y = _as_tensor(labels, what)
    if y.dim() != 1:
        raise DatasetError(f"{what} must have shape (N,), got {tuple(y.shape)}")
    if y.shape[0] != count:
        raise DatasetError(
            f"{what} has {y.shape[0]} entries but {images_name} has {count} images; pass one label per image"
        )
    if y.is_floating_point():
        if not torch.isfinite(y).all() or not torch.equal(y, y.round()):
            raise DatasetError(f"{what} must hold whole-number class indices")
    elif y.dtype == torch.bool or y.is_complex():
        raise DatasetError(f"{what} has dtype {y.dtype}; pass integer class indices")
    y = y.long()
    if y.numel() and int(y.min()) < 0:
        raise DatasetError(f"{what} contains negative values; class labels must be 0, 1, 2, ...")
    return y


def load_npz(path: str | Path, test_fraction: float = 0.1, seed: int = 0) -> ImageData:
    """Load user images from a NumPy ``.npz`` file (no pickled objects allowed) and check them.

    The file holds ``train_images`` and optionally ``test_images``, ``train_labels`` and
    ``test_labels``, in the formats :func:`from_arrays` accepts.

    Raises:
        DatasetError: if the file is missing, not an ``.npz`` archive, lacks ``train_images``,
            or its arrays fail :func:`from_arrays`'s checks.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"data file {path} does not exist; pass an .npz file with a train_images array")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise DatasetError(f"data file {path} is not a readable .npz archive (not a zip file); "
                               "save the arrays with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as error:
        raise DatasetError(f"data file {path} holds pickled objects ({error}); save plain arrays "
                           "with numpy.savez") from None
    except Exception as error:  # noqa: BLE001 - zip and format errors all mean "not an npz file"
        raise DatasetError(f"data file {path} is not a readable .npz archive ({type(error).__name__}); "
                           "save the arrays with numpy.savez") from None
    if "train_images" not in arrays:
        raise DatasetError(f"data file {path} has no train_images array (it has: "
                           f"{', '.join(sorted(arrays)) or 'nothing'}); save one with numpy.savez")
    known = ("train_images", "test_images", "train_labels", "test_labels")
    return from_arrays(**{key: arrays.get(key) for key in known}, name=path.name,
                       test_fraction=test_fraction, seed=seed)
