"""``pyrovae train``: fit a VAE on a data set and leave a checkpoint, metrics and pictures."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pyro
import torch
from tqdm.auto import tqdm

from pyrovae.train.checkpoint import CheckpointEvery, load_checkpoint, restore_training
from pyrovae.cli.config import CHECKPOINT_NAME, METRICS_NAME, ConfigError, TrainConfig
from pyrovae.cli.registry import build_eval_objective, build_objective, build_vae, pick_device
from pyrovae.data import binarize_once, dynamic_binarize, load_dataset, load_npz
from pyrovae.errors import NonFiniteError, TrainingInterrupted
from pyrovae.train.distributed import DataParallel, launched_by_torchrun
from pyrovae.train.interrupts import stop_on_signals
from pyrovae.clustering.mixture_start import pretrain_mixture_prior
from pyrovae.plots.report import save_run_pictures
from pyrovae.train.trainer import Trainer, TrainingRecord
from pyrovae.cli import autoencoder  # --model ae

#: Files whose presence means a folder already holds a run.
RUN_FILES = (CHECKPOINT_NAME, METRICS_NAME)


def prepare_output_folder(out: Path, overwrite: bool, resume: bool = False, create: bool = True) -> None:
    """Create ``out``; refuse a folder that already holds a run unless ``overwrite`` or ``resume``.

    Nothing is ever deleted: ``overwrite`` lets the new run write over the old run's files.
    With ``create=False`` only check, so that bad data can be refused before anything is made.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output folder {out} is an existing file, not a folder; choose another --out")
    if not resume:
        existing = [name for name in RUN_FILES if (out / name).exists()]
        if existing and not overwrite:
            raise ConfigError(f"output folder {out} already holds a run ({', '.join(existing)}); "
                              "choose another --out, continue it with --resume, or pass --overwrite to replace it")
    if not create:
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create output folder {out} ({e.strerror}); choose another --out") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"output folder {out} is not writable; choose another --out or fix its permissions")


def _load_data(config: TrainConfig) -> Any:
    if config.dataset.endswith(".npz"):
        return load_npz(config.dataset, seed=config.seed)
    return load_dataset(config.dataset, root=config.data_root, download=config.download)


def join_torchrun(config: TrainConfig, device: torch.device) -> DataParallel | None:
    """The data-parallel strategy when ``torchrun`` started this process, else None."""
    if not launched_by_torchrun():
        return None
    try:
        return DataParallel.from_environment(seed=config.seed, device=device)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"cannot start data-parallel training: {e}") from None


def run_train(config: TrainConfig, overwrite: bool = False, resume: bool = False) -> TrainingRecord:
    """Train the model ``config`` describes and write every output into ``config.out``.

    With ``resume``, continue the run whose checkpoint is in ``config.out`` (``config`` then
    comes from that checkpoint, see :func:`pyrovae.cli.resume.resume_config`): the data order
    and every random draw continue where they stopped, so the result equals an uninterrupted
    run's. SIGINT or SIGTERM stop at the next step boundary after writing a checkpoint and raise
    :class:`~pyrovae.errors.TrainingInterrupted` (exit code 130 or 143).

    Under ``torchrun`` every process trains on its shard with ``--batch-size`` images per step
    (see :mod:`pyrovae.train.distributed`); only rank 0 writes outputs.
    """
    out = Path(config.out)
    if config.model not in ("vae", "ae"):  # an autoencoder (ae) trains as a VAE does
        if resume:
            raise ConfigError(f"--resume continues --model vae runs only; train the {config.model} model "
                              "again with --overwrite, or start a new --out")
        if launched_by_torchrun():
            raise ConfigError(f"--model {config.model} trains in one process only; run it without torchrun")
        from pyrovae.cli.train_conditional import run_train_conditional

        prepare_output_folder(out, overwrite)
        return run_train_conditional(config, out)
    prepare_output_folder(out, overwrite, resume, create=False)
    payload = load_checkpoint(out / CHECKPOINT_NAME, require=("trainer", "rng")) if resume else None
    device = pick_device(config.device)
    parallel = join_torchrun(config, device)
    try:
        return _train(config, out, device if parallel is None else parallel.device, parallel, overwrite, payload)
    finally:
        if parallel is not None:
            parallel.close()


def _train(config: TrainConfig, out: Path, device: torch.device, parallel: DataParallel | None,
           overwrite: bool, payload: dict[str, Any] | None) -> TrainingRecord:
    rank, world_size = (0, 1) if parallel is None else (parallel.rank, parallel.world_size)
    writes = rank == 0
    # Different noise (latents, binarization) on every rank; DDP copies rank 0's initial weights.
    pyro.set_rng_seed(config.seed + rank)
    pyro.clear_param_store()

    data = _load_data(config)
    train = data.train_images[: config.train_size].to(device)
    test = data.test_images.to(device)
    vae = build_vae(config, tuple(data.image_shape)).to(device)
    if not vae.likelihood.in_support(train):
        raise ConfigError(f"the data are outside the {config.likelihood} likelihood's support: it needs "
                          f"{vae.likelihood.support_rule}; choose another --likelihood")
    vae.check_inputs(train, what="training data")
    vae.check_inputs(test, what="test data")
    if config.mean_init and payload is None:
        vae.likelihood.init_output_bias(train)
    if writes:
        prepare_output_folder(out, overwrite, payload is not None)

    generator = torch.Generator(device=device).manual_seed(config.seed + rank)
    transform = None
    if config.binarize:
        transform = lambda x: dynamic_binarize(x, generator)  # noqa: E731
        test = binarize_once(test, seed=config.seed)

    if config.pretrain_epochs and payload is None:
        if parallel is not None:
            raise ConfigError("--pretrain-epochs runs on one process; pretrain without torchrun, or drop it")
        print(f"pretraining: {config.pretrain_epochs} epochs as an autoencoder, then a {config.num_components}-"
              "component mixture fitted to the codes starts the prior")
        fit = pretrain_mixture_prior(vae, train, config.pretrain_epochs, lr=config.lr, batch_size=config.batch_size,
                                     transform=transform, progress=config.progress, generator=generator)
        print(f"mixture fitted: mean log-density of the codes {fit.mean_log_likelihood:.2f}")

    metrics_path = out / METRICS_NAME
    saver = CheckpointEvery(out / CHECKPOINT_NAME, config.to_dict(), steps=config.checkpoint_every,
                            image_shape=list(data.image_shape), world_size=world_size)

    def log_epoch(trainer: Trainer, figures: dict[str, float]) -> None:
        saver.save(trainer)
        with metrics_path.open("a") as f:
            f.write(json.dumps(figures) + "\n")
        if config.model == "ae":  # its objective is no ELBO: say what it is (pyrovae.cli.autoencoder)
            tqdm.write(autoencoder.epoch_line(figures, config))
            return
        tqdm.write(f"epoch {figures['epoch']:>3}/{config.epochs}  "
                   f"train ELBO {figures['train_elbo']:9.2f}  test ELBO {figures['test_elbo']:9.2f}  "
                   f"(recon {figures['test_recon']:8.2f}, KL {figures['test_kl']:6.2f})  "
                   f"{figures['seconds']:.1f} s" + (f"  skipped {figures['skipped_steps']} non-finite steps"
                                                     if figures.get("skipped_steps") else ""))

    trainer = Trainer(vae, objective=build_objective(config), eval_objective=build_eval_objective(config),
                      lr=config.lr, batch_size=config.batch_size,
                      beta=config.beta, warmup_epochs=config.warmup_epochs, transform=transform,
                      progress=config.progress and writes, generator=generator,
                      callbacks=[log_epoch] if writes else [],
                      step_callbacks=[saver.on_step] if writes else [],
                      max_nonfinite_steps=config.max_nonfinite_steps, compile=config.compile,
                      parallel=parallel)
    if payload is not None:
        restore_training(trainer, payload, source=str(out / CHECKPOINT_NAME))
        if world_size > 1:
            # The checkpoint holds rank 0's random state; give every rank its own stream again.
            pyro.set_rng_seed(config.seed + rank + world_size * trainer.record.steps)
        if writes:
            # The metrics file may have run ahead of the checkpoint; rewrite it from the saved history.
            _write_atomically(metrics_path, "".join(json.dumps(f) + "\n" for f in trainer.record.history))
            print(f"resuming {out} at epoch {trainer.epoch + 1}, step {trainer.record.steps}")
    elif writes:
        metrics_path.write_text("")
    try:
        with stop_on_signals(trainer):
            record = trainer.fit(train, test, epochs=config.epochs - trainer.epoch)
    except TrainingInterrupted as stop:
        if writes:
            saver.save(trainer)
        name = signal.Signals(stop.signal_number).name
        raise TrainingInterrupted(
            f"{name} received: stopped at step {trainer.record.steps} (epoch {trainer.epoch + 1}) and saved "
            f"{out / CHECKPOINT_NAME}; continue with: pyrovae train --resume {out}", stop.signal_number) from None
    except NonFiniteError as error:
        raise NonFiniteError(f"{error}; the last checkpoint in {out} was kept") from None
    if not writes:
        return record
    if config.model == "ae":  # generation from an autoencoder: a mixture fitted to its codes, in the checkpoint
        mixture = autoencoder.finish_training(vae, train, saver, trainer, config, generator)
        save_run_pictures(vae, test, data.test_labels, record.history, out,
                          sampler=lambda n: mixture.sample(n), sample_title="decodes of the ex-post mixture")
        print(f"done in {record.seconds:.0f} s: test log p(x|f(x)) {record.last('test_recon'):.2f} nats per image "
              f"(an autoencoder's reconstruction term, not a log-likelihood).\n"
              f"Wrote {out / CHECKPOINT_NAME} (with the ex-post mixture), {metrics_path} and PNGs in {out}/")
        return record
    save_run_pictures(vae, test, data.test_labels, record.history, out)
    print(f"done in {record.seconds:.0f} s: test ELBO {record.last('test_elbo'):.2f} nats per image.\n"
          f"Wrote {out / CHECKPOINT_NAME}, {metrics_path} and PNGs in {out}/")
    return record


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    os.replace(tmp, path)


__all__ = ["run_train", "prepare_output_folder", "CHECKPOINT_NAME", "METRICS_NAME"]
