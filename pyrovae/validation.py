"""Checks on data before training or evaluation: each failure is one line naming the problem and the fix."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from pyrovae.errors import InputError


def check_data(
    x: Tensor,
    event_shape: Sequence[int],
    likelihood: object | None = None,
    what: str = "data",
) -> None:
    """Refuse data a model with this ``event_shape`` and ``likelihood`` cannot score.

    Checks, in order: a tensor at all, at least one data point, the shape of one data point,
    a floating dtype, no NaN or infinite value, and every value in the likelihood's support
    (``likelihood.in_support(x)``, described by ``likelihood.support_rule``).

    Args:
        x: ``(N, *event_shape)``.
        event_shape: the shape of one data point the model expects, e.g. ``(1, 28, 28)``.
        likelihood: an object with ``in_support`` and ``support_rule`` (a
            :class:`~pyrovae.likelihoods.elementwise.Likelihood`), or None to skip the support check.
        what: how the message names the data, e.g. ``"training data"``.

    Raises:
        InputError: naming the first problem found and how to fix it.
    """
    if not isinstance(x, Tensor):
        raise InputError(f"{what} must be a torch.Tensor, got {type(x).__name__}; convert it with torch.as_tensor")
    expected = tuple(event_shape)
    if x.dim() < 1 or x.shape[0] == 0:
        raise InputError(f"{what} is empty (shape {tuple(x.shape)}); pass at least one data point")
    if tuple(x.shape[1:]) != expected:
        raise InputError(
            f"{what} has data points of shape {tuple(x.shape[1:])} but the model expects {expected}; "
            f"reshape the data to (N, {', '.join(map(str, expected))}) or build the model for this shape"
        )
    if not x.is_floating_point():
        raise InputError(f"{what} has dtype {x.dtype}; convert it to float (e.g. x.float() / 255 for pixels)")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise InputError(f"{what} contains {bad} NaN or infinite value(s); clean or drop those data points")
    if likelihood is not None and not likelihood.in_support(x):
        name = type(likelihood).__name__
        low, high = float(x.min()), float(x.max())
        raise InputError(
            f"{what} has values in [{low:g}, {high:g}], outside the support of {name} "
            f"({likelihood.support_rule}); rescale the data (e.g. divide pixels by 255) or choose "
            "a likelihood for this range (e.g. normal or laplace)"
        )


def check_labels(labels: Tensor, num_data: int, num_classes: int | None = None, what: str = "labels") -> None:
    """Refuse labels that are not one whole class index in ``0 .. num_classes - 1`` per data point.

    Args:
        labels: ``(N,)`` integer class indices.
        num_data: the number of data points ``N`` they label.
        num_classes: the number of classes the model has, or None to check only ``>= 0``.
        what: how the message names the labels.

    Raises:
        InputError: naming the first problem found and how to fix it.
    """
    if not isinstance(labels, Tensor):
        raise InputError(f"{what} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() != 1 or labels.shape[0] != num_data:
        raise InputError(f"{what} has shape {tuple(labels.shape)} but there are {num_data} data points; "
                         f"pass one class index per data point, shape ({num_data},)")
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise InputError(f"{what} has dtype {labels.dtype}; pass integer class indices (e.g. labels.long())")
    if labels.numel() == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or (num_classes is not None and high >= num_classes):
        allowed = "0, 1, 2, ..." if num_classes is None else f"0 .. {num_classes - 1}"
        raise InputError(f"{what} has values in [{low}, {high}] but classes must be {allowed}; "
                         "relabel the data or build the model with more classes")


def check_context(context: Tensor | None, num_data: int, what: str = "context") -> None:
    """Refuse a per-data-point context (e.g. one-hot labels) with the wrong length or non-finite values."""
    if context is None:
        return
    if not isinstance(context, Tensor):
        raise InputError(f"{what} must be a torch.Tensor, got {type(context).__name__}")
    if context.dim() < 1 or context.shape[0] != num_data:
        raise InputError(f"{what} has {context.shape[0] if context.dim() else 0} rows but there are "
                         f"{num_data} data points; pass one row per data point")
    if context.is_floating_point() and not bool(torch.isfinite(context).all()):
        raise InputError(f"{what} contains NaN or infinite values; clean or drop those rows")


__all__ = ["check_data", "check_labels", "check_context"]
