"""The optimizer the trainers use."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def make_adam(params: Iterable[nn.Parameter], lr: float,
              betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Adam:
    """``torch.optim.Adam`` with ``fused=True`` where the parameters' device and dtype allow it
    (one kernel updates every parameter instead of a loop over them), plain ``Adam`` otherwise."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=betas)


__all__ = ["make_adam"]
