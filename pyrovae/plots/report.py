"""The pictures a training run leaves behind: reconstructions, samples, curves, interpolations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from pyrovae.plots import images as plots
from pyrovae.plots.traversals import dimensions_by_kl, save_traversals
from pyrovae.models.vae import VAE


@torch.no_grad()
def save_run_pictures(
    vae: VAE,
    test_images: Tensor,
    test_labels: Tensor | None,
    history: list[dict[str, float]],
    out_dir: str | Path,
    num_images: int = 50,
    sampler: Callable[[int], Tensor] | None = None,
    sample_title: str = "samples from the prior",
) -> list[Path]:
    """Write the standard PNGs of a trained VAE into ``out_dir``.

    Always: ``reconstructions.png`` (inputs above their reconstructions), ``samples.png``
    (decoded draws from the prior), ``training_curves.png`` (ELBO, reconstruction and KL per
    epoch), ``interpolation.png`` (decoded points between pairs of test inputs),
    ``traversals.png`` (:func:`save_vae_traversals`). For a 2-D
    latent space also ``latent_space.png`` (test-set posterior means coloured by label) and
    ``manifold.png`` (decoded grid over z1, z2).

    Args:
        vae: a trained model, on any device.
        test_images: ``(N, *event_shape)`` held-out data on the model's device.
        test_labels: ``(N,)`` or None.
        history: per-epoch figures (``TrainingRecord.history``).
        out_dir: folder for the PNGs.
        num_images: how many inputs and samples to show.
        sampler: ``n -> z`` ``(n, latent_dim)``, the codes ``samples.png`` decodes; default
            ``vae.prior.sample`` (an autoencoder passes its ex-post mixture's ``sample``).
        sample_title: the title of ``samples.png``.

    Returns:
        The paths written.
    """
    out = Path(out_dir)
    vae.eval()
    x = test_images[:num_images]
    paths = [
        plots.save_reconstructions(x, vae.reconstruct(x), out / "reconstructions.png",
                                   title="test inputs (odd rows) and reconstructions (even rows)"),
        plots.save_image_grid((vae.sample(num_images) if sampler is None else vae.decode(sampler(num_images)))
                              .clamp(0, 1), out / "samples.png", title=sample_title),
        plots.save_training_curves(history, out / "training_curves.png"),
    ]
    pairs = min(8, x.shape[0] // 2)
    if pairs:
        strips = vae.interpolate(x[:pairs], x[pairs : 2 * pairs], steps=10)
        paths.append(plots.save_interpolation(strips.clamp(0, 1), out / "interpolation.png",
                                              title="interpolation between test inputs"))
    paths.append(save_vae_traversals(vae, test_images, out / "traversals.png"))
    if vae.latent_dim == 2:
        z = torch.cat([vae.encode(chunk) for chunk in test_images.split(1000)])
        paths.append(plots.save_latent_scatter(z, test_labels, out / "latent_space.png",
                                               title="posterior means of the test set"))
        paths.append(plots.save_manifold_grid(lambda grid: vae.decode(grid.to(z.device)).clamp(0, 1),
                                              out / "manifold.png", title="decoded grid over (z1, z2)"))
    vae.train()
    return paths


@torch.no_grad()
def save_vae_traversals(vae: VAE, images: Tensor, path: str | Path, index: int = 0, max_rows: int = 10,
                        span: float = 3.0, num_points: int = 1000) -> Path:
    """``traversals.png``: the posterior mean of ``images[index]`` decoded while one latent
    dimension at a time runs from ``-span`` to ``span``, one row per dimension, the dimensions
    with the largest KL first (the active ones; at most ``max_rows``).

    The KL per dimension is measured on the first ``num_points`` images
    (:func:`~pyrovae.infer.evaluation.kl_per_dimension`); for a guide or prior that does not
    factorize over dimensions, the variance of the posterior means ranks them instead (Burda
    et al. 2015's activity).

    Args:
        vae: a trained model.
        images: ``(N, *event_shape)`` held-out data on the model's device.
        path: PNG file to write.
        index: which image's code to traverse (taken modulo ``N``).
        max_rows, span: rows at most, and the range of each sweep.
        num_points: images used to rank the dimensions.

    Returns:
        The path written.
    """
    from pyrovae.infer.evaluation import active_units, kl_per_dimension

    was_training = vae.training
    vae.eval()
    sample = images[:num_points]
    try:
        score, what = kl_per_dimension(vae, sample), "KL"
    except (ValueError, NotImplementedError):
        score, what = active_units(vae, sample)[1], "var"
    dims = dimensions_by_kl(score, max_rows)
    code = vae.encode(images[index % images.shape[0]].unsqueeze(0))[0]
    labels = [f"z{d} ({what} {score[d]:.2f})" for d in dims]
    written = save_traversals(lambda z: vae.decode(z).clamp(0, 1), code, dims, path, span=span, row_labels=labels,
                              title=f"test image {index % images.shape[0]}: one dimension from {-span:g} to {span:g}")
    vae.train(was_training)
    return written


__all__ = ["save_run_pictures", "save_vae_traversals"]
