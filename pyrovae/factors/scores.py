"""All disentanglement scores of a trained encoder on images with known factors, in one call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from pyrovae.factors.dci import dci
from pyrovae.factors.mig import mutual_information_gap, mutual_information_gaps
from pyrovae.factors.mutual_information import (
    binned_mutual_information,
    discrete_entropy,
    factor_codes,
    sampled_mutual_information,
)
from pyrovae.infer.total_correlation import diagonal_normal_parts

MI_ESTIMATORS = ("sampled", "binned")


@torch.no_grad()
def posterior_parameters(posterior: Any, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """``(loc, scale)`` of the diagonal Normal ``q(z | x)`` of every image, each ``(N, latent_dim)``.

    Args:
        posterior: a function from a batch of images to ``q(z | x)``, e.g. ``vae.posterior``.
        images: ``(N, *event_shape)``.
        batch_size: images encoded at a time.
    """
    locs, scales = [], []
    for start in range(0, images.shape[0], batch_size):
        loc, scale = diagonal_normal_parts(posterior(images[start:start + batch_size]))
        locs.append(loc)
        scales.append(scale)
    return torch.cat(locs), torch.cat(scales)


def factor_scores(loc: Tensor, scale: Tensor, factors: Tensor, factor_names: Sequence[str],
                  categorical: Sequence[bool] | None = None, estimator: str = "sampled", num_samples: int = 2000,
                  bins: int = 20, generator: torch.Generator | None = None) -> dict[str, Any]:
    """MIG (Chen et al. 2018) and DCI (Eastwood and Williams 2018) of posteriors with known factors.

    Args:
        loc, scale: ``(N, D)`` the encoder's diagonal Normal posteriors (means are the codes DCI
            and the binned estimator use).
        factors: ``(N, K)`` factor values of the same images.
        factor_names: ``K`` names, e.g. ``("shape", "scale", "orientation", "x", "y")``.
        categorical: per factor, whether it is unordered (shape); for DCI's regression targets.
        estimator: ``"sampled"`` (Chen et al.'s, from samples of ``q(z|x)``) or ``"binned"``
            (posterior means in ``bins`` bins) for the mutual information.
        num_samples: draws per entropy for the sampled estimator.
        bins: bins per dimension for the binned estimator.
        generator: random source (samples, DCI's held-out split).

    Returns:
        A JSON-ready dict: ``mig``, ``mig_per_factor`` (name -> gap), ``mutual_information``
        (``D`` rows of ``K`` nats), ``normalized_mutual_information`` (divided by ``H(v_k)``),
        ``factor_entropy`` (name -> nats), ``best_factor`` (per dimension: the factor it shares
        most information with, normalized), ``dci`` (disentanglement, completeness,
        informativeness), ``estimator``, ``num_points``.
    """
    if len(factor_names) != factors.shape[1]:
        raise ValueError(f"{factors.shape[1]} factors but {len(factor_names)} names")
    dci_generator = None  # DCI's held-out split does not depend on which MI estimator ran first
    if generator is not None:
        dci_generator = torch.Generator(device=generator.device)
        dci_generator.set_state(generator.get_state())
    if estimator == "sampled":
        mi = sampled_mutual_information(loc, scale, factors, num_samples=num_samples, generator=generator)
    elif estimator == "binned":
        mi = binned_mutual_information(loc, factors, bins=bins)
    else:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(MI_ESTIMATORS)}")
    entropy = discrete_entropy(factor_codes(factors))
    normalized = torch.where(entropy > 0, mi / entropy.clamp_min(1e-12), torch.zeros_like(mi))
    gaps = mutual_information_gaps(mi, entropy)
    best = normalized.argmax(1)
    return {
        "mig": mutual_information_gap(mi, entropy),
        "mig_per_factor": {name: (None if gap != gap else gap) for name, gap in zip(factor_names, gaps.tolist())},
        "mutual_information": mi.tolist(),
        "normalized_mutual_information": normalized.tolist(),
        "factor_entropy": dict(zip(factor_names, entropy.tolist())),
        "best_factor": [{"factor": factor_names[k], "normalized_mi": normalized[j, k].item()}
                        for j, k in enumerate(best.tolist())],
        "dci": dci(loc, factors, categorical, generator=dci_generator),
        "estimator": estimator,
        "num_points": int(loc.shape[0]),
    }


__all__ = ["MI_ESTIMATORS", "factor_scores", "posterior_parameters"]
