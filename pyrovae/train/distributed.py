"""Data-parallel training over processes and machines: ``torch.distributed`` plus ``DistributedDataParallel``.

Start one process per device with ``torchrun``; each process builds the same model, hands a
:class:`DataParallel` to the :class:`~pyrovae.Trainer`, and trains on its own shard of every
epoch. Nothing here is home-made: the process group, the gradient all-reduce and the parameter
broadcast are PyTorch's.

Why the loss scale is right
---------------------------
The model's data plate has no ``subsample_size`` and no ``scale``, so on every rank the loss
module returns ``L_r = (1/B) sum_{i in batch_r} l_i``, the mean per-point loss (negative ELBO)
over the *local* batch of ``B`` points; each ``L_r`` estimates the same full-data mean. DDP
averages the gradients over the ``W`` ranks, so every rank applies

    (1/W) sum_r grad L_r = (1/(W B)) sum_{i in all batches} grad l_i,

the gradient of the mean over the global batch of ``W * B`` points. That identity needs equal
``B`` on all ranks at every step, which :class:`ShardedBatches` guarantees (equal-length shards
sliced into the same batch sizes, the last partial batch included), and the same KL weight on
all ranks, which holds because the warm-up schedule is a function of the step count and every
rank takes the same number of steps.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from pyrovae.data.batches import InMemoryBatches

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (it sets ``RANK`` and ``WORLD_SIZE``)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


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
        drop_last: drop the tail of the permutation instead of padding it.
        transform: applied to the first tensor of each batch, e.g. ``dynamic_binarize``.
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


class DataParallel:
    """The data-parallel strategy a :class:`~pyrovae.Trainer` takes as ``parallel=``.

    It wraps the training loss module in ``DistributedDataParallel`` (gradients all-reduced and
    averaged, parameters broadcast from rank 0 at wrapping), gives each rank its shard of every
    epoch (:class:`ShardedBatches`), and averages figures across ranks. Evaluation is shared:
    each rank scores rows ``rank::world_size`` and the count-weighted means are all-reduced, so
    evaluation costs ``1/W`` of the single-process time and every rank gets the same figures
    (callbacks that decide something, such as stopping, then decide alike everywhere).

    Build it with :meth:`from_environment` in a process started by ``torchrun``, or directly
    once ``torch.distributed`` is initialised.

    Args:
        device: this rank's device (``cuda:LOCAL_RANK`` under NCCL, the CPU under gloo).
        seed: seed of the per-epoch shuffle, the same on every rank.
        find_unused_parameters: passed to DDP; set it for models in which some parameters get
            no gradient in some steps.
    """

    def __init__(self, device: torch.device | str = "cpu", seed: int = 0,
                 find_unused_parameters: bool = False) -> None:
        if not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised: start the run with torchrun "
                               "or call DataParallel.from_environment()")
        self.device = torch.device(device)
        self.seed = seed
        self.find_unused_parameters = find_unused_parameters
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()

    @classmethod
    def from_environment(cls, seed: int = 0, device: torch.device | str | None = None,
                         backend: str | None = None,
                         find_unused_parameters: bool = False) -> DataParallel:
        """Join the process group that ``torchrun`` describes in ``RANK``, ``WORLD_SIZE``,
        ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.

        Args:
            seed: seed of the per-epoch shuffle, the same on every rank.
            device: ``"cuda"`` (this rank gets ``cuda:LOCAL_RANK``, backend NCCL) or ``"cpu"``
                (backend gloo); None picks CUDA when it is available.
            backend: overrides the backend chosen from the device.
            find_unused_parameters: passed to DDP.
        """
        missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
        if missing:
            raise RuntimeError(f"environment variables {', '.join(missing)} are not set: "
                               "start the run with torchrun --nproc_per_node=N ...")
        kind = torch.device(device).type if device is not None else (
            "cuda" if torch.cuda.is_available() else "cpu")
        if kind == "cuda":
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(device)
        elif kind == "cpu":
            device = torch.device("cpu")
        else:
            raise ValueError(f"data-parallel training runs on CPUs (gloo) or CUDA GPUs (NCCL), "
                             f"not on {kind}; choose the cpu or cuda device")
        backend = backend or ("nccl" if kind == "cuda" else "gloo")
        if not dist.is_initialized():
            kwargs = {"device_id": device} if backend == "nccl" else {}
            dist.init_process_group(backend, init_method="env://", **kwargs)
        return cls(device, seed=seed, find_unused_parameters=find_unused_parameters)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, metrics and pictures."""
        return self.rank == 0

    def wrap(self, loss: nn.Module) -> nn.Module:
        """``loss`` (e.g. :class:`~pyrovae.train.trainer.ELBOLoss`) in ``DistributedDataParallel``.

        The wrapped parameters are the very tensors of the model, so the optimizer, Pyro's param
        store and ``module.state_dict()`` (no ``module.`` prefix) keep working on the plain model.
        """
        device_ids = [self.device] if self.device.type == "cuda" else None
        return DistributedDataParallel(loss, device_ids=device_ids,
                                       find_unused_parameters=self.find_unused_parameters)

    def batches(self, *tensors: Tensor, batch_size: int, shuffle: bool = True,
                generator: torch.Generator | None = None,
                transform: Callable[[Tensor], Tensor] | None = None) -> ShardedBatches:
        """This rank's :class:`ShardedBatches`; ``generator`` is unused (the shuffle comes from
        ``seed + epoch``, which must agree across ranks)."""
        return ShardedBatches(*tensors, batch_size=batch_size, rank=self.rank,
                              world_size=self.world_size, seed=self.seed, shuffle=shuffle,
                              transform=transform)

    def mean(self, value: Tensor) -> Tensor:
        """The elementwise average of ``value`` over ranks, in float64 on this rank's device
        (the same on every rank); e.g. a loss total, or a ``(sum, count)`` pair whose ratio
        is then the all-rank ratio."""
        value = value.detach().to(self.device, torch.float64).clone()
        dist.all_reduce(value)
        return value / self.world_size

    def evaluate(self, evaluate: Callable[[Tensor, Tensor | None], dict[str, float]],
                 data: Tensor, context: Tensor | None = None) -> dict[str, float]:
        """Run ``evaluate`` (per-point means over the data it gets) on this rank's rows
        ``rank::world_size`` and combine the ranks' means weighted by their row counts.

        Returns the same dict on every rank: the means over all of ``data``. With fewer rows
        than ranks, every rank scores all rows.
        """
        if data.shape[0] >= self.world_size:
            data = data[self.rank :: self.world_size]
            context = None if context is None else context[self.rank :: self.world_size]
        figures = evaluate(data, context)
        count = float(data.shape[0])
        sums = torch.tensor([count * v for v in figures.values()] + [count],
                            dtype=torch.float64, device=self.device)
        dist.all_reduce(sums)
        return {key: (sums[i] / sums[-1]).item() for i, key in enumerate(figures)}

    def barrier(self) -> None:
        """Wait until every rank gets here (e.g. before reading a file rank 0 wrote)."""
        dist.barrier()

    def close(self) -> None:
        """Leave and destroy the process group."""
        if dist.is_initialized():
            dist.destroy_process_group()


__all__ = ["DataParallel", "ShardedBatches", "launched_by_torchrun"]
