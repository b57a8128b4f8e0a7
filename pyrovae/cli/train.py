"""``pyrovae train``: fit a VAE on a data set and leave a checkpoint, metrics and pictures."""

from __future__ import annotations

import json
from pathlib import Path

import pyro
import torch
from tqdm.auto import tqdm

from pyrovae.checkpoint import save_checkpoint
from pyrovae.cli.config import ConfigError, TrainConfig
from pyrovae.cli.registry import build_objective, build_vae, pick_device
from pyrovae.data import binarize_once, dynamic_binarize, load_dataset
from pyrovae.report import save_run_pictures
from pyrovae.training import Trainer, TrainingRecord

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"


def prepare_output_folder(out: Path, overwrite: bool) -> None:
    """Create ``out``; refuse a folder that already holds a run unless ``overwrite``."""
    if (out / CHECKPOINT_NAME).exists() and not overwrite:
        raise ConfigError(f"output folder {out} already holds a run ({CHECKPOINT_NAME}); "
                          "choose another --out, or pass --overwrite to replace it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create output folder {out} ({e.strerror}); choose another --out") from None


def run_train(config: TrainConfig, overwrite: bool = False) -> TrainingRecord:
    """Train the model ``config`` describes and write every output into ``config.out``."""
    out = Path(config.out)
    prepare_output_folder(out, overwrite)
    if config.model != "vae":
        from pyrovae.cli.train_conditional import run_train_conditional

        return run_train_conditional(config, out)
    device = pick_device(config.device)
    pyro.set_rng_seed(config.seed)
    pyro.clear_param_store()

    data = load_dataset(config.dataset, root=config.data_root, download=config.download)
    train = data.train_images[: config.train_size].to(device)
    test = data.test_images.to(device)
    vae = build_vae(config, tuple(data.image_shape)).to(device)
    if not vae.likelihood.in_support(train):
        raise ConfigError(f"the data are outside the {config.likelihood} likelihood's support: it needs "
                          f"{vae.likelihood.support_rule}; choose another --likelihood")

    generator = torch.Generator(device=device).manual_seed(config.seed)
    transform = None
    if config.binarize:
        transform = lambda x: dynamic_binarize(x, generator)  # noqa: E731
        test = binarize_once(test, seed=config.seed)

    metrics_path = out / METRICS_NAME
    metrics_path.write_text("")

    def log_epoch(trainer: Trainer, figures: dict[str, float]) -> None:
        with metrics_path.open("a") as f:
            f.write(json.dumps(figures) + "\n")
        save_checkpoint(out / CHECKPOINT_NAME, {
            "config": config.to_dict(),
            "image_shape": list(data.image_shape),
            "model": vae.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "epoch": trainer.epoch,
            "step": trainer.record.steps,
            "history": trainer.record.history,
        })
        tqdm.write(f"epoch {figures['epoch']:>3}/{config.epochs}  "
                   f"train ELBO {figures['train_elbo']:9.2f}  test ELBO {figures['test_elbo']:9.2f}  "
                   f"(recon {figures['test_recon']:8.2f}, KL {figures['test_kl']:6.2f})  "
                   f"{figures['seconds']:.1f} s")

    trainer = Trainer(vae, objective=build_objective(config), lr=config.lr, batch_size=config.batch_size,
                      beta=config.beta, warmup_epochs=config.warmup_epochs, transform=transform,
                      progress=config.progress, generator=generator, callbacks=[log_epoch])
    record = trainer.fit(train, test, epochs=config.epochs)
    save_run_pictures(vae, test, data.test_labels, record.history, out)
    print(f"done in {record.seconds:.0f} s: test ELBO {record.last('test_elbo'):.2f} nats per image.\n"
          f"Wrote {out / CHECKPOINT_NAME}, {metrics_path} and PNGs in {out}/")
    return record


__all__ = ["run_train", "prepare_output_folder", "CHECKPOINT_NAME", "METRICS_NAME"]
