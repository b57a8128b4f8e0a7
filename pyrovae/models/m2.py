"""Model M2 of Kingma et al. (2014): a VAE whose latent code is a class label y and a style z.

Generative story (``model``)::

    y ~ Categorical(pi);   z ~ p(z [| y]);   x ~ p(x | y, z)

Approximate posterior (``guide``)::

    y ~ q(y | x)   (a classifier; only for unlabelled x)
    z ~ q(z | x, y)

For a labelled batch ``y`` is observed in the model and absent from the guide. For an
unlabelled batch the guide's ``y`` site is marked ``infer={"enumerate": "parallel"}``, so
``TraceEnum_ELBO(max_plate_nesting=1)`` sums it out exactly: the loss becomes
``sum_y q(y | x) * (-ELBO(x, y)) - H[q(y | x)]`` with one ``z`` drawn per class, which is the
unlabelled bound ``U(x)`` of the paper. Nothing in the model or guide needs to know which
of the two cases it is in beyond ``y is None``.

The auxiliary classification loss
---------------------------------
The bound alone gives the classifier no signal from labelled data (``q(y | x)`` only enters
the unlabelled bound). Kingma et al. add ``alpha * E_labelled[-log q(y | x)]``. Here that term
is one ``pyro.factor("classification", alpha * log q(y | x))`` inside the model's data plate,
written only when ``y`` is observed and ``alpha > 0``. One ``model``/``guide`` pair then
trains everything with a single ``SVI`` (Pyro's SS-VAE tutorial needs a second
``model_classify``/``guide_classify`` pair and a second SVI object for the same term).
The price is honesty of the number: with ``alpha > 0`` the labelled loss is the negative
ELBO *plus* ``alpha`` times the cross-entropy; set ``m2.alpha = 0`` to score a pure ELBO.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyrovae.nn.rebuild import Rebuildable
from pyrovae.guides.diagonal import Encoder
from pyrovae.likelihoods.elementwise import Likelihood
from pyrovae.priors.base import Prior
from pyrovae.priors.normal import StandardNormalPrior


class M2(Rebuildable, nn.Module):
    """Semi-supervised VAE M2 (Kingma, Rezende, Mohamed and Welling, 2014).

    Args:
        classifier: network mapping ``(batch, *event_shape)`` to logits ``(batch, num_classes)``;
            it defines ``q(y | x)``.
        encoder: ``q(z | x, y)``, an :class:`~pyrovae.guides.diagonal.Encoder` built with
            ``context_dim=num_classes`` (it receives the one-hot label), e.g.
            ``DiagonalNormalEncoder(net, latent_dim, context_dim=num_classes)``.
        likelihood: ``p(x | y, z)``, a :class:`~pyrovae.likelihoods.elementwise.Likelihood` whose network
            takes ``latent_dim + num_classes`` inputs (the one-hot label is its context).
        num_classes: number of classes ``K``.
        prior: ``p(z [| y])``; its ``forward(context)`` receives the one-hot label
            ``(..., batch, K)``, so a conditional prior works unchanged. Default: standard Normal.
        alpha: weight of the auxiliary classification loss on labelled data (see module notes).
        class_probs: ``pi``, the prior over classes, ``(K,)``; default uniform.
        name: prefix of the parameters in Pyro's param store.

    Shapes:
        ``x`` is ``(batch, *event_shape)``; ``y`` is a LongTensor ``(batch,)`` of class indices.
    """

    def __init__(self, classifier: nn.Module, encoder: Encoder, likelihood: Likelihood,
                 num_classes: int, prior: Prior | None = None, alpha: float = 50.0,
                 class_probs: Tensor | None = None, name: str = "m2") -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if getattr(encoder, "context_dim", num_classes) != num_classes:
            raise ValueError(f"the encoder takes a context of size {encoder.context_dim}, but M2 "
                             f"passes the one-hot label of size {num_classes}: build it with "
                             f"context_dim={num_classes}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.classifier = classifier
        self.encoder = encoder
        self.likelihood = likelihood
        self.prior = prior if prior is not None else StandardNormalPrior(encoder.latent_dim)
        self.num_classes = num_classes
        self.alpha = alpha
        self.name = name
        probs = torch.full((num_classes,), 1.0 / num_classes) if class_probs is None else class_probs
        self.register_buffer("class_probs", probs.float(), persistent=False)

    @property
    def latent_dim(self) -> int:
        return self.prior.latent_dim

    @property
    def event_shape(self) -> torch.Size:
        return self.likelihood.event_shape

    # -- the generative story and its approximate posterior ------------------------------------

    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        """y ~ Categorical(pi);  z ~ p(z | y);  x ~ p(x | y, z)  [+ alpha * log q(y | x) if y given]."""
        pyro.module(self.name, self)
        self._check_labels(x, y)
        labelled = y is not None
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(probs=self.class_probs), obs=y)
            onehot = self._onehot(y, x.shape[0])
            z = self.prior.model_sample("z", onehot)
            pyro.sample("x", self.likelihood(z, onehot), obs=x)
            if labelled and self.alpha > 0:
                pyro.factor("classification", self.alpha * self.posterior_y(x).log_prob(y))

    def guide(self, x: Tensor, y: Tensor | None = None) -> None:
        """y ~ q(y | x) (enumerated, unlabelled only);  z ~ q(z | x, y)."""
        pyro.module(self.name, self)
        self._check_labels(x, y)
        with pyro.plate("data", x.shape[0]):
            if y is None:
                y = pyro.sample("y", self.posterior_y(x), infer={"enumerate": "parallel"})
            onehot = self._onehot(y, x.shape[0])
            x_b = x.expand(*onehot.shape[:-1], *x.shape[1:])
            z = pyro.sample("z", self.encoder(x_b, onehot))
            self.prior.guide_sample("z", z, x_b, onehot)

    def _onehot(self, y: Tensor, batch: int) -> Tensor:
        """One-hot label ``(..., batch, K)``, broadcast over the data plate (enumeration adds
        dimensions on the left: ``y`` is then ``(K, 1)``)."""
        shape = torch.broadcast_shapes(y.shape, (batch,))
        return F.one_hot(y, self.num_classes).to(self.class_probs.dtype).expand(*shape, self.num_classes)

    def _check_labels(self, x: Tensor, y: Tensor | None) -> None:
        if y is None:
            return
        if y.shape != x.shape[:1] or torch.is_floating_point(y):
            raise ValueError(f"labels must be a LongTensor of shape ({x.shape[0]},), one class "
                             f"index per image; got {tuple(y.shape)} {y.dtype}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(f"labels must lie in 0..{self.num_classes - 1}; got values from "
                             f"{int(y.min())} to {int(y.max())}")

    # -- using a trained model ---------------------------------------------------------------

    def posterior_y(self, x: Tensor) -> dist.Categorical:
        """``q(y | x)``, batch shape ``(batch,)``."""
        return dist.Categorical(logits=self.classifier(x))

    @torch.no_grad()
    def classify(self, x: Tensor, batch_size: int = 2000) -> Tensor:
        """Most probable class under ``q(y | x)``, a LongTensor ``(batch,)``."""
        out = [self.classifier(x[i : i + batch_size]).argmax(-1) for i in range(0, x.shape[0], batch_size)]
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)

    @torch.no_grad()
    def accuracy(self, x: Tensor, y: Tensor) -> float:
        """Fraction of ``x`` that :meth:`classify` labels as ``y``."""
        return (self.classify(x) == y).float().mean().item()

    @torch.no_grad()
    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Posterior mean of the style ``E_q[z | x, y]``, with ``y = classify(x)`` if not given;
        shape ``(batch, latent_dim)``."""
        y = self.classify(x) if y is None else y
        return self.encoder.mean(x, self._onehot(y, x.shape[0]))

    @torch.no_grad()
    def decode(self, z: Tensor, y: Tensor) -> Tensor:
        """Expected image ``E[x | y, z]``; ``z`` is ``(*batch, latent_dim)``, ``y`` ``(*batch,)``."""
        onehot = F.one_hot(y, self.num_classes).to(z.dtype)
        return self.likelihood.mean(z, onehot)

    @torch.no_grad()
    def sample(self, y: Tensor) -> Tensor:
        """New images of the given classes: ``E[x | y, z]`` with ``z ~ p(z | y)``,
        shape ``(len(y), *event_shape)``."""
        onehot = F.one_hot(y, self.num_classes).to(self.class_probs.dtype)
        z = self.prior.sample(y.shape[0], onehot)
        return self.decode(z, y)


__all__ = ["M2"]
