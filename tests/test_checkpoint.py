"""Checkpoints: atomic writes, exact in-process resume, and refusal of unsafe, damaged or foreign files."""

import os
import pickle
import random
import zipfile

import numpy as np
import pyro
import pytest
import torch

from pyrovae import VAE, BernoulliLikelihood, DiagonalNormalEncoder, MLP, StandardNormalPrior, Trainer
from pyrovae.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_module_state,
    restore_training,
    rng_state,
    save_checkpoint,
    save_training_checkpoint,
    set_rng_state,
)
from pyrovae.data import dynamic_binarize
from pyrovae.errors import PyrovaeError


def tiny_vae(hidden: int = 16) -> VAE:
    encoder = DiagonalNormalEncoder(MLP((1, 8, 8), [hidden], 4), 2)
    likelihood = BernoulliLikelihood(MLP(2, [hidden], 64), (1, 8, 8))
    return VAE(encoder, likelihood, StandardNormalPrior(2))


def make_trainer(vae: VAE, seed: int) -> Trainer:
    generator = torch.Generator().manual_seed(seed)
    return Trainer(vae, batch_size=16, progress=False, generator=generator, warmup_epochs=1,
                   transform=lambda b: dynamic_binarize(b, generator))


class _Stop(Exception):
    pass


def train(data, epochs, stop_at=None, path=None):
    """Train from scratch; with ``stop_at``, save at that step, abandon, and resume in fresh objects."""
    pyro.clear_param_store()
    pyro.set_rng_seed(1)
    vae = tiny_vae()
    trainer = make_trainer(vae, 3)
    if stop_at is None:
        trainer.fit(data, data[:20], epochs=epochs)
        return vae, trainer

    def stop(t):
        if t.record.steps == stop_at:
            save_training_checkpoint(path, t, {"hidden": 16})
            raise _Stop

    trainer.step_callbacks.append(stop)
    with pytest.raises(_Stop):
        trainer.fit(data, data[:20], epochs=epochs)
    pyro.clear_param_store()
    pyro.set_rng_seed(12345)  # a different global state: the checkpoint must override it
    vae = tiny_vae()
    trainer = make_trainer(vae, 99)
    restore_training(trainer, load_checkpoint(path, require=("trainer", "rng")))
    trainer.fit(data, data[:20], epochs=epochs - trainer.epoch)
    return vae, trainer


@pytest.mark.parametrize("stop_at", [3, 7, 12])  # 7 batches per epoch: inside, at the end, inside
def test_resume_in_process_is_bit_exact(tmp_path, stop_at):
    data = torch.rand(100, 1, 8, 8)
    full, full_trainer = train(data, 3)
    resumed, resumed_trainer = train(data, 3, stop_at, tmp_path / "checkpoint.pt")
    for (name, p), q in zip(full.named_parameters(), resumed.parameters()):
        assert torch.equal(p, q), name
    assert resumed_trainer.record.steps == full_trainer.record.steps == 21
    a, b = full_trainer.record.history, resumed_trainer.record.history
    assert [h["train_loss"] for h in a] == [h["train_loss"] for h in b]
    assert [h["test_elbo"] for h in a] == [h["test_elbo"] for h in b]


def test_trainer_state_dict_loads_with_weights_only(tmp_path):
    trainer = make_trainer(tiny_vae(), 0)
    trainer.fit(torch.rand(40, 1, 8, 8), epochs=1)
    path = save_training_checkpoint(tmp_path / "c.pt", trainer, {"lr": 1e-3}, image_shape=[1, 8, 8])
    payload = torch.load(path, weights_only=True)
    assert payload["trainer"]["steps"] == 3 and payload["epoch"] == 1
    assert payload["config"] == {"lr": 1e-3} and payload["image_shape"] == [1, 8, 8]
    assert set(payload["rng"]) >= {"torch", "python", "numpy"}
    assert payload["trainer"]["history"][0]["skipped_steps"] == 0


def test_rng_state_round_trip():
    state = rng_state()
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    set_rng_state(state)
    assert torch.equal(torch.rand(3), expected[0])
    assert random.random() == expected[1] and np.random.rand() == expected[2]


def test_write_is_atomic_and_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(2)}, "config": {}})
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, {"model": {"w": torch.zeros(2)}, "config": {}})
    assert path.read_bytes() == before
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(2))


def _exploit_reduce(marker):
    class Exploit:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('pwned')",))
    return Exploit()


@pytest.mark.parametrize("legacy", [False, True])
def test_pickled_code_is_refused_and_never_runs(tmp_path, legacy):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    payload = {"format": "pyrovae-checkpoint", "version": 1, "model": {}, "config": {},
               "evil": _exploit_reduce(marker)}
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CheckpointError, match=r"pickled Python objects \(global exec\)") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()
    # a plain pickle file, not torch.save's format, is refused the same way
    with open(path, "wb") as f:
        pickle.dump(_exploit_reduce(marker), f)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def _good(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"model": tiny_vae().state_dict(), "config": {}})
    return path


@pytest.mark.parametrize("cut", [0.5, 0.95])
def test_truncated_file_is_reported(tmp_path, cut):
    path = _good(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_empty_missing_folder_png(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(CheckpointError, match="not a pyrovae checkpoint"):
        load_checkpoint(tmp_path / "image.png")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "other.zip")


def test_foreign_dict_and_version_mismatch(tmp_path):
    torch.save({"weight": torch.randn(3)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a pyrovae checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    torch.save(torch.randn(3), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="not a pyrovae checkpoint"):
        load_checkpoint(tmp_path / "tensor.pt")
    torch.save({"format": "pyrovae-checkpoint", "version": 99, "model": {}, "config": {}}, tmp_path / "v.pt")
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(tmp_path / "v.pt")
    save_checkpoint(tmp_path / "partial.pt", {"model": {}, "config": {}})
    with pytest.raises(CheckpointError, match="without trainer"):
        load_checkpoint(tmp_path / "partial.pt", require=("trainer",))


def test_architecture_mismatch_names_the_key():
    with pytest.raises(CheckpointError, match=r"'encoder.net.layers.0.weight' has shape \(32, 64\)") as info:
        load_module_state(tiny_vae(hidden=16), tiny_vae(hidden=32).state_dict())
    assert isinstance(info.value, PyrovaeError) and "\n" not in str(info.value)
    state = tiny_vae().state_dict()
    state["extra.weight"] = torch.ones(1)
    with pytest.raises(CheckpointError, match="'extra.weight'"):
        load_module_state(tiny_vae(), state)

