"""Labelled/unlabelled splits for semi-supervised learning and batches that mix the two.

Mixing rule
-----------
Each optimisation step sees one unlabelled batch and one labelled batch (:class:`MixedBatches`).
An epoch is one pass over the unlabelled images; the labelled set is reshuffled and cycled
as often as needed, so with 100 labels every labelled image is used at every step. The loss of
each step is the per-image mean over each batch, summed: labelled images therefore weigh much
more than their share of the data (``N_unlabelled / N_labelled`` times more than in the exact
objective). That is the usual practical choice for very few labels; Pyro's SS-VAE tutorial
instead interleaves labelled batches in proportion (each labelled image once per epoch), which
follows the exact objective but lets the classifier see its labels only once per epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from pyrovae.data.batches import InMemoryBatches


@dataclass(frozen=True)
class SemiSupervisedSplit:
    """Training images split into a class-balanced labelled subset, the unlabelled rest, and a
    labelled validation set (for model choice; never the test set).

    Attributes:
        labelled_images: ``(N_l, *image_shape)``.
        labelled_labels: int64 ``(N_l,)``.
        unlabelled_images: ``(N_u, *image_shape)``; their labels are dropped.
        validation_images: ``(N_v, *image_shape)``.
        validation_labels: int64 ``(N_v,)``.
        num_classes: number of classes.
    """

    labelled_images: Tensor
    labelled_labels: Tensor
    unlabelled_images: Tensor
    validation_images: Tensor
    validation_labels: Tensor
    num_classes: int


def split_labelled(images: Tensor, labels: Tensor, num_labelled: int, num_validation: int = 10000,
                   seed: int = 0, num_classes: int | None = None) -> SemiSupervisedSplit:
    """Draw a validation set, then ``num_labelled // num_classes`` labelled images per class.

    Args:
        images: ``(N, *image_shape)`` training images.
        labels: int64 ``(N,)``.
        num_labelled: size of the labelled subset; must be a multiple of the number of classes
            so that the subset is exactly balanced.
        num_validation: images held out, with labels, for validation (random, not balanced).
        seed: seed of the draws; the same seed gives the same split.
        num_classes: number of classes; default ``labels.max() + 1``.

    Returns:
        The split; the three parts are disjoint and together cover ``images``.

    Raises:
        ValueError: if the counts do not fit the data.
    """
    n = images.shape[0]
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    k = int(labels.max()) + 1 if num_classes is None else num_classes
    if num_labelled < k or num_labelled % k:
        raise ValueError(f"--labels {num_labelled} cannot be split evenly over {k} classes: "
                         f"use a positive multiple of {k}")
    if num_validation < 0 or num_validation + num_labelled >= n:
        raise ValueError(f"{num_labelled} labelled + {num_validation} validation images leave no "
                         f"unlabelled images out of {n}: ask for fewer")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator).to(labels.device)
    validation, rest = order[:num_validation], order[num_validation:]
    per_class = num_labelled // k
    chosen = []
    for c in range(k):
        members = rest[labels[rest] == c]
        if members.numel() < per_class:
            raise ValueError(f"class {c} has only {members.numel()} images outside the validation "
                             f"set, fewer than the {per_class} labelled ones asked for")
        chosen.append(members[:per_class])
    labelled = torch.cat(chosen)
    is_labelled = torch.zeros(n, dtype=torch.bool, device=labels.device)
    is_labelled[labelled] = True
    unlabelled = rest[~is_labelled[rest]]
    return SemiSupervisedSplit(images[labelled], labels[labelled], images[unlabelled],
                               images[validation], labels[validation], k)


class MixedBatches:
    """One epoch = one pass over the unlabelled images; each item is
    ``(x_labelled, y_labelled, x_unlabelled)`` (see the module notes for why).

    Each epoch's order is drawn at its start (:meth:`permutation`): the unlabelled order and as
    many labelled orders as the epoch's labelled batches need, so that an epoch can be replayed
    from any batch on (:meth:`iterate`), as a resumed training run does.

    Args:
        split: the data.
        batch_size: unlabelled images per step.
        labelled_batch_size: labelled images per step (capped at the labelled set's size).
        generator: random source for both shuffles.
        transform: applied to both image batches (e.g. dynamic binarization).
        labelled_every: give the labelled batch on every n-th batch of an epoch only (the
            first, the (n+1)-th, ...); the others carry ``None, None`` in its place.
    """

    def __init__(self, split: SemiSupervisedSplit, batch_size: int, labelled_batch_size: int = 100,
                 generator: torch.Generator | None = None,
                 transform: Callable[[Tensor], Tensor] | None = None, labelled_every: int = 1) -> None:
        if not (isinstance(labelled_every, int) and labelled_every >= 1):
            raise ValueError(f"labelled_every must be a whole number >= 1, got {labelled_every!r}")
        self.unlabelled = InMemoryBatches(split.unlabelled_images, batch_size=batch_size,
                                          generator=generator, transform=transform)
        self.labelled = InMemoryBatches(split.labelled_images, split.labelled_labels,
                                        batch_size=min(labelled_batch_size, split.labelled_images.shape[0]),
                                        drop_last=True, generator=generator, transform=transform)
        self.labelled_every = labelled_every

    def __len__(self) -> int:
        return len(self.unlabelled)

    def permutation(self) -> tuple[Tensor, list[Tensor]]:
        """An epoch's order: the unlabelled permutation and the labelled passes' permutations."""
        unlabelled = self.unlabelled.permutation()
        needed = -(-len(self) // self.labelled_every)
        passes = -(-needed // len(self.labelled))
        return unlabelled, [self.labelled.permutation() for _ in range(passes)]

    def iterate(self, order: tuple[Tensor, list[Tensor]], start: int = 0
                ) -> Iterator[tuple[Tensor | None, Tensor | None, Tensor]]:
        """The batches of an epoch in ``order``, from batch number ``start`` on."""
        unlabelled, labelled = order
        per_pass = len(self.labelled)
        for b, (x_u,) in enumerate(self.unlabelled.iterate(unlabelled, start), start=start):
            if b % self.labelled_every:
                yield None, None, x_u
                continue
            j = b // self.labelled_every  # labelled batches before this one in the epoch
            x_l, y_l = next(self.labelled.iterate(labelled[j // per_pass], j % per_pass))
            yield x_l, y_l, x_u

    def __iter__(self) -> Iterator[tuple[Tensor | None, Tensor | None, Tensor]]:
        return self.iterate(self.permutation())


__all__ = ["SemiSupervisedSplit", "split_labelled", "MixedBatches"]
