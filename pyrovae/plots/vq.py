"""The pictures of a VQ-VAE run: reconstructions (VQ-VAE-2: top level alone and both), samples
from the code prior, and a histogram of code usage."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from pyrovae.models.vqvae import VQVAE, VQVAE2
from pyrovae.plots import images as plots


def save_code_usage(counts: list[Tensor], names: list[str], path: str | Path) -> Path:
    """Histogram of how often each code is chosen, codes sorted from most to least used.

    Args:
        counts: per codebook, assignments per code ``(K,)``.
        names: a label per codebook, e.g. ``["top", "bottom"]``.
        path: PNG file to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = plots._figure(figsize=(6.0, 3.5))
    ax = fig.add_subplot()
    for count, name in zip(counts, names):
        c = count.detach().cpu().float()
        share = (c / c.sum().clamp_min(1)).sort(descending=True).values
        used = int((c > 0).sum())
        ax.bar(range(len(share)), share.numpy(), width=1.0, alpha=0.6,
               label=f"{name}: {used} of {len(share)} codes used")
    ax.set_xlabel("code, from most to least used")
    ax.set_ylabel("share of positions")
    ax.set_title("code usage on the test images")
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


@torch.no_grad()
def save_vq_pictures(vq: VQVAE, test_images: Tensor, history: list[dict[str, float]], out_dir: str | Path,
                     num_images: int = 50) -> list[Path]:
    """Write ``reconstructions.png``, ``samples.png`` (from the code prior, fitted or uniform),
    ``code_usage.png``, ``training_curves.png`` and, for VQ-VAE-2, ``reconstructions_top.png``
    (the top code map decoded with the bottom map set to zero) into ``out_dir``."""
    out = Path(out_dir)
    vq.eval()
    x = test_images[:num_images]
    fitted = all(bool(getattr(p, "fitted", False)) for p in _priors(vq))
    paths = [
        plots.save_reconstructions(x, vq.reconstruct(x).clamp(0, 1), out / "reconstructions.png",
                                   title="test inputs (odd rows) and reconstructions from the codes (even rows)"),
        plots.save_image_grid(vq.sample(num_images).clamp(0, 1), out / "samples.png",
                              title="samples from the " + ("PixelCNN prior" if fitted else "uniform code prior")),
        plots.save_training_curves(history, out / "training_curves.png"),
    ]
    if isinstance(vq, VQVAE2):
        paths.append(plots.save_reconstructions(x, vq.reconstruct_top(x).clamp(0, 1), out / "reconstructions_top.png",
                                                title="test inputs and reconstructions from the top codes alone"))
    codes = [torch.cat(level) for level in zip(*[_as_list(vq.codes(chunk)) for chunk in test_images.split(500)])]
    counts = [torch.bincount(c.reshape(-1), minlength=q.codebook_size) for c, q in zip(codes, vq.quantizers)]
    names = ["top", "bottom"] if isinstance(vq, VQVAE2) else ["codes"]
    paths.append(save_code_usage(counts, names, out / "code_usage.png"))
    return paths


def _as_list(codes: Tensor | tuple[Tensor, ...]) -> list[Tensor]:
    return list(codes) if isinstance(codes, tuple) else [codes]


def _priors(vq: VQVAE) -> list:
    return [vq.top_prior, vq.prior] if isinstance(vq, VQVAE2) else [vq.prior]


__all__ = ["save_code_usage", "save_vq_pictures"]
