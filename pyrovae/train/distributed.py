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

Why every rank stops at the same step
-------------------------------------
A signal reaches one process (or the processes at different moments), and a rank whose loss
alone is not finite would skip a step the others take. Either way a rank that leaves the
loop, or skips, on its own leaves the replicas apart, or the others waiting in the next
all-reduce. :class:`StopAgreement` turns both into flags that every rank reads from one
all-reduce per step (see there), so all ranks skip the same steps and stop after the same one.

Why resuming with another number of processes continues the same data
----------------------------------------------------------------------
The global batch of step ``s`` in an epoch is positions ``[s G, (s + 1) G)`` of that epoch's
permutation of the data (drawn from ``seed + epoch``), with ``G = W B`` the global batch size;
rank ``r`` takes every ``W``-th of them. The sequence of global batches therefore depends on
the seed, the epoch and ``G``, not on ``W``: a run resumed with ``W'`` processes and local
batches of ``G / W'`` (``pyrovae train --resume`` chooses it) sees the same samples at the
same steps. Only the last, partial global batch of each epoch differs: it is padded with up to
``W - 1`` points from the start of the permutation so that it splits evenly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from pyrovae.data.semisupervised import SemiSupervisedSplit
from pyrovae.train.sharding import ShardedBatches, ShardedMixedBatches

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (it sets ``RANK`` and ``WORLD_SIZE``)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


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
        read_every: on an accelerator, read the agreed stop flag every this many steps
            (:class:`StopAgreement`).
    """

    def __init__(self, device: torch.device | str = "cpu", seed: int = 0,
                 find_unused_parameters: bool = False, read_every: int = 10) -> None:
        if not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised: start the run with torchrun "
                               "or call DataParallel.from_environment()")
        self.device = torch.device(device)
        self.seed = seed
        self.find_unused_parameters = find_unused_parameters
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.agreement = StopAgreement(self.device, read_every=read_every)

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
        """This rank's :class:`ShardedBatches` on this rank's device (streamed from the CPU, in
        pinned memory, when the tensors stay there); ``generator`` is unused (the shuffle comes
        from ``seed + epoch``, which must agree across ranks)."""
        return ShardedBatches(*tensors, batch_size=batch_size, rank=self.rank,
                              world_size=self.world_size, seed=self.seed, shuffle=shuffle,
                              transform=transform, device=self.device)

    def mixed_batches(self, split: SemiSupervisedSplit, batch_size: int, labelled_batch_size: int,
                      generator: torch.Generator | None = None,
                      transform: Callable[[Tensor], Tensor] | None = None,
                      labelled_every: int = 1) -> ShardedMixedBatches:
        """This rank's M2 batches (:class:`ShardedMixedBatches`); ``generator`` is unused, as in :meth:`batches`."""
        return ShardedMixedBatches(split, batch_size, labelled_batch_size, rank=self.rank,
                                   world_size=self.world_size, seed=self.seed, transform=transform,
                                   labelled_every=labelled_every)

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
        data = data.to(self.device)  # a no-op unless the data stay on the CPU (streamed training)
        context = None if context is None else context.to(self.device)
        figures = evaluate(data, context)
        count = float(data.shape[0])
        sums = torch.tensor([count * v for v in figures.values()] + [count],
                            dtype=torch.float64, device=self.device)
        dist.all_reduce(sums)
        return {key: (sums[i] / sums[-1]).item() for i, key in enumerate(figures)}

    def agree(self, loss: Tensor, local_signal: int | None) -> Tensor:
        """This step's :class:`StopAgreement`: ``loss``, NaN on every rank where any rank's is not finite."""
        return self.agreement.step(loss, local_signal)

    def agree_now(self, local_signal: int | None) -> int | None:
        """The stop signal all ranks agree on, at once (a blocking all-reduce)."""
        return self.agreement.now(local_signal)

    @property
    def signal(self) -> int | None:
        """The stop signal all ranks agreed on at the last reading, or None."""
        return self.agreement.signal

    def barrier(self) -> None:
        """Wait until every rank gets here (e.g. before reading a file rank 0 wrote)."""
        dist.barrier()

    def close(self) -> None:
        """Leave and destroy the process group."""
        if dist.is_initialized():
            dist.destroy_process_group()


class StopAgreement:
    """One all-reduce per step by which all ranks skip the same steps and stop at the same step.

    After the backward pass (gradients already averaged by DDP) each rank puts two numbers in a
    tensor on its device: 1 if its own loss is not finite, and the number of the signal that
    asked it to stop (0 if none). An all-reduce with MAX makes them the same on every rank. The
    first makes every rank's non-finite guard skip the step when any rank's loss is not finite
    (otherwise the ranks whose loss is finite would step and the replicas would drift apart);
    the second becomes :attr:`signal`, which the training loop acts on instead of the local
    request, so every rank stops after the same step (with the larger signal number if two
    ranks received different ones).

    Only the all-reduce runs every step. Reading the signal from the device is a host sync on
    an accelerator, so it happens every ``read_every`` steps there (every step on the CPU,
    where it costs nothing); a stop then comes at most ``read_every - 1`` steps later, on all
    ranks alike. ``benchmarks/ddp_gpu.py`` measures the cost per step.

    Args:
        device: this rank's device (the flags live there: NCCL reduces device tensors only).
        read_every: on an accelerator, read the signal every this many steps.
    """

    def __init__(self, device: torch.device | str, read_every: int = 10) -> None:
        if read_every < 1:
            raise ValueError(f"read_every must be at least 1, got {read_every}")
        self.device = torch.device(device)
        self.read_every = 1 if self.device.type == "cpu" else read_every
        self.signal: int | None = None
        self._steps = 0

    def step(self, loss: Tensor, local_signal: int | None) -> Tensor:
        """Agree on this step; returns ``loss`` (0-d), or NaN where any rank's loss is not finite.

        Call it on every rank at every step, between ``backward`` and the optimizer step.
        """
        loss = loss.detach().to(self.device)
        nonfinite = (~torch.isfinite(loss)).to(torch.float32)
        flags = torch.stack((nonfinite, nonfinite.new_full((), float(local_signal or 0))))
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        self._steps += 1
        if self._steps % self.read_every == 0:
            self.signal = int(flags[1].item()) or None
        return torch.where(flags[0] > 0, torch.nan, loss)

    def now(self, local_signal: int | None) -> int | None:
        """Agree at once (a blocking all-reduce), e.g. at the end of an epoch; sets and returns :attr:`signal`."""
        flag = torch.tensor(float(local_signal or 0), device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self.signal = int(flag.item()) or None
        return self.signal


class GlobalOrder:
    """One process that follows the data order of a data-parallel run: the ``parallel=`` of a
    :class:`~pyrovae.Trainer` continuing, without ``torchrun``, a run trained on several.

    Its batches are :class:`ShardedBatches` with one rank, so with the run's global batch size
    as ``batch_size`` the process sees the global batches the ranks saw together; everything
    else is the plain one-process path (no wrapping, no reduction).

    Args:
        device: where the data and the model live.
        seed: the data-parallel run's seed of the per-epoch shuffle.
    """

    rank = 0
    world_size = 1
    is_main = True

    def __init__(self, device: torch.device | str = "cpu", seed: int = 0) -> None:
        self.device = torch.device(device)
        self.seed = seed
        self.signal: int | None = None

    def wrap(self, loss: nn.Module) -> nn.Module:
        return loss

    def batches(self, *tensors: Tensor, batch_size: int, shuffle: bool = True,
                generator: torch.Generator | None = None,
                transform: Callable[[Tensor], Tensor] | None = None) -> ShardedBatches:
        return ShardedBatches(*tensors, batch_size=batch_size, rank=0, world_size=1, seed=self.seed,
                              shuffle=shuffle, transform=transform)

    def mixed_batches(self, split: SemiSupervisedSplit, batch_size: int, labelled_batch_size: int,
                      generator: torch.Generator | None = None,
                      transform: Callable[[Tensor], Tensor] | None = None,
                      labelled_every: int = 1) -> ShardedMixedBatches:
        return ShardedMixedBatches(split, batch_size, labelled_batch_size, rank=0, world_size=1, seed=self.seed,
                                   transform=transform, labelled_every=labelled_every)

    def mean(self, value: Tensor) -> Tensor:
        return value.detach().to(self.device, torch.float64)

    def evaluate(self, evaluate: Callable[[Tensor, Tensor | None], dict[str, float]],
                 data: Tensor, context: Tensor | None = None) -> dict[str, float]:
        return evaluate(data, context)

    def agree(self, loss: Tensor, local_signal: int | None) -> Tensor:
        self.signal = local_signal
        return loss

    def agree_now(self, local_signal: int | None) -> int | None:
        self.signal = local_signal
        return local_signal

    def barrier(self) -> None:
        pass

    def close(self) -> None:
        pass


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of rank ``rank``'s random draws after step ``step`` (distinct for up to 4096 ranks)."""
    return ((seed * 1_000_003 + step) * 4096 + rank) % 2**63


class RankSeeds:
    """Callbacks that reseed this rank's random state after every step and every epoch from
    :func:`step_seed`, so that the noise a rank draws (Pyro's sampling, a transform's
    ``generator``) is a function of (seed, rank, step).

    A data-parallel run resumed with the same number of processes then draws the same noise
    as an uninterrupted one, without every rank's random state in the checkpoint. Call
    :meth:`reseed` with the step count before training (or resuming).

    Args:
        seed: the run's seed.
        rank: this process's rank.
        generator: a generator to reseed too (e.g. the one of dynamic binarization).
    """

    def __init__(self, seed: int, rank: int, generator: torch.Generator | None = None) -> None:
        self.seed = seed
        self.rank = rank
        self.generator = generator

    def reseed(self, step: int) -> None:
        import pyro

        value = step_seed(self.seed, self.rank, step)
        pyro.set_rng_seed(value % 2**32)  # NumPy's seed must fit in 32 bits
        torch.manual_seed(value)
        if self.generator is not None:
            self.generator.manual_seed(value)

    def on_step(self, trainer: Any) -> None:
        self.reseed(trainer.record.steps)

    def on_epoch(self, trainer: Any, figures: dict[str, float]) -> None:
        self.reseed(trainer.record.steps)


__all__ = ["DataParallel", "GlobalOrder", "RankSeeds", "ShardedBatches", "ShardedMixedBatches", "StopAgreement",
           "launched_by_torchrun", "step_seed"]
