"""M2 contenders for ``speed.py --model m2``, written without pyrovae.

Kingma et al.'s M2 (2014) on pixels, shaped as in ``semisupervised.py`` with ``H`` hidden units
(``speed.py --hidden``, 400 by default there; ``semisupervised.py`` uses 500): a classifier
784-H-10, an encoder ``q(z | x, y)`` (784 + 10)-H-(2 x latent), a Bernoulli decoder
``p(x | y, z)`` (latent + 10)-H-784, softplus, auxiliary classification weight ``alpha``.
One step sees a labelled batch and an unlabelled batch; the unlabelled label is summed out.

* :class:`PlainM2Twin`: the labelled loss ``-ELBO(x, y) + alpha CE(q(y|x), y)`` and the
  unlabelled loss ``sum_y q(y|x) (-ELBO(x, y)) - H[q(y|x)]`` with one ``z`` per class, as
  ``TraceEnum_ELBO`` computes them, hand-written; one ``torch.optim.Adam``.
* :class:`PyroStyleM2`: Pyro's SS-VAE example way: model and guide calling ``pyro.module``,
  the guide's label enumerated, ``SVI(model, guide, pyro.optim.Adam, TraceEnum_ELBO())``.
  Pyro's example takes one ``svi.step`` per batch and a second SVI for the classification
  term; here one ``svi.step`` scores both batches and the term is a ``pyro.factor``, so each
  contender does the same arithmetic per step.
* :func:`m2_training_gemms`: the GEMM shapes of one step, for the matmul floor.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer import SVI, TraceEnum_ELBO
from torch import Tensor, nn

from twins import HALF_LOG_2PI, linear_gemms

PIXELS = 784


def m2_nets(latent_dim: int, hidden: int, num_classes: int = 10) -> tuple[nn.Module, nn.Module, nn.Module]:
    """Classifier ``x -> logits``, encoder ``[x, onehot] -> (loc, raw_scale)``, decoder ``[z, onehot] -> logits``."""
    def mlp(fan_in: int, fan_out: int) -> nn.Module:
        return nn.Sequential(nn.Linear(fan_in, hidden), nn.Softplus(), nn.Linear(hidden, fan_out))
    return mlp(PIXELS, num_classes), mlp(PIXELS + num_classes, 2 * latent_dim), mlp(latent_dim + num_classes, PIXELS)


class _M2Parts(nn.Module):
    """The three networks and the encoder's head, shared by both contenders."""

    def __init__(self, latent_dim: int, hidden: int, alpha: float, num_classes: int = 10) -> None:
        super().__init__()
        self.latent_dim, self.num_classes, self.alpha = latent_dim, num_classes, alpha
        self.classifier, self.encoder, self.decoder = m2_nets(latent_dim, hidden, num_classes)

    def q_z(self, x: Tensor, onehot: Tensor) -> tuple[Tensor, Tensor]:
        """Location and scale of ``q(z | x, y)``; ``x`` ``(*b, 784)``, ``onehot`` ``(*b, K)``."""
        loc, raw_scale = self.encoder(torch.cat([x, onehot], -1)).split(self.latent_dim, dim=-1)
        return loc, F.softplus(raw_scale) + 1e-4


class PlainM2Twin(_M2Parts):
    """Hand-written M2 step (see the module notes); ``step(x_l, y_l, x_u)``."""

    def __init__(self, latent_dim: int, hidden: int, alpha: float, optimizer_kwargs: dict | None = None) -> None:
        super().__init__(latent_dim, hidden, alpha)
        self.optimizer = torch.optim.Adam(self.parameters(), **(optimizer_kwargs or {"lr": 1e-3}))

    def elbo(self, x: Tensor, onehot: Tensor) -> Tensor:
        """One-sample ``log p(y) + log p(z) + log p(x|y,z) - log q(z|x,y)``, shape ``x.shape[:-1]``."""
        loc, scale = self.q_z(x, onehot)
        eps = torch.randn_like(loc)
        z = loc + scale * eps
        logits = self.decoder(torch.cat([z, onehot], -1))
        log_lik = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        log_p_z = -(0.5 * z * z + HALF_LOG_2PI).sum(-1)
        log_q_z = -(0.5 * eps * eps + scale.log() + HALF_LOG_2PI).sum(-1)
        return log_lik + log_p_z - log_q_z - math.log(self.num_classes)

    def loss(self, x_l: Tensor, y_l: Tensor, x_u: Tensor) -> Tensor:
        """Mean labelled loss plus mean unlabelled loss, per image (as ``SemiSupervisedLoss``)."""
        x_l, x_u = x_l.flatten(1), x_u.flatten(1)
        logits_l = self.classifier(x_l)
        labelled = -self.elbo(x_l, F.one_hot(y_l, self.num_classes).to(x_l.dtype))
        labelled = labelled + self.alpha * F.cross_entropy(logits_l, y_l, reduction="none")
        log_q_y = torch.log_softmax(self.classifier(x_u), -1).T  # (K, batch)
        onehots = torch.eye(self.num_classes, dtype=x_u.dtype)[:, None, :].expand(-1, x_u.shape[0], -1)
        elbo_u = self.elbo(x_u.expand(self.num_classes, -1, -1), onehots)  # one z per class
        unlabelled = -(log_q_y.exp() * (elbo_u - log_q_y)).sum(0)
        return labelled.mean() + unlabelled.mean()

    def step(self, x_l: Tensor, y_l: Tensor, x_u: Tensor) -> Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(x_l, y_l, x_u)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


class PyroStyleM2(_M2Parts):
    """M2 as Pyro's SS-VAE example writes it (see the module notes); ``step(x_l, y_l, x_u)``."""

    def __init__(self, latent_dim: int, hidden: int, alpha: float, tag: str = "style_m2") -> None:
        super().__init__(latent_dim, hidden, alpha)
        self.tag = tag
        self.svi = SVI(self.model, self.guide, pyro.optim.Adam({"lr": 1e-3}),
                       loss=TraceEnum_ELBO(max_plate_nesting=1))

    def _model_part(self, name: str, x: Tensor, y: Tensor | None) -> None:
        k = self.num_classes
        with pyro.plate(name, x.shape[0]):
            y = pyro.sample(f"y_{name}", dist.Categorical(logits=x.new_zeros(x.shape[0], k)), obs=y)
            onehot = F.one_hot(y, k).to(x.dtype).expand(*torch.broadcast_shapes(y.shape, x.shape[:1]), k)
            zeros = x.new_zeros(*onehot.shape[:-1], self.latent_dim)
            z = pyro.sample(f"z_{name}", dist.Normal(zeros, 1.0 + zeros).to_event(1))
            logits = self.decoder(torch.cat([z, onehot], -1))
            pyro.sample(f"x_{name}", dist.Bernoulli(logits=logits, validate_args=False).to_event(1), obs=x)
            if name == "labelled":
                pyro.factor("classification", -self.alpha * F.cross_entropy(self.classifier(x), y, reduction="none"))

    def model(self, x_l: Tensor, y_l: Tensor, x_u: Tensor) -> None:
        pyro.module(self.tag, self)
        self._model_part("labelled", x_l.flatten(1), y_l)
        self._model_part("unlabelled", x_u.flatten(1), None)

    def guide(self, x_l: Tensor, y_l: Tensor, x_u: Tensor) -> None:
        pyro.module(self.tag, self)
        k = self.num_classes
        for name, x, y in (("labelled", x_l.flatten(1), y_l), ("unlabelled", x_u.flatten(1), None)):
            with pyro.plate(name, x.shape[0]):
                if y is None:
                    y = pyro.sample(f"y_{name}", dist.Categorical(logits=self.classifier(x)),
                                    infer={"enumerate": "parallel"})
                onehot = F.one_hot(y, k).to(x.dtype).expand(*torch.broadcast_shapes(y.shape, x.shape[:1]), k)
                loc, scale = self.q_z(x.expand(*onehot.shape[:-1], -1), onehot)
                pyro.sample(f"z_{name}", dist.Normal(loc, scale).to_event(1))

    def step(self, x_l: Tensor, y_l: Tensor, x_u: Tensor) -> float:
        """One ``svi.step``; returns the loss summed over both batches' images."""
        return self.svi.step(x_l, y_l, x_u)


def m2_training_gemms(latent_dim: int, hidden: int, labelled_rows: int, unlabelled_rows: int,
                      num_classes: int = 10) -> list[tuple[int, int, int]]:
    """GEMM shapes of one M2 step: the classifier on both batches, encoder and decoder once per
    labelled image and once per class and unlabelled image; forward and backward."""
    classifier = [(PIXELS, hidden), (hidden, num_classes)]
    encoder = [(PIXELS + num_classes, hidden), (hidden, 2 * latent_dim)]
    decoder = [(latent_dim + num_classes, hidden), (hidden, PIXELS)]
    shapes = []
    for rows, classified in ((labelled_rows, labelled_rows), (num_classes * unlabelled_rows, unlabelled_rows)):
        shapes += linear_gemms(classifier, classified, backward=True)
        shapes += linear_gemms(encoder, rows, backward=True)
        shapes += linear_gemms(decoder, rows, backward=True, first_input_grad=True)
    return shapes


__all__ = ["PlainM2Twin", "PyroStyleM2", "m2_nets", "m2_training_gemms"]
