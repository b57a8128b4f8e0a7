"""The supervised baseline of Pyro's CVAE tutorial: a deterministic net that predicts the hidden
pixels of an image from its visible ones, trained by masked binary cross-entropy.

It is both a reference figure (its conditional NLL) and the CVAE prior network's first guess:
:class:`~pyrovae.models.cvae.ConditionalVAE` fills the hidden pixels of the context
with the baseline's prediction before its prior network sees it (Sohn et al. 2015, Sec. 4.2).
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyrovae.nn.rebuild import Rebuildable
from pyrovae.data.batches import InMemoryBatches
from pyrovae.data.quadrants import fill_hidden, hidden_pixels
from pyrovae.train.trainer import TrainingRecord


class MaskedBaseline(Rebuildable, nn.Module):
    """A net from context images to per-pixel Bernoulli logits, scored on hidden pixels only.

    Args:
        net: maps ``(batch, C, H, W)`` context images (hidden pixels = -1) to
            ``(batch, C*H*W)`` or ``(batch, C, H, W)`` logits, e.g. ``MLP((1, 28, 28), (500, 500), 784, "relu")``.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, context: Tensor) -> Tensor:
        """Logits ``(batch, C, H, W)``."""
        return self.net(context).reshape(context.shape)

    def log_likelihood(self, context: Tensor, target: Tensor) -> Tensor:
        """``sum over hidden pixels of log Bernoulli(target | sigmoid(logits))`` (minus the binary
        cross-entropy on grey values), shape ``(batch,)``."""
        bce = F.binary_cross_entropy_with_logits(self(context), target, reduction="none")
        return -(bce * hidden_pixels(context)).flatten(1).sum(-1)

    @torch.no_grad()
    def predict(self, context: Tensor) -> Tensor:
        """Whole images ``(batch, C, H, W)``: predicted probabilities in the hidden pixels, the
        context in the visible ones."""
        return fill_hidden(context, torch.sigmoid(self(context)))


def fit_baseline(baseline: MaskedBaseline, context: Tensor, target: Tensor, *, epochs: int = 10,
                 validation: tuple[Tensor, Tensor] | None = None, patience: int = 3,
                 lr: float = 1e-3, batch_size: int = 256,
                 generator: torch.Generator | None = None) -> TrainingRecord:
    """Train the baseline by Adam on the masked cross-entropy; with ``validation``, stop after
    ``patience`` epochs without improvement and keep the best weights (the tutorial's protocol).

    Args:
        baseline: the module, trained in place.
        context, target: ``(N, C, H, W)`` context images and whole images.
        epochs: maximum passes over the data.
        validation: ``(context, target)`` for early stopping, or None.

    Returns:
        A record with ``train_nll`` (and ``val_nll``) per epoch, per image, in nats.
    """
    record = TrainingRecord()
    batches = InMemoryBatches(context, target, batch_size=batch_size, generator=generator)
    optimizer = torch.optim.Adam(baseline.parameters(), lr=lr)
    best, best_state, waited = float("inf"), None, 0
    for epoch in range(epochs):
        start = time.perf_counter()
        total = torch.zeros((), device=context.device)
        for c, t in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = -baseline.log_likelihood(c, t).mean()
            loss.backward()
            optimizer.step()
            total += loss.detach()
            record.steps += 1
        figures = {"epoch": epoch + 1, "train_nll": total.item() / len(batches)}
        if validation is not None:
            with torch.no_grad():
                figures["val_nll"] = -baseline.log_likelihood(*validation).mean().item()
        figures["seconds"] = time.perf_counter() - start
        record.seconds += figures["seconds"]
        record.history.append(figures)
        if validation is not None:
            if figures["val_nll"] < best:
                best, best_state, waited = figures["val_nll"], copy.deepcopy(baseline.state_dict()), 0
            else:
                waited += 1
                if waited >= patience:
                    break
    if best_state is not None:
        baseline.load_state_dict(best_state)
    return record


__all__ = ["MaskedBaseline", "fit_baseline"]
