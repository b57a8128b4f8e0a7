"""A fit that resumes, and stops cleanly: the part of ``pyrovae train`` every model shares.

Restores a checkpoint into the trainer, keeps metrics.jsonl in step with it, and turns
SIGINT/SIGTERM (agreed on by every rank under torchrun) into a checkpoint and a one-line
:class:`~pyrovae.errors.TrainingInterrupted` naming ``--resume``.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyrovae.cli.config import CHECKPOINT_NAME, METRICS_NAME
from pyrovae.errors import NonFiniteError, TrainingInterrupted
from pyrovae.train.checkpoint import CheckpointEvery, restore_training
from pyrovae.train.distributed import RankSeeds
from pyrovae.train.interrupts import stop_on_signals
from pyrovae.train.trainer import Trainer, TrainingRecord


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` in one step (a crash leaves the old file or the new one)."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def fit_resumably(trainer: Trainer, saver: CheckpointEvery, out: Path, payload: dict[str, Any] | None,
         fit: Callable[[int], TrainingRecord], epochs: int, seeds: RankSeeds | None = None) -> TrainingRecord:
    """Restore ``payload`` (a run to resume) into ``trainer``, then ``fit(epochs left)`` with a
    clean stop on SIGINT/SIGTERM: checkpoint, then :class:`TrainingInterrupted` naming ``--resume``."""
    metrics_path = out / METRICS_NAME
    parallel = trainer.parallel
    writes = parallel is None or parallel.is_main
    if payload is not None:
        restore_training(trainer, payload, source=str(out / CHECKPOINT_NAME))
        if writes:
            # The metrics file may have run ahead of the checkpoint; rewrite it from the saved history.
            write_atomically(metrics_path, "".join(json.dumps(f) + "\n" for f in trainer.record.history))
            print(f"resuming {out} at epoch {trainer.epoch + 1}, step {trainer.record.steps}")
    elif writes:
        metrics_path.write_text("")
    if seeds is not None:
        seeds.reseed(trainer.record.steps)
    try:
        with stop_on_signals(trainer):
            return fit(epochs - trainer.epoch)
    except TrainingInterrupted as stop:
        if parallel is not None:  # every rank stopped here: save the ranks' mean running loss
            trainer.position.loss_sum = parallel.mean(trainer.position.loss_sum).float()
        if writes:
            saver.save(trainer)
        if parallel is not None:
            parallel.barrier()  # no rank leaves (and torchrun stops the rest) before the checkpoint is written
        name = signal.Signals(stop.signal_number).name
        raise TrainingInterrupted(
            f"{name} received: stopped at step {trainer.record.steps} (epoch {trainer.epoch + 1}) and saved "
            f"{out / CHECKPOINT_NAME}; continue with: pyrovae train --resume {out}", stop.signal_number) from None
    except NonFiniteError as error:
        raise NonFiniteError(f"{error}; the last checkpoint in {out} was kept") from None


__all__ = ["fit_resumably", "write_atomically"]
