"""Training M2: each step one labelled and one unlabelled batch, one torch optimizer.

Mirrors :class:`pyrovae.train.trainer.Trainer` (loss as a module, figures per epoch in a
:class:`~pyrovae.train.trainer.TrainingRecord`, epoch callbacks) for a loss that takes two batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any

import pyro
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from torch import Tensor, nn

from pyrovae.fast.compiled import compiled_kernels
from pyrovae.data.semisupervised import MixedBatches, SemiSupervisedSplit
from pyrovae.train.trainer import TrainingRecord

EpochCallback = Callable[["SemiSupervisedTrainer", dict[str, float]], None]


class SemiSupervisedLoss(nn.Module):
    """``forward(x_l, y_l, x_u)`` = mean labelled loss + mean unlabelled loss (per image).

    The labelled part is ``-ELBO(x, y) + alpha * CE(q(y | x), y)`` (M2's model adds the
    classification term itself), scored by ``labelled_objective``; the unlabelled part is
    ``-U(x)``, scored by ``unlabelled_objective``, an enumerating ELBO that sums ``y`` out.

    Args:
        module: the model (e.g. :class:`~pyrovae.models.M2`) with ``model(x, y=None)``
            and ``guide(x, y=None)``; it owns every parameter.
        labelled_objective: default ``Trace_ELBO()`` (no site to enumerate when y is observed).
        unlabelled_objective: default ``TraceEnum_ELBO(max_plate_nesting=1)``.
    """

    def __init__(self, module: nn.Module, labelled_objective: Any | None = None,
                 unlabelled_objective: Any | None = None) -> None:
        super().__init__()
        self.module = module
        self.labelled_objective = labelled_objective or Trace_ELBO()
        self.unlabelled_objective = unlabelled_objective or TraceEnum_ELBO(max_plate_nesting=1)

    def labelled(self, x: Tensor, y: Tensor) -> Tensor:
        """Mean per-image labelled loss (0-d, differentiable)."""
        m = self.module
        return self.labelled_objective.differentiable_loss(m.model, m.guide, x, y) / x.shape[0]

    def unlabelled(self, x: Tensor) -> Tensor:
        """Mean per-image unlabelled loss ``-U(x)`` (0-d, differentiable)."""
        m = self.module
        return self.unlabelled_objective.differentiable_loss(m.model, m.guide, x) / x.shape[0]

    def forward(self, x_l: Tensor, y_l: Tensor, x_u: Tensor) -> Tensor:
        return self.labelled(x_l, y_l) + self.unlabelled(x_u)


class SemiSupervisedTrainer:
    """Fits M2 (or any model with ``model(x, y=None)``, ``guide(x, y=None)`` and
    ``classify(x)``) on a :class:`~pyrovae.data.semisupervised.SemiSupervisedSplit`.

    Args:
        module: the model.
        lr: Adam learning rate.
        betas: Adam's moment decay rates (Pyro's SS-VAE example uses (0.95, 0.999)).
        batch_size: unlabelled images per step.
        labelled_batch_size: labelled images per step.
        transform: applied to every training batch (e.g. dynamic binarization).
        progress: show a progress bar.
        generator: random source for shuffling.
        callbacks: functions ``f(trainer, epoch_figures)`` called after every epoch.
        loss: the loss module; default :class:`SemiSupervisedLoss` ``(module)``.
        labelled_weight: weight of the labelled batch's mean loss against the unlabelled
            batch's; default 1. ``"proportional"``: ``N_labelled / N_unlabelled``, so that over an
            epoch every image, labelled or not, carries the same weight (Kingma et al.'s objective
            summed over the data set). Weight 1 is the default: it gave the higher accuracy
            with 100 labels (benchmarks/README.md, ``semisupervised.py``).
        labelled_every: add the labelled batch's loss on every n-th step only (the other steps
            see unlabelled images alone). Pyro's SS-VAE example interleaves one labelled step
            per ``N_train / N_labelled`` batches (one per epoch at 100 labels); default 1, every step.
            Every step gave the higher accuracy with 100 labels (benchmarks/README.md,
            ``semisupervised.py``).
        compile: compiled networks and densities in the steps of :meth:`train_epoch`, as
            :class:`~pyrovae.train.trainer.Trainer`'s ``compile``.
        validate_every_step: run Pyro's validation checks on every step. By default, as in
            :class:`~pyrovae.train.trainer.Trainer`, they run (when Pyro validation is enabled) on the
            first step of every epoch and the first ``step`` called directly: the checks of every
            distribution's arguments and of the sites of model and guide cost milliseconds per
            step on M2.
    """

    def __init__(self, module: nn.Module, *, lr: float = 1e-3, batch_size: int = 200,
                 labelled_batch_size: int = 100, transform: Callable[[Tensor], Tensor] | None = None,
                 progress: bool = True, generator: torch.Generator | None = None,
                 callbacks: list[EpochCallback] | tuple[EpochCallback, ...] = (),
                 loss: SemiSupervisedLoss | None = None,
                 labelled_weight: float | str = 1.0, betas: tuple[float, float] = (0.9, 0.999),
                 labelled_every: int = 1, compile: bool = False, validate_every_step: bool = False) -> None:
        if labelled_weight != "proportional" and not (isinstance(labelled_weight, (int, float))
                                                      and labelled_weight > 0):
            raise ValueError(f"labelled_weight must be a positive number or 'proportional', got {labelled_weight!r}")
        if not (isinstance(labelled_every, int) and labelled_every >= 1):
            raise ValueError(f"labelled_every must be a whole number >= 1, got {labelled_every!r}")
        self.labelled_every = labelled_every
        self.module = module
        self.labelled_weight = labelled_weight
        self._weight = 1.0 if labelled_weight == "proportional" else float(labelled_weight)
        self.loss = loss or SemiSupervisedLoss(module)
        self.optimizer = torch.optim.Adam(module.parameters(), lr=lr, betas=betas)
        self.batch_size = batch_size
        self.labelled_batch_size = labelled_batch_size
        self.transform = transform
        self.progress = progress
        self.generator = generator
        self.callbacks = list(callbacks)
        self.record = TrainingRecord()
        self.epoch = 0
        self.compile = compile
        self.validate_every_step = validate_every_step
        self._validate_next_step = True

    def step(self, x_l: Tensor | None, y_l: Tensor | None, x_u: Tensor) -> tuple[Tensor | None, Tensor]:
        """One optimisation step on ``labelled_weight * labelled + unlabelled`` (unlabelled
        alone when ``x_l`` is None); returns the (labelled or None, unlabelled) mean losses,
        unweighted and detached."""
        checked = self.validate_every_step or self._validate_next_step
        self._validate_next_step = False
        self.optimizer.zero_grad(set_to_none=True)
        with nullcontext() if checked else pyro.validation_enabled(False):
            labelled = None if x_l is None else self.loss.labelled(x_l, y_l)
            unlabelled = self.loss.unlabelled(x_u)
        (unlabelled if labelled is None else self._weight * labelled + unlabelled).backward()
        self.optimizer.step()
        return (None if labelled is None else labelled.detach()), unlabelled.detach()

    def train_epoch(self, batches: Iterable[tuple[Tensor, Tensor, Tensor]]) -> tuple[float, float]:
        """One pass of :meth:`step` over ``(x_l, y_l, x_u)`` batches (the labelled part on
        every ``labelled_every``-th step); Pyro's validation on its first step only, unless
        ``validate_every_step``. Returns the mean labelled loss over the steps that had labels
        and the mean unlabelled loss, read from the device once."""
        self._validate_next_step = True
        totals: Tensor | None = None
        labelled_steps = steps = 0
        with compiled_kernels(self.compile, training=True):
            for x_l, y_l, x_u in batches:
                with_labels = self.record.steps % self.labelled_every == 0
                labelled, unlabelled = self.step(x_l if with_labels else None, y_l, x_u)
                if totals is None:
                    totals = torch.zeros(2, device=unlabelled.device)
                totals[1] += unlabelled
                if labelled is not None:
                    totals[0] += labelled
                    labelled_steps += 1
                self.record.steps += 1
                steps += 1
        if totals is None:
            return 0.0, 0.0
        labelled_sum, unlabelled_sum = totals.tolist()
        return labelled_sum / max(labelled_steps, 1), unlabelled_sum / steps

    def fit(self, split: SemiSupervisedSplit, epochs: int = 10, test_images: Tensor | None = None,
            test_labels: Tensor | None = None) -> TrainingRecord:
        """Train for ``epochs`` more epochs (passes over the unlabelled images).

        Returns:
            The record; each epoch's dict holds ``epoch``, ``train_labelled_loss``,
            ``train_unlabelled_loss``, ``train_loss`` (their sum), ``labelled_accuracy``,
            ``val_accuracy``, ``test_accuracy`` (if test data are given) and ``seconds``.
        """
        from tqdm.auto import tqdm

        if self.labelled_weight == "proportional":
            self._weight = split.labelled_images.shape[0] / max(split.unlabelled_images.shape[0], 1)
        batches = MixedBatches(split, self.batch_size, self.labelled_batch_size,
                               generator=self.generator, transform=self.transform)
        for _ in range(epochs):
            start = time.perf_counter()
            self.module.train()
            bar = tqdm(batches, desc=f"epoch {self.epoch + 1}", disable=not self.progress,
                       leave=False, unit="batch")
            labelled, unlabelled = self.train_epoch(bar)
            figures = {"epoch": self.epoch + 1, "train_labelled_loss": labelled,
                       "train_unlabelled_loss": unlabelled, "train_loss": labelled + unlabelled}
            self.module.eval()
            figures["labelled_accuracy"] = self.module.accuracy(split.labelled_images, split.labelled_labels)
            if split.validation_images.shape[0]:
                figures["val_accuracy"] = self.module.accuracy(split.validation_images,
                                                               split.validation_labels)
            if test_images is not None and test_labels is not None:
                figures["test_accuracy"] = self.module.accuracy(test_images, test_labels)
            self.module.train()
            self.epoch += 1
            figures["seconds"] = time.perf_counter() - start
            self.record.seconds += figures["seconds"]
            self.record.history.append(figures)
            for callback in self.callbacks:
                callback(self, figures)
        return self.record


__all__ = ["SemiSupervisedLoss", "SemiSupervisedTrainer"]
