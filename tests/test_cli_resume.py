"""Crash safety end to end: SIGKILL at random moments, resume, and land on the uninterrupted run's
parameters bit for bit; SIGINT and SIGTERM stop cleanly with a checkpoint and exit 130 / 143."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pyrovae.train.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = ["--train-size", "384", "--hidden", "32", "--latent-dim", "2", "--batch-size", "32",
        "--binarize", "--no-progress", "--seed", "7"]
# M2 trains in the same loop: 280 unlabelled images, 9 steps an epoch.
TINY_M2 = ["--model", "m2", "--labels", "20", "--validation-size", "100", "--train-size", "400",
           "--hidden", "32", "--latent-dim", "2", "--batch-size", "32", "--no-progress", "--seed", "7"]
COMPARED = {"vae": ("train_loss", "test_elbo", "train_elbo"), "m2": ("train_loss", "test_accuracy", "val_accuracy")}


def start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "pyrovae", "train", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def wait_for_new_checkpoint(path: Path, process: subprocess.Popen, timeout: float = 240) -> bool:
    """Wait until ``path`` is (re)written by ``process``; False if the process ended first."""
    before = path.stat().st_mtime_ns if path.exists() else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if path.exists() and path.stat().st_mtime_ns != before:
            return True
        time.sleep(0.02)
    raise TimeoutError(f"no checkpoint written to {path} in {timeout} s")


@pytest.mark.parametrize("model", ["vae", "m2"])
def test_sigkill_at_random_moments_then_resume_is_bit_exact(tmp_path, model):
    tiny = TINY if model == "vae" else TINY_M2
    epochs = ["--epochs", "5", "--checkpoint-every", "5"]
    reference = tmp_path / "reference"
    code, _, err = finish(start(*tiny, *epochs, "--out", str(reference)))
    assert code == 0, err

    run = tmp_path / "crashed"
    checkpoint = run / "checkpoint.pt"
    rng = random.Random(2024)
    process = start(*tiny, *epochs, "--out", str(run))
    kills, steps_at_kill = 0, []
    for _ in range(3):
        if not wait_for_new_checkpoint(checkpoint, process):
            break
        time.sleep(rng.uniform(0.0, 0.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        if process.returncode == -signal.SIGKILL:
            kills += 1
        # whatever moment the kill hit, the checkpoint on disk is whole
        payload = load_checkpoint(checkpoint, require=("trainer", "rng"))
        steps_at_kill.append(payload["step"])
        if payload["trainer"]["epoch"] == 5:  # killed after training, while writing pictures
            process = None
            break
        process = start("--resume", str(run))
    if process is not None:
        code, out, err = finish(process)
        assert code == 0, err
        assert "Traceback" not in err
    print(f"SIGKILLs landed: {kills}; checkpoint step after each: {steps_at_kill}")
    assert kills >= 2, f"only {kills} kills landed before the run ended (steps {steps_at_kill})"

    expected = load_checkpoint(reference / "checkpoint.pt")
    got = load_checkpoint(checkpoint)
    assert got["step"] == expected["step"] == 5 * (12 if model == "vae" else 9)
    for key, tensor in expected["model"].items():
        assert torch.equal(tensor, got["model"][key]), key
    for key in COMPARED[model]:
        assert [h[key] for h in got["history"]] == [h[key] for h in expected["history"]], key
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 5 or (process is None and len(lines) == 4)  # a kill may land between the two writes


@pytest.mark.parametrize("signum, code, tiny", [(signal.SIGINT, 130, TINY), (signal.SIGTERM, 143, TINY),
                                               (signal.SIGTERM, 143, TINY_M2)])
def test_signal_writes_checkpoint_and_exits_conventionally(tmp_path, signum, code, tiny):
    out = tmp_path / "run"
    process = start(*tiny, "--epochs", "50", "--checkpoint-every", "3", "--out", str(out))
    assert wait_for_new_checkpoint(out / "checkpoint.pt", process), process.communicate()
    process.send_signal(signum)
    returncode, _, err = finish(process, timeout=120)
    assert returncode == code, err
    assert "Traceback" not in err
    assert f"{signal.Signals(signum).name} received: stopped at step" in err and "--resume" in err
    payload = load_checkpoint(out / "checkpoint.pt", require=("trainer", "rng"))
    assert f"stopped at step {payload['step']} " in err
