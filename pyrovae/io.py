"""Saving a model to one file and loading it back, architecture included: ``pyrovae.save``/``pyrovae.load``.

The file is a pyrovae checkpoint (:mod:`pyrovae.train.checkpoint`): the weights plus a
description of how the model was built (:func:`pyrovae.nn.rebuild.describe`), read back with
``torch.load(weights_only=True)``. The same loader reads the ``checkpoint.pt`` that
``pyrovae train`` writes and the files of
:func:`~pyrovae.train.checkpoint.save_training_checkpoint`, which carry the same description.

Example:
    >>> pyrovae.save(vae, "vae.pt")
    >>> vae = pyrovae.load("vae.pt")          # in another process: same class, same weights
    >>> vae.sample(16).shape
    torch.Size([16, 1, 28, 28])
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pyrovae.nn.rebuild import SpecError, describe, rebuild
from pyrovae.train.checkpoint import CheckpointError, load_checkpoint, load_module_state, save_checkpoint


def save(model: nn.Module, path: str | Path, **metadata: Any) -> Path:
    """Write ``model``'s weights and the description that rebuilds it to ``path`` (atomically).

    Args:
        model: any model or part pyrovae builds (VAE with any prior, guide and likelihood, M2,
            ConditionalVAE, a network, a prior), or a module of your own whose parts derive
            from :class:`pyrovae.nn.Rebuildable`.
        path: the file, e.g. ``"vae.pt"``; its folder is created.
        **metadata: plain values stored beside the model (numbers, strings, lists, dicts,
            tensors), read back with :func:`load_payload`.

    Returns:
        ``path``.

    Raises:
        SpecError: one line naming the part that cannot be described (a module whose
            constructor arguments were not recorded, e.g. a bare ``nn.Sequential``).
    """
    spec = describe(model)
    return save_checkpoint(path, {"model": model.state_dict(), "spec": spec, "metadata": metadata})


def load(path: str | Path, map_location: str | torch.device = "cpu", classes: Iterable[type] = ()) -> nn.Module:
    """Rebuild the model saved at ``path`` and load its weights; returned in eval mode.

    Args:
        path: a file from :func:`save`, a ``checkpoint.pt`` of ``pyrovae train`` (any
            ``--model``) or of :func:`~pyrovae.train.checkpoint.save_training_checkpoint`.
        map_location: where the weights go, as in ``torch.load``.
        classes: your own classes that the saved model uses (e.g. a custom prior). Classes
            outside pyrovae are built only if listed here, so a file cannot make the loader
            call arbitrary code.

    Returns:
        The model, the same class with the same weights (``.train()`` it to go on training).

    Raises:
        CheckpointError: one line saying what is missing or wrong: no such file, not a
            checkpoint, no model description (and why), a class not allowed or no longer
            there, weights that do not fit the rebuilt model.
    """
    payload = load_payload(path, map_location)
    try:
        model = rebuild(payload["spec"], classes)
    except SpecError as e:
        raise CheckpointError(f"{path}: {e}") from None
    load_module_state(model, payload["model"], source=str(path))
    return model.to(map_location).eval()


def load_payload(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint's contents (``model``, ``spec``, ``metadata`` and, from training, ``config``...).

    Raises:
        CheckpointError: if the file is not a pyrovae checkpoint or holds no model description.
    """
    payload = load_checkpoint(path, map_location=map_location, require=("model",))
    if "spec" not in payload:
        why = payload.get("spec_error")
        reason = (f"its model could not be described when it was saved ({why})" if why else
                  "it was written by a pyrovae that did not store one")
        raise CheckpointError(f"{path} holds weights but no description of the model ({reason}); rebuild the "
                              "model in code and call pyrovae.train.checkpoint.load_module_state(model, "
                              "payload['model'])")
    return payload


__all__ = ["save", "load", "load_payload"]
