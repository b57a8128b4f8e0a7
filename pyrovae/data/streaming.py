"""A training set too large for memory, read batch by batch through a ``DataLoader`` with workers."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, default_collate

from pyrovae.data.datasets import DatasetError


def default_workers() -> int:
    """Worker processes for decoding: one per core but one, at least one, at most four."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


class StreamingImages:
    """A training set that :class:`~pyrovae.train.trainer.Trainer` reads through a ``DataLoader``.

    Pass it to ``Trainer.fit`` in place of a tensor of images: each epoch the trainer draws a
    permutation of the indices (from its own generator, so a resumed run sees the same order)
    and the ``DataLoader``'s workers decode the batches in that order, so at most a few batches
    per worker are ever in memory.

    Args:
        dataset: Items ``(image, label)``, image float32 ``(C, H, W)`` (or ``(D,)``) in ``[0, 1]``;
            a dataset with ``__getitems__`` is asked for whole batches at once.
        device: Where the batches go, e.g. ``torch.device("cuda")``.
        num_workers: Decoding processes; 0 decodes in the training process.
    """

    def __init__(self, dataset: Dataset, device: torch.device | str = "cpu", num_workers: int | None = None) -> None:
        self.dataset = dataset
        self.device = torch.device(device)
        self.num_workers = default_workers() if num_workers is None else num_workers

    def __len__(self) -> int:
        return len(self.dataset)

    def head(self, n: int) -> Tensor:
        """The first ``n`` images stacked, ``(min(n, N), *image_shape)`` on :attr:`device`."""
        count = min(n, len(self))
        batches = StreamingBatches(self, batch_size=256, shuffle=False)
        return torch.cat([x for (x,) in batches.iterate(torch.arange(count))])[:count]

    def batches(self, batch_size: int, shuffle: bool = True, generator: torch.Generator | None = None,
                transform: Callable[[Tensor], Tensor] | None = None) -> StreamingBatches:
        """One epoch's batches at a time, like :class:`~pyrovae.data.batches.InMemoryBatches`."""
        return StreamingBatches(self, batch_size, shuffle, generator, transform)


class StreamingBatches:
    """Batches of a :class:`StreamingImages`, with :class:`~pyrovae.data.batches.InMemoryBatches`' interface.

    ``permutation()`` draws an epoch's order, ``iterate(order, start)`` yields ``(x,)`` tuples
    from batch ``start`` on, ``len()`` is the number of batches (the last may be short).
    """

    def __init__(self, source: StreamingImages, batch_size: int, shuffle: bool = True,
                 generator: torch.Generator | None = None,
                 transform: Callable[[Tensor], Tensor] | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.source = source
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.transform = transform

    @property
    def num_examples(self) -> int:
        return len(self.source)

    def __len__(self) -> int:
        return math.ceil(self.num_examples / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor]]:
        return self.iterate(self.permutation())

    def permutation(self) -> Tensor:
        """The order of one epoch, on the CPU (the sampler reads it there)."""
        if not self.shuffle:
            return torch.arange(self.num_examples)
        device = "cpu" if self.generator is None else self.generator.device
        return torch.randperm(self.num_examples, generator=self.generator, device=device).cpu()

    def iterate(self, order: Tensor, start: int = 0) -> Iterator[tuple[Tensor]]:
        """Yield ``(x,)`` for the batches of ``order`` from batch number ``start`` on, ``x`` on the device."""
        indices = order[start * self.batch_size:].cpu().tolist()
        workers = self.source.num_workers if len(indices) > self.batch_size else 0
        loader = DataLoader(self.source.dataset, batch_size=self.batch_size, sampler=indices,
                            num_workers=workers, collate_fn=_collate,
                            pin_memory=self.source.device.type == "cuda",
                            prefetch_factor=4 if workers else None,
                            # its own generator: a DataLoader otherwise draws its workers' seed from
                            # torch's global stream and shifts every later latent draw of the run
                            generator=torch.Generator().manual_seed(0))
        device = self.source.device
        try:
            for batch in loader:
                x = batch[0].to(device, non_blocking=True)
                yield (x if self.transform is None else self.transform(x),)
        except DatasetError as error:  # raised in a worker: keep its last line, the message itself
            lines = [line for line in str(error).splitlines() if line.strip()]
            message = lines[-1].split("DatasetError: ", 1)[-1] if lines else str(error)
            raise DatasetError(message) from None


def _collate(items):
    """Stack per-item samples; a batch a dataset's ``__getitems__`` already stacked passes through."""
    if isinstance(items, tuple):
        return items
    return default_collate(items)


__all__ = ["StreamingBatches", "StreamingImages", "default_workers"]
