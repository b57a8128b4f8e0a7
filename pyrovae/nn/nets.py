"""Activations by name and a parameter count, shared by the networks in :mod:`pyrovae.nn`.

The networks themselves live in :mod:`pyrovae.nn.mlp` and :mod:`pyrovae.nn.conv`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pyrovae.fast import compiled
class Softplus(nn.Softplus):
    """``nn.Softplus`` that, inside ``torch.compile`` (the compiled evaluation and training of
    :mod:`pyrovae.fast.compiled` and :mod:`pyrovae.fast.traced_loss`), is written in the form inductor
    vectorizes on a CPU (:func:`pyrovae.fast.compiled.softplus`); eager calls are ``nn.Softplus``'s
    own."""

    def forward(self, x: Tensor) -> Tensor:
        if self.beta == 1 and compiled.fused_forms():
            return compiled.softplus(x)
        return super().forward(x)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "softplus": Softplus,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
}


def make_activation(name: str) -> nn.Module:
    """Build an activation module by name (one of ``ACTIVATIONS``)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


def num_parameters(module: nn.Module) -> int:
    """Number of trainable scalars in ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["Softplus", "make_activation", "num_parameters", "ACTIVATIONS"]
