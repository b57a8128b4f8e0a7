"""Where a training run stands between two steps: its record, and saving and restoring it exactly.

:class:`ResumableTraining` is the part of :class:`~pyrovae.train.trainer.Trainer` that
``pyrovae train --resume`` relies on: the trainer's state as plain tensors and numbers
(``state_dict``), its restoration (``load_state_dict``), and the two pieces of the epoch loop
that make a resumed epoch replay the same data order (``_ensure_generator``, ``_epoch_order``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from pyrovae.data.batches import InMemoryBatches


@dataclass
class TrainingRecord:
    """What a run produced: one dict of figures per epoch, the step count and the wall time."""

    history: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0

    def last(self, key: str) -> float:
        """The latest epoch's value of ``key``."""
        return self.history[-1][key]


class ResumableTraining:
    """Mixin for :class:`~pyrovae.train.trainer.Trainer`; it reads and sets the trainer's ``module``,
    ``optimizer``, ``epoch``, ``record``, ``generator``, ``latent_scale`` and ``guard``, and
    the epoch position ``_batch_in_epoch``, ``_order_state``, ``_epoch_acc``,
    ``_skipped_before_epoch`` and ``_pending_generator_state`` that the trainer initialises."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where training stands (between two steps).

        Holds only tensors, numbers, strings, lists and dicts, so ``torch.load(...,
        weights_only=True)`` reads it back. The global random states (torch, Python, NumPy),
        which Pyro's sampling uses, are not part of it: see ``pyrovae.train.checkpoint.rng_state``.

        Returns:
            ``module``, ``optimizer``, ``epoch`` (epochs done), ``steps``, ``seconds``,
            ``history``, ``generator`` (shuffling state), ``position`` (batches done in the
            current epoch, the state its order was drawn from, its running loss sum and the
            skipped-step count when it began),
            ``kl_weight`` (warm-up position) and ``guard`` (skipped-step counters).
        """
        loss_sum = 0.0 if self._epoch_acc is None or self._batch_in_epoch == 0 else self._epoch_acc.item()
        generator = self.generator.get_state() if self.generator is not None else self._pending_generator_state
        return {
            "module": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "steps": self.record.steps,
            "seconds": self.record.seconds,
            "history": [dict(figures) for figures in self.record.history],
            "generator": generator,
            "position": {"batch": self._batch_in_epoch, "order_state": self._order_state,
                         "loss_sum": loss_sum, "skipped_before": self._skipped_before_epoch},
            "kl_weight": self.latent_scale.weight,
            "guard": self.guard.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; the next ``fit`` goes on from that step.

        Raises:
            pyrovae.train.checkpoint.CheckpointError: if the module's weights do not fit this model
                (naming the first mismatching parameter).
        """
        from pyrovae.train.checkpoint import load_module_state

        load_module_state(self.module, state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.record = TrainingRecord(history=[dict(f) for f in state["history"]],
                                     steps=int(state["steps"]), seconds=float(state["seconds"]))
        if state["generator"] is not None:
            if self.generator is not None:
                try:
                    self.generator.set_state(state["generator"].cpu())
                except RuntimeError:
                    from pyrovae.train.checkpoint import CheckpointError

                    raise CheckpointError(
                        f"the checkpoint's shuffling state does not fit a {self.generator.device} generator; "
                        "the run was trained on another kind of device: resume it on that kind of device") from None
            else:
                self._pending_generator_state = state["generator"].cpu()
        position = state["position"]
        self._batch_in_epoch = int(position["batch"])
        order_state = position["order_state"]
        self._order_state = None if order_state is None else order_state.cpu()
        self._epoch_acc = torch.tensor(float(position["loss_sum"]))
        self._skipped_before_epoch = int(position["skipped_before"])
        self.latent_scale.weight = float(state["kl_weight"])
        self.guard.load_state_dict(state["guard"])

    def _ensure_generator(self, device: torch.device) -> None:
        """Shuffle with a generator of our own, so the data order is part of the saved state."""
        if self.generator is None:
            self.generator = torch.Generator(device=device)
            if self._pending_generator_state is not None:
                self.generator.set_state(self._pending_generator_state)
            else:
                self.generator.manual_seed(int(torch.randint(0, 2**62, ())))
            self._pending_generator_state = None

    def _epoch_order(self, batches: InMemoryBatches, device: torch.device) -> Tensor:
        """This epoch's permutation: a fresh one, or, inside a resumed epoch, the one drawn before."""
        if self._batch_in_epoch == 0:
            self._order_state = self.generator.get_state()
            self._epoch_acc = torch.zeros((), device=device)
            self._skipped_before_epoch = int(self.guard.skipped)
            return batches.permutation()
        now = self.generator.get_state()
        self.generator.set_state(self._order_state)
        order = batches.permutation()
        self.generator.set_state(now)
        self._epoch_acc = self._epoch_acc.to(device)
        return order


__all__ = ["ResumableTraining", "TrainingRecord"]
