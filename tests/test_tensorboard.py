"""pyrovae train --tensorboard writes event files of the per-epoch scalars and the pictures;
without the tensorboard package it stops with one line naming the extra. Also the small CLI
defaults of the same issue: runs/<model> as the default folder, evaluate --no-progress."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyrovae.cli import build_parser, config_from_args

REPO = Path(__file__).resolve().parents[1]


def test_tensorboard_event_files_hold_scalars_and_images(tmp_path):
    pytest.importorskip("tensorboard", reason='needs the tensorboard extra: pip install -e ".[tensorboard]"')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "pyrovae", "train", "--tensorboard", "--epochs", "2", "--train-size", "64",
                          "--hidden", "16", "--latent-dim", "2", "--no-progress", "--out", str(out)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train_elbo", "test_elbo", "test_kl"} <= set(tags["scalars"])
    elbo = events.Scalars("test_elbo")
    assert [e.step for e in elbo] == [1, 2] and all(e.value < 0 for e in elbo)
    assert {"samples", "reconstructions", "training_curves"} <= set(tags["images"])
    image = events.Images("samples")[0]
    assert image.width > 28 and image.height > 28 and image.encoded_image_string.startswith(b"\x89PNG")


def test_without_tensorboard_one_line_names_the_extra(tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard") or name.startswith("tensorboard"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    from pyrovae.cli import main

    out = tmp_path / "run"
    code = main(["train", "--tensorboard", "--epochs", "1", "--train-size", "32", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert 'pip install "pyrovae[tensorboard]"' in err
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize("model", ["vae", "m2", "cvae"])
def test_default_output_folder_is_named_after_the_model(model):
    config = config_from_args(build_parser().parse_args(["train", "--model", model]))
    assert config.out == f"runs/{model}"
    given = config_from_args(build_parser().parse_args(["train", "--model", model, "--out", "elsewhere"]))
    assert given.out == "elsewhere"


def test_evaluate_takes_no_progress():
    args = build_parser().parse_args(["evaluate", "runs/vae/checkpoint.pt", "--no-progress"])
    assert args.progress is False
    assert build_parser().parse_args(["evaluate", "x.pt"]).progress is True


def test_dataset_help_mentions_npz():
    train = next(a for a in build_parser()._actions if a.dest == "command").choices["train"]
    assert ".npz" in next(a for a in train._actions if a.dest == "dataset").help
