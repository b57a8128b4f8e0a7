"""The command line's autoencoder parts: ``--model ae`` after training, ``sample`` and ``evaluate``.

An autoencoder (``--model ae``) trains through the same code as a VAE (:mod:`pyrovae.cli.train`);
what differs is what it reports and how it generates:

* its per-epoch figure is the training objective ``log p(x | f(x)) [+ log p(f(x))]``, printed as
  such, never as an ELBO (see :mod:`pyrovae.guides.delta`);
* after training a Gaussian mixture is fitted to the training codes (the ex-post density of
  Ghosh et al. 2020) and stored in the checkpoint under ``"ex_post"``; ``pyrovae sample``
  decodes its draws;
* ``pyrovae evaluate`` reports reconstruction (and, for a denoising run, denoising) error and
  says why there is no log-likelihood.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyro
import torch
from torch import Tensor

from pyrovae.cli.config import TrainConfig, refuse_to_overwrite
from pyrovae.cli.registry import build_corruption, pick_device
from pyrovae.infer.reconstruction import reconstruction_error
from pyrovae.models.autoencoder import fit_ex_post_mixture
from pyrovae.models.vae import VAE
from pyrovae.plots import images as plots
from pyrovae.priors.mixture import GaussianMixturePrior
from pyrovae.train.checkpoint import CheckpointError

#: What ``pyrovae evaluate`` says instead of a log-likelihood.
NO_LIKELIHOOD = ("no log-likelihood: an autoencoder's guide is a point mass, which gives importance sampling "
                 "no weights to estimate log p(x) with, and its training objective log p(x|f(x)) [+ log p(f(x))] "
                 "is not a bound on log p(x) (with --prior flat there is no proper p(x) at all); train --model vae "
                 "for a log-likelihood")


def epoch_line(figures: dict[str, float], config: TrainConfig) -> str:
    """The per-epoch line of an autoencoder run: objective and reconstruction, no ELBO."""
    penalty = "" if config.prior == "flat" else f", code log-prior {-figures['test_kl']:8.2f}"
    return (f"epoch {figures['epoch']:>3}/{config.epochs}  train objective {figures['train_elbo']:9.2f}  "
            f"test objective {figures['test_elbo']:9.2f}  (test log p(x|f(x)) {figures['test_recon']:8.2f}{penalty})  "
            f"{figures['seconds']:.1f} s")


def finish_training(vae: VAE, train: Tensor, saver: Any, trainer: Any, config: TrainConfig,
                    generator: torch.Generator | None = None) -> GaussianMixturePrior:
    """Fit the ex-post mixture to the codes of ``train`` and save it into the run's checkpoint."""
    fit_generator = generator if generator is not None and generator.device.type == "cpu" else None
    mixture = fit_ex_post_mixture(vae, train, config.num_components, generator=fit_generator)
    saver.extra["ex_post"] = {"num_components": config.num_components,
                              "state": {k: v.cpu() for k, v in mixture.state_dict().items()}}
    saver.save(trainer)
    return mixture


def load_ex_post(payload: dict[str, Any], latent_dim: int, source: str) -> GaussianMixturePrior:
    """The ex-post mixture stored in an autoencoder checkpoint."""
    stored = payload.get("ex_post")
    if stored is None:
        raise CheckpointError(f"{source} has no ex-post mixture (the run stopped before training finished); "
                              "train it again with --overwrite")
    mixture = GaussianMixturePrior(latent_dim, int(stored["num_components"]))
    mixture.load_state_dict(stored["state"])
    return mixture


def sample_autoencoder(checkpoint: str, payload: dict[str, Any], num_samples: int, out: str | None,
                       seed: int) -> Path:
    """Decode ``num_samples`` draws of the checkpoint's ex-post mixture into a PNG grid."""
    from pyrovae.cli.sample import load_vae

    ae, _ = load_vae(checkpoint)
    mixture = load_ex_post(payload, ae.latent_dim, checkpoint)
    pyro.set_rng_seed(seed)
    with torch.no_grad():
        images = ae.decode(mixture.sample(num_samples)).clamp(0, 1)
    target = Path(out) if out else Path(checkpoint).with_name(f"samples_seed{seed}.png")
    plots.save_image_grid(images, target, title=f"{num_samples} decodes of the ex-post mixture on the codes")
    print(f"Wrote {target} (an autoencoder has no generative prior: these decode draws from its ex-post mixture, "
          f"{mixture.num_components} Gaussians fitted to its training codes)")
    return target


def evaluate_autoencoder(checkpoint: str, split: str = "test", limit: int | None = None, seed: int = 0,
                         device: str = "auto", overwrite: bool = False) -> dict[str, Any]:
    """Reconstruction error (and, for a denoising run, the error from corrupted inputs) of an
    autoencoder checkpoint, written to ``evaluation_<split>_reconstruction[_n<limit>].json``."""
    from pyrovae.cli.sample import load_vae
    from pyrovae.data import binarize_once, load_dataset

    target = Path(checkpoint).parent / (f"evaluation_{split}_reconstruction" + (f"_n{limit}" if limit else "") + ".json")
    refuse_to_overwrite([target], overwrite, "--limit")
    torch_device = pick_device(device)
    pyro.clear_param_store()
    ae, config = load_vae(checkpoint, torch_device)
    data = load_dataset(config.dataset, root=config.data_root, download=config.download)
    images = (data.test_images if split == "test" else data.train_images)[:limit].to(torch_device)
    if config.binarize:
        images = binarize_once(images, seed=config.seed)
    pyro.set_rng_seed(seed)
    figures: dict[str, Any] = {f"reconstruction_{k}": v for k, v in reconstruction_error(ae, images).items()}
    if config.corrupt:
        denoising = reconstruction_error(ae, images, corruption=build_corruption(config.corrupt))
        figures.update({"corrupt": config.corrupt, "denoising_recon_nll": denoising["recon_nll"],
                        "denoising_mse": denoising["mse"]})
    figures.update(log_likelihood=None, why_no_log_likelihood=NO_LIKELIHOOD, checkpoint=str(checkpoint),
                   split=split, seed=seed, binarized=config.binarize)
    target.write_text(json.dumps(figures, indent=2) + "\n")
    n = figures["reconstruction_num_points"]
    print(f"reconstruction error on {n} {split} images: -log p(x|f(x)) {figures['reconstruction_recon_nll']:.2f} "
          f"nats per image, squared error {figures['reconstruction_mse']:.4f} per pixel"
          + (f"; from inputs corrupted by {config.corrupt}: {figures['denoising_recon_nll']:.2f} nats, "
             f"{figures['denoising_mse']:.4f} per pixel" if config.corrupt else "") + ".\n"
          f"{NO_LIKELIHOOD[0].upper()}{NO_LIKELIHOOD[1:]}.\nWrote {target}")
    return figures


__all__ = ["epoch_line", "finish_training", "load_ex_post", "sample_autoencoder", "evaluate_autoencoder",
           "NO_LIKELIHOOD"]
