"""The VQ-VAE parts of ``pyrovae train`` and ``pyrovae evaluate``: code usage per epoch, the prior
stage, the pictures and the bound in nats and bits/dim."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from pyrovae.cli.config import TrainConfig, VQ_MODELS, refuse_to_overwrite
from pyrovae.infer.bits import bits_per_dim
from pyrovae.models.vqvae import VQVAE, VQVAE2
from pyrovae.plots.vq import save_vq_pictures
from pyrovae.train.code_priors import fit_code_priors


def code_usage(module: nn.Module) -> dict[str, float]:
    """Perplexity and fraction of codes used over the epoch just trained, per codebook; the
    counts start again from zero. Empty for models without a codebook."""
    quantizers = getattr(module, "quantizers", None)
    if not quantizers:
        return {}
    prefixes = ["top_", ""] if len(quantizers) == 2 else [""]
    figures: dict[str, float] = {}
    for prefix, quantizer in zip(prefixes, quantizers):
        figures.update({prefix + k: v for k, v in quantizer.usage_figures().items()})
        quantizer.reset_usage()
    return figures


def prior_stage_pending(config: TrainConfig, model_state: dict[str, Tensor]) -> bool:
    """Whether a stored VQ-VAE run still has its PixelCNN prior stage to do (it was stopped after the
    autoencoder), judged from the checkpoint's ``fitted`` flags."""
    if config.model not in VQ_MODELS or not config.prior_epochs:
        return False
    flags = [bool(v) for k, v in model_state.items() if k.endswith("prior.fitted")]
    return not flags or not all(flags)


def _priors(vq: VQVAE) -> list[nn.Module]:
    return [vq.top_prior, vq.prior] if isinstance(vq, VQVAE2) else [vq.prior]


def finish_vq_run(vq: VQVAE, train: Tensor, test: Tensor, config: TrainConfig, out: Path, trainer: Any,
                  saver: Any, metrics_path: Path) -> float:
    """After the autoencoder: fit the PixelCNN prior(s) (unless already fitted, or ``prior_epochs`` is
    0), save the checkpoint again, write the pictures; returns the mean test bound in nats."""
    if config.prior_epochs and not all(bool(p.fitted) for p in _priors(vq)):
        print(f"prior stage: {config.prior_epochs} epochs of the PixelCNN prior"
              f"{'s (top, then bottom given top)' if isinstance(vq, VQVAE2) else ''} on the codes of the "
              "frozen encoder")

        def log_prior_epoch(prior_trainer: Any, figures: dict[str, float]) -> None:
            level = "top" if isinstance(vq, VQVAE2) and prior_trainer.module.prior is vq.top_prior else \
                ("bottom" if isinstance(vq, VQVAE2) else "codes")
            line = {"stage": "prior", "level": level, "epoch": figures["epoch"],
                    "train_log_prob": figures["train_elbo"], "test_log_prob": figures["test_elbo"],
                    "seconds": figures["seconds"]}
            with metrics_path.open("a") as f:
                f.write(json.dumps(line) + "\n")
            tqdm.write(f"prior ({level}) epoch {figures['epoch']:>3}/{config.prior_epochs}  log p(codes): "
                       f"train {figures['train_elbo']:9.2f}  test {figures['test_elbo']:9.2f} nats  "
                       f"{figures['seconds']:.1f} s")

        fit_code_priors(vq, train, test, config.prior_epochs, lr=config.lr, batch_size=config.batch_size,
                        progress=config.progress, callbacks=[log_prior_epoch])
        saver.save(trainer)  # the checkpoint now holds the fitted prior(s)
    vq.eval()
    bound = torch.cat([vq.bound(x) for x in test.split(500)]).mean().item()
    save_vq_pictures(vq, test, trainer.record.history, out)
    vq.train()
    return bound


def evaluate_vq(vq: VQVAE, config: TrainConfig, images: Tensor, folder: Path, split: str, limit: int | None,
                overwrite: bool, checkpoint: str, batch_size: int = 500) -> dict[str, Any]:
    """``log p(x) >= log p(x | z_q(x)) + log p(z_q(x))`` on ``images``: per image in nats and, for the
    8-bit likelihoods (a mass function over the data), in bits per dimension; written to
    ``evaluation_<split>_bound[_n<limit>].json``."""
    target = folder / (f"evaluation_{split}_bound" + (f"_n{limit}" if limit else "") + ".json")
    refuse_to_overwrite([target], overwrite, "--limit")
    start = time.perf_counter()
    vq.eval()
    with torch.no_grad():
        bounds = torch.cat([vq.bound(x) for x in images.split(batch_size)])
        recon = torch.cat([vq.likelihood(vq.encode(x)).log_prob(x) for x in images.split(batch_size)])
    mean = bounds.mean().item()
    figures = {
        "model": config.model, "bound": mean,
        "bound_sem": (bounds.std() / math.sqrt(len(bounds))).item() if len(bounds) > 1 else 0.0,
        "recon": recon.mean().item(), "log_prior": (bounds - recon).mean().item(),
        "num_points": len(bounds),
        "prior": "pixelcnn" if all(bool(p.fitted) for p in _priors(vq)) else "uniform",
        "checkpoint": str(checkpoint), "split": split, "binarized": config.binarize,
        "seconds": round(time.perf_counter() - start, 1),
    }
    if getattr(vq.likelihood, "discrete", False):
        figures["bits_per_dim"] = bits_per_dim(-mean, images.shape[1:])
    target.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"log p(x) >= {mean:.2f} +- {figures['bound_sem']:.2f} nats per image "
          + (f"(NLL <= {figures['bits_per_dim']:.4f} bits/dim) " if "bits_per_dim" in figures else "")
          + f"(recon {figures['recon']:.2f}, log prior {figures['log_prior']:.2f}, "
          f"{figures['prior']} prior, {len(bounds)} {split} images; the guide is a point mass, so this is the "
          f"bound, not an importance-sampled estimate).\nWrote {target}")
    return figures


__all__ = ["code_usage", "evaluate_vq", "finish_vq_run"]
