"""Tests of the bundled data, torchvision loading, user arrays, mini-batches and binarization."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pyrovae.data import (
    DATASET_NAMES,
    DatasetError,
    ImageData,
    InMemoryBatches,
    binarize_once,
    dynamic_binarize,
    from_arrays,
    load_dataset,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def small() -> ImageData:
    return load_dataset("mnist-small")


def check_image_data(data: ImageData, num_train: int, num_test: int) -> None:
    assert data.train_images.shape == (num_train, 1, 28, 28)
    assert data.test_images.shape == (num_test, 1, 28, 28)
    assert data.image_shape == torch.Size([1, 28, 28])
    for images in (data.train_images, data.test_images):
        assert images.dtype == torch.float32
        assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
        assert float(images.max()) == 1.0  # uint8 255 maps to exactly 1
    for labels, n in ((data.train_labels, num_train), (data.test_labels, num_test)):
        assert labels.dtype == torch.int64 and labels.shape == (n,)
    assert data.num_classes == 10


def test_bundled_subset_shapes_and_balance(small: ImageData) -> None:
    check_image_data(small, 10_000, 2_000)
    assert small.name == "mnist-small"
    assert torch.equal(torch.bincount(small.train_labels), torch.full((10,), 1000))
    assert torch.equal(torch.bincount(small.test_labels), torch.full((10,), 200))
    # MNIST digits are mostly background: a sanity check that pixels were not scrambled.
    assert 0.1 < float(small.train_images.mean()) < 0.15


def test_bundled_subset_is_in_package_data() -> None:
    from importlib import resources

    files = resources.files("pyrovae.data")
    assert files.joinpath("mnist_small.npz").is_file()
    assert "CC BY-SA 3.0" in files.joinpath("LICENSE-MNIST.txt").read_text()


def test_full_mnist_from_shared_folder() -> None:
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"no MNIST at {SHARED_DATA}")
    data = load_dataset("mnist", root=SHARED_DATA, download=False)
    check_image_data(data, 60_000, 10_000)
    assert data.name == "mnist"


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10")
    message = str(info.value)
    assert "cifar10" in message and all(name in message for name in DATASET_NAMES)


def test_missing_root_gives_one_line_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", root=tmp_path, download=False)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path) in message and "--data-root" in message and "download" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_dataset_error_is_value_error() -> None:
    assert issubclass(DatasetError, ValueError)


def test_from_arrays_numpy_uint8_with_test_split() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 1, 8, 8), dtype=np.uint8)
    images[0, 0, 0, 0] = 255
    labels = np.arange(50) % 5
    data = from_arrays(images, train_labels=labels, test_fraction=0.2, seed=1)
    assert data.train_images.shape == (40, 1, 8, 8) and data.test_images.shape == (10, 1, 8, 8)
    assert data.train_images.dtype == torch.float32 and data.train_labels.dtype == torch.int64
    assert data.num_classes == 5 and data.image_shape == (1, 8, 8)
    # The split is a partition of the inputs, and images keep their labels.
    together = torch.cat([data.train_images, data.test_images]).mul(255).round().to(torch.uint8)
    rows = {tuple(x.flatten().tolist()) for x in together}
    assert rows == {tuple(x.flatten().tolist()) for x in torch.from_numpy(images)}
    lookup = {tuple(x.flatten().tolist()): int(y) for x, y in zip(torch.from_numpy(images), labels)}
    for x, y in zip(together, torch.cat([data.train_labels, data.test_labels])):
        assert lookup[tuple(x.flatten().tolist())] == int(y)
    again = from_arrays(images, train_labels=labels, test_fraction=0.2, seed=1)
    assert torch.equal(again.test_images, data.test_images)


def test_from_arrays_float_3d_tensor_and_explicit_test() -> None:
    train = torch.rand(20, 6, 7, dtype=torch.float64)
    test = torch.rand(4, 6, 7, dtype=torch.float64)
    data = from_arrays(train, test, name="mine")
    assert data.train_images.shape == (20, 1, 6, 7) and data.test_images.shape == (4, 1, 6, 7)
    assert data.train_images.dtype == torch.float32
    assert torch.allclose(data.train_images[:, 0].double(), train)
    assert data.train_labels is None and data.test_labels is None and data.num_classes is None
    assert data.name == "mine"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"train_images": np.zeros((0, 28, 28), dtype=np.uint8)}, "empty"),
        ({"train_images": np.full((4, 5, 5), np.nan, dtype=np.float32)}, "NaN"),
        ({"train_images": np.full((4, 5, 5), np.inf, dtype=np.float32)}, "infinite"),
        ({"train_images": np.full((4, 5, 5), 2.0, dtype=np.float32)}, "outside [0, 1]"),
        ({"train_images": np.full((4, 5, 5), -0.5, dtype=np.float32)}, "outside [0, 1]"),
        ({"train_images": np.zeros((4,), dtype=np.float32)}, "(N, H, W)"),  # (N, D) is tabular data now
        ({"train_images": np.zeros((4, 1, 1, 5, 5), dtype=np.float32)}, "(N, C, H, W)"),
        ({"train_images": np.zeros((4, 5, 5), dtype=np.int64)}, "uint8"),
        ({"train_images": np.zeros((4, 5, 5), dtype=np.uint8), "train_labels": np.zeros(3)}, "one label per image"),
        (
            {
                "train_images": np.zeros((4, 5, 5), dtype=np.uint8),
                "test_images": np.zeros((2, 5, 5), dtype=np.uint8),
                "test_labels": np.zeros(5, dtype=np.int64),
            },
            "one label per image",
        ),
        (
            {"train_images": np.zeros((4, 5, 5), dtype=np.uint8), "test_images": np.zeros((2, 6, 6), dtype=np.uint8)},
            "same image shape",
        ),
        ({"train_images": np.zeros((1, 5, 5), dtype=np.uint8)}, "empty"),
    ],
)
def test_from_arrays_rejects_bad_input(kwargs: dict, words: str) -> None:
    with pytest.raises(DatasetError) as info:
        from_arrays(**kwargs)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_batches_cover_every_index_once_per_epoch() -> None:
    index = torch.arange(23)
    features = torch.arange(23 * 2).reshape(23, 2)
    batches = InMemoryBatches(index, features, batch_size=5, generator=torch.Generator().manual_seed(0))
    assert len(batches) == 5
    epochs = []
    for _ in range(2):
        seen = []
        sizes = []
        for i, f in batches:
            assert torch.equal(f, features[i])  # rows stay aligned across tensors
            seen.append(i)
            sizes.append(i.shape[0])
        assert sizes == [5, 5, 5, 5, 3]
        seen = torch.cat(seen)
        assert torch.equal(seen.sort().values, index)
        epochs.append(seen)
    assert not torch.equal(epochs[0], epochs[1])  # a fresh permutation each epoch


def test_batches_drop_last_and_no_shuffle() -> None:
    batches = InMemoryBatches(torch.arange(23), batch_size=5, drop_last=True, shuffle=False)
    assert len(batches) == 4
    out = [b for (b,) in batches]
    assert [b.shape[0] for b in out] == [5, 5, 5, 5]
    assert torch.equal(torch.cat(out), torch.arange(20))
    assert len(InMemoryBatches(torch.arange(3), batch_size=5, drop_last=True)) == 0


def test_batches_reproducible_with_seeded_generator() -> None:
    def epoch(seed: int) -> list[torch.Tensor]:
        batches = InMemoryBatches(torch.arange(40), batch_size=8, generator=torch.Generator().manual_seed(seed))
        return [b for (b,) in batches]

    assert all(torch.equal(a, b) for a, b in zip(epoch(3), epoch(3)))
    assert not all(torch.equal(a, b) for a, b in zip(epoch(3), epoch(4)))


def test_batches_transform_applies_to_first_tensor_only() -> None:
    images, labels = torch.rand(10, 1, 4, 4), torch.arange(10)
    batches = InMemoryBatches(images, labels, batch_size=4, shuffle=False, transform=lambda x: x * 0 - 1)
    for x, y in batches:
        assert (x == -1).all()
        assert torch.equal(y, labels[: y.shape[0]] + (y[0] - labels[0]))


def test_batches_reject_misaligned_tensors() -> None:
    with pytest.raises(ValueError):
        InMemoryBatches(torch.zeros(5), torch.zeros(6), batch_size=2)
    with pytest.raises(ValueError):
        InMemoryBatches(torch.zeros(5), batch_size=0)


def test_dynamic_binarize_is_bernoulli_of_grey_value(small: ImageData) -> None:
    images = small.train_images[:2000]
    binary = dynamic_binarize(images, generator=torch.Generator().manual_seed(0))
    assert binary.shape == images.shape and binary.dtype == images.dtype
    assert set(binary.unique().tolist()) <= {0.0, 1.0}
    # 1.57M pixels: the mean of the draws has a standard error far below 1e-3.
    assert abs(float(binary.mean()) - float(images.mean())) < 3e-3
    assert torch.equal(binary[images == 0], torch.zeros_like(binary[images == 0]))
    assert torch.equal(binary[images == 1], torch.ones_like(binary[images == 1]))
    # A second draw from the same generator differs: the noise is fresh every epoch.
    generator = torch.Generator().manual_seed(0)
    first = dynamic_binarize(images, generator=generator)
    assert torch.equal(first, binary)
    assert not torch.equal(first, dynamic_binarize(images, generator=generator))


def test_binarize_once_is_fixed_by_seed(small: ImageData) -> None:
    images = small.test_images[:100]
    first = binarize_once(images, seed=7)
    assert torch.equal(first, binarize_once(images, seed=7))
    assert not torch.equal(first, binarize_once(images, seed=8))
    assert set(first.unique().tolist()) <= {0.0, 1.0}
