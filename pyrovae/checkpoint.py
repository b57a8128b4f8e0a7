"""Checkpoint files: written atomically, read back without executing any code."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged, unsafe or not a pyrovae checkpoint."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists and dicts only) to ``path`` atomically.

    The data go to a temporary file in the same folder, which is flushed, fsynced and renamed
    over ``path``: a crash at any moment leaves either the old file or the new one, whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": "pyrovae-checkpoint", "version": FORMAT_VERSION, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates the file 0600; give the checkpoint the permissions of an ordinary file.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, refusing anything that could run code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the checkpoint.pt of a training run")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - every failure to read means the same thing to the user
        raise CheckpointError(f"{path} is not a readable pyrovae checkpoint ({type(e).__name__}); "
                              "it may be truncated, corrupt or unsafe: use a checkpoint.pt that "
                              "pyrovae wrote") from None
    if not isinstance(payload, dict) or payload.get("format") != "pyrovae-checkpoint":
        raise CheckpointError(f"{path} is not a pyrovae checkpoint; pass the checkpoint.pt of a training run")
    return payload


__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError", "FORMAT_VERSION"]
