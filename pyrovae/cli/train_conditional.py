"""``pyrovae train --model m2`` and ``--model cvae``: the same outputs as the plain VAE command
(checkpoint, metrics.jsonl, PNGs) plus accuracy (M2) or conditional NLL (CVAE) per epoch.

Both train in :class:`~pyrovae.Trainer`'s loop, so they share the VAE command's checkpoints every
``--checkpoint-every`` steps, ``--resume``, the non-finite guard and the clean stop on SIGINT or
SIGTERM (exit code 130 or 143 after a checkpoint), and both train under ``torchrun``: each process
takes its share of every global batch (M2: of the labelled and of the unlabelled images alike),
and only rank 0 writes outputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyro
import torch
from tqdm.auto import tqdm

from pyrovae.plots import images as plots
from pyrovae.train.checkpoint import CheckpointEvery, load_module_state
from pyrovae.train.distributed import RankSeeds
from pyrovae.cli.conditional_registry import build_cvae, build_m2
from pyrovae.cli.resumable import fit_resumably
from pyrovae.cli.config import CHECKPOINT_NAME, METRICS_NAME, ConfigError, TrainConfig
from pyrovae.cli.registry import pick_device
from pyrovae.data import load_dataset
from pyrovae.data.quadrants import hide_quadrants
from pyrovae.data.semisupervised import split_labelled
from pyrovae.models import conditional_nll, fit_baseline
from pyrovae.train.semisupervised import SemiSupervisedTrainer
from pyrovae.plots.semisupervised import save_analogies, save_class_samples, save_completions
from pyrovae.train.trainer import Trainer, TrainingRecord


def _epoch_logger(config: TrainConfig, saver: CheckpointEvery, metrics_path: Path,
                  line: Callable[[dict[str, float]], str]) -> Callable:
    """Callback writing the checkpoint and appending each epoch's figures to metrics.jsonl."""

    def log_epoch(trainer: Trainer, figures: dict[str, float]) -> None:
        saver.save(trainer)
        with metrics_path.open("a") as f:
            f.write(json.dumps(figures) + "\n")
        tqdm.write(f"epoch {figures['epoch']:>3}/{config.epochs}  {line(figures)}  {figures['seconds']:.1f} s"
                   + (f"  skipped {figures['skipped_steps']} non-finite steps" if figures.get("skipped_steps") else ""))

    return log_epoch


def _callbacks(config: TrainConfig, parallel: Any, saver: CheckpointEvery,
               on_epoch: list[Callable]) -> tuple[dict[str, list[Callable]], RankSeeds | None]:
    """The trainer's callbacks: ``on_epoch`` and the step checkpoints on the writing process only,
    and under ``torchrun`` every rank's reseeding (noise a function of seed, rank and step)."""
    writes = parallel is None or parallel.is_main
    seeds = None if parallel is None else RankSeeds(config.seed, parallel.rank)
    callbacks = {"callbacks": (on_epoch if writes else []) + ([seeds.on_epoch] if seeds else []),
                 "step_callbacks": ([saver.on_step] if writes else []) + ([seeds.on_step] if seeds else [])}
    return callbacks, seeds


def run_train_conditional(config: TrainConfig, out: Path, payload: dict[str, Any] | None = None,
                          parallel: Any | None = None) -> TrainingRecord:
    """Train ``config.model`` (``m2`` or ``cvae``) and write every output into ``out``; with
    ``payload`` (a checkpoint read for ``--resume``), continue that run where it stopped; with
    ``parallel`` (:class:`~pyrovae.train.distributed.DataParallel`), as one of its processes."""
    device = pick_device(config.device) if parallel is None else parallel.device
    pyro.set_rng_seed(config.seed)
    pyro.clear_param_store()
    data = load_dataset(config.dataset, root=config.data_root, download=config.download)
    if data.train_labels is None and config.model == "m2":
        raise ConfigError(f"--model m2 needs labels but {config.dataset} has none; choose a labelled --dataset")
    if config.binarize:
        raise ConfigError(f"--model {config.model} trains on grey pixels here; drop --binarize")
    generator = torch.Generator(device=device).manual_seed(config.seed)
    run = _run_m2 if config.model == "m2" else _run_cvae
    return run(config, out, data, device, generator, payload, parallel)


def _run_m2(config, out, data, device, generator, payload, parallel) -> TrainingRecord:
    writes = parallel is None or parallel.is_main  # rank 0 alone writes outputs
    images = data.train_images[: config.train_size].to(device)
    labels = data.train_labels[: config.train_size].to(device)
    try:
        split = split_labelled(images, labels, config.labels, config.validation_size, seed=config.seed,
                               num_classes=data.num_classes)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    m2 = build_m2(config, tuple(data.image_shape), data.num_classes).to(device)
    if config.mean_init and payload is None:
        m2.likelihood.init_output_bias(images)
    test_images, test_labels = data.test_images.to(device), data.test_labels.to(device)
    saver = CheckpointEvery(out / CHECKPOINT_NAME, config.to_dict(), steps=config.checkpoint_every,
                            image_shape=list(data.image_shape), num_classes=data.num_classes,
                            **_process_count(parallel))
    log = _epoch_logger(config, saver, out / METRICS_NAME,
                        lambda f: f"loss {f['train_loss']:9.2f}  val acc {f.get('val_accuracy', float('nan')):.4f}"
                                  f"  test acc {f['test_accuracy']:.4f}")
    callbacks, seeds = _callbacks(config, parallel, saver, [log])
    trainer = SemiSupervisedTrainer(m2, lr=config.lr, batch_size=config.batch_size,
                                    labelled_batch_size=config.batch_size, progress=config.progress and writes,
                                    generator=generator, **callbacks, parallel=parallel,
                                    max_nonfinite_steps=config.max_nonfinite_steps, compile=config.compile)
    record = fit_resumably(trainer, saver, out, payload,
                  lambda epochs: trainer.fit(split, epochs, test_images, test_labels), config.epochs, seeds)
    if not writes:
        return record
    m2.eval()
    save_class_samples(m2, out / "samples.png")
    save_analogies(m2, test_images[:10], out / "analogies.png")
    plots.save_training_curves(record.history, out / "training_curves.png",
                               keys=("labelled_accuracy", "val_accuracy", "test_accuracy"))
    print(f"done in {record.seconds:.0f} s: test accuracy {record.last('test_accuracy'):.4f} with "
          f"{config.labels} labels.\nWrote {out / CHECKPOINT_NAME}, {out / METRICS_NAME} and PNGs in {out}/")
    return record


def _run_cvae(config, out, data, device, generator, payload, parallel) -> TrainingRecord:
    writes = parallel is None or parallel.is_main  # rank 0 alone writes outputs
    images = data.train_images[: config.train_size].to(device)
    order = torch.randperm(images.shape[0], generator=generator, device=device)
    n_val = config.validation_size
    if n_val >= images.shape[0]:
        raise ConfigError(f"--validation-size {n_val} leaves no training images out of {images.shape[0]}")
    train, val = images[order[n_val:]], images[order[:n_val]]
    test = data.test_images.to(device)
    ctx, val_ctx, test_ctx = (hide_quadrants(x, config.quadrants) for x in (train, val, test))
    cvae = build_cvae(config, tuple(data.image_shape)).to(device)
    if payload is None:
        baseline_history = fit_baseline(cvae.baseline, ctx, train, epochs=config.baseline_epochs, lr=config.lr,
                                        batch_size=config.batch_size, generator=generator,
                                        validation=(val_ctx, val) if n_val else None).history
    else:  # the trained baseline comes back with the model's weights
        load_module_state(cvae, payload["model"], str(out / CHECKPOINT_NAME))
        baseline_history = payload.get("baseline_history", [])
    with torch.no_grad():
        baseline_nll = -cvae.baseline.log_likelihood(test_ctx, test).mean().item()
    if writes:
        tqdm.write(f"baseline: {len(baseline_history)} epochs, test conditional NLL {baseline_nll:.2f}")
    eval_ctx, eval_target = test_ctx[:2000], test[:2000]

    def add_nll(trainer: Trainer, figures: dict[str, float]) -> None:
        figures["test_nll"] = conditional_nll(cvae, eval_ctx, eval_target, num_samples=config.is_samples)
        figures["baseline_test_nll"] = baseline_nll

    saver = CheckpointEvery(out / CHECKPOINT_NAME, config.to_dict(), steps=config.checkpoint_every,
                            image_shape=list(data.image_shape), baseline_history=baseline_history,
                            **_process_count(parallel))
    log = _epoch_logger(config, saver, out / METRICS_NAME,
                        lambda f: f"test -ELBO {-f['test_elbo']:8.2f}  test NLL {f['test_nll']:8.2f} "
                                  f"(baseline {baseline_nll:.2f})")
    callbacks, seeds = _callbacks(config, parallel, saver, [add_nll, log])
    if parallel is not None:  # the trained baseline gets no gradient: DDP must not wait for one
        parallel.find_unused_parameters = True
    trainer = Trainer(cvae, lr=config.lr, batch_size=config.batch_size, progress=config.progress and writes,
                      generator=generator, **callbacks, parallel=parallel,
                      max_nonfinite_steps=config.max_nonfinite_steps, compile=config.compile)
    record = fit_resumably(trainer, saver, out, payload,
                  lambda epochs: trainer.fit(ctx, eval_ctx, epochs, train_context=train, test_context=eval_target,
                                             eval_size=1000), config.epochs, seeds)
    if not writes:
        return record
    save_completions(cvae, test_ctx[:10], test[:10], out / "samples.png")
    plots.save_training_curves(record.history, out / "training_curves.png",
                               keys=("train_elbo", "test_elbo"))
    print(f"done in {record.seconds:.0f} s: test conditional NLL {record.last('test_nll'):.2f} nats per "
          f"image on {eval_ctx.shape[0]} test images ({config.is_samples} importance samples); baseline "
          f"{baseline_nll:.2f}.\nWrote {out / CHECKPOINT_NAME}, {out / METRICS_NAME} and PNGs in {out}/")
    return record


def _process_count(parallel: Any) -> dict[str, Any]:
    """Checkpoint entries saying how the data were shared (for ``--resume`` on another count)."""
    return {"world_size": 1 if parallel is None else parallel.world_size, "sharded": parallel is not None}


__all__ = ["run_train_conditional"]
