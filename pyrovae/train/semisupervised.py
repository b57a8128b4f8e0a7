"""Training M2: each step one labelled and one unlabelled batch, in :class:`~pyrovae.Trainer`'s loop.

What differs from a VAE is the loss (:class:`SemiSupervisedLoss`, two batches per step), the
batches (:class:`~pyrovae.data.semisupervised.MixedBatches`) and the figures after each epoch
(classification accuracies); the loop, the non-finite guard, checkpoints, resume and signal
handling are the trainer's own.
"""

from __future__ import annotations

from typing import Any

from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from torch import Tensor, nn

from pyrovae.data.semisupervised import MixedBatches, SemiSupervisedSplit
from pyrovae.train.trainer import Trainer, TrainingRecord


class SemiSupervisedLoss(nn.Module):
    """``forward(x_l, y_l, x_u)`` = ``labelled_weight`` * mean labelled loss + mean unlabelled
    loss (per image); the unlabelled part alone when ``x_l`` is None.

    The labelled part is ``-ELBO(x, y) + alpha * CE(q(y | x), y)`` (M2's model adds the
    classification term itself), scored by ``labelled_objective``; the unlabelled part is
    ``-U(x)``, scored by ``unlabelled_objective``, an enumerating ELBO that sums ``y`` out.

    Args:
        module: the model (e.g. :class:`~pyrovae.models.M2`) with ``model(x, y=None)``
            and ``guide(x, y=None)``; it owns every parameter.
        labelled_objective: default ``Trace_ELBO()`` (no site to enumerate when y is observed).
        unlabelled_objective: default ``TraceEnum_ELBO(max_plate_nesting=1)``.
        labelled_weight: weight of the labelled batch's mean loss against the unlabelled one's.
    """

    def __init__(self, module: nn.Module, labelled_objective: Any | None = None,
                 unlabelled_objective: Any | None = None, labelled_weight: float = 1.0) -> None:
        super().__init__()
        self.module = module
        self.labelled_weight = labelled_weight
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

    def forward(self, x_l: Tensor | None, y_l: Tensor | None, x_u: Tensor) -> Tensor:
        if x_l is None:
            return self.unlabelled(x_u)
        return self.labelled_weight * self.labelled(x_l, y_l) + self.unlabelled(x_u)


class SemiSupervisedTrainer(Trainer):
    """Fits M2 (or any model with ``model(x, y=None)``, ``guide(x, y=None)`` and
    ``accuracy(x, y)``) on a :class:`~pyrovae.data.semisupervised.SemiSupervisedSplit`, in the
    loop of :class:`~pyrovae.Trainer` (non-finite guard, checkpoints, resume, signals).

    Args:
        module: the model.
        lr: Adam learning rate.
        betas: Adam's moment decay rates (Pyro's SS-VAE example uses (0.95, 0.999)).
        batch_size: unlabelled images per step.
        labelled_batch_size: labelled images per step.
        loss: the loss module; default :class:`SemiSupervisedLoss` ``(module)``.
        labelled_weight: weight of the labelled batch's mean loss against the unlabelled
            batch's; default 1. ``"proportional"``: ``N_labelled / N_unlabelled``, so that over an
            epoch every image, labelled or not, carries the same weight (Kingma et al.'s objective
            summed over the data set); benchmarks/README.md compares the two.
        labelled_every: add the labelled batch's loss on every n-th step of an epoch only (the
            other steps see unlabelled images alone), as Pyro's SS-VAE example interleaves
            them; default 1, every step.
        **trainer_kwargs: the rest of :class:`~pyrovae.Trainer`'s options (``transform``,
            ``progress``, ``generator``, ``callbacks``, ``step_callbacks``,
            ``max_nonfinite_steps``, ``validate_every_step``, ``compile``).

    Each epoch's figures: ``train_loss`` (mean weighted loss per step), ``labelled_accuracy``,
    ``val_accuracy`` (when the split has a validation set), ``test_accuracy`` (with test data).
    """

    def __init__(self, module: nn.Module, *, lr: float = 1e-3, batch_size: int = 200,
                 labelled_batch_size: int = 100, loss: SemiSupervisedLoss | None = None,
                 labelled_weight: float | str = 1.0, betas: tuple[float, float] = (0.9, 0.999),
                 labelled_every: int = 1, **trainer_kwargs: Any) -> None:
        if labelled_weight != "proportional" and not (isinstance(labelled_weight, (int, float))
                                                      and labelled_weight > 0):
            raise ValueError(f"labelled_weight must be a positive number or 'proportional', got {labelled_weight!r}")
        if not (isinstance(labelled_every, int) and labelled_every >= 1):
            raise ValueError(f"labelled_every must be a whole number >= 1, got {labelled_every!r}")
        loss = loss or SemiSupervisedLoss(module)
        if labelled_weight != "proportional":
            loss.labelled_weight = float(labelled_weight)
        super().__init__(module, loss=loss, lr=lr, betas=betas, batch_size=batch_size, **trainer_kwargs)
        self.semisupervised_loss = loss  # self.loss may wrap it (compiled, data-parallel)
        self.labelled_weight = labelled_weight
        self.labelled_batch_size = labelled_batch_size
        self.labelled_every = labelled_every

    def fit(self, split: SemiSupervisedSplit, epochs: int = 10, test_images: Tensor | None = None,
            test_labels: Tensor | None = None) -> TrainingRecord:
        """Train for ``epochs`` more epochs (passes over the unlabelled images).

        Returns:
            The record of :meth:`~pyrovae.Trainer.train`.
        """
        if self.labelled_weight == "proportional":
            self.semisupervised_loss.labelled_weight = split.labelled_images.shape[0] / max(split.unlabelled_images.shape[0], 1)
        self._ensure_generator(split.unlabelled_images.device)
        make_batches = MixedBatches if self.parallel is None else self.parallel.mixed_batches  # each rank's share
        batches = make_batches(split, self.batch_size, self.labelled_batch_size, generator=self.generator,
                               transform=self.transform, labelled_every=self.labelled_every)

        def evaluate() -> dict[str, float]:
            accuracy = self.module.accuracy
            figures = {"labelled_accuracy": accuracy(split.labelled_images, split.labelled_labels)}
            if split.validation_images.shape[0]:
                figures["val_accuracy"] = accuracy(split.validation_images, split.validation_labels)
            if test_images is not None and test_labels is not None:
                figures["test_accuracy"] = accuracy(test_images, test_labels)
            return figures

        return self.train(batches, epochs, evaluate, device=split.unlabelled_images.device)


__all__ = ["SemiSupervisedLoss", "SemiSupervisedTrainer"]
