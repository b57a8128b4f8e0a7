"""``pyrovae sample``: decode new data from the prior of a trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import pyro
import torch

from pyrovae.plots import images as plots
from pyrovae.train.checkpoint import CheckpointError, load_checkpoint, load_module_state
from pyrovae.cli.config import VQ_MODELS, TrainConfig
from pyrovae.cli.registry import build_vae
from pyrovae.models.vae import VAE


def load_vae(path: str | Path, device: str | torch.device = "cpu") -> tuple[VAE, TrainConfig]:
    """Rebuild a trained VAE from its checkpoint alone (the config inside says how)."""
    payload = load_checkpoint(path, map_location=device)
    config = TrainConfig.from_dict(payload["config"], source=str(path))
    if config.model not in ("vae", "ae", *VQ_MODELS):
        raise CheckpointError(f"{path} holds a --model {config.model} run, not a plain VAE; "
                              "pyrovae sample draws from m2 checkpoints only, and a cvae run's "
                              "completions are in its samples.png")
    vae = build_vae(config, tuple(payload["image_shape"]))
    load_module_state(vae, payload["model"], source=str(path))
    return vae.to(device).eval(), config


def run_sample(checkpoint: str, num_samples: int, out: str | None, seed: int) -> Path:
    """Write a grid of ``num_samples`` decoded prior samples next to the checkpoint (or at ``out``)."""
    payload = load_checkpoint(checkpoint)
    if payload.get("config", {}).get("model") == "m2":
        return _sample_m2(checkpoint, payload, num_samples, out, seed)
    if payload.get("config", {}).get("model") == "ae":  # an autoencoder samples its ex-post mixture
        from pyrovae.cli.autoencoder import sample_autoencoder

        return sample_autoencoder(checkpoint, payload, num_samples, out, seed)
    vae, config = load_vae(checkpoint)
    pyro.set_rng_seed(seed)
    images = vae.sample(num_samples).clamp(0, 1)
    target = Path(out) if out else Path(checkpoint).with_name(f"samples_seed{seed}.png")
    plots.save_image_grid(images, target, title=f"{num_samples} samples from the prior")
    print(f"Wrote {target}")
    _save_traversals(vae, config, target.with_name(f"traversals_seed{seed}.png"), seed, checkpoint)
    return target


def _save_traversals(vae: VAE, config: TrainConfig, target: Path, seed: int, checkpoint: str) -> Path | None:
    """Latent traversals of test image ``seed`` (of the first 1,000) of the run's data (issue 22);
    the data set must still be found, else a note on stderr says why the picture is missing."""
    import sys

    from pyrovae.cli.data import load_run_split
    from pyrovae.data import binarize_once
    from pyrovae.errors import PyrovaeError
    from pyrovae.plots.report import save_vae_traversals

    try:
        images, _ = load_run_split(config, "test", 1000, source=str(checkpoint))
    except (PyrovaeError, ValueError, OSError) as error:
        print(f"pyrovae: {target.name} not written: the run's data set could not be loaded ({error})",
              file=sys.stderr)
        return None
    if config.binarize:
        images = binarize_once(images, seed=config.seed)
    save_vae_traversals(vae, images, target, index=seed)
    print(f"Wrote {target}")
    return target


def _sample_m2(checkpoint: str, payload: dict, num_samples: int, out: str | None, seed: int) -> Path:
    """M2: one row per class, ``num_samples // num_classes`` (at least 1) draws of z each."""
    from pyrovae.cli.conditional_registry import build_m2
    from pyrovae.plots.semisupervised import save_class_samples

    config = TrainConfig.from_dict(payload["config"], source=str(checkpoint))
    m2 = build_m2(config, tuple(payload["image_shape"]), payload["num_classes"])
    m2.load_state_dict(payload["model"])
    pyro.set_rng_seed(seed)
    target = Path(out) if out else Path(checkpoint).with_name(f"samples_seed{seed}.png")
    save_class_samples(m2.eval(), target, per_class=max(1, num_samples // m2.num_classes))
    print(f"Wrote {target}")
    return target


__all__ = ["load_vae", "run_sample"]
