"""Training: stochastic variational inference over mini-batches of tensors held in memory.

The ELBO comes from Pyro (``objective.differentiable_loss(model, guide, x)``), the step from
one ``torch.optim.Adam`` over the module's parameters. That is the same maximisation that
``SVI(model, guide, pyro.optim.Adam, objective)`` performs, without Pyro's fixed per-step
costs that a torch optimizer makes unnecessary:

* Pyro's param-store optimizer wrappers, and ``pyro.module`` registering every parameter on
  every model and guide run (a :class:`~pyrovae.VAE` is registered once, then run inside
  ``vae.without_registration()``);
* the ``.item()`` calls inside ``Trace_ELBO.differentiable_loss`` (the default objective is
  :class:`~pyrovae.elbo.SyncFreeTrace_ELBO`, equal in value and gradient);
* Pyro's validation checks on every step (they run on the first step of every epoch);
* the loss read back from the device every step (it is read once per epoch).

Measured against a hand-written PyTorch twin in ``benchmarks/speed.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import pyro
import torch
from pyro.infer import ELBO, Trace_ELBO
from torch import Tensor, nn

from pyrovae.data.batches import InMemoryBatches
from pyrovae.elbo import SyncFreeTrace_ELBO
from pyrovae.metrics import elbo_parts
from pyrovae.objectives import LatentScale, linear_warmup

EpochCallback = Callable[["Trainer", dict[str, float]], None]


class ELBOLoss(nn.Module):
    """The training loss as a module: ``forward(x, context)`` is the negative objective per data
    point, differentiable, for the wrapped ``model`` and ``guide``.

    Being an ``nn.Module`` that owns ``module``'s parameters, it can be wrapped as a whole by
    ``DistributedDataParallel`` or ``torch.compile``.

    When ``module`` offers ``without_registration()`` (a :class:`~pyrovae.VAE` does), model
    and guide run inside it: the parameters are optimised from ``module.parameters()``, so the
    per-call ``pyro.module`` registration in Pyro's param store is skipped. Call
    ``module.register_params()`` once if the store should list them (``Trainer`` does).
    """

    def __init__(self, module: nn.Module, model: Callable, guide: Callable, objective: Any) -> None:
        super().__init__()
        self.module = module
        self.model = model
        self.guide = guide
        self.objective = objective
        self._unregistered = getattr(module, "without_registration", nullcontext)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Negative objective per data point, a 0-d tensor; ``x`` is ``(batch, *event_shape)``."""
        with self._unregistered():
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
            ``Trace_ELBO()``, ``TraceMeanField_ELBO()``, ``TraceEnum_ELBO(max_plate_nesting=1)``;
            default :class:`~pyrovae.elbo.SyncFreeTrace_ELBO` (``Trace_ELBO`` without host syncs).
        eval_objective: the ELBO used for the per-epoch figures; default ``Trace_ELBO()``.
        lr: Adam learning rate.
        batch_size: data points per step.
        beta: final weight of the KL term (1 gives the ELBO).
        warmup_epochs: epochs over which the KL weight rises linearly from 0 to ``beta``.
        binarize: draw every pixel as Bernoulli(grey value) each time an image is used
            (dynamic binarization); needs a transform, see ``pyrovae.data.dynamic_binarize``.
        transform: a function applied to every training batch (e.g. dynamic binarization).
        progress: show a progress bar.
        generator: random source for shuffling (seed it for reproducible runs). It may live on
            another device than the data (a CPU generator for CUDA data): the permutation is
            then drawn there and copied once per epoch.
        callbacks: functions ``f(trainer, epoch_figures)`` called after every epoch
            (checkpoints, metrics files).
        validate_every_step: run Pyro's validation checks (model and guide sites match, site
            shapes, distribution arguments, NaN warning) on every step. By default they run,
            when Pyro validation is enabled (``pyro.enable_validation``), on the first step of
            every epoch (and the first ``step`` called directly), and are off for the others: the
            checks cost about a millisecond per step and, on a GPU, synchronise with the host.

    The optimizer is ``torch.optim.Adam`` with ``fused=True`` where the parameters' device
    supports it (one kernel for all parameters; plain Adam otherwise). A :class:`~pyrovae.VAE`
    is registered in Pyro's param store once, here, and not on every step (see
    :class:`ELBOLoss`).
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
        validate_every_step: bool = False,
    ) -> None:
        self.module = module
        if model is None and guide is None and hasattr(module, "register_params"):
            module.register_params()
        self.latent_scale = LatentScale(beta)
        self.objective = objective or SyncFreeTrace_ELBO()
        self.loss = ELBOLoss(module, self.latent_scale(model or module.model),
                             self.latent_scale(guide or module.guide), self.objective)
        self.eval_objective = eval_objective or Trace_ELBO()
        self.optimizer = make_adam(module.parameters(), lr=lr)
        self.batch_size = batch_size
        self.beta = beta
        self.warmup_epochs = warmup_epochs
        self.transform = transform
        self.progress = progress
        self.generator = generator
        self.callbacks = list(callbacks)
        self.validate_every_step = validate_every_step
        self.record = TrainingRecord()
        self.epoch = 0
        self._validate_next_step = True

    def step(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """One optimisation step on a batch; returns the loss per data point (a 0-d tensor,
        not synchronised with the host).

        Args:
            x: ``(batch, *event_shape)`` on the module's device.
            context: ``(batch, ...)`` or None.
        """
        checked = self.validate_every_step or self._validate_next_step
        self._validate_next_step = False
        self.optimizer.zero_grad(set_to_none=True)
        with nullcontext() if checked else pyro.validation_enabled(False):
            loss = self.loss(x, context)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def train_epoch(self, batches: Iterable[tuple[Tensor, ...]], schedule: Callable[[int], float]) -> Tensor:
        """One pass of :meth:`step` over ``batches``; returns the mean loss per data point as a
        0-d tensor on the data's device (read it with ``.item()`` once, not per step)."""
        self._validate_next_step = True
        total: Tensor | float = 0.0
        count = 0
        for batch in batches:
            self.latent_scale.weight = schedule(self.record.steps)
            total = total + self.step(*batch)
            self.record.steps += 1
            count += 1
        return torch.as_tensor(total) / max(count, 1)

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
            ``kl_weight``, ``seconds`` (the whole epoch) and ``train_seconds`` (its
            optimisation steps only, without the evaluation).
        """
        from tqdm.auto import tqdm

        tensors = (train,) if train_context is None else (train, train_context)
        batches = InMemoryBatches(*tensors, batch_size=self.batch_size, shuffle=True,
                                  generator=self.generator, transform=self.transform)
        schedule = linear_warmup(self.beta, round(self.warmup_epochs * len(batches)))
        for _ in range(epochs):
            start = time.perf_counter()
            self.module.train()
            # The bar only counts batches; nothing in it reads a tensor, so no host sync.
            bar = tqdm(batches, desc=f"epoch {self.epoch + 1}", disable=not self.progress,
                       leave=False, unit="batch")
            train_loss = self.train_epoch(bar, schedule).item()
            train_seconds = time.perf_counter() - start
            figures = {"epoch": self.epoch + 1, "train_loss": train_loss,
                       "kl_weight": self.latent_scale.weight, "train_seconds": train_seconds}
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
        """ELBO (weight 1, no warm-up), reconstruction and KL per data point, keys ``{prefix}_elbo`` etc."""
        self.module.eval()
        model, guide = self.module.model, self.module.guide
        parts = elbo_parts(model, guide, data, context, objective=self.eval_objective)
        self.module.train()
        return {f"{prefix}_{k}": v for k, v in parts.items()}


def make_adam(params: Iterable[nn.Parameter], lr: float) -> torch.optim.Adam:
    """``torch.optim.Adam`` with ``fused=True`` where the parameters' device and dtype allow it
    (one kernel updates every parameter; on 2 CPU cores about five times faster than the
    per-tensor loop for the tutorial VAE), plain ``Adam`` otherwise."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


__all__ = ["ELBOLoss", "Trainer", "TrainingRecord", "make_adam"]
