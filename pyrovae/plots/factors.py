"""Pictures of disentanglement: the dimension-by-factor information heat map and the traversal row labels.

The traversals themselves are :func:`pyrovae.plots.traversals.save_traversals`, given
:func:`factor_row_labels` as its ``row_labels``.
"""

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
    ``best_factor``); pass them, indexed by the rows' dimensions, as ``save_traversals``'s
    ``row_labels``."""
    return [f"z{j}: {row['factor']} ({row['normalized_mi']:.2f})" for j, row in enumerate(best_factor)]


__all__ = ["factor_row_labels", "save_information_heatmap"]
