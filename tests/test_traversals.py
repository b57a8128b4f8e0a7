"""Latent traversals and colour pictures."""

from __future__ import annotations

import pytest
import torch

from pyrovae.plots.images import _grid, save_image_grid
from pyrovae.plots.traversals import dimensions_by_kl, save_traversals


def is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_row_sweeps_one_dimension_and_keeps_the_others(tmp_path) -> None:
    code = torch.tensor([0.5, -1.0, 2.0, 0.25])
    seen = []

    def decode(z: torch.Tensor) -> torch.Tensor:
        seen.append(z.clone())
        return torch.rand(z.shape[0], 3, 16, 16)

    path = save_traversals(decode, code, [2, 0], tmp_path / "t.png", span=3.0, steps=5,
                           row_labels=["shape", "scale"], title="t")
    assert is_png(path)
    z = seen[0].reshape(2, 5, 4)
    values = torch.linspace(-3, 3, 5)
    for row, d in enumerate([2, 0]):
        torch.testing.assert_close(z[row, :, d], values)
        others = [i for i in range(4) if i != d]
        torch.testing.assert_close(z[row][:, others], code[others].expand(5, 3))


def test_dimensions_are_ranked_by_kl_and_cut_at_max_rows() -> None:
    assert dimensions_by_kl(torch.tensor([0.1, 3.0, 0.0, 1.5]), max_rows=3) == [1, 3, 0]


@pytest.mark.parametrize("dims, labels", [([], None), ([4], None), ([0, 1], ["only one"])])
def test_bad_rows_are_refused(tmp_path, dims, labels) -> None:
    with pytest.raises(ValueError):
        save_traversals(lambda z: torch.rand(z.shape[0], 1, 16, 16), torch.zeros(4), dims, tmp_path / "t.png",
                        row_labels=labels)


def test_colour_images_keep_their_colour_and_grey_stay_grey(tmp_path) -> None:
    red = torch.zeros(2, 3, 8, 8)
    red[:, 0] = 1.0
    grid = _grid(red, nrow=2, pad_value=1.0)
    assert grid.shape == (12, 22, 3)
    torch.testing.assert_close(grid[5, 5], torch.tensor([1.0, 0.0, 0.0]))
    assert _grid(torch.rand(2, 1, 8, 8), nrow=2).shape == (12, 22)
    assert is_png(save_image_grid(red, tmp_path / "red.png"))
