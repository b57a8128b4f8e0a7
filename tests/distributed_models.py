"""Tiny models and data shared by the 2-process tests (test_distributed.py) and their ranks
(distributed_worker.py): a VAE on 3x3 images whose noise a test can fix, the comparison of
data-parallel steps with one process on the same global batches, and images that carry their index."""

from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from torch import Tensor

from pyrovae import (
    MLP,
    VAE,
    BernoulliLikelihood,
    DiagonalNormalEncoder,
    LearnedNormalPrior,
    Trainer,
)
from pyrovae.priors.mixture import GaussianMixturePrior
from pyrovae.train.distributed import DataParallel

WORLD_SIZE = 2
LOCAL_BATCH = 4
STEPS = 3
LATENT = 2
EVENT = (1, 3, 3)


class FixedNoiseNormal(dist.Normal):
    """Normal whose reparameterised draw uses given standard-normal noise: ``loc + scale * eps``."""

    def __init__(self, loc: Tensor, scale: Tensor, eps: Tensor) -> None:
        super().__init__(loc, scale)
        self.eps = eps

    def expand(self, batch_shape: torch.Size, _instance=None) -> FixedNoiseNormal:
        shape = torch.Size(batch_shape)
        return FixedNoiseNormal(self.loc.expand(shape), self.scale.expand(shape), self.eps.expand(shape))

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        return self.loc + self.scale * self.eps


class FixedNoiseEncoder(DiagonalNormalEncoder):
    """q(z | x) drawing z with the noise in ``self.eps`` (set by the test), so two runs can share it."""

    eps: Tensor

    def forward(self, x: Tensor, context: Tensor | None = None) -> dist.Distribution:
        loc, scale = self.loc_scale(x, context)
        return FixedNoiseNormal(loc, scale, self.eps).to_event(1)


def tiny_vae(seed: int, name: str = "vae", fixed_noise: bool = True, mixture: bool = False) -> VAE:
    """A VAE on 3x3 images; ``mixture``: an enumerated 3-component Gaussian-mixture prior."""
    torch.manual_seed(seed)
    encoder = (FixedNoiseEncoder if fixed_noise else DiagonalNormalEncoder)(MLP(EVENT, (5,), 2 * LATENT), LATENT)
    likelihood = BernoulliLikelihood(MLP(LATENT, (5,), 9), EVENT)
    prior = GaussianMixturePrior(LATENT, 3, enumerate=True) if mixture else LearnedNormalPrior(LATENT)
    return VAE(encoder, likelihood, prior, name=name)


#: The models the gradient check runs on: name -> (tiny_vae keyword, training objective).
MODELS = {
    "normal": (False, Trace_ELBO),
    "enumerated-mixture": (True, lambda: TraceEnum_ELBO(max_plate_nesting=1)),
}


def global_batches() -> tuple[Tensor, Tensor]:
    """Per step, the global batch ``(STEPS, W * B, *EVENT)`` and its noise ``(STEPS, W * B, LATENT)``."""
    generator = torch.Generator().manual_seed(123)
    x = torch.bernoulli(torch.full((STEPS, WORLD_SIZE * LOCAL_BATCH, *EVENT), 0.4), generator=generator)
    eps = torch.randn(STEPS, WORLD_SIZE * LOCAL_BATCH, LATENT, generator=generator)
    return x, eps


def compare_with_one_process(parallel: DataParallel, model: str) -> dict:
    """``STEPS`` Adam steps on 2 ranks and in one process on the same global batches and noise.

    Returns the largest gradient and parameter differences, the (local, single) losses per
    step, and this rank's final parameters.
    """
    mixture, objective = MODELS[model]
    rank = parallel.rank
    # Each rank starts from different weights; DDP must broadcast rank 0's (seed 0).
    vae = tiny_vae(seed=rank, name=f"{model}-ddp", mixture=mixture)
    reference = tiny_vae(seed=0, name=f"{model}-single", mixture=mixture)
    trainer = Trainer(vae, objective=objective(), parallel=parallel, lr=0.05, progress=False)
    single = Trainer(reference, objective=objective(), lr=0.05, progress=False)
    x, eps = global_batches()
    local = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
    grad_errors, loss_pairs = [], []
    for step in range(STEPS):
        reference.encoder.eps = eps[step]
        vae.encoder.eps = eps[step, local]
        loss_single = single.step(x[step])
        loss_local = trainer.step(x[step, local])
        loss_pairs.append((loss_local.item(), loss_single.item()))
        grad_errors.append(max((p.grad - q.grad).abs().max().item() for p, q in
                               zip(vae.parameters(), reference.parameters(), strict=True)))
    param_error = max((p - q).abs().max().item() for p, q in
                      zip(vae.parameters(), reference.parameters(), strict=True))
    return {"grad_errors": grad_errors, "loss_pairs": loss_pairs, "param_error": param_error,
            "params": {k: v.detach().clone() for k, v in vae.state_dict().items()}}

#: The step (1-based) after which rank 1 asks to stop in the stop-and-resume checks.
STOP_AT_STEP = 9

#: Powers of two, one per pixel of a 3x3 image: an image's pixels are the binary digits of its index.
BITS = 2 ** torch.arange(9)


def index_images(n: int) -> Tensor:
    """``(n, *EVENT)`` binary images; image ``i`` spells ``i`` in binary, so a batch tells which samples it holds."""
    if n > 2 ** len(BITS):
        raise ValueError(f"at most {2 ** len(BITS)} index images")
    return ((torch.arange(n)[:, None] // BITS) % 2).float().reshape(n, *EVENT)


def recording_transform(seen: list[list[int]]):
    """A transform for :func:`index_images` batches that appends the batch's sample indices to
    ``seen`` and returns the batch as it is."""

    def transform(x: Tensor) -> Tensor:
        seen.append((x.reshape(x.shape[0], -1).long() * BITS).sum(1).tolist())
        return x

    return transform
