"""How a guide's network sees its input: the data point, or the flattened data point and a context."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def network_output(net: nn.Module, x: Tensor, context: Tensor | None, context_dim: int) -> Tensor:
    """``net(x)``, or ``net(cat(flatten(x), context))`` for a conditional guide.

    The same rule as :class:`pyrovae.guides.diagonal.DiagonalNormalEncoder`, so any network built for
    that encoder (with the output size it needs here) works.

    Args:
        net: the guide's network.
        x: ``(*batch, *event_shape)``.
        context: ``(*batch, context_dim)`` or None.
        context_dim: 0 for an unconditional guide.

    Returns:
        ``net``'s output, ``(*batch, out_features)``.
    """
    if not context_dim:
        return net(x)
    if context is None:
        raise ValueError(f"this guide is conditional: pass a context of size {context_dim}")
    batch = context.shape[:-1]
    return net(torch.cat([x.reshape(*batch, -1), context], dim=-1))


__all__ = ["network_output"]
