"""The VAE: a Pyro model (prior plus likelihood) and a guide (amortized encoder), built from parts."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from pyrovae.nn.rebuild import Rebuildable
from pyrovae.guides.diagonal import Encoder
from pyrovae.likelihoods.elementwise import Likelihood
from pyrovae.priors.base import Prior
from pyrovae.priors.marginal import MarginalPrior


class VAE(Rebuildable, nn.Module):
    """A variational autoencoder written as a Pyro ``model`` and ``guide``.

    ``model``:  z ~ p(z [| context]);  x ~ p(x | z).
    ``guide``:  z ~ q(z | x);  plus whatever extra sites the prior's guide part adds.

    Any ``pyro.infer`` objective trains it, e.g.
    ``SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())``.

    Args:
        encoder: ``q(z | x)``, a module returning a distribution with event shape ``(latent_dim,)``.
        likelihood: ``p(x | z)``, a module returning a distribution over a whole data point.
        prior: ``p(z)``, a :class:`~pyrovae.priors.Prior`.
        name: prefix under which ``pyro.module`` registers the parameters in Pyro's param store;
            give two models that live side by side different names.

    Shapes:
        ``x`` is ``(batch, *event_shape)``, e.g. ``(batch, 1, 28, 28)``; ``context`` is
        ``(batch, ...)`` and goes to the prior, and to the encoder and likelihood when they
        declare a ``context_dim``.
    """

    def __init__(self, encoder: Encoder, likelihood: Likelihood, prior: Prior, name: str = "vae") -> None:
        super().__init__()
        self.encoder = encoder
        self.likelihood = likelihood
        self.prior = prior
        self.name = name

    @property
    def latent_dim(self) -> int:
        return self.prior.latent_dim

    @property
    def event_shape(self) -> torch.Size:
        return self.likelihood.event_shape

    # -- the generative story and its approximate posterior ------------------------------------

    def model(self, x: Tensor, context: Tensor | None = None, marginal: bool = False) -> None:
        """z ~ p(z);  x ~ p(x | z).

        With ``marginal``, ``z`` is one site scored by the prior's marginal density (see
        :meth:`marginal_model`) instead of the prior's own sites.
        """
        self.register_params()
        with pyro.plate("data", x.shape[0]):
            if marginal:
                z = pyro.sample("z", MarginalPrior(self.prior, context, x.shape[:1]))
            else:
                z = self.prior.model_sample("z", context)
            pyro.sample("x", self.likelihood(z, self._ctx(self.likelihood, context)), obs=x)

    def marginal_model(self, x: Tensor, context: Tensor | None = None) -> None:
        """The model with ``z`` drawn from the prior's marginal ``p(z)`` as a single site.

        For priors that add sites of their own to the model only (an enumerated mixture's
        component): the marginal model's one latent site is ``z``, which the guide provides, so
        importance sampling (:func:`pyrovae.infer.evaluation.log_likelihood`) needs no
        enumeration. Priors that add guide sites too (a hierarchy) are scored with ``model``.
        """
        self.model(x, context, marginal=True)

    def guide(self, x: Tensor, context: Tensor | None = None) -> None:
        """z ~ q(z | x), then the prior's own guide sites."""
        self.register_params()
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.encoder(x, self._ctx(self.encoder, context)))
            self.prior.guide_sample("z", z, x, context)

    def register_params(self) -> None:
        """``pyro.module(self.name, self)``, refusing to share a name with another model.

        ``model`` and ``guide`` call this on every run, which is what ``SVI`` with a
        ``pyro.optim`` optimizer needs: that optimizer finds the parameters in Pyro's param
        store. Pyro's param store is global: a second model registered under the same name
        would get the first model's tensors back, and SVI would then silently train the
        wrong weights.

        Raises:
            ValueError: if the store holds a different tensor under one of this model's names.
        """
        pyro.module(self.name, self)
        store = pyro.get_param_store()
        for pname, p in self.named_parameters():
            key = f"{self.name}$$${pname}"
            if p.requires_grad and store[key] is not p:
                raise ValueError(
                    f"Pyro's param store already holds a different parameter {key!r}: another "
                    f"model uses the name {self.name!r}. Call pyro.clear_param_store() or build "
                    "this VAE with another name=."
                )

    @staticmethod
    def _ctx(part: nn.Module, context: Tensor | None) -> Tensor | None:
        return context if getattr(part, "context_dim", 0) else None

    def check_inputs(self, x: Tensor, context: Tensor | None = None, what: str = "data") -> None:
        """Refuse data this model cannot score, with a one-line message naming the fix.

        Checks that ``x`` is non-empty, of shape ``(N, *event_shape)``, finite and inside the
        likelihood's support (``likelihood.support_rule``), and that ``context`` has one finite
        row per data point. :class:`~pyrovae.train.trainer.Trainer` calls this before training.

        Raises:
            pyrovae.errors.InputError: naming the first problem.
        """
        from pyrovae.validation import check_context, check_data

        check_data(x, self.event_shape, self.likelihood, what=what)
        check_context(context, x.shape[0], what=f"{what} context")

    # -- using a trained model ---------------------------------------------------------------

    def posterior(self, x: Tensor, context: Tensor | None = None) -> dist.Distribution:
        """``q(z | x)``, batch shape ``(batch,)``, event shape ``(latent_dim,)``."""
        return self.encoder(x, self._ctx(self.encoder, context))

    @torch.no_grad()
    def encode(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Posterior means ``E_q[z | x]``, shape ``(batch, latent_dim)``."""
        return self.encoder.mean(x, self._ctx(self.encoder, context))

    @torch.no_grad()
    def decode(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Expected data ``E[x | z]``, shape ``(*z.shape[:-1], *event_shape)``."""
        return self.likelihood.mean(z, self._ctx(self.likelihood, context))

    @torch.no_grad()
    def reconstruct(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``decode(encode(x))``, same shape as ``x``."""
        return self.decode(self.encode(x, context), context)

    @torch.no_grad()
    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        """New data from the prior: ``E[x | z]`` for ``z ~ p(z)``, shape ``(num_samples, *event_shape)``."""
        z = self.prior.sample(num_samples, context)
        return self.decode(z, context)

    @torch.no_grad()
    def interpolate(self, x_start: Tensor, x_end: Tensor, steps: int = 10) -> Tensor:
        """Decode evenly spaced points on the line between the posterior means of two inputs.

        Args:
            x_start, x_end: ``(pairs, *event_shape)``.
            steps: points per line, ends included.

        Returns:
            ``(pairs, steps, *event_shape)``.
        """
        z0, z1 = self.encode(x_start), self.encode(x_end)
        t = torch.linspace(0, 1, steps, device=z0.device, dtype=z0.dtype).view(1, steps, 1)
        z = z0.unsqueeze(1) * (1 - t) + z1.unsqueeze(1) * t
        return self.decode(z)


__all__ = ["VAE"]
