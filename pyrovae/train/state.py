"""What a training run has produced and where it stands between two steps, as plain data.

:class:`TrainingRecord` is what ``fit`` returns. :class:`EpochPosition` is the part of the
trainer's state that lies inside an epoch: which batch comes next, the random state the epoch's
order was drawn from, the running loss and the skipped-step count when the epoch began. With
both saved (``Trainer.state_dict``), a run stopped between any two steps resumes on the same
data order and ends with the same figures as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class TrainingRecord:
    """What a run produced: one dict of figures per epoch, the step count and the wall time."""

    history: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0

    def last(self, key: str) -> float:
        """The latest epoch's value of ``key``."""
        return self.history[-1][key]


@dataclass
class EpochPosition:
    """Where the current epoch stands.

    Attributes:
        batch: batches done in this epoch (0 between epochs).
        order_state: the shuffling generator's state from which this epoch's order was drawn,
            or None before the first epoch.
        loss_sum: sum of the finite per-step losses so far, a 0-d tensor (kept on the
            device during the epoch: read once, at its end).
        skipped_before: the guard's skipped-step count when the epoch began.
    """

    batch: int = 0
    order_state: Tensor | None = None
    loss_sum: Tensor = field(default_factory=lambda: torch.zeros(()))
    skipped_before: int = 0

    def start(self, order_state: Tensor, skipped: int, device: torch.device) -> None:
        """Begin a new epoch whose order is drawn from ``order_state``."""
        self.batch, self.order_state = 0, order_state
        self.loss_sum = torch.zeros((), device=device)
        self.skipped_before = skipped

    def state_dict(self) -> dict[str, Any]:
        """Plain numbers and tensors (one host read of the loss sum)."""
        return {"batch": self.batch, "order_state": self.order_state,
                "loss_sum": float(self.loss_sum) if self.batch else 0.0, "skipped_before": self.skipped_before}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batch = int(state["batch"])
        self.order_state = None if state["order_state"] is None else state["order_state"].cpu()
        self.loss_sum = torch.tensor(float(state["loss_sum"]))
        self.skipped_before = int(state["skipped_before"])


__all__ = ["EpochPosition", "TrainingRecord"]
