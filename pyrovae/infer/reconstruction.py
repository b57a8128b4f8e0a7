"""Reconstruction and denoising error: how well ``decode(encode(x~))`` matches the clean ``x``.

The figures that describe an autoencoder, whose training objective is not a bound on
``log p(x)`` (see :mod:`pyrovae.guides.delta`), and that compare it with a VAE on equal terms.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from pyrovae.models.vae import VAE


@torch.no_grad()
def reconstruction_error(vae: VAE, data: Tensor, corruption: Callable[[Tensor], Tensor] | None = None,
                         batch_size: int = 500) -> dict[str, float]:
    """Mean reconstruction error of ``data`` through the code ``z = encode(x~)``, ``x~ = corruption(x)``.

    The code is the guide's mean (a VAE's posterior mean, an autoencoder's ``f(x)``) computed in
    evaluation mode, so a :class:`~pyrovae.guides.CorruptedInput` encoder adds no noise of its
    own; with ``corruption`` the input is corrupted here, explicitly, and the figure is the
    *denoising* error against the clean ``x``.

    Args:
        vae: a trained model (a VAE or an autoencoder).
        data: ``(N, *event_shape)`` clean data on the model's device.
        corruption: ``x -> x~`` (e.g. :class:`~pyrovae.guides.MaskingNoise`), or None for none.
        batch_size: data points per pass.

    Returns:
        ``{"recon_nll": ..., "mse": ..., "num_points": N}``: ``recon_nll`` is
        ``-log p(x | z)`` in nats per data point under the model's likelihood (binary
        cross-entropy summed over pixels for a Bernoulli likelihood), ``mse`` the squared error
        between ``x`` and ``E[x | z]`` averaged over pixels.
    """
    if data.shape[0] == 0:
        raise ValueError("cannot score reconstructions of an empty data set")
    was_training = vae.training
    vae.eval()
    nll_sum, squared_sum = 0.0, 0.0
    try:
        for x in data.split(batch_size):
            x_in = corruption(x) if corruption is not None else x
            z = vae.encode(x_in)
            nll_sum -= vae.likelihood(z).log_prob(x).sum().item()
            squared_sum += (vae.decode(z) - x).pow(2).sum().item()
    finally:
        vae.train(was_training)
    n = data.shape[0]
    return {"recon_nll": nll_sum / n, "mse": squared_sum / data.numel(), "num_points": n}


__all__ = ["reconstruction_error"]
