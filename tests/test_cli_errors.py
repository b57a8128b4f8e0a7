"""Every bad input at the command line: exit code 2, one line ``pyrovae: error: ...`` naming the
problem and the fix, no traceback, and no existing file changed."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrovae.train.checkpoint import save_checkpoint
from pyrovae.cli import main
from pyrovae.cli.config import TrainConfig
from pyrovae.cli.registry import build_vae

REPO = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "16", "--latent-dim", "2", "--batch-size", "16", "--epochs", "1", "--no-progress"]


def snapshot(folder: Path) -> dict[str, str]:
    """Hash of every file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(args, capsys, tmp_path, subprocess_run=False):
    """Run ``pyrovae ARGS``; return (exit code, stderr); assert the common contract."""
    before = snapshot(tmp_path)
    if subprocess_run:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "-m", "pyrovae", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
        code, err = done.returncode, done.stderr
    else:
        try:
            code = main(args)
        except SystemExit as exit_:  # argparse
            code = exit_.code
        err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("pyrovae: error:")]
    assert len(lines) == 1, err
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before, "an existing file changed"
    return lines[0]


def npz(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def images(n=40, size=8, scale=1.0):
    return (np.random.default_rng(0).random((n, size, size)) * scale).astype(np.float32)


# -- data ------------------------------------------------------------------------------------


def test_nan_in_data(tmp_path, capsys):
    x = images()
    x[3, 2, 2] = np.nan
    line = run_cli(["train", "--dataset", npz(tmp_path, train_images=x), "--out", str(tmp_path / "o"), *TINY],
                   capsys, tmp_path, subprocess_run=True)
    assert "contains NaN or infinite values" in line and "clean or drop" in line


def test_inf_in_data(tmp_path, capsys):
    x = images()
    x[0, 0, 0] = np.inf
    line = run_cli(["train", "--dataset", npz(tmp_path, train_images=x), "--out", str(tmp_path / "o"), *TINY],
                   capsys, tmp_path)
    assert "NaN or infinite" in line


def test_data_of_wrong_shape(tmp_path, capsys):
    # (40, 64) is tabular data since the data sources of issue 22; five axes are no known layout
    line = run_cli(["train", "--dataset", npz(tmp_path, train_images=images().reshape(40, 1, 1, 8, 8)),
                    "--out", str(tmp_path / "o"), *TINY], capsys, tmp_path)
    assert "must have shape (N, D) (tabular), (N, H, W), (N, C, H, W) or (N, H, W, C), got (40, 1, 1, 8, 8)" in line


def test_data_of_wrong_shape_for_the_network(tmp_path, capsys):
    line = run_cli(["train", "--dataset", npz(tmp_path, train_images=images()), "--network", "conv",
                    "--out", str(tmp_path / "o"), *TINY], capsys, tmp_path)
    assert "--network conv takes images of 16 to 128 pixels a side" in line and "8x8" in line
    assert "--network mlp" in line


def test_data_outside_support(tmp_path, capsys):
    line = run_cli(["train", "--dataset", npz(tmp_path, train_images=images(scale=255.0)),
                    "--out", str(tmp_path / "o"), *TINY], capsys, tmp_path)
    assert "outside [0, 1]" in line and "divide by 255" in line


def test_empty_data(tmp_path, capsys):
    line = run_cli(["train", "--dataset", npz(tmp_path, train_images=np.zeros((0, 8, 8), np.float32)),
                    "--out", str(tmp_path / "o"), *TINY], capsys, tmp_path)
    assert "is empty" in line


def test_labels_out_of_range(tmp_path, capsys):
    labels = np.arange(40) % 10 - 1  # contains -1
    line = run_cli(["train", "--dataset", npz(tmp_path, train_images=images(), train_labels=labels),
                    "--out", str(tmp_path / "o"), *TINY], capsys, tmp_path)
    assert "train_labels contains negative values" in line


def test_labels_of_wrong_length(tmp_path, capsys):
    line = run_cli(["train", "--dataset", npz(tmp_path, train_images=images(), train_labels=np.arange(7)),
                    "--out", str(tmp_path / "o"), *TINY], capsys, tmp_path)
    assert "train_labels has 7 entries but train_images has 40 images" in line


def test_data_file_missing_or_not_npz(tmp_path, capsys):
    line = run_cli(["train", "--dataset", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "o"), *TINY],
                   capsys, tmp_path)
    assert "does not exist" in line
    (tmp_path / "fake.npz").write_bytes(b"not a zip")
    line = run_cli(["train", "--dataset", str(tmp_path / "fake.npz"), "--out", str(tmp_path / "o"), *TINY],
                   capsys, tmp_path)
    assert "not a readable .npz archive" in line


# -- checkpoints -----------------------------------------------------------------------------


def write_checkpoint(path: Path, built_with_hidden: int = 16, stored_hidden: int = 16) -> Path:
    """A checkpoint whose config says ``stored_hidden`` but whose weights have ``built_with_hidden``."""
    weights = build_vae(TrainConfig(hidden=built_with_hidden, latent_dim=2), (1, 8, 8)).state_dict()
    config = TrainConfig(hidden=stored_hidden, latent_dim=2, out=str(path.parent)).to_dict()
    return save_checkpoint(path, {"config": config, "image_shape": [1, 8, 8], "model": weights})


def test_checkpoint_of_another_architecture(tmp_path, capsys):
    path = write_checkpoint(tmp_path / "checkpoint.pt", built_with_hidden=16, stored_hidden=32)
    line = run_cli(["sample", str(path), "--out", str(tmp_path / "s.png")], capsys, tmp_path)
    assert "does not match this model" in line
    assert "'encoder.net.layers.0.weight' has shape (16, 64) in the checkpoint but (32, 64)" in line
    assert not (tmp_path / "s.png").exists()


def test_missing_checkpoint(tmp_path, capsys):
    line = run_cli(["sample", str(tmp_path / "none.pt")], capsys, tmp_path, subprocess_run=True)
    assert "does not exist" in line
    line = run_cli(["train", "--resume", str(tmp_path)], capsys, tmp_path)
    assert "there is no checkpoint.pt in that folder" in line


def test_truncated_checkpoint(tmp_path, capsys):
    good = write_checkpoint(tmp_path / "good.pt")
    (tmp_path / "checkpoint.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    line = run_cli(["sample", str(tmp_path / "checkpoint.pt")], capsys, tmp_path)
    assert "is truncated or corrupt" in line
    line = run_cli(["train", "--resume", str(tmp_path)], capsys, tmp_path)
    assert "is truncated or corrupt" in line


def test_non_checkpoint_files(tmp_path, capsys):
    (tmp_path / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    line = run_cli(["sample", str(tmp_path / "picture.png")], capsys, tmp_path)
    assert "is not a pyrovae checkpoint (not a PyTorch file)" in line
    torch.save({"weight": torch.randn(3)}, tmp_path / "weights.pt")
    line = run_cli(["sample", str(tmp_path / "weights.pt")], capsys, tmp_path)
    assert "is not a pyrovae checkpoint (it holds a dict without pyrovae's format marker)" in line
    torch.save({"format": "pyrovae-checkpoint", "version": 2, "model": {}, "config": {}}, tmp_path / "v2.pt")
    line = run_cli(["sample", str(tmp_path / "v2.pt")], capsys, tmp_path)
    assert "format version 2 but this pyrovae reads version 1" in line


def test_sampling_checkpoint_cannot_resume(tmp_path, capsys):
    write_checkpoint(tmp_path / "checkpoint.pt")  # weights and config only, no trainer state
    line = run_cli(["train", "--resume", str(tmp_path)], capsys, tmp_path)
    assert "without trainer, rng" in line


def test_checkpoint_that_runs_code_is_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    torch.save({"format": "pyrovae-checkpoint", "version": 1, "config": {}, "model": {}, "x": Exploit()},
               tmp_path / "checkpoint.pt")
    for args in (["sample", str(tmp_path / "checkpoint.pt")], ["train", "--resume", str(tmp_path)]):
        line = run_cli(args, capsys, tmp_path, subprocess_run=args[0] == "sample")
        assert "refusing to load" in line and "pickled Python objects (global exec)" in line
        assert not marker.exists()


# -- options ---------------------------------------------------------------------------------


def test_unknown_option(tmp_path, capsys):
    err = run_cli(["train", "--latent-dims", "3"], capsys, tmp_path, subprocess_run=True)
    assert "unrecognized arguments: --latent-dims 3" in err


@pytest.mark.parametrize("flag, value, phrase", [
    ("--latent-dim", "0", "--latent-dim must be at least 1, got 0"),
    ("--lr", "-0.1", "--lr must be positive"),
    ("--lr", "nan", "--lr must be a finite number"),
    ("--beta", "inf", "--beta must be a finite number"),
    ("--checkpoint-every", "-5", "--checkpoint-every must be 0"),
    ("--max-nonfinite-steps", "0", "--max-nonfinite-steps must be at least 1"),
    ("--train-size", "0", "--train-size must be at least 1"),
    ("--pretrain-epochs", "-1", "--pretrain-epochs must be 0"),
    ("--epochs", "two", "argument --epochs: invalid int value: 'two'"),
])
def test_value_out_of_range(tmp_path, capsys, flag, value, phrase):
    assert phrase in run_cli(["train", flag, value, "--out", str(tmp_path / "o")], capsys, tmp_path)
    assert not (tmp_path / "o").exists()


# -- output folder ---------------------------------------------------------------------------


def test_output_folder_that_cannot_be_written(tmp_path, capsys):
    (tmp_path / "file").write_text("keep me")
    line = run_cli(["train", "--out", str(tmp_path / "file"), *TINY], capsys, tmp_path)
    assert "is an existing file, not a folder" in line
    line = run_cli(["train", "--out", str(tmp_path / "file" / "run"), *TINY], capsys, tmp_path)
    assert "cannot create output folder" in line


def test_output_folder_with_another_run(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    (run / "notes.txt").write_text("mine")
    line = run_cli(["train", "--out", str(run), *TINY], capsys, tmp_path)
    assert "already holds a run (metrics.jsonl)" in line and "--resume" in line and "--overwrite" in line


def test_resume_with_conflicting_flags(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--dataset", npz(tmp_path, train_images=images()), "--out", str(run), *TINY])
    assert code == 0
    capsys.readouterr()
    line = run_cli(["train", "--resume", str(run), "--hidden", "64"], capsys, tmp_path)
    assert "--hidden 64 conflicts with the run" in line and "(--hidden 16)" in line
    line = run_cli(["train", "--resume", str(run), "--overwrite"], capsys, tmp_path)
    assert "--resume and --overwrite exclude each other" in line
    line = run_cli(["train", "--resume", str(run)], capsys, tmp_path)
    assert "already finished 1 of 1 epochs; pass --epochs N with N > 1" in line
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0


def test_non_finite_training_stops_and_keeps_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    line = run_cli(["train", "--dataset", npz(tmp_path, train_images=images(n=200)), "--out", str(run),
                    "--lr", "1e30", "--max-nonfinite-steps", "3", "--checkpoint-every", "1",
                    *TINY[:-3], "--epochs", "3", "--no-progress"], capsys, tmp_path)
    assert "3 steps in a row had a non-finite" in line and "lower learning rate" in line
    assert f"the last checkpoint in {run} was kept" in line
    from pyrovae.train.checkpoint import load_checkpoint

    payload = load_checkpoint(run / "checkpoint.pt", require=("trainer",))
    assert all(torch.isfinite(t).all() for t in payload["model"].values())
    assert payload["trainer"]["guard"]["skipped"] >= 1
