"""``pyrovae evaluate``: importance-sampled log-likelihood and latent diagnostics of a checkpoint."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyro
import torch

from pyrovae.plots import images as plots
from pyrovae.cli.config import ConfigError, VQ_MODELS, refuse_to_overwrite
from pyrovae.cli.registry import pick_device
from pyrovae.cli.sample import load_vae
from pyrovae.cli.data import load_run_split
from pyrovae.data.sources import canonical_dataset
from pyrovae.data import binarize_once
from pyrovae.infer.bits import bits_per_dim
from pyrovae.infer.evaluation import evaluate_vae
from pyrovae.train.checkpoint import load_checkpoint  # --model ae


def run_evaluate(checkpoint: str, num_samples: int = 5000, split: str = "test", limit: int | None = None,
                 seed: int = 0, device: str = "auto", overwrite: bool = False,
                 batch_size: int = 100, chunk_size: int | None = None, progress: bool = True,
                 dataset: str | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint and write ``evaluation_<split>_k<num_samples>.json`` and PNGs beside it.

    The data are the checkpoint's own data set, binarized once with the run's seed when the run
    trained on dynamically binarized images (the protocol of ANCHORS.md). Existing evaluation
    files are kept unless ``overwrite``; the checkpoint is only read. ``dataset`` points at the
    run's ``.npz`` file or image folder when it has moved since training.
    """
    if num_samples < 1:
        raise ConfigError(f"--num-samples must be at least 1, got {num_samples}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    if split not in ("test", "train"):
        raise ConfigError(f"--data must be test or train, got {split!r}")
    if load_checkpoint(checkpoint)["config"].get("model") == "ae":  # no log-likelihood to estimate
        from pyrovae.cli.autoencoder import evaluate_autoencoder

        return evaluate_autoencoder(checkpoint, split=split, limit=limit, seed=seed, device=device,
                                    overwrite=overwrite)
    folder = Path(checkpoint).parent
    stem = f"evaluation_{split}_k{num_samples}" + (f"_n{limit}" if limit else "")
    targets = {"json": folder / f"{stem}.json", "kl": folder / f"{stem}_kl_per_dimension.png",
               "components": folder / f"{stem}_components.png"}
    refuse_to_overwrite(targets.values(), overwrite, "--num-samples/--limit")

    torch_device = pick_device(device)
    pyro.clear_param_store()  # the model registers itself under its name; start from a clean store
    vae, config = load_vae(checkpoint, torch_device)
    if dataset is not None:  # the run's data file or folder moved
        config = config.replace(dataset=canonical_dataset(dataset))
    images, labels = load_run_split(config, split, limit, source=str(checkpoint))  # as train resolved it
    images = images.to(torch_device)
    if config.binarize:
        images = binarize_once(images, seed=config.seed)
    if config.model in VQ_MODELS:  # a point-mass guide: the bound itself, in nats and bits/dim
        from pyrovae.cli.vq import evaluate_vq

        return evaluate_vq(vae, config, images, folder, split, limit, overwrite, checkpoint)
    pyro.set_rng_seed(seed)
    start = time.perf_counter()
    if getattr(vae.likelihood, "discrete", False):  # 8-bit: tens of outputs per value; bound a pass's memory (issue 22)
        per_pass = max(1, 8_000_000 // vae.likelihood.outputs_per_point)
        batch_size = min(batch_size, per_pass)
        chunk_size = chunk_size or max(1, per_pass // batch_size)
    figures = evaluate_vae(vae, images, labels=None if labels is None else labels.to(torch_device),
                           num_samples=num_samples, batch_size=batch_size, chunk_size=chunk_size,
                           progress=progress)
    figures.update(checkpoint=str(checkpoint), split=split, seed=seed, binarized=config.binarize,
                   seconds=round(time.perf_counter() - start, 1), device=str(torch_device))
    if getattr(vae.likelihood, "discrete", False):  # a mass function over 8-bit values: bits/dim (issue 22)
        figures["bits_per_dim"] = bits_per_dim(figures["nll"], vae.event_shape)
    targets["json"].write_text(json.dumps(figures, indent=2) + "\n")
    written = [targets["json"]]
    if "kl_per_dimension" in figures:
        written.append(plots.save_bar_chart(torch.tensor(figures["kl_per_dimension"]), targets["kl"],
                                            "latent dimension", "KL (nats)", title=f"KL per dimension ({split})"))
    prior = vae.prior
    if hasattr(prior, "sample_component") and hasattr(prior, "num_components"):
        def sample_component(k: int, n: int) -> torch.Tensor:
            return vae.decode(prior.sample_component(k, n)).clamp(0, 1)

        written.append(plots.save_component_samples(sample_component, prior.num_components, targets["components"],
                                                    title="samples per mixture component"))
    print(f"log p(x) {figures['log_likelihood']:.2f} +- {figures['log_likelihood_sem']:.2f} nats "
          + (f"(NLL {figures['bits_per_dim']:.4f} bits/dim) " if "bits_per_dim" in figures else "")
          + f"(k={num_samples}, {figures['num_points']} {split} images), ELBO {figures.get('elbo', float('nan')):.2f}, "
          f"{figures['active_units']} active units"
          + (f", clustering accuracy {figures['cluster_accuracy']:.2%}" if "cluster_accuracy" in figures else "")
          + f", {figures['seconds']:.0f} s.\n"
          f"Wrote {', '.join(str(p) for p in written)}")
    return figures


__all__ = ["run_evaluate"]
