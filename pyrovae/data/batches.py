"""Mini-batches sliced from in-memory tensors, and binarization of grey images."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor


class InMemoryBatches:
    """Mini-batches sliced from tensors already in memory (no DataLoader, no per-item work).

    Each epoch (each call to ``iter``) draws one permutation with ``torch.randperm`` on the
    tensors' device and slices it into batches with ``index_select``, so the cost per batch
    is one gather, whatever the dataset size.

    Example:
        >>> batches = InMemoryBatches(images, labels, batch_size=128, transform=dynamic_binarize)
        >>> for x, y in batches: ...

    Args:
        *tensors: Tensors sharing their first dimension ``N`` and device, e.g. images
            ``(N, 1, 28, 28)`` and labels ``(N,)``.
        batch_size: Rows per batch.
        shuffle: Draw a fresh permutation every epoch; otherwise keep the stored order.
        drop_last: Leave out the final batch when it has fewer than ``batch_size`` rows.
        generator: Source of randomness for the permutation, for reproducible epochs. The
            permutation is drawn on the generator's device and, if the tensors live elsewhere
            (a CPU generator with CUDA tensors), copied to theirs once per epoch; batches are
            then gathered on the tensors' device, with no host-device copy per batch.
        transform: Applied to the first tensor of each batch only, e.g.
            :func:`dynamic_binarize`.

    Raises:
        ValueError: If no tensors are given, ``batch_size < 1``, or the tensors disagree
            in length or device.
    """

    def __init__(
        self,
        *tensors: Tensor,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if not tensors:
            raise ValueError("InMemoryBatches needs at least one tensor")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        n, device = tensors[0].shape[0], tensors[0].device
        for i, tensor in enumerate(tensors[1:], start=1):
            if tensor.shape[0] != n:
                raise ValueError(f"tensor {i} has {tensor.shape[0]} rows but tensor 0 has {n}")
            if tensor.device != device:
                raise ValueError(f"tensor {i} is on {tensor.device} but tensor 0 is on {device}")
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator
        self.transform = transform

    @property
    def num_examples(self) -> int:
        """Number of rows ``N`` in each tensor."""
        return self.tensors[0].shape[0]

    def __len__(self) -> int:
        """Number of batches per epoch."""
        if self.drop_last:
            return self.num_examples // self.batch_size
        return math.ceil(self.num_examples / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        """Yield one epoch of batches, each a tuple with one slice of every tensor."""
        return self.iterate(self.permutation())

    def permutation(self) -> Tensor:
        """The order of one epoch: a fresh permutation from ``generator`` (or ``arange`` without shuffling)."""
        n, device = self.num_examples, self.tensors[0].device
        if self.shuffle:
            source = device if self.generator is None else self.generator.device
            return torch.randperm(n, generator=self.generator, device=source).to(device)
        return torch.arange(n, device=device)

    def iterate(self, order: Tensor, start: int = 0) -> Iterator[tuple[Tensor, ...]]:
        """Yield the batches of an epoch in ``order``, from batch number ``start`` on.

        Starting past zero lets a resumed run finish an interrupted epoch in the same order,
        without applying ``transform`` (and drawing its random numbers) for the batches done.
        """
        for b in range(start, len(self)):
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            batch = [tensor.index_select(0, index) for tensor in self.tensors]
            if self.transform is not None:
                batch[0] = self.transform(batch[0])
            yield tuple(batch)


def dynamic_binarize(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Each pixel drawn as Bernoulli(grey value) (Burda et al. 2015 protocol); returns float tensor of 0/1, same shape.

    Drawing a fresh binarization every time an image is seen acts as data augmentation and
    gives the Bernoulli likelihood proper binary data (Burda, Grosse and Salakhutdinov,
    "Importance Weighted Autoencoders", 2015).

    Args:
        images: Grey values in ``[0, 1]``, any shape, e.g. ``(batch, 1, 28, 28)``.
        generator: Source of randomness; must live on the images' device.

    Returns:
        Float tensor of zeros and ones, same shape, dtype and device as ``images``.
    """
    return torch.bernoulli(images, generator=generator)


def binarize_once(images: Tensor, seed: int = 0) -> Tensor:
    """Binarize with a fixed seed, so a test set is the same 0/1 data in every evaluation.

    Args:
        images: Grey values in ``[0, 1]``, any shape, e.g. ``(N, 1, 28, 28)``.
        seed: Seed of the generator, created on the images' device.

    Returns:
        Float tensor of zeros and ones, same shape, dtype and device as ``images``.
    """
    generator = torch.Generator(device=images.device).manual_seed(seed)
    return torch.bernoulli(images, generator=generator)
