"""``pyrovae train --resume OUTDIR``: the settings of a stored run, and which flags may change them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataclasses import replace

import torch

from pyrovae.train.checkpoint import load_checkpoint
from pyrovae.train.distributed import GlobalOrder
from pyrovae.cli.config import ConfigError, TrainConfig
from pyrovae.cli.vq import prior_stage_pending
from pyrovae.data.sources import canonical_dataset, known_names

#: Settings a resumed run may change: they touch neither the model nor the random streams.
CHANGEABLE = frozenset({"epochs", "progress", "checkpoint_every", "max_nonfinite_steps", "data_root", "download"})


def resume_config(out: str | Path, given: dict[str, Any], checkpoint_name: str = "checkpoint.pt") -> TrainConfig:
    """The configuration stored in ``out``'s checkpoint, with the changeable settings in ``given`` applied.

    Args:
        out: the folder of the run to continue.
        given: settings given explicitly on the command line or in a ``--config`` file.
        checkpoint_name: the checkpoint file inside ``out``.

    Raises:
        ConfigError: if ``out`` holds no checkpoint, a given setting would change the model or
            the random streams, or ``--epochs`` is not more than the epochs already done.
        CheckpointError: if the checkpoint cannot be read.
    """
    out = Path(out)
    path = out / checkpoint_name
    if not path.exists():
        raise ConfigError(f"--resume {out}: there is no {checkpoint_name} in that folder to continue from; "
                          f"check the path, or start a new run with --out {out}")
    payload = load_checkpoint(path, require=("trainer", "rng"))
    stored = TrainConfig.from_dict(dict(payload["config"]), source=str(path)).to_dict()
    if "out" in given and Path(given["out"]) != out:
        raise ConfigError(f"--out {given['out']} conflicts with --resume {out}; a resumed run writes into "
                          "its own folder: drop --out")
    for name, value in given.items():
        if name == "out" or name in CHANGEABLE or stored.get(name) == value:
            continue
        if name == "dataset" and stored["dataset"] not in known_names():  # the run's data file or folder moved
            continue
        flag = "--" + name.replace("_", "-")
        raise ConfigError(f"{flag} {value} conflicts with the run in {out} ({flag} {stored.get(name)}); a "
                          f"resumed run keeps the settings it was started with: drop {flag}, or start a "
                          "new run with another --out")
    stored.update({k: v for k, v in given.items() if k in CHANGEABLE})
    if "dataset" in given and stored["dataset"] not in known_names():
        stored["dataset"] = canonical_dataset(given["dataset"])
    if stored.get("data_root") is not None:
        stored["data_root"] = str(Path(stored["data_root"]).expanduser().resolve())
    stored["out"] = str(out)
    config = TrainConfig.from_dict(stored, source=str(path))
    done = int(payload["trainer"]["epoch"])
    if config.epochs <= done and int(payload["trainer"]["position"]["batch"]) == 0 \
            and not prior_stage_pending(config, payload["model"]):  # VQ-VAE: the PixelCNN stage still to run
        raise ConfigError(f"the run in {out} has already finished {done} of {config.epochs} epochs; "
                          f"pass --epochs N with N > {done} to train it further")
    return config


def continue_data_order(config: TrainConfig, payload: dict[str, Any], parallel: Any, device: torch.device,
                        out: Path) -> tuple[TrainConfig, Any]:
    """The local batch size and data-parallel strategy with which a resumed run goes on with the
    sequence of global batches it started, on the number of processes it has now.

    A run started under ``torchrun`` (the checkpoint says ``sharded``) draws epoch ``e``'s order
    from ``seed + e`` and cuts it into global batches of ``world_size * batch_size`` images
    (:mod:`pyrovae.train.distributed`). Resumed on ``W`` processes, each takes ``1 / W`` of
    that global batch; resumed without ``torchrun``, one process follows the same order
    (:class:`~pyrovae.train.distributed.GlobalOrder`). A run started without ``torchrun`` draws
    its order from its own generator and resumes in one process only.

    Returns:
        ``config`` with ``batch_size`` per process for this run, and ``parallel`` (or a
        :class:`~pyrovae.train.distributed.GlobalOrder` in place of None).

    Raises:
        ConfigError: if the global batch cannot be shared evenly, or a one-process run is
            resumed under ``torchrun``.
    """
    saved_world = int(payload.get("world_size", 1))
    world = 1 if parallel is None else parallel.world_size
    if not payload.get("sharded", saved_world > 1):
        if parallel is not None:
            raise ConfigError(f"the run in {out} was trained without torchrun, and its data order comes from "
                              "its own generator: resume it without torchrun (start a run under torchrun, even "
                              "with --nproc_per_node 1, to be able to change the number of processes)")
        return config, None
    global_batch = config.batch_size * saved_world
    if global_batch % world:
        raise ConfigError(f"the run in {out} takes global batches of {global_batch} images ({saved_world} "
                          f"processes x --batch-size {config.batch_size}), which {world} processes cannot share "
                          f"evenly; resume it on a number of processes that divides {global_batch}")
    if parallel is None:
        parallel = GlobalOrder(device, seed=config.seed)
    return replace(config, batch_size=global_batch // world), parallel


__all__ = ["resume_config", "continue_data_order", "CHANGEABLE"]
