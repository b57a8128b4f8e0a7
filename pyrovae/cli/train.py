"""``pyrovae train``: fit a VAE on a data set and leave a checkpoint, metrics and pictures."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyro
import torch
from tqdm.auto import tqdm

from pyrovae.train.checkpoint import CheckpointEvery, load_checkpoint
from pyrovae.cli.resumable import fit_resumably
from pyrovae.cli.config import CHECKPOINT_NAME, METRICS_NAME, VQ_MODELS, ConfigError, TrainConfig
from pyrovae.cli.registry import build_eval_objective, build_objective, build_vae, pick_device
from pyrovae.cli.data import load_run_data, with_absolute_paths
from pyrovae.data import binarize_once, dynamic_binarize
from pyrovae.data.sources import STREAMED_TEST_LIMIT, StreamedData
from pyrovae.data.streaming import StreamingImages
from pyrovae.cli.registry import kl_weight  # factors
from pyrovae.infer.total_correlation import kl_split_callback, supports_kl_split  # factors
from pyrovae.train.distributed import DataParallel, RankSeeds, launched_by_torchrun
from pyrovae.cli.resume import continue_data_order
from pyrovae.clustering.mixture_start import pretrain_mixture_prior
from pyrovae.plots.report import save_run_pictures
from pyrovae.plots.tensorboard import TensorBoardLog, require_tensorboard
from pyrovae.train.trainer import Trainer, TrainingRecord
from pyrovae.cli import autoencoder  # --model ae
from pyrovae.cli.vq import code_usage, finish_vq_run

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
    return load_run_data(config)  # one resolution for train, evaluate and --resume (pyrovae.cli.data)


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
    if config.tensorboard and config.model not in ("vae", "ae"):  # TensorBoard: --model vae only
        raise ConfigError(f"--tensorboard writes --model vae and ae runs only; drop it for --model {config.model}")
    if config.tensorboard:  # before anything is written
        require_tensorboard()
    if config.model in VQ_MODELS and launched_by_torchrun():  # EMA codebooks would drift apart per process
        raise ConfigError(f"--model {config.model} trains in one process only; run it without torchrun")
    if not resume:  # the checkpoint names its data by absolute path, found from any working directory
        config = with_absolute_paths(config)
    prepare_output_folder(out, overwrite, resume, create=False)
    payload = load_checkpoint(out / CHECKPOINT_NAME, require=("trainer", "rng")) if resume else None
    device = pick_device(config.device)
    parallel = join_torchrun(config, device)
    try:
        if payload is not None:  # the same global batches on any number of processes
            config, parallel = continue_data_order(config, payload, parallel, device, out)
        if config.model not in ("vae", "ae", *VQ_MODELS):  # an autoencoder (ae) and VQ-VAEs train as a VAE does
            from pyrovae.cli.train_conditional import run_train_conditional

            if parallel is None or parallel.is_main:
                prepare_output_folder(out, overwrite, resume)
            return run_train_conditional(config, out, payload, parallel)
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
    stream = None
    if isinstance(data, StreamedData):  # too large for memory, or --stream: batches come from a DataLoader
        if parallel is not None or config.pretrain_epochs:
            raise ConfigError("a streamed data set trains in one process without --pretrain-epochs; pass "
                              "--no-stream for a data set that fits in memory, or drop those")
        stream = StreamingImages(data.train, device, config.workers)
        train = stream.head(STREAMED_TEST_LIMIT)  # the checks and the output bias below look at these
    else:
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
    board = TensorBoardLog(out / "tensorboard") if config.tensorboard and writes else None  # TensorBoard
    saver = CheckpointEvery(out / CHECKPOINT_NAME, config.to_dict(), steps=config.checkpoint_every,
                            image_shape=list(data.image_shape), world_size=world_size,
                            sharded=parallel is not None)
    # Data-parallel: each rank's noise is a function of (seed, rank, step), so a resumed run draws the same.
    seeds = None if parallel is None else RankSeeds(config.seed, rank, generator)

    def log_epoch(trainer: Trainer, figures: dict[str, float]) -> None:
        figures.update(code_usage(trainer.module))  # VQ-VAE: perplexity and codes used this epoch
        saver.save(trainer)
        with metrics_path.open("a") as f:
            f.write(json.dumps(figures) + "\n")
        if board is not None:  # TensorBoard
            board.epoch(figures)
        if config.model == "ae":  # its objective is no ELBO: say what it is (pyrovae.cli.autoencoder)
            tqdm.write(autoencoder.epoch_line(figures, config))
            return
        tqdm.write(f"epoch {figures['epoch']:>3}/{config.epochs}  "
                   f"train ELBO {figures['train_elbo']:9.2f}  test ELBO {figures['test_elbo']:9.2f}  "
                   f"(recon {figures['test_recon']:8.2f}, KL {_shown_kl(figures['test_kl']):6.2f})  "
                   f"{figures['seconds']:.1f} s" + (f"  skipped {figures['skipped_steps']} non-finite steps"
                                                     if figures.get("skipped_steps") else ""))

    objective = build_objective(config)
    # factors: the TC estimator needs the training-set size; the KL split joins metrics.jsonl
    # for every model with a factorized prior and a diagonal guide.
    dataset_size = train.shape[0] if stream is None else len(stream)
    if hasattr(objective, "dataset_size"):
        objective.dataset_size = dataset_size
    split = [kl_split_callback(train[:2000], dataset_size)] if supports_kl_split(vae, train[:2]) else []
    trainer = Trainer(vae, objective=objective, eval_objective=build_eval_objective(config),
                      lr=config.lr, batch_size=config.batch_size,
                      beta=kl_weight(config), warmup_epochs=config.warmup_epochs, transform=transform,
                      progress=config.progress and writes, generator=generator,
                      callbacks=(split + [log_epoch] if writes else []) + ([seeds.on_epoch] if seeds else []),
                      step_callbacks=([saver.on_step] if writes else []) + ([seeds.on_step] if seeds else []),
                      max_nonfinite_steps=config.max_nonfinite_steps, compile=False if config.model in VQ_MODELS else config.compile,
                      parallel=parallel)
    record = fit_resumably(trainer, saver, out, payload,
                           lambda epochs: trainer.fit(train if stream is None else stream, test, epochs=epochs,
                                                      eval_size=2000 if stream is None else STREAMED_TEST_LIMIT),
                           config.epochs, seeds)
    if not writes:
        return record
    if config.model in VQ_MODELS:  # the PixelCNN prior stage and the VQ pictures (pyrovae.cli.vq)
        bound = finish_vq_run(vae, transform(train) if transform else train, test, config, out, trainer, saver,
                              metrics_path)
        print(f"done in {record.seconds:.0f} s: test bound log p(x) >= {bound:.2f} nats per image.\n"
              f"Wrote {out / CHECKPOINT_NAME}, {metrics_path} and PNGs in {out}/")
        return record
    if config.model == "ae":  # generation from an autoencoder: a mixture fitted to its codes, in the checkpoint
        mixture = autoencoder.finish_training(vae, train, saver, trainer, config, generator)
        pictures = save_run_pictures(vae, test, data.test_labels, record.history, out,
                                     sampler=lambda n: mixture.sample(n), sample_title="decodes of the ex-post mixture")
    elif len(data.image_shape) > 1:  # tabular rows (N, D) have no pictures but the curves
        pictures = save_run_pictures(vae, test, data.test_labels, record.history, out)
    else:
        from pyrovae.plots.images import save_training_curves

        pictures = [save_training_curves(record.history, out / "training_curves.png")]
    if board is not None:  # TensorBoard
        board.pictures(pictures, step=trainer.epoch)
        board.close()
    if config.model == "ae":
        print(f"done in {record.seconds:.0f} s: test log p(x|f(x)) {record.last('test_recon'):.2f} nats per image "
              f"(an autoencoder's reconstruction term, not a log-likelihood).\n"
              f"Wrote {out / CHECKPOINT_NAME} (with the ex-post mixture), {metrics_path} and PNGs in {out}/")
        return record
    print(f"done in {record.seconds:.0f} s: test ELBO {record.last('test_elbo'):.2f} nats per image.\n"
          f"Wrote {out / CHECKPOINT_NAME}, {metrics_path} and PNGs in {out}/")
    return record


def _shown_kl(kl: float) -> float:
    """The per-epoch KL as printed: recon minus the ELBO of one draw can come out a hair below 0
    where the KL is near 0; show that as 0.00, not -0.00 (metrics.jsonl keeps the estimate)."""
    return 0.0 if abs(kl) < 0.005 else kl


__all__ = ["run_train", "prepare_output_folder", "CHECKPOINT_NAME", "METRICS_NAME"]
