"""PNG figures of conditional generation: digits per class, style analogies, quadrant completions."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from pyrovae.plots.images import save_image_grid
from pyrovae.models.cvae import ConditionalVAE
from pyrovae.models.m2 import M2


@torch.no_grad()
def save_class_samples(m2: M2, path: str | Path, per_class: int = 10) -> Path:
    """One row per class: ``E[x | y, z]`` for ``per_class`` draws ``z ~ p(z | y)`` (y fixed, z varies)."""
    y = torch.arange(m2.num_classes, device=m2.class_probs.device).repeat_interleave(per_class)
    return save_image_grid(m2.sample(y), path, nrow=per_class, title="y fixed per row, z ~ p(z | y)")


@torch.no_grad()
def save_analogies(m2: M2, x: Tensor, path: str | Path) -> Path:
    """Style transfer: row i starts with test image ``x[i]``, then decodes its style
    ``z = E_q[z | x_i, y_i]`` (``y_i`` the classifier's label) with every class in turn."""
    z = m2.encode(x)                                                          # (rows, D)
    k = m2.num_classes
    y = torch.arange(k, device=z.device).expand(x.shape[0], k)
    images = m2.decode(z[:, None, :].expand(-1, k, -1), y)                   # (rows, K, *event)
    grid = torch.cat([x[:, None], images], dim=1).flatten(0, 1)
    return save_image_grid(grid, path, nrow=k + 1, title="test image, then its style with y = 0..9")


@torch.no_grad()
def save_completions(cvae: ConditionalVAE, context: Tensor, images: Tensor, path: str | Path,
                     num_samples: int = 5) -> Path:
    """Columns are test digits; rows: the visible part (hidden pixels grey), the truth, the
    baseline's completion (if any), then ``num_samples`` CVAE completions."""
    shown = context.clamp(min=0) + 0.5 * (context < 0)
    rows = [shown, images]
    if cvae.baseline is not None:
        rows.append(cvae.baseline.predict(context))
    rows.extend(cvae.predict(context, num_samples))
    return save_image_grid(torch.cat(rows), path, nrow=context.shape[0],
                           title="visible | truth | baseline | CVAE samples")


__all__ = ["save_class_samples", "save_analogies", "save_completions"]
