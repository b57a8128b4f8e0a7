"""Every prior with the diagonal guide, and every guide with a representative set of priors,
trains by Pyro's own SVI loop: finite losses that go down."""

from __future__ import annotations

import math

import pyro
import pytest
from pyro.infer import SVI
from prior_guide_parts import GUIDES, PRIORS, build_vae, context_for, objective_for, toy_data

GRID = [(p, "diagonal") for p in sorted(PRIORS)] + [
    (p, g) for g in sorted(GUIDES) if g != "diagonal"
    for p in ("gmm_enum", "vamp", "flow", "hierarchical")
]


@pytest.mark.parametrize("prior_name,guide_name", GRID)
def test_svi_loss_is_finite_and_decreases(prior_name, guide_name):
    x, _ = toy_data(64)
    context = context_for(prior_name, 64)
    vae = build_vae(prior_name, guide_name)
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-2}), objective_for(prior_name))
    losses = [svi.step(x, context) / x.shape[0] for _ in range(30)]
    assert all(math.isfinite(loss) for loss in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.5, f"loss went from {first:.2f} to {last:.2f}"
