"""MIG and DCI on hand-built encoders over a small full factor grid, where the answers are known."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from pyrovae.factors import (
    binned_mutual_information,
    dci,
    discrete_entropy,
    factor_codes,
    factor_scores,
    mutual_information_gap,
    sampled_mutual_information,
)

NAMES = ("shape", "scale", "x")


def grid(repeats: int = 4) -> torch.Tensor:
    """Every combination of shape (3 classes), scale (4 values) and x (5 values), ``repeats`` times."""
    values = [torch.arange(3.0), torch.linspace(0.5, 1.0, 4), torch.linspace(0.0, 1.0, 5)]
    rows = torch.tensor(list(itertools.product(*[v.tolist() for v in values])))
    return rows.repeat(repeats, 1)


def copying_encoder(factors: torch.Tensor, scale: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """Dimension j holds factor j (standardized), plus a fourth dimension that is pure prior noise."""
    loc = (factors - factors.mean(0)) / factors.std(0)
    loc = torch.cat([loc, torch.zeros(len(factors), 1)], dim=1)
    scales = torch.cat([torch.full((len(factors), 3), scale), torch.ones(len(factors), 1)], dim=1)
    return loc, scales


def ignoring_encoder(factors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q(z | x) = N(0, I) whatever the image."""
    return torch.zeros(len(factors), 4), torch.ones(len(factors), 4)


def entangling_encoder(factors: torch.Tensor, scale: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """Each of four dimensions is a +-1 mix of all three standardized factors: the first three columns
    of a 4x4 Hadamard matrix, whose pseudo-inverse has entries of equal size too."""
    mix = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, -1.0], [1.0, -1.0, -1.0]])
    loc = ((factors - factors.mean(0)) / factors.std(0)) @ mix.T
    return loc, torch.full_like(loc, scale)


def test_factor_entropy_is_the_log_of_the_grid_size():
    entropy = discrete_entropy(factor_codes(grid()))
    torch.testing.assert_close(entropy, torch.tensor([math.log(3), math.log(4), math.log(5)]))


@pytest.mark.parametrize("estimator", ["binned", "sampled"])
def test_mig_is_one_for_an_encoder_that_copies_each_factor(estimator):
    factors = grid()
    loc, scale = copying_encoder(factors)
    if estimator == "binned":
        mi = binned_mutual_information(loc, factors)
    else:
        mi = sampled_mutual_information(loc, scale, factors, num_samples=4000,
                                        generator=torch.Generator().manual_seed(0))
    entropy = discrete_entropy(factor_codes(factors))
    tolerance = 1e-5 if estimator == "binned" else 0.05  # Monte Carlo error of the entropies
    assert mutual_information_gap(mi, entropy) == pytest.approx(1.0, abs=tolerance)
    assert mi.argmax(0).tolist() == [0, 1, 2]


@pytest.mark.parametrize("estimator", ["binned", "sampled"])
def test_mig_is_zero_for_an_encoder_that_ignores_the_factors(estimator):
    factors = grid()
    loc, scale = ignoring_encoder(factors)
    scores = factor_scores(loc, scale, factors, NAMES, estimator=estimator, num_samples=500,
                           generator=torch.Generator().manual_seed(0))
    assert scores["mig"] == pytest.approx(0.0, abs=1e-6)
    assert max(max(row) for row in scores["mutual_information"]) == pytest.approx(0.0, abs=1e-6)
    assert scores["dci"]["disentanglement"] == pytest.approx(0.0, abs=1e-6)
    assert scores["dci"]["completeness"] == pytest.approx(0.0, abs=1e-6)
    assert scores["dci"]["informativeness"] <= 0.0  # the held-out R^2 of predicting the training mean


def test_mig_is_about_zero_for_an_encoder_that_ignores_the_factors_but_is_noisy():
    """Codes drawn at random: the binned estimate of each I(z_j; v_k) is small and positive (finite
    sample), and the gaps between dimensions are smaller still."""
    factors = grid(repeats=20)
    codes = torch.randn(len(factors), 4, generator=torch.Generator().manual_seed(0))
    mi = binned_mutual_information(codes, factors)
    assert mutual_information_gap(mi, discrete_entropy(factor_codes(factors))) < 0.05


def test_mig_is_about_zero_when_every_dimension_mixes_every_factor():
    factors = grid()
    loc, _ = entangling_encoder(factors)
    mi = binned_mutual_information(loc, factors)
    assert mutual_information_gap(mi, discrete_entropy(factor_codes(factors))) < 0.1


def test_dci_is_one_for_the_copying_encoder_and_zero_for_the_entangling_one():
    factors = grid()
    copied = dci(copying_encoder(factors)[0], factors, categorical=[True, False, False])
    assert copied["disentanglement"] == pytest.approx(1.0, abs=1e-3)
    assert copied["completeness"] == pytest.approx(1.0, abs=1e-3)
    mixed = dci(entangling_encoder(factors)[0], factors)
    assert mixed["disentanglement"] < 0.1
    assert mixed["completeness"] < 0.1
    assert mixed["informativeness"] == pytest.approx(1.0, abs=1e-3)  # all there, only entangled


def test_dci_informativeness_is_about_zero_for_noise_codes():
    factors = grid(repeats=20)
    codes = torch.randn(len(factors), 4, generator=torch.Generator().manual_seed(0))
    scores = dci(codes, factors, generator=torch.Generator().manual_seed(0))
    assert abs(scores["informativeness"]) < 0.05


def test_factor_scores_reports_the_best_factor_per_dimension_and_drops_constant_factors():
    factors = torch.cat([grid(), torch.ones(len(grid()), 1)], dim=1)  # a colour that never changes
    loc, scale = copying_encoder(factors[:, :3])
    scores = factor_scores(loc, scale, factors, NAMES + ("colour",), categorical=[True, False, False, False],
                           estimator="binned")
    assert scores["mig"] == pytest.approx(1.0, abs=1e-5)
    assert scores["mig_per_factor"]["colour"] is None
    assert [row["factor"] for row in scores["best_factor"][:3]] == list(NAMES)
    assert scores["best_factor"][0]["normalized_mi"] == pytest.approx(1.0, abs=1e-5)


def test_sampled_mi_does_not_find_information_in_narrow_posteriors_that_ignore_the_factors():
    """Each image gets its own narrow code at random: on 60 points, a value of x has 12, and a
    posterior counted in its own small conditional mixture would fake about H(x) = log 5 nats;
    leaving it out gives about 0."""
    factors = grid(repeats=1)
    loc = torch.randn(len(factors), 3, generator=torch.Generator().manual_seed(0))
    scale = torch.full_like(loc, 0.01)
    mi = sampled_mutual_information(loc, scale, factors, num_samples=2000, generator=torch.Generator().manual_seed(1))
    assert mi.max() < 0.1 * math.log(3)


def test_traversal_rows_are_labelled_by_the_factor_each_dimension_captures(tmp_path):
    from pyrovae.plots.factors import factor_row_labels
    from pyrovae.plots.traversals import save_traversals

    factors = grid()
    loc, scale = copying_encoder(factors)
    scores = factor_scores(loc, scale, factors, NAMES, estimator="binned")
    labels = factor_row_labels(scores["best_factor"])
    assert labels[:3] == ["z0: shape (1.00)", "z1: scale (1.00)", "z2: x (1.00)"]
    decode = lambda z: torch.sigmoid(z[:, :1, None, None].expand(-1, 1, 8, 8))  # noqa: E731
    path = save_traversals(decode, loc[0], [0, 1, 2], tmp_path / "t.png", row_labels=labels[:3])
    assert path.stat().st_size > 0


def test_a_prefix_of_the_dsprites_slice_covers_every_shape_and_scale():
    """The trainer scores the first training images and --limit keeps the first test images: both
    must be uniform over the grid, not its first (sorted) corner."""
    from pyrovae.factors.data import load_shapes

    data = load_shapes("dsprites", train_size=300, test_size=100)
    for factors in (data.train_factors[:100], data.test_factors[:100]):
        assert factors[:, 0].unique().numel() == 3 and factors[:, 1].unique().numel() == 6
    assert data.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert data.categorical == [True, False, False, False, False]
    assert set(data.train_indices.tolist()).isdisjoint(data.test_indices.tolist())


def test_the_factor_slice_is_the_one_the_cli_trains_and_tests_on():
    from pyrovae.data.sources import open_data
    from pyrovae.factors.data import load_shapes, load_shapes_split

    cli = open_data("dsprites", train_size=50)
    ours = load_shapes("dsprites", train_size=50)
    torch.testing.assert_close(ours.test_images, cli.test_images)
    torch.testing.assert_close(ours.train_images, cli.train_images)
    images, factors, names = load_shapes_split("dsprites", "test", train_size=50, limit=10)
    torch.testing.assert_close(images, ours.test_images[:10])
    torch.testing.assert_close(factors, ours.test_factors[:10])


def test_dci_does_not_depend_on_the_mutual_information_estimator():
    factors = grid(repeats=3)
    loc = torch.randn(len(factors), 4, generator=torch.Generator().manual_seed(0)) + factors.sum(1, keepdim=True)
    scale = torch.full_like(loc, 0.3)
    runs = [factor_scores(loc, scale, factors, NAMES, estimator=e, num_samples=200,
                          generator=torch.Generator().manual_seed(5))["dci"] for e in ("sampled", "binned")]
    assert runs[0] == runs[1]
