"""Checkpoint files: written atomically, read back without executing any code, resumed exactly.

A checkpoint is one ``torch.save`` file holding only tensors, numbers, strings, lists and
dicts: the model's weights, the full configuration (a plain JSON-able dict, enough to rebuild
the model), the trainer's state (optimizer, epoch, step, position inside the epoch, shuffling
generator, metrics so far) and every global random state that Pyro's sampling and the data
transforms draw from. Reading uses ``torch.load(weights_only=True)``, which refuses pickled
Python objects, so a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import json
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pyrovae.errors import PyrovaeError
from pyrovae.nn.rebuild import spec_entry

FORMAT = "pyrovae-checkpoint"
FORMAT_VERSION = 1
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(PyrovaeError, ValueError):
    """A checkpoint is missing, damaged, unsafe, not a pyrovae checkpoint, or for another model."""


# -- writing ---------------------------------------------------------------------------------


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists and dicts only) to ``path`` atomically.

    The bytes go to a temporary file in the same folder (``.<name>.partial``), which is
    flushed and fsynced, then renamed over ``path`` with ``os.replace``, and the folder is
    fsynced so the rename itself is durable: a crash at any moment leaves the previous file
    whole, or the new one. The fixed temporary name means a write cut short leaves at most
    one stale ``.partial`` file, replaced by the next save.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": FORMAT_VERSION, **payload}
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_folder(path.parent)
    return path


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- reading ---------------------------------------------------------------------------------


def load_checkpoint(
    path: str | Path,
    map_location: str | torch.device | None = "cpu",
    require: tuple[str, ...] = ("model", "config"),
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, refusing anything that could run code.

    Args:
        path: the file.
        map_location: where tensors go, as in ``torch.load``.
        require: keys the payload must have (e.g. ``("trainer", "rng")`` to resume).

    Returns:
        The payload dict.

    Raises:
        CheckpointError: one line saying what is wrong: the file is missing, empty, truncated
            or corrupt, carries pickled Python objects (refused, never executed), is not a
            pyrovae checkpoint, has another format version, or lacks a required part.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the checkpoint.pt of a training run")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder; pass the checkpoint.pt file inside it")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes), probably cut off while being "
                              "written; use an earlier copy or train again")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "unsupported global" in str(e).lower():
            raise CheckpointError(
                f"refusing to load {path}: it contains pickled Python objects ({_unsafe_global(e)}) "
                "that could run code; load only checkpoints written by pyrovae or another source you trust"
            ) from None
        if head == _ZIP_MAGIC:
            raise CheckpointError(f"checkpoint {path} is corrupt (its data cannot be unpickled); "
                                  "use an earlier copy or train again") from None
        raise CheckpointError(f"{path} is not a pyrovae checkpoint (not a PyTorch file); "
                              "pass the checkpoint.pt of a training run") from None
    except Exception as e:  # noqa: BLE001 - zip, storage and EOF errors all mean a damaged file
        if head == _ZIP_MAGIC:
            raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({_first_line(e)}); "
                                  "use an earlier copy or train again") from None
        # torch's message here can be a bare byte value ("invalid load key, 'h'" or "101"): not worth showing.
        raise CheckpointError(f"{path} is not a pyrovae checkpoint (not a PyTorch file); "
                              "pass the checkpoint.pt of a training run") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        kind = "a dict without pyrovae's format marker" if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path} is not a pyrovae checkpoint (it holds {kind}); "
                              "pass the checkpoint.pt that pyrovae train wrote")
    if payload.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {payload.get('version')!r} but this "
                              f"pyrovae reads version {FORMAT_VERSION}; use the pyrovae version that wrote it")
    missing = [key for key in require if key not in payload]
    if missing:
        raise CheckpointError(f"{path} is a pyrovae checkpoint without {', '.join(missing)}, which this "
                              "needs (e.g. to resume training); pass a checkpoint written by pyrovae train")
    return payload


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    # torch's own messages run on ("This is an internal miniz error. If you ..."): keep the first sentence.
    return line.split(". ")[0].rstrip(".")[:160]


def _unsafe_global(error: BaseException) -> str:
    """The offending global from a weights-only refusal, e.g. ``posix.system``."""
    import re

    match = re.search(r"Unsupported global: (?:GLOBAL )?([\w.]+)", str(error))
    return f"global {match.group(1)}" if match else "unsupported objects"


# -- the model's weights ---------------------------------------------------------------------


def load_module_state(module: nn.Module, state: dict[str, Any], source: str = "the checkpoint") -> None:
    """``module.load_state_dict(state)`` with a one-line error naming the first mismatch.

    Raises:
        CheckpointError: if a key is missing on either side or a tensor has another shape,
            e.g. a checkpoint written for a wider network or another prior.
    """
    own = module.state_dict()
    fix = ("rebuild the model from the checkpoint's own config (pyrovae train --resume does), "
           "or start a new run in another folder")
    for key, value in state.items():
        if key not in own:
            raise CheckpointError(f"{source} does not match this model: it has parameter {key!r}, "
                                  f"which the model lacks; {fix}")
        if tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{source} does not match this model: parameter {key!r} has shape "
                f"{tuple(value.shape)} in the checkpoint but {tuple(own[key].shape)} in the model; {fix}")
    for key in own:
        if key not in state:
            raise CheckpointError(f"{source} does not match this model: it lacks parameter {key!r}; {fix}")
    module.load_state_dict(state)


# -- random states ---------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Every global random state as tensors and numbers: torch CPU, CUDA (if initialised),
    Python's ``random`` and NumPy's legacy global generator."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only where CUDA is available)."""
    torch.set_rng_state(state["torch"].cpu())
    python = state["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["state"].tolist()), python["gauss"]))
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].cpu().numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        states = [s.cpu() for s in state["cuda"]][: torch.cuda.device_count()]
        for index, s in enumerate(states):
            torch.cuda.set_rng_state(s, index)


# -- a training run --------------------------------------------------------------------------


def save_training_checkpoint(path: str | Path, trainer: Any, config: dict[str, Any], **extra: Any) -> Path:
    """Save everything needed to resume ``trainer`` exactly: weights, trainer state, config, RNGs.

    Call it between two steps (an epoch or step callback, or after ``fit`` was interrupted).

    Args:
        path: the checkpoint file, e.g. ``out / "checkpoint.pt"``.
        trainer: a :class:`~pyrovae.train.trainer.Trainer`.
        config: plain JSON-able settings from which the model can be rebuilt.
        **extra: more entries for the payload (e.g. ``image_shape``).
    """
    try:
        json.dumps(config)
    except (TypeError, ValueError) as e:
        raise TypeError(f"config must be a plain JSON-able dict ({e})") from None
    state = trainer.state_dict()
    model, optimizer = state.pop("module"), state.pop("optimizer")  # stored once, at the top level
    return save_checkpoint(path, {"config": config, "model": model, "optimizer": optimizer,
                                  "trainer": state, "rng": rng_state(),
                                  "epoch": state["epoch"], "step": state["steps"],
                                  "history": state["history"],
                                  # how to rebuild the model, for pyrovae.load (pyrovae/nn/rebuild.py)
                                  **spec_entry(trainer.module), **extra})


def restore_training(trainer: Any, payload: dict[str, Any], source: str = "the checkpoint") -> None:
    """Put ``trainer`` and the global random states back where ``payload`` left them.

    After this, ``trainer.fit`` continues with the same data order, binarization noise and
    sampling noise as the run that wrote the checkpoint, so on the CPU its parameters end up
    bit-for-bit equal to an uninterrupted run's.
    """
    for key in ("trainer", "rng", "model", "optimizer"):
        if key not in payload:
            raise CheckpointError(f"{source} has no {key!r} part, so training cannot resume from it; "
                                  "pass a checkpoint written by pyrovae train")
    load_module_state(trainer.module, payload["model"], source)
    trainer.load_state_dict({**payload["trainer"], "module": payload["model"], "optimizer": payload["optimizer"]})
    set_rng_state(payload["rng"])


class CheckpointEvery:
    """Trainer callbacks that save a resumable checkpoint after every epoch and every N steps.

    Example:
        >>> saver = CheckpointEvery(out / "checkpoint.pt", config.to_dict(), steps=100)
        >>> Trainer(vae, callbacks=[saver.on_epoch], step_callbacks=[saver.on_step])

    Args:
        path: the checkpoint file (overwritten atomically each time).
        config: plain JSON-able settings, stored in every checkpoint.
        steps: also save every this many steps; 0 or None for epochs only.
        **extra: more payload entries (e.g. ``image_shape``).
    """

    def __init__(self, path: str | Path, config: dict[str, Any], steps: int | None = None, **extra: Any) -> None:
        self.path = Path(path)
        self.config = config
        self.steps = steps or 0
        self.extra = extra

    def save(self, trainer: Any) -> Path:
        return save_training_checkpoint(self.path, trainer, self.config, **self.extra)

    def on_step(self, trainer: Any) -> None:
        if self.steps and trainer.record.steps % self.steps == 0:
            self.save(trainer)

    def on_epoch(self, trainer: Any, figures: dict[str, float]) -> None:
        self.save(trainer)


__all__ = [
    "CheckpointError",
    "CheckpointEvery",
    "FORMAT_VERSION",
    "load_checkpoint",
    "load_module_state",
    "restore_training",
    "rng_state",
    "save_checkpoint",
    "save_training_checkpoint",
    "set_rng_state",
]
