"""One rank of the 2-process tests in test_distributed.py, started as a user would:
``python -m torch.distributed.run --standalone --nproc_per_node 2 tests/distributed_worker.py OUT``.

Each check runs in this process group in turn (``DataParallel.close`` is held back until the
end so that the command line's runs reuse the group) and each rank saves what it saw to
``OUT/rank{r}.pt``; the tests read those files. A fresh process per launch, started by
``torchrun``, means nothing that ran before in pytest's process (a backward pass, a fork) can
reach the ranks.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

import pyro
import torch
from torch import nn
from distributed_models import (  # this folder is the script's, so first on sys.path
    EVENT,
    MODELS,
    STOP_AT_STEP,
    compare_with_one_process,
    index_images,
    recording_transform,
    tiny_vae,
)

from pyrovae import Trainer
from pyrovae.cli.conditional_registry import build_cvae, build_m2
from pyrovae.cli.config import TrainConfig
from pyrovae.data import load_dataset
from pyrovae.data.quadrants import hide_quadrants
from pyrovae.data.semisupervised import split_labelled
from pyrovae.cli import main
from pyrovae.errors import NonFiniteError, TrainingInterrupted
from pyrovae.train.checkpoint import load_checkpoint
from pyrovae.train.distributed import DataParallel, GlobalOrder, launched_by_torchrun
from pyrovae.train.semisupervised import SemiSupervisedTrainer


def sigterm_to_self_before_step(step: int) -> None:
    """From now on, send SIGTERM to this process as its trainer begins step ``step`` (1-based)."""
    original = Trainer.step

    def step_then_maybe_signal(self, *args, **kwargs):
        if self.record.steps == step - 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, *args, **kwargs)

    Trainer.step = step_then_maybe_signal


def cli_runs(out: str, rank: int) -> dict:
    """The command line under torchrun: uninterrupted; stopped by SIGTERM to rank 1; resumed."""
    common = ["--train-size", "201", "--epochs", "2", "--hidden", "16", "--batch-size", "20",
              "--no-progress", "--binarize"]
    codes = {"full": main(["train", "--out", os.path.join(out, "full"), *common])}
    original = Trainer.step
    if rank == 1:
        sigterm_to_self_before_step(STOP_AT_STEP)
    codes["stopped"] = main(["train", "--out", os.path.join(out, "stopped"), *common])
    Trainer.step = original
    stopped = load_checkpoint(os.path.join(out, "stopped", "checkpoint.pt"))
    codes["stopped_step"], codes["stopped_epoch"] = stopped["step"], stopped["epoch"]
    codes["resumed"] = main(["train", "--resume", os.path.join(out, "stopped"), "--no-progress"])
    small = ["--train-size", "300", "--validation-size", "0", "--epochs", "1", "--hidden", "16",
             "--batch-size", "20", "--no-progress"]
    codes["m2"] = main(["train", "--model", "m2", "--out", os.path.join(out, "m2"), "--labels", "20", *small])
    codes["cvae"] = main(["train", "--model", "cvae", "--out", os.path.join(out, "cvae"), "--baseline-epochs", "1",
                          "--is-samples", "2", *small])
    return codes


def batch_order(parallel: DataParallel, out: str) -> dict:
    """The sample indices of every local batch: an uninterrupted fit, and one stopped at
    ``STOP_AT_STEP`` by a stop request on rank 1 alone, whose state rank 0 saves."""
    seen: dict[str, list[list[int]]] = {"full": [], "stopped": []}
    images = index_images(45)
    for name in ("full", "stopped"):
        pyro.set_rng_seed(3 + parallel.rank)
        vae = tiny_vae(seed=parallel.rank, name=f"order-{name}", fixed_noise=False)
        trainer = Trainer(vae, parallel=parallel, batch_size=4, progress=False,
                          transform=recording_transform(seen[name]))
        if name == "stopped" and parallel.rank == 1:
            # A request made between two steps is agreed on at the next one, and both ranks stop after it.
            trainer.step_callbacks.append(
                lambda t: t.request_stop(signal.SIGTERM) if t.record.steps == STOP_AT_STEP - 1 else None)
        try:
            trainer.fit(images, epochs=2)
            stopped_at = None
        except TrainingInterrupted as stop:
            stopped_at = (trainer.record.steps, stop.signal_number)
            if parallel.is_main:
                torch.save(trainer.state_dict(), os.path.join(out, "order_state.pt"))
        seen[f"{name}_stopped_at"] = stopped_at
    return seen




def zero_noise() -> Callable[[], None]:
    """Make every Normal draw its mean (``loc + 0 * scale``), so that a loss is a function of the
    parameters and the batch alone and two processes can be compared with one; returns the undo."""
    original = torch.distributions.Normal.rsample

    def rsample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        return self.loc.expand(shape) + 0.0 * self.scale.expand(shape)

    torch.distributions.Normal.rsample = rsample
    return lambda: setattr(torch.distributions.Normal, "rsample", original)


def conditional_models(parallel: DataParallel) -> dict:
    """M2 and the CVAE, one epoch on 400 bundled images: 2 processes with local batches of 20,
    and one process (:class:`GlobalOrder`) with the same global batches of 40."""
    data = load_dataset("mnist-small")
    images, labels = data.train_images[:400], data.train_labels[:400]
    shape = tuple(data.image_shape)
    config = TrainConfig(hidden=32, latent_dim=4, labels=40, validation_size=0)
    split = split_labelled(images, labels, 40, 0, seed=0, num_classes=10)
    context = hide_quadrants(images, 1)
    undo = zero_noise()
    result = {}
    try:
        for name, strategy, batch in (("ranks", parallel, 20), ("one", GlobalOrder(seed=parallel.seed), 40)):
            pyro.clear_param_store()
            torch.manual_seed(0)
            m2 = build_m2(config, shape, 10)
            trainer = SemiSupervisedTrainer(m2, batch_size=batch, labelled_batch_size=batch, parallel=strategy,
                                            progress=False)
            m2_record = trainer.fit(split, 1)
            pyro.clear_param_store()
            torch.manual_seed(0)
            cvae = build_cvae(config, shape)
            strategy.find_unused_parameters = True  # as the command line: the baseline gets no gradient
            trainer = Trainer(cvae, batch_size=batch, parallel=strategy, progress=False)
            strategy.find_unused_parameters = False
            cvae_record = trainer.fit(context, None, 1, train_context=images, eval_size=100)
            result[name] = {"m2": m2_record.history[-1], "m2_steps": m2_record.steps,
                            "cvae": cvae_record.history[-1], "cvae_steps": cvae_record.steps}
    finally:
        undo()
    return result


class SquareLoss(nn.Module):
    """``mean((w x)^2)``, plus NaN while ``poisoned``: a non-finite loss whose gradient stays finite,
    which DDP's gradient average alone would not carry to the other rank."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))
        self.poisoned = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        loss = ((self.w * x) ** 2).mean()
        return loss + torch.nan if self.poisoned else loss


def nonfinite_on_one_rank(parallel: DataParallel) -> dict:
    """Rank 1's loss turns NaN from step 2 on, rank 0's never: with ``max_nonfinite_steps=2``."""
    module = SquareLoss()
    trainer = Trainer(module, loss=module, parallel=parallel, lr=0.1, max_nonfinite_steps=2, progress=False)
    trainer.step_callbacks.append(lambda t: setattr(module, "poisoned", parallel.rank == 1 and t.record.steps >= 1))
    x = torch.ones(4, 3) * (1 + parallel.rank)
    try:
        trainer.train_epoch([(x,)] * 5)
        error_at = None
    except NonFiniteError:
        error_at = trainer.record.steps
    return {"error_at": error_at, "skipped": int(trainer.guard.skipped), "w": module.w.detach().clone()}


def run(out: str) -> None:
    rank = int(os.environ["RANK"])
    torch.set_num_threads(1)
    pyro.enable_validation(True)
    parallel = DataParallel.from_environment(seed=7, device="cpu")
    close, DataParallel.close = DataParallel.close, lambda self: None  # the CLI's runs reuse this group
    try:
        result = {"compared": {model: compare_with_one_process(parallel, model) for model in MODELS}}
        # A short fit with real sampling: 37 points, local batch 5, KL warm-up over 1.5 epochs.
        pyro.set_rng_seed(100 + rank)
        fit_vae = tiny_vae(seed=10 + rank, name="fit", fixed_noise=False)
        data = torch.bernoulli(torch.full((37, *EVENT), 0.3), generator=torch.Generator().manual_seed(5))
        fitter = Trainer(fit_vae, parallel=parallel, batch_size=5, warmup_epochs=1.5, progress=False)
        record = fitter.fit(data, data[:11], epochs=2)
        if parallel.is_main:
            torch.save(fit_vae.state_dict(), os.path.join(out, "checkpoint.pt"))
        result.update(fit_params=fit_vae.state_dict(), history=record.history, steps=record.steps,
                      batches_per_epoch=len(parallel.batches(data, batch_size=5)))
        result["order"] = batch_order(parallel, out)
        result["conditional"] = conditional_models(parallel)
        result["nonfinite"] = nonfinite_on_one_rank(parallel)
        result["cli_codes"] = cli_runs(out, rank)
        torch.save(result, os.path.join(out, f"rank{rank}.pt"))
    finally:
        DataParallel.close = close
        parallel.close()


if __name__ == "__main__":
    assert launched_by_torchrun(), "start this file with torchrun"
    run(sys.argv[1])
