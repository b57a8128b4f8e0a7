"""Latent traversals: one latent dimension at a time swept across its range, the others held fixed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from pyrovae.plots.images import _figure, _grid, _prepare_path


def dimensions_by_kl(kl_per_dimension: Tensor, max_rows: int = 10) -> list[int]:
    """The latent dimensions in decreasing order of their KL (the most active first), at most
    ``max_rows`` of them.

    Args:
        kl_per_dimension: ``(latent_dim,)``, e.g. from :func:`pyrovae.infer.evaluation.kl_per_dimension`
            (or any other activity score, such as the variance of the posterior means).
        max_rows: how many to keep.
    """
    order = torch.argsort(kl_per_dimension.detach().cpu().float(), descending=True)
    return order[:max_rows].tolist()


@torch.no_grad()
def save_traversals(
    decode: Callable[[Tensor], Tensor],
    code: Tensor,
    dimensions: Sequence[int],
    path: str | Path,
    span: float = 3.0,
    steps: int = 11,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Decode ``code`` with one dimension at a time set to each of ``linspace(-span, span, steps)``.

    Row ``r`` sweeps dimension ``dimensions[r]`` from ``-span`` (left) to ``span`` (right); the
    other dimensions keep their value in ``code``. The rows are labelled with ``row_labels``
    (e.g. the factor a dimension encodes), or ``z<d>`` by default. Images with three channels
    are drawn in colour.

    Args:
        decode: maps ``z`` of shape ``(len(dimensions) * steps, latent_dim)`` (on ``code``'s
            device) to images in ``[0, 1]``, shape ``(len(dimensions) * steps, C, H, W)``.
        code: ``(latent_dim,)``, e.g. the posterior mean of a test image.
        dimensions: the latent dimensions to sweep, one row each, e.g. from :func:`dimensions_by_kl`.
        path: PNG file to write; parent folders are created.
        span: the sweep covers ``[-span, span]`` (prior standard deviations for a standard normal prior).
        steps: images per row.
        row_labels: one label per row, or None.
        title: optional title.

    Returns:
        The path written.

    Raises:
        ValueError: for no dimensions, a dimension outside the code, or labels of the wrong number.
    """
    code = code.reshape(-1)
    dims = [int(d) for d in dimensions]
    if not dims or min(dims) < 0 or max(dims) >= code.numel():
        raise ValueError(f"dimensions must be a non-empty list of indices below {code.numel()}, got {dims}")
    labels = [f"z{d}" for d in dims] if row_labels is None else [str(label) for label in row_labels]
    if len(labels) != len(dims):
        raise ValueError(f"row_labels has {len(labels)} entries for {len(dims)} rows; give one label per row")
    values = torch.linspace(-span, span, steps, dtype=code.dtype, device=code.device)
    z = code.repeat(len(dims) * steps, 1)
    for row, d in enumerate(dims):
        z[row * steps : (row + 1) * steps, d] = values
    images = decode(z)
    if images.shape[0] != z.shape[0]:
        raise ValueError(f"decode returned {images.shape[0]} images for {z.shape[0]} latent points")
    grid = _grid(images, nrow=steps, pad_value=1.0)
    height, width = grid.shape[:2]
    pad, tile = 2, images.shape[-2]
    fig = _figure(figsize=(max(3.0, width / 40 + 1.2), max(2.0, height / 40) + (0.4 if title else 0.0)))
    ax = fig.add_subplot()
    ax.imshow(grid.numpy(), cmap="gray" if grid.dim() == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_yticks([pad + row * (tile + pad) + tile / 2 for row in range(len(dims))], labels)
    ax.set_xticks([pad + tile / 2, width - pad - tile / 2], [f"{-span:g}", f"{span:g}"])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title)
    path = _prepare_path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


__all__ = ["save_traversals", "dimensions_by_kl"]
