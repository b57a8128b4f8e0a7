"""Training: stochastic variational inference over mini-batches of tensors held in memory.

The ELBO comes from Pyro (``objective.differentiable_loss(model, guide, x)``), the step from
one ``torch.optim.Adam`` over the module's parameters. That is the same maximisation that
``SVI(model, guide, pyro.optim.Adam, objective)`` performs, without Pyro's fixed per-step
costs that a torch optimizer makes unnecessary:

* Pyro's param-store optimizer wrappers, and ``pyro.module`` registering every parameter on
  every model and guide run (a :class:`~pyrovae.VAE` is registered once, then run inside
  ``vae.without_registration()``);
* the ``.item()`` calls inside ``Trace_ELBO.differentiable_loss`` (the default objective is
  :class:`~pyrovae.infer.elbo.SyncFreeTrace_ELBO`, equal in value and gradient);
* Pyro's validation checks on every step (they run on the first step of every epoch);
* the loss read back from the device every step (it is read once per epoch).

With ``compile=True`` the Python of model and guide leaves the step too: the loss is traced
once into one graph and compiled (:mod:`pyrovae.fast.traced_loss`).

Measured against a hand-written PyTorch twin in ``benchmarks/speed.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any

import pyro
import torch
from pyro.infer import ELBO, Trace_ELBO
from torch import Tensor, nn

from pyrovae.fast.compiled import compiled_kernels
from pyrovae.data.batches import InMemoryBatches
from pyrovae.infer.elbo import ELBOLoss, SyncFreeTrace_ELBO
from pyrovae.errors import NonFiniteError, TrainingInterrupted
from pyrovae.train.guard import NonFiniteGuard, is_invalid_values
from pyrovae.infer.metrics import elbo_parts
from pyrovae.infer.objectives import LatentScale, linear_warmup
from pyrovae.train.optim import make_adam
from pyrovae.fast.traced_loss import TracedLoss
from pyrovae.train.state import ResumableTraining, TrainingRecord

EpochCallback = Callable[["Trainer", dict[str, float]], None]
StepCallback = Callable[["Trainer"], None]


#: Steps a :meth:`Trainer.fit` must be asked for, on a CPU, before ``compile=None`` compiles.
#: The compile costs about 3 to 8 s with inductor's cache warm and about 20 s cold; a compiled
#: step of Pyro's tutorial network saves about 3 ms on 2 CPU cores (0.9 against 1.2 times the
#: plain-PyTorch twin's 11 ms, benchmarks/README.md): 5,000 steps (about 21 epochs of full
#: MNIST at batch 256) save some 15 s, several warm compiles and most of a cold one.
AUTO_COMPILE_STEPS = 5000


class Trainer(ResumableTraining):
    """Fits a model/guide pair (usually a :class:`~pyrovae.VAE`) by SVI.

    Args:
        module: the ``nn.Module`` that owns every parameter of ``model`` and ``guide``.
        model, guide: Pyro callables taking ``(x, context)``; default ``module.model`` and
            ``module.guide``.
        objective: anything with ``differentiable_loss(model, guide, x, context)``, e.g.
            ``Trace_ELBO()``, ``TraceMeanField_ELBO()``, ``TraceEnum_ELBO(max_plate_nesting=1)``;
            default :class:`~pyrovae.infer.elbo.SyncFreeTrace_ELBO` (``Trace_ELBO`` without host syncs).
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
        step_callbacks: functions ``f(trainer)`` called after every step (checkpoints every
            N steps); the trainer is then at a step boundary and ``state_dict()`` resumes there.
        max_nonfinite_steps: stop with :class:`~pyrovae.errors.NonFiniteError` after this many
            steps in a row with a non-finite loss or gradient (each such step is skipped:
            no update; the count is ``skipped_steps`` in every epoch's figures).
        validate_every_step: run Pyro's validation checks (model and guide sites match, site
            shapes, distribution arguments, NaN warning) on every step. By default they run,
            when Pyro validation is enabled (``pyro.enable_validation``), on the first step of
            every epoch (and the first ``step`` called directly), and are off for the others: the
            checks cost about a millisecond per step and, on a GPU, synchronise with the host.
        compile: compile the training steps with ``torch.compile``; the per-epoch evaluation
            stays eager. With the default objective (one particle), a step after the first of
            each epoch runs the whole loss, model and guide together, as one graph traced once
            from Pyro's run and compiled forward and backward (:mod:`pyrovae.fast.traced_loss`,
            retraced when the KL weight, the batch shape or a train/eval mode changes); the
            validated first step of each epoch, and every step of other objectives, run the
            encoder's and likelihood's networks and the Bernoulli image density compiled
            (:mod:`pyrovae.fast.compiled`). Compiling takes seconds to tens of seconds once (less
            with inductor's on-disk cache warm), after which a step on a CPU does its
            elementwise work in fused loops and skips Pyro's Python (``benchmarks/speed.py``,
            contender ``pyrovae-compiled``). Where tracing or compiling fails, one warning and
            the eager code. None (the default): :meth:`fit` compiles, the whole loss as one
            graph, when it is asked for at least :data:`AUTO_COMPILE_STEPS` steps on a CPU
            (about 21 epochs of full MNIST at batch 256), where the compile is earned back;
            shorter fits, steps run without ``fit``, objectives that cannot be traced
            (``TraceEnum_ELBO``, IWAE, DReG), ``parallel`` and GPUs (not measured here) stay
            eager unless ``compile=True``.
        parallel: a data-parallel strategy, e.g. :class:`pyrovae.train.distributed.DataParallel`: it
            wraps the loss (``wrap``), shards each epoch (``batches``, with ``set_epoch``) and
            averages figures across processes (``mean``, ``evaluate``). None: one process.

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
        step_callbacks: list[StepCallback] | tuple[StepCallback, ...] = (),
        max_nonfinite_steps: int = 10,
        validate_every_step: bool = False,
        compile: bool | None = None,
        parallel: Any | None = None,
    ) -> None:
        self.module = module
        if model is None and guide is None and hasattr(module, "register_params"):
            module.register_params()
        self.latent_scale = LatentScale(beta)
        self.objective = objective or SyncFreeTrace_ELBO()
        self.loss = ELBOLoss(module, self.latent_scale(model or module.model),
                             self.latent_scale(guide or module.guide), self.objective)
        self.parallel = parallel
        self.compile = compile  # None: fit decides (AUTO_COMPILE_STEPS)
        if compile:
            self._use_compiled_steps()
        if parallel is not None:
            self.loss = parallel.wrap(self.loss)
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
        self.step_callbacks = list(step_callbacks)
        self.guard = NonFiniteGuard(max_nonfinite_steps)
        # Where the current epoch stands, so that a checkpoint taken between two steps resumes
        # there: batches done, the generator state its permutation was drawn from, the sum of
        # the finite losses so far and the skipped-step count when the epoch began.
        self._batch_in_epoch = 0
        self._order_state: Tensor | None = None
        self._epoch_acc: Tensor | None = None
        self._skipped_before_epoch = 0
        self._pending_generator_state: Tensor | None = None
        self._stop_signal: int | None = None

    @property
    def _traceable(self) -> bool:
        """Whether the loss can run as one traced graph: an objective that declares it, one process."""
        return self.parallel is None and getattr(self.objective, "traceable", False)

    def _use_compiled_steps(self) -> None:
        """Compile the steps from now on: the whole loss as one graph where it can be traced
        (retraced when the KL weight changes), the networks one by one otherwise."""
        if self._traceable and not isinstance(self.loss, TracedLoss):
            self.loss = TracedLoss(self.loss, key=lambda: self.latent_scale.weight)
        self.compile = True

    def step(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """One optimisation step on a batch; returns the loss per data point (a 0-d tensor,
        not synchronised with the host), NaN when the step was skipped as non-finite.

        Args:
            x: ``(batch, *event_shape)`` on the module's device.
            context: ``(batch, ...)`` or None.
        """
        checked = self.validate_every_step or self._validate_next_step
        self._validate_next_step = False
        self.optimizer.zero_grad(set_to_none=True)
        with nullcontext() if checked else pyro.validation_enabled(False):
            loss = self._loss_or_nan(x, context)
        loss.backward()
        ok = self.guard.step(self.optimizer, loss)  # the update, unless loss or gradient is NaN/inf
        return torch.where(ok, loss.detach(), torch.nan)

    def train_epoch(self, batches: Iterable[tuple[Tensor, ...]], schedule: Callable[[int], float],
                    epoch_length: int | None = None) -> Tensor:
        """One pass of :meth:`step` over ``batches``; returns the mean loss per data point over
        the steps not skipped, as a 0-d tensor on the data's device (read it with ``.item()``
        once, not per step).

        After every step: step callbacks, the non-finite guard's check, and a stop requested by
        a signal (:class:`~pyrovae.errors.TrainingInterrupted`), all at a step boundary where
        :meth:`state_dict` resumes exactly. ``epoch_length`` is the number of batches in a
        whole epoch when ``batches`` resumes one part-way (default: the batches given).
        """
        self._validate_next_step = True
        if self._batch_in_epoch == 0 or self._epoch_acc is None:
            self._epoch_acc = torch.zeros(())
            self._skipped_before_epoch = int(self.guard.skipped)
        with compiled_kernels(self.compile, training=True):
            self._steps(batches, schedule)
        self.guard.check(f" in epoch {self.epoch + 1}", force=True)
        steps = epoch_length if epoch_length is not None else self._batch_in_epoch
        finite_steps = steps - (int(self.guard.skipped) - self._skipped_before_epoch)
        return self._epoch_acc / max(finite_steps, 1)

    def _steps(self, batches: Iterable[tuple[Tensor, ...]], schedule: Callable[[int], float]) -> None:
        """The loop of :meth:`train_epoch`: a step per batch, then callbacks, guard and signals."""
        for batch in batches:
            self.latent_scale.weight = schedule(self.record.steps)
            loss = self.step(*batch).nan_to_num(0.0)  # a skipped step returns NaN
            self._epoch_acc = self._epoch_acc.to(loss.device) + loss
            self.record.steps += 1
            self._batch_in_epoch += 1
            self.guard.check(f" at step {self.record.steps} (epoch {self.epoch + 1})")
            for callback in self.step_callbacks:
                callback(self)
            if self._stop_signal is not None:
                if hasattr(batches, "close"):
                    batches.close()
                raise TrainingInterrupted(f"stopped by signal {self._stop_signal} at step "
                                          f"{self.record.steps}", self._stop_signal)

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
            train: ``(N, *event_shape)`` training data, on the module's device, or a
                :class:`~pyrovae.data.streaming.StreamingImages` read through a ``DataLoader``.
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

        # A StreamingImages source (pyrovae.data.streaming) makes its own batches through a DataLoader.
        streamed = not isinstance(train, Tensor)
        train_head = train.head(eval_size) if streamed else train[:eval_size]
        check = getattr(self.module, "check_inputs", None)
        if check is not None:
            check(train_head if streamed else train, train_context, what="training data")
            if test is not None:
                check(test, test_context, what="test data")
        self._ensure_generator(train.device)
        tensors = (train,) if train_context is None else (train, train_context)
        make_batches = InMemoryBatches if self.parallel is None else self.parallel.batches
        if streamed:
            batches = train.batches(self.batch_size, shuffle=True, generator=self.generator, transform=self.transform)
        else:
            batches = make_batches(*tensors, batch_size=self.batch_size, shuffle=True,
                                   generator=self.generator, transform=self.transform)
        schedule = linear_warmup(self.beta, round(self.warmup_epochs * len(batches)))
        if self.compile is None and self._traceable and epochs * len(batches) >= AUTO_COMPILE_STEPS \
                and train.device.type == "cpu":
            self._use_compiled_steps()
            if self.progress:  # the first epoch stalls for the compile: say why
                tqdm.write(f"pyrovae: {epochs * len(batches)} steps ahead, compiling the training step once "
                           "(seconds to tens of seconds; compile=False / --no-compile to skip)")
        for _ in range(epochs):
            start = time.perf_counter()
            if hasattr(batches, "set_epoch"):
                batches.set_epoch(self.epoch)
            self.module.train()
            # The bar only counts batches; nothing in it reads a tensor, so no host sync.
            order = self._epoch_order(batches, train.device)
            bar = tqdm(batches.iterate(order, self._batch_in_epoch), desc=f"epoch {self.epoch + 1}",
                       disable=not self.progress, leave=False, unit="batch",
                       initial=self._batch_in_epoch, total=len(batches))
            train_loss = self.train_epoch(bar, schedule, epoch_length=len(batches))
            if self.parallel is not None:
                train_loss = self.parallel.mean(train_loss)
            train_loss = train_loss.item()
            train_seconds = time.perf_counter() - start
            figures = {"epoch": self.epoch + 1, "train_loss": train_loss, "kl_weight": self.latent_scale.weight,
                       "train_seconds": train_seconds, "skipped_steps": int(self.guard.skipped)}
            figures.update(self.evaluate(train_head, None if train_context is None
                                         else train_context[:eval_size], prefix="train"))
            if test is not None:
                figures.update(self.evaluate(test, test_context, prefix="test"))
            self.epoch += 1
            self._batch_in_epoch = 0
            figures["seconds"] = time.perf_counter() - start
            self.record.seconds += figures["seconds"]
            self.record.history.append(figures)
            for callback in self.callbacks:
                callback(self, figures)
            if self._stop_signal is not None and _ + 1 < epochs:  # a signal during evaluation
                raise TrainingInterrupted(f"stopped by signal {self._stop_signal} after epoch {self.epoch}",
                                          self._stop_signal)
        return self.record

    # -- stopping at a step boundary (saving and resuming: ResumableTraining) -------------------

    def request_stop(self, signal_number: int) -> None:
        """Ask ``fit`` to stop after the current step by raising
        :class:`~pyrovae.errors.TrainingInterrupted`; safe to call from a signal handler."""
        self._stop_signal = signal_number

    def _loss_or_nan(self, x: Tensor, context: Tensor | None) -> Tensor:
        """``self.loss(x, context)``, or a NaN that still back-propagates (zero gradients) when a
        distribution refused non-finite parameters after training began (Pyro's argument
        validation raises before any loss exists); the guard then skips the step like any other
        non-finite one."""
        try:
            return self.loss(x, context)
        except ValueError as error:
            # Before any update has been made the model itself is at fault (a bug, not a
            # divergence): let the error through so that it names the offending site.
            if not is_invalid_values(error) or self.record.steps == int(self.guard.skipped):
                raise
            zero = sum((p.sum() * 0.0 for p in self.module.parameters() if p.requires_grad), torch.zeros(()))
            return zero + torch.nan

    def evaluate(self, data: Tensor, context: Tensor | None = None, prefix: str = "test") -> dict[str, float]:
        """ELBO (weight 1, no warm-up), reconstruction and KL per data point, keys ``{prefix}_elbo`` etc.

        With ``parallel``, every process scores its share of ``data`` and the means are combined.
        """
        self.module.eval()
        model, guide = self.module.model, self.module.guide

        def score(x: Tensor, c: Tensor | None) -> dict[str, float]:
            return elbo_parts(model, guide, x, c, objective=self.eval_objective)

        try:
            parts = score(data, context) if self.parallel is None else self.parallel.evaluate(score, data, context)
        except ValueError as error:
            if not is_invalid_values(error):
                raise
            raise NonFiniteError(
                f"evaluating the {prefix} ELBO after epoch {self.epoch + 1} met non-finite (NaN or infinite) "
                "distribution parameters; try a lower learning rate (--lr), another likelihood, or check "
                "the data for extreme values") from None
        self.module.train()
        return {f"{prefix}_{k}": v for k, v in parts.items()}


# ELBOLoss, make_adam and TrainingRecord live in pyrovae.infer.elbo, .optim and .training_state; importable from here as before.
__all__ = ["ELBOLoss", "Trainer", "TrainingRecord", "make_adam"]
