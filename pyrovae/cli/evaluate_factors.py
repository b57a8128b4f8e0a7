"""``pyrovae evaluate --factors``: disentanglement (MIG, DCI) of a checkpoint trained on data with known factors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyro
import torch

from pyrovae.cli.config import ConfigError, refuse_to_overwrite
from pyrovae.cli.registry import pick_device
from pyrovae.cli.sample import load_vae
from pyrovae.factors.data import SHAPES, categorical_factors, load_shapes_split
from pyrovae.factors.scores import MI_ESTIMATORS, factor_scores, posterior_parameters
from pyrovae.plots.factors import factor_row_labels, save_information_heatmap
from pyrovae.plots.traversals import dimensions_by_kl, save_traversals


def run_evaluate_factors(checkpoint: str, split: str = "test", limit: int | None = None, seed: int = 0,
                         device: str = "auto", overwrite: bool = False, estimator: str = "sampled",
                         num_samples: int = 2000) -> dict[str, Any]:
    """Score a checkpoint's encoder against the factors of its own data set and write, beside it,
    ``factors_<split>.json``, a heat map of ``I(z_j; v_k) / H(v_k)`` and labelled traversals.

    The data are the checkpoint's generated shapes (the same random slice it was trained on, and
    the test images held out from it); ``limit`` keeps the first images of the split.
    """
    if limit is not None and limit < 2:
        raise ConfigError(f"--limit must be at least 2 for --factors, got {limit}")
    if split not in ("test", "train"):
        raise ConfigError(f"--data must be test or train, got {split!r}")
    if estimator not in MI_ESTIMATORS:
        raise ConfigError(f"--mi-estimator must be one of {', '.join(MI_ESTIMATORS)}, got {estimator!r}")
    if num_samples < 1:
        raise ConfigError(f"--num-samples must be at least 1, got {num_samples}")
    folder = Path(checkpoint).parent
    stem = f"factors_{split}" + (f"_n{limit}" if limit else "")
    targets = {"json": folder / f"{stem}.json", "heatmap": folder / f"{stem}_information.png",
               "traversals": folder / f"{stem}_traversals.png"}
    refuse_to_overwrite(targets.values(), overwrite, "--limit/--data")

    torch_device = pick_device(device)
    pyro.clear_param_store()
    vae, config = load_vae(checkpoint, torch_device)
    if config.dataset not in SHAPES:
        raise ConfigError(f"--factors needs a model trained on data with known factors (--dataset "
                          f"{' or '.join(SHAPES)}); {checkpoint} was trained on {config.dataset}")
    images, factors, factor_names = load_shapes_split(config.dataset, split, train_size=config.train_size,
                                                      limit=limit)
    images, factors = images.to(torch_device), factors.to(torch_device)
    vae.eval()
    try:
        loc, scale = posterior_parameters(vae.posterior, images)
    except ValueError:
        raise ConfigError(f"--factors needs a diagonal Normal guide; {checkpoint} uses "
                          f"--guide {config.guide}") from None
    if loc.shape[1] < 2:
        raise ConfigError("--factors needs at least 2 latent dimensions (the mutual information gap compares two)")
    generator = torch.Generator(device=loc.device).manual_seed(seed)
    scores = factor_scores(loc, scale, factors, factor_names, categorical=categorical_factors(factor_names),
                           estimator=estimator, num_samples=num_samples, generator=generator)
    scores.update(checkpoint=str(checkpoint), split=split, seed=seed, dataset=config.dataset)
    targets["json"].write_text(json.dumps(scores, indent=2) + "\n")
    save_information_heatmap(torch.tensor(scores["normalized_mutual_information"]), factor_names,
                             targets["heatmap"], title=f"I(z_j; v_k) / H(v_k), {split}, MIG {scores['mig']:.3f}")
    # Rows: the dimensions that know most about some factor first (any score orders them).
    informative = torch.tensor(scores["normalized_mutual_information"]).max(1).values
    dimensions = dimensions_by_kl(informative, max_rows=10)
    labels = factor_row_labels(scores["best_factor"])
    save_traversals(vae.decode, loc[0], dimensions, targets["traversals"], row_labels=[labels[d] for d in dimensions],
                    title="row: the factor the dimension captures best, I(z_j; v_k) / H(v_k)")
    gaps = ", ".join(f"{name} {gap:.3f}" for name, gap in scores["mig_per_factor"].items() if gap is not None)
    dci = scores["dci"]
    print(f"MIG {scores['mig']:.3f} ({estimator} MI, {scores['num_points']} {split} images; per factor: {gaps})\n"
          f"DCI disentanglement {dci['disentanglement']:.3f}, completeness {dci['completeness']:.3f}, "
          f"informativeness (held-out R^2) {dci['informativeness']:.3f}\n"
          f"Wrote {', '.join(str(p) for p in targets.values())}")
    return scores


__all__ = ["run_evaluate_factors"]
