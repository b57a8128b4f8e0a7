"""Every command on every data source, from any working directory; bad data refused in one line."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from pyrovae.cli import main
from pyrovae.data import load_dataset
from test_data_sources import write_cifar10, write_folder

FAST = ["--epochs", "1", "--batch-size", "8", "--no-progress", "--latent-dim", "4", "--hidden", "16"]
CONV = ["--network", "conv", "--channels", "8,16"]


def write_digits(root, per_class=3):
    """28x28 grey digits from the bundled MNIST subset, as PNGs in one folder per class."""
    data = load_dataset("mnist-small")
    for digit in range(3):
        folder = root / str(digit)
        folder.mkdir(parents=True)
        chosen = (data.train_labels == digit).nonzero().flatten()[:per_class]
        for i in chosen.tolist():
            Image.fromarray((data.train_images[i, 0].numpy() * 255).astype(np.uint8), "L").save(folder / f"{i}.png")
    return root


def png_colours(path):
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int(np.abs(pixels - pixels.mean(axis=2, keepdims=True)).max())


@pytest.mark.parametrize("kind", ["rgb32", "rgb64", "digits28"])
def test_conv_vae_trains_on_a_folder_of_images(tmp_path, kind):
    if kind == "digits28":
        folder, shape = write_digits(tmp_path / "digits"), (1, 28, 28)
    else:
        size = 32 if kind == "rgb32" else 64
        folder, shape = write_folder(tmp_path / "pics", size=(size, size), per_class=5), (3, size, size)
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(folder), *CONV, *FAST, "--out", str(out),
                 "--likelihood", "cbernoulli"]) == 0
    for name in ("checkpoint.pt", "reconstructions.png", "samples.png", "traversals.png"):
        assert (out / name).is_file()
    import torch

    payload = torch.load(out / "checkpoint.pt", weights_only=False)
    assert tuple(payload["image_shape"]) == shape
    assert payload["config"]["dataset"] == str(folder.resolve())
    if kind == "digits28":  # grey data, grey pictures
        assert png_colours(out / "reconstructions.png") <= 1 and png_colours(out / "samples.png") <= 1
    else:  # the random colour inputs shown above their reconstructions
        assert png_colours(out / "reconstructions.png") > 50


def make_source(kind, tmp_path):
    """The --dataset (and --data-root) flags of a tiny data set of each kind, relative to tmp_path."""
    if kind == "folder":
        write_folder(tmp_path / "pics", size=(16, 16), per_class=5)
        return ["--dataset", "pics"]
    if kind == "npz":
        rng = np.random.default_rng(0)
        np.savez(tmp_path / "d.npz", train_images=rng.integers(0, 256, (30, 16, 16, 3), dtype=np.uint8))
        return ["--dataset", "d.npz"]
    write_cifar10(tmp_path / "tv")
    return ["--dataset", "cifar10", "--data-root", "tv", "--no-download"]


@pytest.mark.parametrize("kind", ["folder", "npz", "cifar10"])
def test_every_command_works_from_another_working_directory(tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    flags = make_source(kind, tmp_path)
    assert main(["train", *flags, *FAST, "--out", "run", "--likelihood", "cbernoulli"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    checkpoint = str(tmp_path / "run" / "checkpoint.pt")
    assert main(["evaluate", checkpoint, "--num-samples", "4"]) == 0
    assert main(["sample", checkpoint, "--num-samples", "4"]) == 0
    assert main(["train", "--resume", str(tmp_path / "run"), "--epochs", "2"]) == 0
    assert (tmp_path / "run" / "evaluation_test_k4.json").is_file()
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_streamed_training_resumes_and_evaluates_like_an_in_memory_run(tmp_path, monkeypatch):
    write_folder(tmp_path / "pics", size=(16, 16), per_class=8)
    flags = ["--dataset", str(tmp_path / "pics"), *FAST, "--likelihood", "cbernoulli", "--workers", "0"]
    assert main(["train", *flags, "--out", str(tmp_path / "memory"), "--no-stream"]) == 0
    assert main(["train", *flags, "--out", str(tmp_path / "stream"), "--stream"]) == 0
    import json

    memory = json.loads((tmp_path / "memory" / "metrics.jsonl").read_text())
    stream = json.loads((tmp_path / "stream" / "metrics.jsonl").read_text())
    # same images in the same order, same seed: the same training, step for step
    assert stream["train_loss"] == pytest.approx(memory["train_loss"], rel=1e-5)
    assert stream["test_elbo"] == pytest.approx(memory["test_elbo"], rel=1e-5)
    assert main(["train", "--resume", str(tmp_path / "stream"), "--epochs", "2"]) == 0


def test_moved_data_gives_one_line_naming_the_file_and_the_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_source("npz", tmp_path)
    assert main(["train", "--dataset", "d.npz", *FAST, "--out", "run"]) == 0
    shutil.move(tmp_path / "d.npz", tmp_path / "moved.npz")
    capsys.readouterr()
    assert main(["evaluate", "run/checkpoint.pt", "--num-samples", "2"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(tmp_path / "d.npz") in error and "--dataset PATH" in error
    assert main(["train", "--resume", "run", "--epochs", "2"]) == 2
    assert str(tmp_path / "d.npz") in capsys.readouterr().err
    assert main(["evaluate", "run/checkpoint.pt", "--num-samples", "2", "--dataset", "moved.npz"]) == 0
    assert main(["train", "--resume", "run", "--epochs", "2", "--dataset", "moved.npz"]) == 0


def corrupt_image(tmp_path):
    folder = write_folder(tmp_path / "data", size=(16, 16), per_class=3)
    (folder / "cat" / "broken.png").write_bytes(b"\x89PNG but not really")
    return ["--dataset", str(folder)], "broken.png cannot be read"


def mixed_sizes(tmp_path):
    folder = write_folder(tmp_path / "data", size=(16, 16), per_class=3)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(folder / "dog" / "big.png")
    return ["--dataset", str(folder)], "--image-size N"


def empty_folder(tmp_path):
    (tmp_path / "data").mkdir()
    return ["--dataset", str(tmp_path / "data")], "holds no image files"


def wrong_rank(tmp_path):
    np.savez(tmp_path / "data.npz", train_images=np.zeros((4, 1, 2, 8, 8), np.float32))
    return ["--dataset", str(tmp_path / "data.npz")], "reshape the array"


def conv_on_tabular(tmp_path):
    np.savez(tmp_path / "data.npz", train_images=np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32))
    return ["--dataset", str(tmp_path / "data.npz"), "--network", "conv", "--likelihood", "normal"], "--network mlp"


@pytest.mark.parametrize("bad", [corrupt_image, mixed_sizes, empty_folder, wrong_rank, conv_on_tabular])
def test_bad_data_is_refused_in_one_line_and_nothing_is_overwritten(tmp_path, capsys, bad):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"an earlier run")
    before = os.stat(out / "checkpoint.pt").st_mtime_ns
    flags, words = bad(tmp_path)
    assert main(["train", *flags, *FAST, "--out", str(out), "--overwrite"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("pyrovae: error: ") and error.count("\n") == 1 and words in error
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]
    assert os.stat(out / "checkpoint.pt").st_mtime_ns == before


def test_tabular_rows_train_an_mlp(tmp_path):
    rows = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    np.savez(tmp_path / "rows.npz", train_images=rows)
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(tmp_path / "rows.npz"), *FAST, "--likelihood", "normal",
                 "--out", str(out)]) == 0
    assert (out / "checkpoint.pt").is_file() and (out / "training_curves.png").is_file()
    assert main(["evaluate", str(out / "checkpoint.pt"), "--num-samples", "4"]) == 0


def test_generated_shapes_train_and_evaluate_on_the_same_held_out_images(tmp_path, monkeypatch):
    from pyrovae.data import sources

    monkeypatch.setattr(sources, "SHAPES_TEST_SIZE", 40)  # a small test split keeps the run to seconds
    out = tmp_path / "run"
    assert main(["train", "--dataset", "dsprites", "--train-size", "48", *CONV, *FAST, "--out", str(out)]) == 0
    assert main(["evaluate", str(out / "checkpoint.pt"), "--num-samples", "2"]) == 0
    import json

    figures = json.loads((out / "evaluation_test_k2.json").read_text())
    assert figures["num_points"] == 40


def test_a_streamed_run_stopped_mid_epoch_resumes_bit_exact(tmp_path, monkeypatch):
    """SIGTERM at step 3 of an epoch of 4; the resumed run reads the rest of that epoch in the
    same order and ends on the uninterrupted run's parameters."""
    import signal

    import torch

    from pyrovae.train.checkpoint import CheckpointEvery

    write_folder(tmp_path / "pics", size=(16, 16), per_class=15)
    flags = ["--dataset", str(tmp_path / "pics"), *FAST, "--epochs", "2", "--likelihood", "cbernoulli",
             "--stream", "--workers", "1"]
    assert main(["train", *flags, "--out", str(tmp_path / "straight")]) == 0
    on_step = CheckpointEvery.on_step

    def stop_at_step_three(self, trainer):
        on_step(self, trainer)
        if trainer.record.steps == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(CheckpointEvery, "on_step", stop_at_step_three)
    assert main(["train", *flags, "--out", str(tmp_path / "stopped")]) == 143
    monkeypatch.setattr(CheckpointEvery, "on_step", on_step)
    assert main(["train", "--resume", str(tmp_path / "stopped")]) == 0
    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["model"]
    resumed = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=False)["model"]
    for key, tensor in straight.items():
        assert torch.equal(tensor, resumed[key]), key
