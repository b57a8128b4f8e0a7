"""Training: stochastic variational inference over mini-batches of tensors held in memory.

The ELBO comes from Pyro (``objective.differentiable_loss(model, guide, x)``), the step from
one ``torch.optim.Adam`` over the module's parameters. That is the same maximisation that
``SVI(model, guide, pyro.optim.Adam, objective)`` performs, without the per-step cost of
Pyro's param-store optimizer wrappers; the loss is read from the device once per epoch, not
every step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from pyro.infer import ELBO, Trace_ELBO
from torch import Tensor, nn

from pyrovae.data.batches import InMemoryBatches
from pyrovae.metrics import elbo_parts
from pyrovae.objectives import LatentScale, linear_warmup

EpochCallback = Callable[["Trainer", dict[str, float]], None]


class ELBOLoss(nn.Module):
    """The training loss as a module: ``forward(x, context)`` is the negative objective per data
    point, differentiable, for the wrapped ``model`` and ``guide``.

    Being an ``nn.Module`` that owns ``module``'s parameters, it can be wrapped as a whole by
    ``DistributedDataParallel`` or ``torch.compile``.
    """

    def __init__(self, module: nn.Module, model: Callable, guide: Callable, objective: Any) -> None:
        super().__init__()
        self.module = module
        self.model = model
        self.guide = guide
        self.objective = objective

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.objective.differentiable_loss(self.model, self.guide, x, context) / x.shape[0]


@dataclass
class TrainingRecord:
    """What a run produced: one dict of figures per epoch, the step count and the wall time."""

    history: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0

    def last(self, key: str) -> float:
        """The latest epoch's value of ``key``."""
        return self.history[-1][key]


class Trainer:
    """Fits a model/guide pair (usually a :class:`~pyrovae.VAE`) by SVI.

    Args:
        module: the ``nn.Module`` that owns every parameter of ``model`` and ``guide``.
        model, guide: Pyro callables taking ``(x, context)``; default ``module.model`` and
            ``module.guide``.
        objective: anything with ``differentiable_loss(model, guide, x, context)``, e.g.
            ``Trace_ELBO()``, ``TraceMeanField_ELBO()``, ``TraceEnum_ELBO(max_plate_nesting=1)``.
        eval_objective: the ELBO used for the per-epoch figures; default ``Trace_ELBO()``.
        lr: Adam learning rate.
        batch_size: data points per step.
        beta: final weight of the KL term (1 gives the ELBO).
        warmup_epochs: epochs over which the KL weight rises linearly from 0 to ``beta``.
        binarize: draw every pixel as Bernoulli(grey value) each time an image is used
            (dynamic binarization); needs a transform, see ``pyrovae.data.dynamic_binarize``.
        transform: a function applied to every training batch (e.g. dynamic binarization).
        progress: show a progress bar.
        generator: random source for shuffling (seed it for reproducible runs).
        callbacks: functions ``f(trainer, epoch_figures)`` called after every epoch
            (checkpoints, metrics files).
        parallel: a data-parallel strategy, e.g. :class:`pyrovae.distributed.DataParallel`: it
            wraps the loss (``wrap``), shards each epoch (``batches``, with ``set_epoch``) and
            averages figures across processes (``mean``, ``evaluate``). None: one process.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        model: Callable | None = None,
        guide: Callable | None = None,
        objective: Any | None = None,
        eval_objective: ELBO | None = None,
        lr: float = 1e-3,
        batch_size: int = 256,
        beta: float = 1.0,
        warmup_epochs: float = 0.0,
        transform: Callable[[Tensor], Tensor] | None = None,
        progress: bool = True,
        generator: torch.Generator | None = None,
        callbacks: list[EpochCallback] | tuple[EpochCallback, ...] = (),
        parallel: Any | None = None,
    ) -> None:
        self.module = module
        self.latent_scale = LatentScale(beta)
        self.objective = objective or Trace_ELBO()
        self.loss = ELBOLoss(module, self.latent_scale(model or module.model),
                             self.latent_scale(guide or module.guide), self.objective)
        self.parallel = parallel
        if parallel is not None:
            self.loss = parallel.wrap(self.loss)
        self.eval_objective = eval_objective or Trace_ELBO()
        self.optimizer = torch.optim.Adam(module.parameters(), lr=lr)
        self.batch_size = batch_size
        self.beta = beta
        self.warmup_epochs = warmup_epochs
        self.transform = transform
        self.progress = progress
        self.generator = generator
        self.callbacks = list(callbacks)
        self.record = TrainingRecord()
        self.epoch = 0

    def step(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """One optimisation step on a batch; returns the loss per data point (a 0-d tensor,
        not synchronised with the host)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(x, context)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def fit(
        self,
        train: Tensor,
        test: Tensor | None = None,
        epochs: int = 10,
        train_context: Tensor | None = None,
        test_context: Tensor | None = None,
        eval_size: int = 2000,
    ) -> TrainingRecord:
        """Train for ``epochs`` more epochs and evaluate after each.

        Args:
            train: ``(N, *event_shape)`` training data, on the module's device.
            test: held-out data for the test ELBO, or None.
            epochs: passes over ``train``.
            train_context, test_context: per-data-point contexts (labels) or None.
            eval_size: training points (the first ones) on which the train ELBO is split into
                reconstruction and KL after each epoch.

        Returns:
            The record, also kept in ``self.record``; each epoch's dict holds ``epoch``,
            ``train_loss`` (mean per-point loss during the epoch), ``train_elbo``,
            ``train_recon``, ``train_kl``, ``test_elbo``, ``test_recon``, ``test_kl``,
            ``kl_weight`` and ``seconds``.
        """
        from tqdm.auto import tqdm

        tensors = (train,) if train_context is None else (train, train_context)
        make_batches = InMemoryBatches if self.parallel is None else self.parallel.batches
        batches = make_batches(*tensors, batch_size=self.batch_size, shuffle=True,
                               generator=self.generator, transform=self.transform)
        schedule = linear_warmup(self.beta, round(self.warmup_epochs * len(batches)))
        for _ in range(epochs):
            start = time.perf_counter()
            if hasattr(batches, "set_epoch"):
                batches.set_epoch(self.epoch)
            self.module.train()
            total = torch.zeros((), device=train.device)
            bar = tqdm(batches, desc=f"epoch {self.epoch + 1}", disable=not self.progress,
                       leave=False, unit="batch")
            for batch in bar:
                self.latent_scale.weight = schedule(self.record.steps)
                total += self.step(*batch)
                self.record.steps += 1
            if self.parallel is not None:
                total = self.parallel.mean(total)
            figures = {"epoch": self.epoch + 1, "train_loss": total.item() / len(batches),
                       "kl_weight": self.latent_scale.weight}
            figures.update(self.evaluate(train[:eval_size], None if train_context is None
                                         else train_context[:eval_size], prefix="train"))
            if test is not None:
                figures.update(self.evaluate(test, test_context, prefix="test"))
            self.epoch += 1
            figures["seconds"] = time.perf_counter() - start
            self.record.seconds += figures["seconds"]
            self.record.history.append(figures)
            for callback in self.callbacks:
                callback(self, figures)
        return self.record

    def evaluate(self, data: Tensor, context: Tensor | None = None, prefix: str = "test") -> dict[str, float]:
        """ELBO (weight 1, no warm-up), reconstruction and KL per data point, keys ``{prefix}_elbo`` etc.

        With ``parallel``, every process scores its share of ``data`` and the means are combined.
        """
        self.module.eval()
        model, guide = self.module.model, self.module.guide

        def score(x: Tensor, c: Tensor | None) -> dict[str, float]:
            return elbo_parts(model, guide, x, c, objective=self.eval_objective)

        if self.parallel is None:
            parts = score(data, context)
        else:
            parts = self.parallel.evaluate(score, data, context)
        self.module.train()
        return {f"{prefix}_{k}": v for k, v in parts.items()}


__all__ = ["ELBOLoss", "Trainer", "TrainingRecord"]
