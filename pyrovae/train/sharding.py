"""Each rank's share of every epoch's batches: the data order of data-parallel training.

The order of an epoch is a function of the seed and the epoch only, the same on every rank
(``DistributedSampler``'s rule), so that a run can be resumed with another number of processes
and go on with the same sequence of global batches (:mod:`pyrovae.train.distributed`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from pyrovae.data.batches import InMemoryBatches
from pyrovae.data.semisupervised import MixedBatches, SemiSupervisedSplit


class ShardedBatches(InMemoryBatches):
    """One rank's mini-batches of every epoch, with ``DistributedSampler`` semantics, on in-memory tensors.

    Each epoch draws one permutation of ``N`` from a CPU generator seeded with
    ``seed + epoch`` (identical on every rank), pads it by repeating its start to a multiple of
    ``world_size`` (or, with ``drop_last``, cuts it down to one), and rank ``r`` keeps positions
    ``r, r + W, r + 2W, ...``. The shard is then sliced into batches of ``batch_size``, so all
    ranks take the same number of steps with the same batch sizes. Padding repeats fewer than
    ``world_size`` points per epoch.

    Args:
        *tensors: tensors sharing their first dimension ``N`` and device, e.g. images
            ``(N, 1, 28, 28)`` and labels ``(N,)``.
        batch_size: rows per local batch (per rank, per step).
        rank, world_size: this process's index and the number of processes.
        seed: shared seed of the shuffle; must be the same on every rank.
        shuffle: a fresh permutation every epoch; otherwise the stored order.
        drop_last: drop the tail of the permutation instead of padding it, and the last local
            batch when it is short (as ``InMemoryBatches``), so that every batch is full.
        transform: applied to the first tensor of each batch, e.g. ``dynamic_binarize``.
        device: where the batches go. By default the tensors' device. Tensors on the CPU with a
            CUDA ``device`` (data that do not fit on the GPU) are streamed: each batch is
            gathered on the CPU, copied into pinned (page-locked) memory and sent with
            ``non_blocking=True``, one batch ahead, so the host prepares the next batch while
            the GPU works and no copy waits for the host; ``transform`` then runs on the device.
    """

    def __init__(
        self,
        *tensors: Tensor,
        batch_size: int,
        rank: int,
        world_size: int,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        transform: Callable[[Tensor], Tensor] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
        # Row counts, devices and batch_size are checked, and the batching is done, by InMemoryBatches;
        # this class only chooses each rank's rows (``permutation``) and their number (``__len__``).
        super().__init__(*tensors, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                         transform=transform)
        n = self.num_examples
        if n < world_size:
            raise ValueError(f"{n} data points cannot be shared among {world_size} processes; "
                             "use fewer processes or more data")
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.epoch = 0
        self.device = self.tensors[0].device if device is None else torch.device(device)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation the next ``iter`` uses (call it before every epoch)."""
        self.epoch = epoch

    @property
    def shard_size(self) -> int:
        """Rows this rank sees per epoch, equal on every rank."""
        n = self.num_examples
        return n // self.world_size if self.drop_last else math.ceil(n / self.world_size)

    def __len__(self) -> int:
        """Local batches per epoch, equal on every rank."""
        if self.drop_last:
            return self.shard_size // self.batch_size
        return math.ceil(self.shard_size / self.batch_size)

    def permutation(self) -> Tensor:
        """This rank's rows of the current epoch, in the order it visits them, ``(shard_size,)``
        on the tensors' device (the same interface as ``InMemoryBatches.permutation``)."""
        n = self.tensors[0].shape[0]
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        total = self.shard_size * self.world_size
        if total > n:
            order = torch.cat([order, order[: total - n]])
        return order[self.rank : total : self.world_size].to(self.tensors[0].device)

    def iterate(self, order: Tensor, start: int = 0) -> Iterator[tuple[Tensor, ...]]:
        """The batches of the epoch in ``order`` from batch ``start`` on, on :attr:`device`."""
        if self.tensors[0].device.type != "cpu" or self.device.type == "cpu":  # nothing to stream
            yield from super().iterate(order, start)
            return
        pin = self.device.type == "cuda" and torch.cuda.is_available()

        def send(b: int) -> list[Tensor]:
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            batch = [tensor.index_select(0, index) for tensor in self.tensors]
            return [(t.pin_memory() if pin else t).to(self.device, non_blocking=pin) for t in batch]

        ahead = send(start) if start < len(self) else None
        for b in range(start, len(self)):
            batch, ahead = ahead, (send(b + 1) if b + 1 < len(self) else None)
            if self.transform is not None:
                batch[0] = self.transform(batch[0])
            yield tuple(batch)


class ShardedMixedBatches(MixedBatches):
    """M2's batches (:class:`~pyrovae.data.semisupervised.MixedBatches`) with each rank's share
    of the labelled and of the unlabelled images.

    Both sets are sharded as :class:`ShardedBatches`: every step, each rank gets
    ``batch_size`` unlabelled and ``labelled_batch_size`` labelled images, so the global step sees
    ``W`` times each and the same labelled fraction as one process with the global batch sizes.
    The labelled set, shorter, is passed over several times an epoch; pass ``p`` of epoch ``e``
    draws the order of the labelled shards' "epoch" ``e * passes + p``, a function of the seed
    again. Labelled batches are always full (``drop_last``).

    Args:
        split: the data.
        batch_size: unlabelled images per rank and step.
        labelled_batch_size: labelled images per rank and step (capped at each rank's share).
        rank, world_size, seed: as :class:`ShardedBatches`.
        transform: applied to both image batches.
        labelled_every: the labelled batch on every n-th step of an epoch only.
    """

    def __init__(self, split: SemiSupervisedSplit, batch_size: int, labelled_batch_size: int, *, rank: int,
                 world_size: int, seed: int = 0, transform: Callable[[Tensor], Tensor] | None = None,
                 labelled_every: int = 1) -> None:
        super().__init__(split, batch_size, labelled_batch_size, transform=transform, labelled_every=labelled_every)
        share = split.labelled_images.shape[0] // world_size
        self.unlabelled = ShardedBatches(split.unlabelled_images, batch_size=batch_size, rank=rank,
                                         world_size=world_size, seed=seed, transform=transform)
        self.labelled = ShardedBatches(split.labelled_images, split.labelled_labels,
                                       batch_size=max(1, min(labelled_batch_size, share)), rank=rank,
                                       world_size=world_size, seed=seed, drop_last=True, transform=transform)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next :meth:`permutation` draws."""
        self.epoch = epoch
        self.unlabelled.set_epoch(epoch)

    def permutation(self) -> tuple[Tensor, list[Tensor]]:
        """This rank's unlabelled order and its labelled passes' orders for the current epoch."""
        needed = -(-len(self) // self.labelled_every)
        passes = -(-needed // len(self.labelled))
        orders = []
        for p in range(passes):
            self.labelled.set_epoch(self.epoch * passes + p)
            orders.append(self.labelled.permutation())
        return self.unlabelled.permutation(), orders


__all__ = ["ShardedBatches", "ShardedMixedBatches"]
