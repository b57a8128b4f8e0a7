"""Small builders shared by the prior and guide tests: every prior and guide on a tiny problem."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from torch import Tensor

from pyrovae import (
    MLP,
    BernoulliLikelihood,
    ConditionalNormalPrior,
    DiagonalNormalEncoder,
    FlowPrior,
    FullCovarianceNormalEncoder,
    GaussianMixturePrior,
    HierarchicalPrior,
    IAFEncoder,
    LearnedNormalPrior,
    LowRankNormalEncoder,
    StandardNormalPrior,
    VAE,
    VampPrior,
)

PIXELS = 16
LATENT = 3
NUM_CLASSES = 3
HIDDEN = (32,)

GUIDES: dict[str, Callable[[], torch.nn.Module]] = {
    "diagonal": lambda: DiagonalNormalEncoder(MLP(PIXELS, HIDDEN, 2 * LATENT), LATENT),
    "iaf": lambda: IAFEncoder(MLP(PIXELS, HIDDEN, IAFEncoder.output_size(LATENT, 8)), LATENT, 8,
                              num_flows=2, flow_hidden=(16,)),
    "lowrank": lambda: LowRankNormalEncoder(MLP(PIXELS, HIDDEN, LowRankNormalEncoder.output_size(LATENT, 2)),
                                            LATENT, rank=2),
    "fullcov": lambda: FullCovarianceNormalEncoder(MLP(PIXELS, HIDDEN, FullCovarianceNormalEncoder.output_size(LATENT)),
                                                   LATENT),
}

PRIORS: dict[str, Callable[[torch.nn.Module], torch.nn.Module]] = {
    "standard": lambda enc: StandardNormalPrior(LATENT),
    "learned": lambda enc: LearnedNormalPrior(LATENT),
    "gmm": lambda enc: GaussianMixturePrior(LATENT, 4),
    "gmm_enum": lambda enc: GaussianMixturePrior(LATENT, 4, enumerate=True),
    "vamp": lambda enc: VampPrior(enc, 5, (PIXELS,)),
    "flow": lambda enc: FlowPrior(LATENT, num_layers=2, hidden_dims=(16,)),
    "flow_spline": lambda enc: FlowPrior(LATENT, num_layers=1, hidden_dims=(16,), kind="spline"),
    "hierarchical": lambda enc: HierarchicalPrior(LATENT, 2, hidden=(16,)),
    "conditional": lambda enc: ConditionalNormalPrior(LATENT, NUM_CLASSES),
}

#: Priors whose marginal log p(z) has no closed form.
INTRACTABLE = {"hierarchical"}


def build_vae(prior: str, guide: str = "diagonal") -> VAE:
    """A VAE on ``PIXELS`` binary pixels with the named prior and guide."""
    encoder = GUIDES[guide]()
    likelihood = BernoulliLikelihood(MLP(LATENT, HIDDEN, PIXELS), (PIXELS,))
    return VAE(encoder, likelihood, PRIORS[prior](encoder))


def objective_for(prior: str, **kwargs):
    """``TraceEnum_ELBO`` for the enumerated mixture, ``Trace_ELBO`` otherwise."""
    if prior == "gmm_enum":
        return TraceEnum_ELBO(max_plate_nesting=1, **kwargs)
    return Trace_ELBO(**kwargs)


def context_for(prior: str, n: int) -> Tensor | None:
    """Labels ``(n,)`` for the conditional prior, None for the others."""
    if prior == "conditional":
        return torch.arange(n) % NUM_CLASSES
    return None


def toy_data(n: int = 64, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Binary images made from ``NUM_CLASSES`` prototypes with 10% of pixels flipped; returns
    ``(x (n, PIXELS), labels (n,))``."""
    g = torch.Generator().manual_seed(seed)
    prototypes = (torch.rand(NUM_CLASSES, PIXELS, generator=g) < 0.5).float()
    labels = torch.arange(n) % NUM_CLASSES
    flip = (torch.rand(n, PIXELS, generator=g) < 0.1).float()
    return (prototypes[labels] + flip) % 2, labels
