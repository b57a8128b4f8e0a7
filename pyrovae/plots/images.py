"""PNG figures of images, reconstructions, latent spaces and training curves (matplotlib, Agg); images
with three channels are drawn in colour, others in grey."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


def _figure(**kwargs: Any) -> Any:
    """A matplotlib Figure drawn by the Agg canvas, outside pyplot.

    Working without pyplot leaves the user's backend and open figures alone (``matplotlib.use``
    would switch a notebook's backend and close its figures), and no global figure registry
    holds on to the figure, so nothing leaks in long runs. matplotlib is imported here so
    that importing pyrovae stays light.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _prepare_path(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _grid(images: Tensor, nrow: int, pad_value: float = 1.0) -> Tensor:
    """Tile ``(N, C, H, W)`` images into one array: ``(H', W', 3)`` in colour when ``C == 3``,
    otherwise ``(H', W')`` grey (the first channel)."""
    from torchvision.utils import make_grid

    images = images.detach().cpu().float().clamp(0.0, 1.0)
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=pad_value)
    return grid.permute(1, 2, 0) if images.shape[1] == 3 else grid[0]


def _save_grid_figure(grid: Tensor, path: Path, title: str | None) -> Path:
    height, width = grid.shape[:2]
    fig = _figure(figsize=(max(2.0, width / 40), max(2.0, height / 40) + (0.4 if title else 0.0)))
    ax = fig.add_subplot()
    ax.imshow(grid.numpy(), cmap="gray" if grid.dim() == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def save_image_grid(images: Tensor, path: str | Path, nrow: int = 10, title: str | None = None) -> Path:
    """Save images as one grid, ``nrow`` images per row.

    Args:
        images: Values in ``[0, 1]``, shape ``(N, C, H, W)``, drawn in colour when ``C == 3`` and
            grey (the first channel) otherwise; any device.
        path: PNG file to write; parent folders are created.
        nrow: Images per row of the grid.
        title: Optional title above the grid.

    Returns:
        The path written.
    """
    path = _prepare_path(path)
    return _save_grid_figure(_grid(images, nrow=nrow), path, title)


def save_reconstructions(
    inputs: Tensor, reconstructions: Tensor, path: str | Path, title: str | None = None, nrow: int = 10
) -> Path:
    """Save inputs and their reconstructions: rows in pairs, inputs above their reconstructions.

    Args:
        inputs: Original images in ``[0, 1]``, shape ``(N, C, H, W)``.
        reconstructions: Decoded images in ``[0, 1]``, same shape as ``inputs``.
        path: PNG file to write; parent folders are created.
        title: Optional title above the grid.
        nrow: Images per row; a group of ``nrow`` inputs is followed by their reconstructions.

    Returns:
        The path written.

    Raises:
        ValueError: If the two tensors differ in shape.
    """
    if inputs.shape != reconstructions.shape:
        raise ValueError(
            f"inputs {tuple(inputs.shape)} and reconstructions {tuple(reconstructions.shape)} differ in shape"
        )
    inputs = inputs.detach().cpu().float()
    reconstructions = reconstructions.detach().cpu().float()
    n = inputs.shape[0]
    nrow = max(1, min(nrow, n))
    rows = []
    for start in range(0, n, nrow):
        group_in, group_out = inputs[start : start + nrow], reconstructions[start : start + nrow]
        if group_in.shape[0] < nrow:  # blank tiles keep the last pair of rows aligned
            blank = torch.ones((nrow - group_in.shape[0],) + tuple(inputs.shape[1:]))
            group_in, group_out = torch.cat([group_in, blank]), torch.cat([group_out, blank])
        rows.extend([group_in, group_out])
    path = _prepare_path(path)
    return _save_grid_figure(_grid(torch.cat(rows), nrow=nrow), path, title)


def save_interpolation(strips: Tensor, path: str | Path, title: str | None = None) -> Path:
    """Save latent interpolations, one row per pair of endpoints.

    Args:
        strips: Decoded images in ``[0, 1]``, shape ``(num_pairs, steps, C, H, W)``.
        path: PNG file to write; parent folders are created.
        title: Optional title above the grid.

    Returns:
        The path written.
    """
    if strips.dim() != 5:
        raise ValueError(f"strips must have shape (num_pairs, steps, C, H, W), got {tuple(strips.shape)}")
    steps = strips.shape[1]
    path = _prepare_path(path)
    return _save_grid_figure(_grid(strips.reshape((-1,) + tuple(strips.shape[2:])), nrow=steps), path, title)


def save_training_curves(
    history: list[dict[str, float]], path: str | Path, keys: Sequence[str] = ("train_elbo", "test_elbo")
) -> Path:
    """Plot per-epoch metrics against the epoch.

    The x value of a record is its ``"epoch"`` entry, or its position (counting from 1)
    when it has none. Keys absent from every record are skipped; a record missing a key
    leaves a gap (e.g. a test ELBO computed every few epochs). If ``"train_recon"`` or
    ``"train_kl"`` appear, a second panel shows the reconstruction term and the KL term.

    Args:
        history: One dict of metrics per epoch, e.g. ``{"epoch": 3, "train_elbo": -98.2}``.
        path: PNG file to write; parent folders are created.
        keys: Metrics drawn in the first panel.

    Returns:
        The path written.
    """
    epochs = [record.get("epoch", i + 1) for i, record in enumerate(history)]

    def series(key: str) -> tuple[list[float], list[float]]:
        points = [(e, float(r[key])) for e, r in zip(epochs, history) if r.get(key) is not None]
        return [p[0] for p in points], [p[1] for p in points]

    terms = [k for k in ("train_recon", "train_kl") if any(k in r for r in history)]
    fig = _figure(figsize=(10 if terms else 5.5, 4))
    axes = fig.subplots(1, 2 if terms else 1, squeeze=False)
    panels = [(axes[0, 0], list(keys), "ELBO")] + ([(axes[0, 1], terms, "nats")] if terms else [])
    for ax, panel_keys, ylabel in panels:
        drawn = False
        for key in panel_keys:
            x, y = series(key)
            if x:
                ax.plot(x, y, marker="o" if len(x) < 30 else None, markersize=3, label=key)
                drawn = True
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend()
    if terms:
        axes[0, 1].set_title("reconstruction and KL")
    fig.tight_layout()
    path = _prepare_path(path)
    fig.savefig(path, dpi=100)
    return path


def save_latent_scatter(
    z_mean: Tensor, labels: Tensor | None, path: str | Path, title: str | None = None
) -> Path:
    """Scatter two-dimensional latent means, coloured by class label.

    Args:
        z_mean: Encoder means, shape ``(N, 2)``.
        labels: Integer labels, shape ``(N,)``, or ``None`` for one colour.
        path: PNG file to write; parent folders are created.
        title: Optional title.

    Returns:
        The path written.

    Raises:
        ValueError: If ``z_mean`` is not ``(N, 2)`` or ``labels`` has a different length.
    """
    z = z_mean.detach().cpu().float()
    if z.dim() != 2 or z.shape[1] != 2:
        raise ValueError(f"z_mean must have shape (N, 2), got {tuple(z.shape)}; project higher dimensions first")
    fig = _figure(figsize=(6, 5))
    ax = fig.add_subplot()
    if labels is None:
        ax.scatter(z[:, 0].numpy(), z[:, 1].numpy(), s=4, alpha=0.6)
    else:
        y = labels.detach().cpu().long()
        if y.shape != (z.shape[0],):
            raise ValueError(f"labels must have shape ({z.shape[0]},), got {tuple(y.shape)}")
        num_classes = int(y.max()) + 1 if y.numel() else 1
        from matplotlib import colormaps

        cmap = colormaps["tab10" if num_classes <= 10 else "tab20" if num_classes <= 20 else "viridis"]
        points = ax.scatter(
            z[:, 0].numpy(), z[:, 1].numpy(), c=y.numpy(), cmap=cmap,
            vmin=-0.5, vmax=num_classes - 0.5, s=4, alpha=0.7,
        )
        colorbar = fig.colorbar(points, ax=ax, label="label")
        if num_classes <= 20:
            colorbar.set_ticks(range(num_classes))
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = _prepare_path(path)
    fig.savefig(path, dpi=100)
    return path


@torch.no_grad()
def save_manifold_grid(
    decode: Callable[[Tensor], Tensor],
    path: str | Path,
    steps: int = 20,
    span: float = 3.0,
    title: str | None = None,
) -> Path:
    """Decode a regular grid of a two-dimensional latent space and tile the images.

    The column index follows ``z1`` increasing to the right, the row index follows ``z2``
    increasing upward, both over ``torch.linspace(-span, span, steps)``.

    Args:
        decode: Maps ``z`` of shape ``(steps * steps, 2)`` (float32, CPU) to images in
            ``[0, 1]`` of shape ``(steps * steps, C, H, W)``; move ``z`` to the model's
            device inside it if needed.
        path: PNG file to write; parent folders are created.
        steps: Grid points per axis.
        span: The grid covers ``[-span, span]`` on both axes.
        title: Optional title.

    Returns:
        The path written.
    """
    values = torch.linspace(-span, span, steps)
    z2, z1 = torch.meshgrid(values.flip(0), values, indexing="ij")  # top row holds the largest z2
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=-1)
    images = decode(z)
    if images.shape[0] != steps * steps:
        raise ValueError(f"decode returned {images.shape[0]} images for {steps * steps} latent points")
    path = _prepare_path(path)
    return _save_grid_figure(_grid(images, nrow=steps, pad_value=0.0), path, title)


def save_bar_chart(
    values: Tensor, path: str | Path, xlabel: str, ylabel: str, title: str | None = None
) -> Path:
    """Bar chart of one value per index, e.g. the KL divergence of each latent dimension.

    Args:
        values: One value per bar, shape ``(K,)``.
        path: PNG file to write; parent folders are created.
        xlabel: Label of the x axis (the bar index, e.g. "latent dimension").
        ylabel: Label of the y axis (e.g. "KL (nats)").
        title: Optional title.

    Returns:
        The path written.
    """
    v = values.detach().cpu().float().reshape(-1)
    fig = _figure(figsize=(max(4.0, 0.25 * v.numel() + 1.5), 3.5))
    ax = fig.add_subplot()
    ax.bar(range(v.numel()), v.numpy())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if v.numel() <= 32:
        ax.set_xticks(range(v.numel()))
    if title:
        ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = _prepare_path(path)
    fig.savefig(path, dpi=100)
    return path


@torch.no_grad()
def save_component_samples(
    sample_component: Callable[[int, int], Tensor], num_components: int, path: str | Path,
    per_component: int = 10, title: str | None = None,
) -> Path:
    """Samples of each mixture component, one row per component.

    Args:
        sample_component: Maps ``(k, n)`` to ``n`` images of component ``k`` in ``[0, 1]``,
            shape ``(n, C, H, W)``, e.g. decoded draws from the k-th Gaussian of a mixture prior.
        num_components: Number of rows.
        path: PNG file to write; parent folders are created.
        per_component: Images per row.
        title: Optional title.

    Returns:
        The path written.
    """
    rows = []
    for k in range(num_components):
        images = sample_component(k, per_component)
        if images.shape[0] != per_component:
            raise ValueError(f"sample_component({k}, {per_component}) returned {images.shape[0]} images")
        rows.append(images.detach().cpu().float())
    path = _prepare_path(path)
    return _save_grid_figure(_grid(torch.cat(rows), nrow=per_component), path, title)
