"""Training: the one epoch loop every model in pyrovae trains in.

A step is what a reader of lampe or of a PyTorch tutorial expects::

    optimizer.zero_grad()
    loss = self.loss(*batch)          # the model's objective, per data point
    loss.backward()
    if guard.allows_update(optimizer, loss):   # skip a non-finite step
        optimizer.step()

What varies from model to model is ``loss``, a module called on a batch: for a VAE
:class:`~pyrovae.infer.elbo.ELBOLoss` (any Pyro objective's ``differentiable_loss`` of
``model`` and ``guide``, the latent sites scaled by the KL weight), for M2
:class:`~pyrovae.train.semisupervised.SemiSupervisedLoss`. Around the step, the loop shuffles
(reproducibly, from a generator saved in the state), runs step callbacks (checkpoints), stops
after too many non-finite steps in a row, stops cleanly on a signal, and evaluates after each
epoch. Its state is declared in :meth:`Trainer.state_dict`: a run stopped between any two steps
resumes exactly.

The optimizer is one ``torch.optim.Adam`` over ``module.parameters()``: the same maximisation as
``SVI(model, guide, pyro.optim.Adam, objective)``, without the param-store wrappers. The steps
run inside :func:`pyrovae.fast.steps.fast_steps` (the model registered in Pyro's param store
once, shortcut distributions at its sites, with ``compile`` its networks compiled) and, with
``compile``, the loss is traced whole (:class:`~pyrovae.fast.traced_loss.TracedLoss`): all of it
wraps the plain model from outside (docs/speed.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import pyro
import torch
from pyro.infer import ELBO, Trace_ELBO
from torch import Tensor, nn

from pyrovae.data.batches import InMemoryBatches
from pyrovae.errors import NonFiniteError, TrainingInterrupted
from pyrovae.fast.steps import fast_steps
from pyrovae.fast.traced_loss import TracedLoss
from pyrovae.infer.elbo import ELBOLoss, SyncFreeTrace_ELBO
from pyrovae.infer.metrics import elbo_parts
from pyrovae.infer.objectives import LatentScale, linear_warmup
from pyrovae.train.guard import NonFiniteGuard, is_invalid_values
from pyrovae.train.optim import make_adam
from pyrovae.train.state import EpochPosition, TrainingRecord

EpochCallback = Callable[["Trainer", dict[str, float]], None]
StepCallback = Callable[["Trainer"], None]

#: Steps a :meth:`Trainer.fit` must be asked for, on a CPU, before ``compile=None`` compiles:
#: enough that the one-off compile is earned back (benchmarks/README.md, speed).
AUTO_COMPILE_STEPS = 5000


class Trainer:
    """Fits a model by stochastic gradient steps on mini-batches held in memory.

    Args:
        module: the ``nn.Module`` that owns every parameter (usually a :class:`~pyrovae.VAE`).
        model, guide: Pyro callables taking ``(x, context)``; default ``module.model`` and
            ``module.guide``.
        objective: anything with ``differentiable_loss(model, guide, x, context)``, e.g.
            ``Trace_ELBO()``, ``TraceMeanField_ELBO()``, ``TraceEnum_ELBO(max_plate_nesting=1)``,
            :class:`~pyrovae.IWAE`; default :class:`~pyrovae.infer.elbo.SyncFreeTrace_ELBO`
            (``Trace_ELBO`` without host syncs).
        loss: the loss module itself, called on each batch (``loss(*batch)``, a 0-d
            differentiable loss per data point), for models whose objective is not one
            ``differentiable_loss`` of a model/guide pair (M2's two batches); replaces
            ``model``, ``guide`` and ``objective``.
        eval_objective: the ELBO of the per-epoch figures of :meth:`fit`; default ``Trace_ELBO()``.
        lr: Adam learning rate.
        betas: Adam's moment decay rates.
        batch_size: data points per step.
        beta: final weight of the KL term (1 gives the ELBO).
        warmup_epochs: epochs over which the KL weight rises linearly from 0 to ``beta``.
        transform: a function applied to every training batch (e.g. dynamic binarization,
            ``pyrovae.data.dynamic_binarize``).
        progress: show a progress bar.
        generator: random source for shuffling (seed it for reproducible runs); it may live on
            another device than the data (then the permutation is drawn there and copied once
            per epoch). One is made when None, so that the data order is part of the state.
        callbacks: functions ``f(trainer, epoch_figures)`` called after every epoch.
        step_callbacks: functions ``f(trainer)`` called after every step (checkpoints every N
            steps); the trainer is then at a step boundary where :meth:`state_dict` resumes.
        max_nonfinite_steps: stop with :class:`~pyrovae.errors.NonFiniteError` after this many
            steps in a row with a non-finite loss or gradient (each is skipped: no update; the
            count is ``skipped_steps`` in every epoch's figures).
        validate_every_step: run Pyro's validation checks (sites, shapes, distribution
            arguments) on every step; by default, when Pyro validation is enabled, they run on
            the first step of every epoch and the first :meth:`step` called directly.
        compile: speed the steps up with ``torch.compile`` (:mod:`pyrovae.fast`): the whole
            loss traced once into one graph where the objective allows it
            (:class:`~pyrovae.fast.traced_loss.TracedLoss`), the networks compiled one by one
            otherwise; one warning and the eager code where compiling fails. None: ``fit``
            compiles when asked for at least :data:`AUTO_COMPILE_STEPS` steps on a CPU with a
            traceable objective.
        parallel: a data-parallel strategy (:class:`pyrovae.train.distributed.DataParallel`)
            that wraps the loss, shards each epoch and averages figures; None for one process.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        model: Callable | None = None,
        guide: Callable | None = None,
        objective: Any | None = None,
        loss: nn.Module | None = None,
        eval_objective: ELBO | None = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
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
        self.latent_scale = LatentScale(beta)
        if hasattr(module, "register_params"):
            # Once, here, refusing a name another model holds in Pyro's param store; the steps
            # then run without the per-call registration (pyrovae.fast.steps.registered_once).
            module.register_params()
        if loss is None:
            self.objective = objective or SyncFreeTrace_ELBO()
            loss = ELBOLoss(module, self.latent_scale(model or module.model),
                            self.latent_scale(guide or module.guide), self.objective)
        else:
            self.objective = None
        self.loss = loss
        self.parallel = parallel
        self.compile = compile  # None: fit decides (AUTO_COMPILE_STEPS)
        if compile:
            self._use_compiled_steps()
        if parallel is not None:
            self.loss = parallel.wrap(self.loss)
        self.eval_objective = eval_objective or Trace_ELBO()
        self.optimizer = make_adam(module.parameters(), lr=lr, betas=betas)
        self.batch_size = batch_size
        self.beta = beta
        self.warmup_epochs = warmup_epochs
        self.transform = transform
        self.progress = progress
        self.generator = generator
        self.callbacks = list(callbacks)
        self.step_callbacks = list(step_callbacks)
        self.validate_every_step = validate_every_step
        self.guard = NonFiniteGuard(max_nonfinite_steps)
        # The resumable state (state_dict): record, epochs done, position inside the epoch.
        self.record = TrainingRecord()
        self.epoch = 0
        self.position = EpochPosition()
        self._pending_generator_state: Tensor | None = None  # a loaded state awaiting its generator
        self._validate_next_step = True
        self._stop_signal: int | None = None
        self._in_loop = False  # inside train_epoch's block of speed-ups

    # -- one step -----------------------------------------------------------------------------

    def step(self, *batch: Tensor) -> Tensor:
        """One optimisation step on a batch, e.g. ``step(x)``, ``step(x, context)``; returns the
        loss per data point (a 0-d tensor, not read to the host), NaN when the step was skipped
        as non-finite."""
        checked = self.validate_every_step or self._validate_next_step
        self._validate_next_step = False
        self.optimizer.zero_grad(set_to_none=True)
        with nullcontext() if checked else pyro.validation_enabled(False), self._speedups(compile=False):
            loss = self._loss_or_nan(*batch)
        loss.backward()
        if self.parallel is not None:  # all ranks skip, and stop, at the same steps (StopAgreement)
            loss = self.parallel.agree(loss, self._stop_signal)
        if self.guard.allows_update(self.optimizer, loss):
            self.optimizer.step()
        return torch.where(self.guard.finite, loss.detach(), torch.nan)

    # -- the epoch loop -----------------------------------------------------------------------

    def train(self, batches: Any, epochs: int, evaluate: Callable[[], dict[str, float]] = dict,
              device: torch.device | str = "cpu") -> TrainingRecord:
        """Train for ``epochs`` more epochs over ``batches``, with ``evaluate()``'s figures after each.

        This is the loop of every ``fit``. ``batches`` draws an epoch's order with
        ``permutation()`` (from ``self.generator``) and yields its batches from a given one with
        ``iterate(order, start)`` (:class:`~pyrovae.data.InMemoryBatches`,
        :class:`~pyrovae.data.semisupervised.MixedBatches`); the order of an epoch cut short is
        drawn again from the saved generator state, so a resumed epoch sees the same batches.

        Returns:
            The record; each epoch's dict holds ``epoch``, ``train_loss`` (mean per-point loss
            over the epoch's finite steps), ``kl_weight``, ``skipped_steps``,
            ``train_seconds`` (the steps only), ``seconds`` (the whole epoch) and whatever
            ``evaluate`` returns (computed with the module in eval mode).
        """
        from tqdm.auto import tqdm

        schedule = linear_warmup(self.beta, round(self.warmup_epochs * len(batches)))
        if self.compile is None and self._traceable and epochs * len(batches) >= AUTO_COMPILE_STEPS \
                and torch.device(device).type == "cpu":
            self._use_compiled_steps()
            if self.progress:  # the first epoch stalls for the compile: say why
                tqdm.write(f"pyrovae: {epochs * len(batches)} steps ahead, compiling the training step once "
                           "(seconds to tens of seconds; compile=False / --no-compile to skip)")
        for remaining in range(epochs, 0, -1):
            start = time.perf_counter()
            if hasattr(batches, "set_epoch"):
                batches.set_epoch(self.epoch)
            self.module.train()
            order = self._epoch_order(batches, device)
            # The bar only counts batches; nothing in it reads a tensor, so no host sync.
            bar = tqdm(batches.iterate(order, self.position.batch), desc=f"epoch {self.epoch + 1}",
                       disable=not self.progress, leave=False, unit="batch",
                       initial=self.position.batch, total=len(batches))
            train_loss = self.train_epoch(bar, schedule, epoch_length=len(batches))
            if self.parallel is not None:
                train_loss = self.parallel.mean(train_loss)
            figures = {"epoch": self.epoch + 1, "train_loss": train_loss.item(),
                       "kl_weight": self.latent_scale.weight, "train_seconds": time.perf_counter() - start,
                       "skipped_steps": int(self.guard.skipped)}
            self.module.eval()
            figures.update(evaluate())
            self.module.train()
            self.epoch += 1
            self.position.batch = 0
            figures["seconds"] = time.perf_counter() - start
            self.record.seconds += figures["seconds"]
            self.record.history.append(figures)
            for callback in self.callbacks:
                callback(self, figures)
            stop = self._agreed_stop(now=True) if remaining > 1 else None  # a signal during evaluation
            if stop is not None:
                raise TrainingInterrupted(f"stopped by signal {stop} after epoch {self.epoch}", stop)
        return self.record

    def train_epoch(self, batches: Iterable[tuple[Tensor, ...]], schedule: Callable[[int], float] | None = None,
                    epoch_length: int | None = None) -> Tensor:
        """A :meth:`step` per batch, each followed by the step callbacks, the non-finite guard's
        check and a stop requested by a signal (:class:`~pyrovae.errors.TrainingInterrupted`),
        all at a step boundary where :meth:`state_dict` resumes exactly.

        Args:
            batches: the epoch's batches (the rest of them, in a resumed epoch).
            schedule: the KL weight as a function of the global step; None leaves it as it is.
            epoch_length: batches in a whole epoch (default: those given).

        Returns:
            The mean loss per data point over the finite steps, a 0-d tensor on the data's
            device (read it once, not per step).
        """
        self._validate_next_step = True
        position = self.position
        if epoch_length is None:  # called on its own: the batches are a whole epoch
            position.start(position.order_state, int(self.guard.skipped), torch.device("cpu"))
        with self._speedups(compile=bool(self.compile)):
            try:
                for batch in batches:
                    if schedule is not None:
                        self.latent_scale.weight = schedule(self.record.steps)
                    loss = self.step(*batch).nan_to_num(0.0)  # a skipped step returns NaN
                    position.loss_sum = position.loss_sum.to(loss.device) + loss
                    position.batch += 1
                    self.record.steps += 1
                    self.guard.check(f" at step {self.record.steps} (epoch {self.epoch + 1})")
                    for callback in self.step_callbacks:
                        callback(self)
                    stop = self._agreed_stop()
                    if stop is not None:
                        if hasattr(batches, "close"):
                            batches.close()
                        raise TrainingInterrupted(f"stopped by signal {stop} at step {self.record.steps}", stop)
            finally:
                self.guard.release(self.optimizer)
        self.guard.check(f" in epoch {self.epoch + 1}", force=True)
        steps = epoch_length if epoch_length is not None else position.batch
        finite_steps = steps - (int(self.guard.skipped) - position.skipped_before)
        return position.loss_sum / max(finite_steps, 1)

    # -- a VAE-like model on tensors ----------------------------------------------------------

    def fit(
        self,
        train: Tensor,
        test: Tensor | None = None,
        epochs: int = 10,
        train_context: Tensor | None = None,
        test_context: Tensor | None = None,
        eval_size: int = 2000,
    ) -> TrainingRecord:
        """Train for ``epochs`` more epochs on ``train`` and evaluate the ELBO after each.

        Args:
            train: ``(N, *event_shape)`` training data, on the module's device, or a
                :class:`~pyrovae.data.streaming.StreamingImages` read through a ``DataLoader``.
            test: held-out data for the test ELBO, or None.
            epochs: passes over ``train``.
            train_context, test_context: per-data-point contexts (labels) or None.
            eval_size: training points (the first ones) on which the train ELBO is split into
                reconstruction and KL after each epoch.

        Returns:
            The record of :meth:`train`; each epoch's dict also holds ``train_elbo``,
            ``train_recon``, ``train_kl`` and, with ``test``, ``test_elbo``, ``test_recon``,
            ``test_kl``.
        """
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

        def evaluate() -> dict[str, float]:
            figures = self.evaluate(train_head, None if train_context is None
                                    else train_context[:eval_size], prefix="train")
            if test is not None:
                figures.update(self.evaluate(test, test_context, prefix="test"))
            return figures

        return self.train(batches, epochs, evaluate, device=train.device)

    def evaluate(self, data: Tensor, context: Tensor | None = None, prefix: str = "test") -> dict[str, float]:
        """ELBO (weight 1, no warm-up), reconstruction and KL per data point, keys ``{prefix}_elbo`` etc.

        With ``parallel``, every process scores its share of ``data`` and the means are combined.
        """
        was_training = self.module.training
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
        self.module.train(was_training)
        return {f"{prefix}_{k}": v for k, v in parts.items()}

    # -- stopping, saving and resuming --------------------------------------------------------

    def request_stop(self, signal_number: int) -> None:
        """Ask the loop to stop after the current step by raising
        :class:`~pyrovae.errors.TrainingInterrupted`; safe to call from a signal handler."""
        self._stop_signal = signal_number

    def _agreed_stop(self, now: bool = False) -> int | None:
        """The stop request to act on: this process's own, or under ``parallel`` the one all
        ranks agreed on at this step (``now``: in a blocking agreement of its own)."""
        if self.parallel is None:
            return self._stop_signal
        return self.parallel.agree_now(self._stop_signal) if now else self.parallel.signal

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where training stands (between two steps).

        Holds only tensors, numbers, strings, lists and dicts, so ``torch.load(...,
        weights_only=True)`` reads it back. The global random states (torch, Python, NumPy),
        which Pyro's sampling uses, are not part of it: see ``pyrovae.train.checkpoint.rng_state``.

        Returns:
            ``module``, ``optimizer``, ``epoch`` (epochs done), ``steps``, ``seconds``,
            ``history``, ``generator`` (shuffling state), ``position``
            (:class:`~pyrovae.train.state.EpochPosition`), ``kl_weight`` (warm-up position)
            and ``guard`` (skipped-step counters).
        """
        generator = self.generator.get_state() if self.generator is not None else self._pending_generator_state
        return {
            "module": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "steps": self.record.steps,
            "seconds": self.record.seconds,
            "history": [dict(figures) for figures in self.record.history],
            "generator": generator,
            "position": self.position.state_dict(),
            "kl_weight": self.latent_scale.weight,
            "guard": self.guard.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; the next ``fit`` goes on from that step.

        Raises:
            pyrovae.train.checkpoint.CheckpointError: if the module's weights do not fit this
                model (naming the first mismatching parameter), or the shuffling state another
                kind of device's generator.
        """
        from pyrovae.train.checkpoint import CheckpointError, load_module_state

        load_module_state(self.module, state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.record = TrainingRecord(history=[dict(f) for f in state["history"]],
                                     steps=int(state["steps"]), seconds=float(state["seconds"]))
        if state["generator"] is not None:
            if self.generator is None:
                self._pending_generator_state = state["generator"].cpu()
            else:
                try:
                    self.generator.set_state(state["generator"].cpu())
                except RuntimeError:
                    raise CheckpointError(
                        f"the checkpoint's shuffling state does not fit a {self.generator.device} generator; "
                        "the run was trained on another kind of device: resume it on that kind of device") from None
        self.position.load_state_dict(state["position"])
        self.latent_scale.weight = float(state["kl_weight"])
        self.guard.load_state_dict(state["guard"])

    # -- helpers ------------------------------------------------------------------------------

    def _ensure_generator(self, device: torch.device) -> None:
        """Shuffle with a generator of our own, so the data order is part of the saved state."""
        if self.generator is None:
            self.generator = torch.Generator(device=device)
            if self._pending_generator_state is not None:
                self.generator.set_state(self._pending_generator_state)
            else:
                self.generator.manual_seed(int(torch.randint(0, 2**62, ())))
            self._pending_generator_state = None

    def _epoch_order(self, batches: Any, device: torch.device | str) -> Any:
        """This epoch's order: a fresh one, or, inside a resumed epoch, the one drawn before."""
        if self.position.batch == 0 or self.position.order_state is None:
            state = None if self.generator is None else self.generator.get_state()
            self.position.start(state, int(self.guard.skipped), torch.device(device))
            return batches.permutation()
        now = self.generator.get_state()
        self.generator.set_state(self.position.order_state)
        order = batches.permutation()
        self.generator.set_state(now)
        return order

    @contextmanager
    def _speedups(self, compile: bool) -> Iterator[None]:
        """:func:`~pyrovae.fast.steps.fast_steps` around a loop of steps (once, not per step)."""
        if self._in_loop:
            yield
            return
        self._in_loop = True
        try:
            with fast_steps(self.module, compile=compile, register=False):
                yield
        finally:
            self._in_loop = False

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

    def _loss_or_nan(self, *batch: Tensor) -> Tensor:
        """``self.loss(*batch)``, or a NaN that still back-propagates (zero gradients) when a
        distribution refused non-finite parameters after training began (Pyro's argument
        validation raises before any loss exists); the guard then skips the step like any other
        non-finite one."""
        try:
            return self.loss(*batch)
        except ValueError as error:
            # Before any update has been made the model itself is at fault (a bug, not a
            # divergence): let the error through so that it names the offending site.
            if not is_invalid_values(error) or self.record.steps == int(self.guard.skipped):
                raise
            zero = sum((p.sum() * 0.0 for p in self.module.parameters() if p.requires_grad), torch.zeros(()))
            return zero + torch.nan


__all__ = ["ELBOLoss", "Trainer", "TrainingRecord", "make_adam"]
