"""Each plot writer produces a readable PNG and creates the folders it needs."""

from pathlib import Path

import pytest
import torch

from pyrovae.plots import images as plots
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_png(path: Path):
    import matplotlib.image

    assert path.is_file() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == PNG_MAGIC
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    assert pixels.shape[0] > 20 and pixels.shape[1] > 20
    return pixels


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "figures"  # does not exist yet: writers must create it


def test_save_image_grid(out: Path) -> None:
    path = plots.save_image_grid(torch.rand(23, 1, 28, 28), out / "grid.png", nrow=5, title="samples")
    assert path == out / "grid.png"
    read_png(path)


def test_save_image_grid_accepts_tensors_with_grad(out: Path) -> None:
    images = torch.rand(4, 1, 8, 8, requires_grad=True)
    read_png(plots.save_image_grid(images * 1.0, out / "grad.png", nrow=2))


def test_save_reconstructions(out: Path) -> None:
    inputs = torch.rand(13, 1, 28, 28)
    path = plots.save_reconstructions(inputs, inputs.flip(-1), out / "recon.png", title="recon")
    pixels = read_png(path)
    assert pixels.shape[0] > pixels.shape[1] / 10 * 3  # two groups, four rows of tiles
    with pytest.raises(ValueError):
        plots.save_reconstructions(inputs, inputs[:5], out / "bad.png")


def test_save_interpolation(out: Path) -> None:
    read_png(plots.save_interpolation(torch.rand(3, 8, 1, 28, 28), out / "interp.png", title="interp"))


def test_save_training_curves(out: Path) -> None:
    history = [
        {"epoch": e, "train_elbo": -200 + 10 * e, "train_recon": -180 + 9 * e, "train_kl": 20 - e}
        for e in range(1, 6)
    ]
    history[-1]["test_elbo"] = -160.0
    two_panels = read_png(plots.save_training_curves(history, out / "curves.png"))
    one_panel = read_png(plots.save_training_curves([{"train_elbo": -100.0}, {"train_elbo": -90.0}], out / "one.png"))
    assert two_panels.shape[1] > one_panel.shape[1]
    read_png(plots.save_training_curves(history, out / "none.png", keys=("missing",)))


def test_save_latent_scatter(out: Path) -> None:
    z = torch.randn(200, 2)
    read_png(plots.save_latent_scatter(z, torch.randint(0, 10, (200,)), out / "scatter.png", title="z"))
    read_png(plots.save_latent_scatter(z, None, out / "scatter_plain.png"))
    with pytest.raises(ValueError):
        plots.save_latent_scatter(torch.randn(10, 3), None, out / "bad.png")


def test_save_manifold_grid_orientation(out: Path) -> None:
    seen = []

    def decode(z: torch.Tensor) -> torch.Tensor:
        seen.append(z)
        return torch.sigmoid(z.sum(-1)).reshape(-1, 1, 1, 1).expand(-1, 1, 6, 6)

    read_png(plots.save_manifold_grid(decode, out / "manifold.png", steps=5, span=2.0, title="manifold"))
    (z,) = seen
    assert z.shape == (25, 2)
    grid = z.reshape(5, 5, 2)  # (row, column, coordinate)
    assert torch.allclose(grid[0, :, 0], torch.linspace(-2, 2, 5))  # z1 grows to the right
    assert torch.allclose(grid[:, 0, 1], torch.linspace(2, -2, 5))  # z2 grows upward


def test_save_bar_chart(out: Path) -> None:
    read_png(plots.save_bar_chart(torch.rand(16), out / "kl.png", "latent dimension", "KL (nats)", title="KL"))


def test_plots_do_not_touch_pyplot(out: Path) -> None:
    """The writers draw on bare Agg figures: nothing is left open in pyplot's registry."""
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.save_image_grid(torch.rand(4, 1, 8, 8), out / "a.png")
    plots.save_bar_chart(torch.rand(3), out / "b.png", "i", "v")
    assert plt.get_fignums() == before
