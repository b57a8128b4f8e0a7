"""A VAE trained data-parallel with PyTorch's DistributedDataParallel, in your own loop.

    torchrun --nproc_per_node=2 examples/ddp_vae.py     # 2 processes (CPU: gloo, GPUs: NCCL)
    python examples/ddp_vae.py --smoke                  # 1 process, a few seconds (test suite)

The pieces: the ELBO as a differentiable loss module (``pyrovae.train.trainer.ELBOLoss``, i.e.
``Trace_ELBO().differentiable_loss(model, guide, x) / len(x)``) wrapped whole in DDP, which
all-reduces and averages the gradients; one shard of every epoch per process
(``ShardedBatches``, DistributedSampler semantics); prints from rank 0 only. Each rank's loss
is the mean over its local batch, so the averaged gradient is the gradient of the mean over the
global batch of ``world_size * batch_size`` images.
"""

import argparse
import os
import socket

import pyro
import torch
import torch.distributed as dist
from pyro.infer import Trace_ELBO
from torch.nn.parallel import DistributedDataParallel

import pyrovae
from pyrovae.data import load_dataset
from pyrovae.train.distributed import ShardedBatches, launched_by_torchrun
from pyrovae.train.trainer import ELBOLoss


def single_process_environment() -> None:
    """Without torchrun, describe a process group of one on the loopback address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128, help="images per process per step")
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    args = parser.parse_args()
    epochs, size = (1, 300) if args.smoke else (args.epochs, None)

    if not launched_by_torchrun():
        single_process_environment()
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
    pyro.set_rng_seed(rank)  # different latent noise per process; DDP copies rank 0's weights

    data = load_dataset("mnist-small")
    train, test = data.train_images[:size].to(device), data.test_images[:size].to(device)
    latent_dim = 20
    vae = pyrovae.VAE(
        encoder=pyrovae.DiagonalNormalEncoder(pyrovae.MLP((1, 28, 28), [400], 2 * latent_dim), latent_dim),
        likelihood=pyrovae.BernoulliLikelihood(pyrovae.MLP(latent_dim, [400], 784), (1, 28, 28)),
        prior=pyrovae.StandardNormalPrior(latent_dim),
    ).to(device)
    loss_fn = DistributedDataParallel(ELBOLoss(vae, vae.model, vae.guide, Trace_ELBO()),
                                      device_ids=[device] if cuda else None)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    batches = ShardedBatches(train, batch_size=args.batch_size, rank=rank, world_size=world_size, seed=0)

    for epoch in range(epochs):
        batches.set_epoch(epoch)
        for (x,) in batches:
            optimizer.zero_grad()
            loss_fn(x).backward()
            optimizer.step()
        # Each rank scores its share of the test set; the sums meet on every rank.
        mine = test[rank::world_size]
        with torch.no_grad():
            sums = torch.tensor([-Trace_ELBO().loss(vae.model, vae.guide, mine), len(mine)],
                                dtype=torch.float64, device=device)
        dist.all_reduce(sums)
        if rank == 0:
            print(f"epoch {epoch + 1}: test ELBO {sums[0] / sums[1]:.1f} nats/image "
                  f"({world_size} processes, {world_size * args.batch_size} images per step)")

    if rank == 0:  # the plain module's state_dict: loads anywhere, on any number of processes
        print("parameters:", sum(p.numel() for p in vae.state_dict().values()))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
