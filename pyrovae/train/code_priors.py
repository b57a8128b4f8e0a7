"""Stage two of VQ-VAE training: fit the PixelCNN priors to the code maps of the frozen encoder.

The codes of the training and test images are computed once, in evaluation mode (no codebook
update), so the encoder is frozen by construction; each prior is then a Pyro model with its
codes observed (:class:`~pyrovae.priors.pixelcnn.CodeMapModel`) and the one
:class:`~pyrovae.train.trainer.Trainer` fits it. VQ-VAE-2 fits the top prior, then the bottom
prior with the top code map as its context.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from pyrovae.models.vqvae import VQVAE, VQVAE2
from pyrovae.priors.pixelcnn import CodeMapModel
from pyrovae.train.state import TrainingRecord
from pyrovae.train.trainer import EpochCallback, Trainer


@torch.no_grad()
def code_maps(vq: VQVAE, images: Tensor, batch_size: int = 500) -> list[Tensor]:
    """Index maps of ``images``: ``[codes]`` for VQ-VAE, ``[top, bottom]`` for VQ-VAE-2."""
    chunks = [vq.codes(x) for x in images.split(batch_size)]
    if isinstance(vq, VQVAE2):
        return [torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks])]
    return [torch.cat(chunks)]


def fit_code_priors(vq: VQVAE, train: Tensor, test: Tensor | None, epochs: int, lr: float = 1e-3,
                    batch_size: int = 128, progress: bool = False, generator: torch.Generator | None = None,
                    callbacks: Sequence[EpochCallback] = ()) -> list[TrainingRecord]:
    """Fit ``vq``'s PixelCNN prior(s) by maximum likelihood on the codes of ``train``.

    Args:
        vq: a trained :class:`~pyrovae.models.vqvae.VQVAE` or ``VQVAE2`` whose priors are
            :class:`~pyrovae.priors.pixelcnn.PixelCNNPrior`.
        train, test: images ``(N, *event_shape)``; ``test`` may be None.
        epochs: passes over the training codes, per prior.
        lr, batch_size, progress, generator: for the :class:`~pyrovae.train.trainer.Trainer`.
        callbacks: per-epoch callbacks ``f(trainer, figures)``; ``figures["elbo"]`` entries are
            then ``log p(codes)`` per map in nats.

    Returns:
        One training record per prior (top first for VQ-VAE-2).
    """
    train_codes = code_maps(vq, train)
    test_codes = code_maps(vq, test) if test is not None else [None] * len(train_codes)
    priors = [vq.top_prior, vq.prior] if isinstance(vq, VQVAE2) else [vq.prior]
    records = []
    for level, prior in enumerate(priors):
        train_context = test_context = None
        if level == 1:  # the bottom prior reads the top code map, as code vectors
            train_context = vq.top_prior.vectors(train_codes[0])
            test_context = None if test is None else vq.top_prior.vectors(test_codes[0])
        name = ["code_prior_top", "code_prior_bottom"][level] if len(priors) == 2 else "code_prior"
        trainer = Trainer(CodeMapModel(prior, name), lr=lr, batch_size=batch_size, progress=progress,
                          generator=generator, callbacks=list(callbacks))
        records.append(trainer.fit(train_codes[level], test_codes[level], epochs=epochs,
                                   train_context=train_context, test_context=test_context))
    vq.eval()
    return records


__all__ = ["code_maps", "fit_code_priors"]
