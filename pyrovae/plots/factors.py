"""Pictures of disentanglement: the dimension-by-factor information heat map and labelled traversals."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from pyrovae.plots.images import _figure, _prepare_path


def save_information_heatmap(normalized_mi: Tensor, factor_names: Sequence[str], path: str | Path,
                             title: str | None = None) -> Path:
    """Heat map of ``I(z_j; v_k) / H(v_k)``: one row per latent dimension, one column per factor.

    Args:
        normalized_mi: ``(latent_dim, num_factors)`` in ``[0, 1]``.
        factor_names: ``num_factors`` column labels.
        path: PNG to write.
        title: optional title.
    """
    matrix = torch.as_tensor(normalized_mi).detach().cpu().float()
    rows, cols = matrix.shape
    fig = _figure(figsize=(1.2 + 1.1 * cols, 0.9 + 0.35 * rows))
    ax = fig.add_subplot()
    image = ax.imshow(matrix.numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(cols), list(factor_names), rotation=30, ha="right")
    ax.set_yticks(range(rows), [f"z{j}" for j in range(rows)])
    for j in range(rows):
        for k in range(cols):
            value = matrix[j, k].item()
            ax.text(k, j, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if value > 0.5 else "white")
    fig.colorbar(image, ax=ax, label="I(z_j; v_k) / H(v_k)")
    if title:
        ax.set_title(title)
    path = _prepare_path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def factor_row_labels(best_factor: Sequence[dict]) -> list[str]:
    """One label per latent dimension, ``"z3: pos_x (0.62)"``: the factor the dimension shares most
    information with and that information over the factor's entropy (``factor_scores``'s
    ``best_factor``)."""
    return [f"z{j}: {row['factor']} ({row['normalized_mi']:.2f})" for j, row in enumerate(best_factor)]


@torch.no_grad()
def traversal_images(decode, base: Tensor, span: float = 3.0, steps: int = 9) -> Tensor:
    """Decode ``base`` with one dimension at a time set to ``steps`` values from ``-span`` to ``span``.

    Args:
        decode: function from ``(n, latent_dim)`` codes to images ``(n, C, H, W)`` (``vae.decode``).
        base: ``(latent_dim,)`` the code the traversals start from (an image's posterior mean).
        span, steps: the values each dimension takes.

    Returns:
        ``(latent_dim, steps, C, H, W)``: row ``j`` varies dimension ``j``.
    """
    latent_dim = base.shape[-1]
    values = torch.linspace(-span, span, steps, dtype=base.dtype, device=base.device)
    codes = base.expand(latent_dim, steps, latent_dim).clone()
    for j in range(latent_dim):
        codes[j, :, j] = values
    decoded = decode(codes.reshape(-1, latent_dim))
    return decoded.reshape(latent_dim, steps, *decoded.shape[1:])


def save_labelled_traversals(images: Tensor, row_labels: Sequence[str], path: str | Path,
                             title: str | None = None) -> Path:
    """Grid of traversals, one row per latent dimension, each row labelled on the left.

    Args:
        images: ``(rows, steps, C, H, W)`` values in ``[0, 1]`` (:func:`traversal_images`).
        row_labels: one label per row (:func:`factor_row_labels`).
        path: PNG to write.
    """
    images = images.detach().cpu().float().clamp(0, 1)
    rows, steps = images.shape[:2]
    fig = _figure(figsize=(2.6 + 0.8 * steps, 0.3 + 0.8 * rows))
    for j in range(rows):
        for s in range(steps):
            ax = fig.add_subplot(rows, steps, j * steps + s + 1)
            picture = images[j, s]
            ax.imshow(picture[0].numpy() if picture.shape[0] == 1 else picture.permute(1, 2, 0).numpy(),
                      cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if s == 0:
                ax.set_ylabel(row_labels[j], rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    path = _prepare_path(path)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    return path


__all__ = ["factor_row_labels", "save_information_heatmap", "save_labelled_traversals", "traversal_images"]
