"""Tests of --dataset resolution: image folders, torchvision's on-disk formats, .npz shapes, streaming."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from pyrovae.data import DatasetError, ImageData, InMemoryBatches
from pyrovae.data import sources
from pyrovae.data.sources import StreamedData, canonical_dataset, load_split, open_data
from pyrovae.data.streaming import StreamingImages


def write_folder(root, size=(32, 32), mode="RGB", classes=("cat", "dog"), per_class=6, seed=0):
    """Random images in class subfolders (or directly in ``root`` when ``classes`` is empty)."""
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    for name in classes or ("",):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
            Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode).save(folder / f"{i}.png")
    return root


def write_cifar10(root, per_batch=3, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    expected = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "labels": labels, "data": data, "filenames": []}, f)
        expected[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(k) for k in range(10)], "num_vis": 3072}, f)
    return expected


def write_svhn(root, n=4, seed=0):
    import scipy.io

    rng = np.random.default_rng(seed)
    arrays = {}
    for split in ("train", "test"):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = np.array([[10], [1], [2], [10]][:n], dtype=np.uint8)
        scipy.io.savemat(str(root / f"{split}_32x32.mat"), {"X": x, "y": y})
        arrays[split] = (x, y)
    return arrays


def write_celeba(root, n=7, seed=0):
    """Faces, the partition (all but the last three train, then one valid, two test) and the
    other text files torchvision's ``CelebA`` reads, in their layouts (two header lines)."""
    rng = np.random.default_rng(seed)
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(folder / "img_align_celeba" / name)
    parts = [0] * (n - 3) + [1, 2, 2]  # two test faces: torchvision cannot index a split of one
    (folder / "list_eval_partition.txt").write_text("".join(f"{a} {b}\n" for a, b in zip(names, parts)))
    (folder / "identity_CelebA.txt").write_text("".join(f"{a} {7 + i}\n" for i, a in enumerate(names)))
    tables = {"list_bbox_celeba.txt": ["image_id", "x_1", "y_1", "width", "height"],
              "list_landmarks_align_celeba.txt": [f"p{k}" for k in range(10)],
              "list_attr_celeba.txt": [f"attr{k}" for k in range(40)]}
    for file, header in tables.items():
        width = len(header) - (file == "list_bbox_celeba.txt")
        rows = "".join(f"{a} " + " ".join("1" for _ in range(width)) + "\n" for a in names)
        (folder / file).write_text(f"{n}\n" + " ".join(header) + "\n" + rows)


def test_image_folder_labels_come_from_class_subfolders(tmp_path):
    write_folder(tmp_path / "pets")
    data = open_data(str(tmp_path / "pets"))
    assert isinstance(data, ImageData) and data.image_shape == (3, 32, 32)
    assert data.train_images.shape[0] + data.test_images.shape[0] == 12
    assert data.num_classes == 2
    labels = torch.cat([data.train_labels, data.test_labels])
    assert sorted(labels.tolist()) == [0] * 6 + [1] * 6
    # the image data are the files' pixels divided by 255
    first = np.asarray(Image.open(tmp_path / "pets" / "cat" / "0.png")).transpose(2, 0, 1) / 255.0
    everything = torch.cat([data.train_images, data.test_images])
    assert any(torch.allclose(image.double(), torch.from_numpy(first)) for image in everything)


def test_flat_folder_is_unlabelled_and_grayscale_reads_one_channel(tmp_path):
    write_folder(tmp_path / "flat", classes=())
    data = open_data(str(tmp_path / "flat"))
    assert data.train_labels is None and data.num_classes is None
    grey = open_data(str(tmp_path / "flat"), grayscale=True)
    assert grey.image_shape == (1, 32, 32)
    write_folder(tmp_path / "digits", mode="L", classes=())
    assert open_data(str(tmp_path / "digits")).image_shape == (1, 32, 32)  # grey files stay grey


def test_image_size_resizes_the_shorter_side_and_centre_crops(tmp_path):
    folder = tmp_path / "wide"
    folder.mkdir()
    pixels = np.zeros((40, 80, 3), dtype=np.uint8)
    pixels[:, 16:64] = 255  # a white band over the middle 48 of 80 columns
    Image.fromarray(pixels).save(folder / "a.png")
    Image.fromarray(pixels).save(folder / "b.png")
    data = open_data(str(folder), image_size=20)
    assert data.image_shape == (3, 20, 20)
    # 80x40 -> 40x20 (band: columns 8 to 32), crop the middle 20 columns (10 to 30): all white
    assert float(data.train_images.min()) == 1.0


def test_bad_folders_give_one_line_errors_naming_the_fix(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no image files"):
        open_data(str(tmp_path / "empty"))
    write_folder(tmp_path / "mixed", classes=("a",), per_class=2)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "mixed" / "a" / "small.png")
    with pytest.raises(DatasetError, match="different sizes .* --image-size N"):
        open_data(str(tmp_path / "mixed"))
    assert open_data(str(tmp_path / "mixed"), image_size=16).image_shape == (3, 16, 16)
    write_folder(tmp_path / "broken", classes=("a",), per_class=2)
    (tmp_path / "broken" / "a" / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match=r"bad\.png cannot be read.*remove or replace"):
        open_data(str(tmp_path / "broken"))
    with pytest.raises(DatasetError, match="no such file or folder"):
        open_data(str(tmp_path / "missing"))


def test_cifar10_is_read_from_torchvisions_pickled_batches(tmp_path):
    expected = write_cifar10(tmp_path)
    data = open_data("cifar10", root=tmp_path, download=False)
    assert data.image_shape == (3, 32, 32) and data.train_images.shape[0] == 15 and data.test_images.shape[0] == 3
    batch, labels = expected["data_batch_1"]
    np.testing.assert_allclose(data.train_images[0].numpy(), batch[0].reshape(3, 32, 32) / 255.0, atol=1e-6)
    assert data.train_labels[:3].tolist() == labels
    assert data.test_labels.tolist() == expected["test_batch"][1]


def test_svhn_is_read_from_its_mat_files_with_ten_meaning_zero(tmp_path):
    arrays = write_svhn(tmp_path)
    data = open_data("svhn", root=tmp_path, download=False)
    assert data.train_images.shape == (4, 3, 32, 32)
    assert data.train_labels.tolist() == [0, 1, 2, 0]
    x = arrays["train"][0]
    np.testing.assert_allclose(data.train_images[1].numpy(), x[..., 1].transpose(2, 0, 1) / 255.0, atol=1e-6)


def test_celeba_is_read_from_its_partition_and_centre_cropped_to_64(tmp_path):
    write_celeba(tmp_path)
    data = open_data("celeba", root=tmp_path, download=False)
    assert data.image_shape == (3, 64, 64)
    assert data.train_images.shape[0] == 4 and data.test_images.shape[0] == 2  # validation left out
    assert data.train_labels is None
    assert open_data("celeba", root=tmp_path, download=False, image_size=32).image_shape == (3, 32, 32)


def test_missing_torchvision_files_name_the_root_and_the_flags(tmp_path):
    for name in ("cifar10", "svhn", "celeba"):
        with pytest.raises(DatasetError, match=f"{name}: .* does not exist .*--data-root.*--download"):
            open_data(name, root=tmp_path, download=False)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC", "NHW"])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_npz_images_of_any_layout_and_type(tmp_path, layout, dtype):
    rng = np.random.default_rng(0)
    nchw = rng.integers(0, 256, (10, 3 if layout != "NHW" else 1, 12, 20)).astype(np.uint8)
    arrays = {"NCHW": nchw, "NHWC": nchw.transpose(0, 2, 3, 1), "NHW": nchw[:, 0]}[layout]
    arrays = arrays if dtype == "uint8" else arrays.astype(np.float32) / 255.0
    np.savez(tmp_path / "d.npz", train_images=arrays, test_images=arrays[:2])
    data = open_data(str(tmp_path / "d.npz"))
    assert data.image_shape == nchw.shape[1:]
    np.testing.assert_allclose(data.train_images.numpy(), nchw / 255.0, atol=1e-6)


def test_npz_tabular_rows_and_wrong_rank(tmp_path):
    rows = np.random.default_rng(0).normal(size=(20, 7)).astype(np.float32)
    np.savez(tmp_path / "t.npz", train_images=rows)
    data = open_data(str(tmp_path / "t.npz"))
    assert data.image_shape == (7,) and data.train_images.shape[0] == 18  # 10% held out
    np.savez(tmp_path / "r5.npz", train_images=np.zeros((2, 1, 3, 4, 4), np.float32))
    with pytest.raises(DatasetError, match=r"must have shape \(N, D\) .* got \(2, 1, 3, 4, 4\)"):
        open_data(str(tmp_path / "r5.npz"))


def test_paths_are_stored_absolute_and_names_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert canonical_dataset("d.npz") == str(tmp_path / "d.npz")
    assert canonical_dataset("cifar10") == "cifar10" and canonical_dataset("dsprites") == "dsprites"


def test_large_sets_stream_and_small_ones_stay_in_memory(tmp_path, monkeypatch):
    write_folder(tmp_path / "pets")
    assert isinstance(open_data(str(tmp_path / "pets")), ImageData)
    monkeypatch.setattr(sources, "IN_MEMORY_LIMIT_BYTES", 12 * 3 * 32 * 32 * 4 - 1)  # one byte too few
    streamed = open_data(str(tmp_path / "pets"))
    assert isinstance(streamed, StreamedData) and len(streamed.train) == 11 and streamed.test_images.shape[0] == 1
    # the streamed split is the in-memory one: same seed, same images
    in_memory = open_data(str(tmp_path / "pets"), stream=False)
    images = torch.stack([streamed.train[i][0] for i in range(len(streamed.train))])
    torch.testing.assert_close(images, in_memory.train_images)
    torch.testing.assert_close(streamed.test_images, in_memory.test_images)
    train, labels = load_split(str(tmp_path / "pets"), split="train", limit=3)
    torch.testing.assert_close(train, in_memory.train_images[:3])


def test_generated_shapes_resolve_to_a_fixed_random_slice(tmp_path):
    data = open_data("dsprites", train_size=40)
    assert isinstance(data, ImageData) and data.train_images.shape == (40, 1, 64, 64)
    assert data.test_images.shape[0] == sources.SHAPES_TEST_SIZE and data.num_classes == 3
    again = open_data("dsprites", train_size=40, seed=5)  # the run's seed does not move the images
    torch.testing.assert_close(data.train_images, again.train_images)
    streamed = open_data("colour-shapes", train_size=40, stream=True)
    assert isinstance(streamed, StreamedData) and streamed.image_shape == (3, 64, 64)
    with pytest.raises(DatasetError, match="--train-size 737279 is too many"):
        open_data("dsprites", train_size=737_279)


def test_streaming_batches_follow_the_generators_order_like_in_memory_ones(tmp_path):
    write_folder(tmp_path / "pets", per_class=10)
    data = open_data(str(tmp_path / "pets"), stream=False)
    streamed = open_data(str(tmp_path / "pets"), stream=True)
    source = StreamingImages(streamed.train, num_workers=1)
    for shuffle in (False, True):
        memory = InMemoryBatches(data.train_images, batch_size=7, shuffle=shuffle,
                                 generator=torch.Generator().manual_seed(3))
        stream = source.batches(7, shuffle=shuffle, generator=torch.Generator().manual_seed(3))
        assert len(stream) == len(memory) == 3
        got = [x for (x,) in stream]
        want = [x for (x,) in memory]
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b)
    # a resumed epoch starts at a later batch of the same order
    order = stream.permutation()
    assert torch.equal(list(stream.iterate(order, start=1))[0][0], list(stream.iterate(order))[1][0])
    torch.testing.assert_close(source.head(5), data.train_images[:5])


def test_a_worker_decoding_error_reaches_the_user_as_one_line(tmp_path):
    write_folder(tmp_path / "pets", per_class=10)
    streamed = open_data(str(tmp_path / "pets"), stream=True)
    victim = streamed.train.dataset.paths[streamed.train.indices[3]]
    with open(victim, "r+b") as f:  # keep the header, cut the pixel data
        f.truncate(60)
    batches = StreamingImages(streamed.train, num_workers=1).batches(4, shuffle=False)
    with pytest.raises(DatasetError) as error:
        list(batches)
    assert "\n" not in str(error.value) and "cannot be read" in str(error.value)


def test_tiny_copies_are_what_torchvisions_own_readers_read(tmp_path, monkeypatch):
    """torchvision's classes, with only their MD5 checks switched off, read the same images and
    labels from the tiny copies as pyrovae does: the copies are in torchvision's format."""
    import torchvision.datasets as tv

    for cls in (tv.CIFAR10, tv.SVHN, tv.CelebA):
        monkeypatch.setattr(cls, "_check_integrity", lambda self: True)
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args: True)
    write_cifar10(tmp_path)
    ours = open_data("cifar10", root=tmp_path, download=False)
    theirs = tv.CIFAR10(str(tmp_path), train=True)
    np.testing.assert_allclose(ours.train_images.numpy(), theirs.data.transpose(0, 3, 1, 2) / 255.0, atol=1e-6)
    assert ours.train_labels.tolist() == theirs.targets
    write_svhn(tmp_path)
    ours = open_data("svhn", root=tmp_path, download=False)
    theirs = tv.SVHN(str(tmp_path), split="test")
    np.testing.assert_allclose(ours.test_images.numpy(), theirs.data / 255.0, atol=1e-6)
    assert ours.test_labels.tolist() == theirs.labels.tolist()
    write_celeba(tmp_path)
    from pyrovae.data.vision_sets import celeba_files

    train, test = celeba_files(tmp_path, download=False, image_size=64)
    assert [p.rsplit("/", 1)[-1] for p in train.paths] == list(tv.CelebA(str(tmp_path), split="train", target_type=[]).filename)
    assert [p.rsplit("/", 1)[-1] for p in test.paths] == list(tv.CelebA(str(tmp_path), split="test", target_type=[]).filename)
