"""``pyrovae sample``: decode new data from the prior of a trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import pyro
import torch

from pyrovae import plots
from pyrovae.checkpoint import CheckpointError, load_checkpoint
from pyrovae.cli.config import TrainConfig
from pyrovae.cli.registry import build_vae
from pyrovae.vae import VAE


def load_vae(path: str | Path, device: str | torch.device = "cpu") -> tuple[VAE, TrainConfig]:
    """Rebuild a trained VAE from its checkpoint alone (the config inside says how)."""
    payload = load_checkpoint(path, map_location=device)
    config = TrainConfig.from_dict(payload["config"], source=str(path))
    vae = build_vae(config, tuple(payload["image_shape"]))
    try:
        vae.load_state_dict(payload["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()
        raise CheckpointError(f"{path} does not match the architecture its config describes ({first}); "
                              "it was written by another version of pyrovae") from None
    return vae.to(device).eval(), config


def run_sample(checkpoint: str, num_samples: int, out: str | None, seed: int) -> Path:
    """Write a grid of ``num_samples`` decoded prior samples next to the checkpoint (or at ``out``)."""
    vae, _ = load_vae(checkpoint)
    pyro.set_rng_seed(seed)
    images = vae.sample(num_samples).clamp(0, 1)
    target = Path(out) if out else Path(checkpoint).with_name(f"samples_seed{seed}.png")
    plots.save_image_grid(images, target, title=f"{num_samples} samples from the prior")
    print(f"Wrote {target}")
    return target


__all__ = ["load_vae", "run_sample"]
