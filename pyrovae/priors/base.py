"""The prior interface: what a VAE asks of p(z), and how a prior brings its own sample sites.

Design note
-----------
The VAE's ``model`` calls ``prior.model_sample("z", context)`` inside the data plate and the
``guide`` calls ``prior.guide_sample("z", z, x, context)`` right after drawing ``z ~ q(z | x)``.
Everything a prior needs beyond a plain density lives behind those two calls, so new priors
never touch the VAE:

* **Plain density** (standard Normal, learned diagonal Normal, a marginalized mixture, a flow):
  implement ``forward(context) -> Distribution`` over ``z`` with one event dimension. The
  defaults sample the single site ``"z"`` in the model and add nothing to the guide.
* **Enumerated mixture**: ``model_sample`` first draws a component site
  ``f"{name}_component"`` marked ``infer={"enumerate": "parallel"}`` and then ``z`` from that
  component. ``TraceEnum_ELBO`` sums the component out, so the guide needs no site for it
  (``guide_sample`` stays a no-op), and the posterior over components gives cluster labels.
* **VampPrior**: the prior holds a reference to the encoder (a shared submodule) and the
  learned pseudo-inputs; ``forward`` returns the mixture of ``q(z | u_k)``. Sharing the
  module means ``vae.parameters()`` lists each encoder weight once.
* **Hierarchy z2 -> z1 -> x**: ``model_sample`` draws ``f"{name}_top"`` and then ``z`` given
  it; ``guide_sample`` draws ``f"{name}_top"`` from ``q(z2 | z1)``, the guide part that
  matches, written next to the prior in the same file.
* **Conditional prior p(z | y)**: ``forward(context)`` uses the context (a label) passed to
  ``model(x, context)``.

``log_prob(z, context)`` is the marginal density ``log p(z)`` where it is tractable (used by
evaluation and by ``sample``); a prior whose marginal is intractable says so by raising.
Every latent site a prior adds is unobserved, so beta and KL warm-up, which scale unobserved
sites (see ``pyrovae.infer.objectives``), reach it without the prior knowing.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from pyrovae.nn.rebuild import Rebuildable


class Prior(Rebuildable, nn.Module):
    """Base class for p(z). Subclasses implement ``forward`` and, if needed, the two site hooks.

    Attributes:
        latent_dim: size of ``z``.
    """

    latent_dim: int

    def forward(self, context: Tensor | None = None) -> dist.Distribution:
        """The density ``p(z [| context])`` with event shape ``(latent_dim,)``.

        Its batch shape is ``()`` (broadcast by the data plate) or, with a context,
        ``context.shape[:-1]``-like.
        """
        raise NotImplementedError

    def model_sample(self, name: str, context: Tensor | None = None) -> Tensor:
        """Draw ``z`` at site ``name`` inside the model's data plate; may add sites of its own.

        Returns:
            ``z`` of shape ``(*plate_shape, latent_dim)``.
        """
        return pyro.sample(name, self(context))

    def guide_sample(self, name: str, z: Tensor, x: Tensor, context: Tensor | None = None) -> None:
        """Sample, in the guide, the prior's own extra sites given ``z ~ q(z | x)``. Default: none."""

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Marginal ``log p(z)``, shape ``z.shape[:-1]``."""
        return self(context).log_prob(z)

    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        """Draw ``z`` from the prior outside inference, shape ``(num_samples, latent_dim)``.

        With a context of batch size ``num_samples``, one draw per context row.
        """
        p = self(context)
        if p.batch_shape == torch.Size():
            return p.sample((num_samples,))
        return p.sample()


__all__ = ["Prior"]
