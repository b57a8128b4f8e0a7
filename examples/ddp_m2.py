"""Semi-supervised M2 trained data-parallel in your own loop, with a stop every process agrees on.

    torchrun --nproc_per_node=2 examples/ddp_m2.py     # 2 processes (CPU: gloo, GPUs: NCCL)
    python examples/ddp_m2.py --smoke                  # 1 process, a few seconds (test suite)

The pieces: M2's two-batch loss (``SemiSupervisedLoss``: labelled ELBO with the classification
term, plus the unlabelled ELBO with y summed out) wrapped whole in DDP; each process's share of
the labelled and of the unlabelled images (``ShardedMixedBatches``), so every step sees the
labelled fraction of one process with the global batch sizes; and ``StopAgreement``, one
all-reduce per step after which every process skips the same non-finite steps and stops after
the same step when any of them got SIGTERM or Ctrl-C. Send ``kill -TERM`` to one process and
watch all of them stop together.
"""

import argparse
import os
import signal
import socket

import pyro
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import pyrovae
from pyrovae.data import load_dataset
from pyrovae.data.semisupervised import split_labelled
from pyrovae.models import M2
from pyrovae.train.distributed import ShardedMixedBatches, StopAgreement, launched_by_torchrun
from pyrovae.train.semisupervised import SemiSupervisedLoss


def single_process_environment() -> None:
    """Without torchrun, describe a process group of one on the loopback address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100, help="unlabelled images per process per step")
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    args = parser.parse_args()
    epochs, size = (1, 600) if args.smoke else (args.epochs, None)

    if not launched_by_torchrun():
        single_process_environment()
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
    pyro.set_rng_seed(0)  # the same split and initial weights on every process

    data = load_dataset("mnist-small")
    images, labels = data.train_images[:size].to(device), data.train_labels[:size].to(device)
    split = split_labelled(images, labels, num_labelled=args.labels, num_validation=len(images) // 10)
    k, latent_dim, hidden = 10, 20, 256
    m2 = M2(
        classifier=pyrovae.MLP((1, 28, 28), [hidden], k),
        encoder=pyrovae.DiagonalNormalEncoder(pyrovae.MLP(784 + k, [hidden], 2 * latent_dim), latent_dim,
                                              context_dim=k),
        likelihood=pyrovae.BernoulliLikelihood(pyrovae.MLP(latent_dim + k, [hidden], 784), (1, 28, 28)),
        num_classes=k,
    ).to(device)
    pyro.set_rng_seed(1 + rank)  # then different latent noise per process
    loss_fn = DistributedDataParallel(SemiSupervisedLoss(m2), device_ids=[device] if cuda else None)
    optimizer = torch.optim.Adam(m2.parameters(), lr=1e-3)
    batches = ShardedMixedBatches(split, args.batch_size, labelled_batch_size=args.batch_size, rank=rank,
                                  world_size=world_size, seed=0)

    requested = {"signal": None}  # set by a signal handler; acted on only once every process agrees
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda n, frame: requested.update(signal=n))
    agreement = StopAgreement(device)
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        for x_l, y_l, x_u in batches:
            optimizer.zero_grad()
            loss = loss_fn(x_l, y_l, x_u)
            loss.backward()
            loss = agreement.step(loss, requested["signal"])  # NaN on every process if on any one
            if torch.isfinite(loss):
                optimizer.step()
            if agreement.signal is not None:
                break
        accuracy = m2.accuracy(split.validation_images, split.validation_labels)
        if rank == 0:
            print(f"epoch {epoch + 1}: validation accuracy {accuracy:.3f} ({world_size} processes, "
                  f"{world_size * args.batch_size} unlabelled images per step)")
        if agreement.signal is not None:
            if rank == 0:
                torch.save(m2.state_dict(), "m2_stopped.pt")
                print(f"signal {agreement.signal}: every process stopped at the same step; wrote m2_stopped.pt")
            break
    if rank == 0:
        print(f"test accuracy {m2.accuracy(data.test_images.to(device), data.test_labels.to(device)):.3f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore", message="TraceEnum_ELBO found no sample sites")
    main()
