"""Data-parallel training speed: pyrovae's Trainer under torchrun against a plain-PyTorch DDP twin.

Start it as training is started, one process per GPU::

    torchrun --standalone --nproc_per_node 8 benchmarks/ddp_gpu.py --device cuda
    torchrun --standalone --nproc_per_node 2 benchmarks/ddp_gpu.py --device cpu --train-size 2000 --hidden 64

Both contenders train the same VAE (Pyro's tutorial networks, ``--hidden`` units, a standard
Normal prior, Bernoulli pixels) on the same shards of the same data (the bundled MNIST subset,
tiled ``--repeat`` times) with the same global batch: pyrovae's
:class:`~pyrovae.Trainer` with :class:`~pyrovae.train.distributed.DataParallel`, and
``benchmarks/twins.py``'s :class:`PlainTwin` wrapped in ``DistributedDataParallel`` with
its own loop. Rank 0 prints, per contender, the median epoch time over ``--epochs`` timed
epochs (after one warm-up epoch), images per second over all processes, and pyrovae's time as
a multiple of the twin's. ``--stream`` leaves the data on the CPU and streams batches through
pinned memory (:class:`~pyrovae.train.distributed.ShardedBatches`).

It also times :class:`~pyrovae.train.distributed.StopAgreement`, the per-step all-reduce that
lets every rank stop at the same step: ``--agreement-steps`` calls against the same loop without
it, in microseconds per step. ``--json PATH`` writes every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pyrovae  # noqa: E402
from pyrovae.data import load_dataset  # noqa: E402
from pyrovae.train.distributed import DataParallel, ShardedBatches, StopAgreement  # noqa: E402
from twins import PlainTwin, decoder_net, encoder_net  # noqa: E402

PIXELS = 28 * 28


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per process and step")
    parser.add_argument("--train-size", type=int, default=10000, help="images of the bundled subset used")
    parser.add_argument("--repeat", type=int, default=1, help="tile the training images this many times")
    parser.add_argument("--hidden", type=int, default=400)
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--stream", action="store_true", help="keep the data on the CPU, stream pinned batches")
    parser.add_argument("--agreement-steps", type=int, default=2000)
    parser.add_argument("--json", default=None, help="write the figures to this file (rank 0)")
    return parser.parse_args(argv)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pyrovae_epochs(args: argparse.Namespace, parallel: DataParallel, train: Tensor) -> list[float]:
    """Seconds of the optimisation steps of each epoch (``train_seconds``, read after the
    epoch's loss reached the host), warm-up epoch first."""
    d = args.latent_dim
    vae = pyrovae.VAE(pyrovae.DiagonalNormalEncoder(pyrovae.MLP((1, 28, 28), (args.hidden,), 2 * d), d),
                      pyrovae.BernoulliLikelihood(pyrovae.MLP(d, (args.hidden,), PIXELS), (1, 28, 28)),
                      pyrovae.StandardNormalPrior(d), name="ddp-bench").to(parallel.device)
    trainer = pyrovae.Trainer(vae, parallel=parallel, batch_size=args.batch_size, progress=False, compile=False)
    record = trainer.fit(train, None, epochs=args.epochs + 1, eval_size=args.batch_size)
    return [figures["train_seconds"] for figures in record.history]


class TwinLoss(nn.Module):
    """The twin's loss as a module's ``forward``, so that DDP hooks its backward."""

    def __init__(self, twin: PlainTwin) -> None:
        super().__init__()
        self.twin = twin

    def forward(self, x: Tensor) -> Tensor:
        return self.twin.loss(x)


def twin_epochs(args: argparse.Namespace, parallel: DataParallel, train: Tensor) -> list[float]:
    """The plain-PyTorch twin in DDP on the same shards: seconds per epoch, warm-up first."""
    device = parallel.device
    fused = {"fused": True} if device.type == "cuda" else {}
    twin = PlainTwin(encoder_net(PIXELS, args.hidden, args.latent_dim), decoder_net(PIXELS, args.hidden,
                     args.latent_dim), args.latent_dim, {"lr": 1e-3, **fused}).to(device)
    loss_module = DistributedDataParallel(TwinLoss(twin), device_ids=[device] if device.type == "cuda" else None)
    batches = ShardedBatches(train, batch_size=args.batch_size, rank=parallel.rank, world_size=parallel.world_size,
                             seed=parallel.seed, device=device)
    seconds = []
    for epoch in range(args.epochs + 1):
        batches.set_epoch(epoch)
        start = time.perf_counter()
        total = torch.zeros((), device=device)
        for (x,) in batches:
            twin.optimizer.zero_grad(set_to_none=True)
            loss = loss_module(x)
            loss.backward()
            twin.optimizer.step()
            total += loss.detach()
        total.item()  # the epoch's one host read, as pyrovae's
        seconds.append(time.perf_counter() - start)
    return seconds


def agreement_cost(args: argparse.Namespace, parallel: DataParallel) -> dict[str, float]:
    """Microseconds per step of :class:`StopAgreement` (one all-reduce of two numbers), measured
    as the difference between a loop of small device ops with it and without it."""
    device = parallel.device
    loss = torch.ones((), device=device)
    agreement = StopAgreement(device)

    def loop(agree: bool) -> float:
        dist.barrier()
        synchronize(device)
        start = time.perf_counter()
        value = loss
        for _ in range(args.agreement_steps):
            value = agreement.step(value, None) if agree else torch.where(torch.isfinite(value), value, torch.nan)
        value.item()
        synchronize(device)
        return time.perf_counter() - start

    loop(True)  # warm-up
    without, with_ = min(loop(False) for _ in range(3)), min(loop(True) for _ in range(3))
    return {"agreement_us_per_step": 1e6 * (with_ - without) / args.agreement_steps,
            "agreement_read_every": agreement.read_every}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(0)
    parallel = DataParallel.from_environment(seed=0, device=args.device)
    try:
        images = load_dataset("mnist-small").train_images[: args.train_size].repeat(args.repeat, 1, 1, 1)
        train = torch.bernoulli(images, generator=torch.Generator().manual_seed(0))
        train = train if args.stream else train.to(parallel.device)
        global_images = len(ShardedBatches(train, batch_size=args.batch_size, rank=0,
                                           world_size=parallel.world_size)) * args.batch_size * parallel.world_size
        figures: dict[str, object] = {
            "device": str(parallel.device), "world_size": parallel.world_size, "batch_size": args.batch_size,
            "global_batch": args.batch_size * parallel.world_size, "images": train.shape[0], "stream": args.stream,
            "hidden": args.hidden, "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(parallel.device) if parallel.device.type == "cuda" else None,
        }
        for name, run in (("pyrovae", pyrovae_epochs), ("twin", twin_epochs)):
            seconds = run(args, parallel, train)[1:]  # without the warm-up epoch
            slowest = torch.tensor(seconds, dtype=torch.float64, device=parallel.device)
            dist.all_reduce(slowest, op=dist.ReduceOp.MAX)  # an epoch ends when its slowest rank does
            epoch = statistics.median(slowest.tolist())
            figures[f"{name}_epoch_s"] = epoch
            figures[f"{name}_images_per_s"] = train.shape[0] / epoch
        figures["ratio"] = figures["pyrovae_epoch_s"] / figures["twin_epoch_s"]
        figures.update(agreement_cost(args, parallel))
        steps = global_images // figures["global_batch"]
        figures["pyrovae_ms_per_step"] = 1e3 * figures["pyrovae_epoch_s"] / steps
        if parallel.is_main:
            print(f"{parallel.world_size} x {figures['device']} ({figures['gpu'] or 'CPU'}), {train.shape[0]} images, "
                  f"global batch {figures['global_batch']}, {steps} steps per epoch"
                  + (", streamed from pinned CPU memory" if args.stream else ", data on the device"))
            for name in ("pyrovae", "twin"):
                print(f"  {name:8s} epoch {figures[f'{name}_epoch_s']:8.3f} s   "
                      f"{figures[f'{name}_images_per_s']:10.0f} images/s")
            print(f"  pyrovae / twin: {figures['ratio']:.2f}")
            print(f"  StopAgreement: {figures['agreement_us_per_step']:.1f} us per step "
                  f"({figures['pyrovae_ms_per_step']:.2f} ms per pyrovae step)")
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(figures, f, indent=1)
    finally:
        parallel.close()


if __name__ == "__main__":
    main()
