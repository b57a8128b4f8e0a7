"""A conv VAE epoch on 32x32x3 images: pyrovae against a plain-PyTorch twin with the same nets.

Issue 22's target: pyrovae's epoch within 1.05x of the twin's. Both train the network pair that
``pyrovae train --network conv`` builds for ``(3, 32, 32)`` images (``pyrovae.nn.conv``, stage
widths ``--channels``, a ``--hidden`` head), a diagonal Normal guide (softplus scale + 1e-4), a
standard Normal prior and a Bernoulli likelihood (cross-entropy on grey values), with the
one-sample ELBO of ``Trace_ELBO`` and Adam (lr 1e-3, the trainer's settings):

* ``pyrovae``: ``pyrovae.Trainer(compile=False).train_epoch`` on a ``pyrovae.VAE``, eager (the
  steps of ``fit`` without its per-epoch figures);
* ``plain``: ``twins.PlainTwin``, the same estimator written by hand.

The data are random 8-bit colour images (``--images`` of them, ``k / 255``); the speed of a
step does not depend on the pixel values. The two contenders alternate epoch by epoch (a b a b
...) after a warm-up round, in one process, and the medians over ``--epochs`` rounds are
compared, so that drift of a shared machine hits both alike; CPU seconds of the process are
reported beside wall seconds, as the steadier figure when other jobs share the cores.

Run (about a minute on one core)::

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/conv_twin.py --csv benchmarks/results/conv_twin.csv
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import sys
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from speed import race  # noqa: E402
from twins import PlainTwin  # noqa: E402

import pyrovae  # noqa: E402
from pyrovae.data import InMemoryBatches  # noqa: E402

SHAPE = (3, 32, 32)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2048, help="images per epoch")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--channels", default="32,64", help="stage widths (pyrovae train's default at 32x32)")
    parser.add_argument("--hidden", type=int, default=400, help="the head's hidden width (pyrovae train's default)")
    parser.add_argument("--epochs", type=int, default=5, help="timed rounds (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--csv", default=None, help="append the result as a row of this CSV file")
    return parser.parse_args(argv)


def nets(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The pair ``--network conv`` builds for 32x32x3 images (guide output: loc and raw scale)."""
    channels = tuple(int(c) for c in args.channels.split(","))
    return (pyrovae.ConvEncoderNet(SHAPE, 2 * args.latent_dim, channels, args.hidden),
            pyrovae.ConvDecoderNet(args.latent_dim, SHAPE, channels, args.hidden))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    images = (torch.randint(0, 256, (args.images, *SHAPE)).float() / 255).to(device)

    encoder_net, decoder_net = nets(args)
    vae = pyrovae.VAE(pyrovae.DiagonalNormalEncoder(encoder_net, args.latent_dim),
                      pyrovae.BernoulliLikelihood(decoder_net, SHAPE), pyrovae.StandardNormalPrior(args.latent_dim),
                      name="conv_twin").to(device)
    trainer = pyrovae.Trainer(vae, batch_size=args.batch_size, progress=False, compile=False,
                              generator=torch.Generator().manual_seed(0))
    adam = {"lr": 1e-3, "fused": bool(trainer.optimizer.defaults.get("fused"))}
    plain = PlainTwin(*nets(args), args.latent_dim, optimizer_kwargs=adam).to(device)
    batches = InMemoryBatches(images, batch_size=args.batch_size, generator=torch.Generator().manual_seed(0))
    plain_generator = torch.Generator(device=device).manual_seed(1)

    contenders = {
        "pyrovae": lambda: trainer.train_epoch(batches, lambda step: 1.0).item(),
        "plain": lambda: plain.epoch(images, args.batch_size, plain_generator),
    }
    result = race(contenders, args.epochs)
    medians, cpu = result["median_seconds"], result["median_cpu_seconds"]
    ratio, cpu_ratio = medians["pyrovae"] / medians["plain"], cpu["pyrovae"] / cpu["plain"]
    row = {"date": datetime.date.today().isoformat(), "device": args.device, "threads": args.threads,
           "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
           "load_1min": round(os.getloadavg()[0], 1), "images": args.images, "batch_size": args.batch_size,
           "latent_dim": args.latent_dim, "channels": args.channels, "hidden": args.hidden, "rounds": args.epochs,
           "pyrovae_wall_s": round(medians["pyrovae"], 3), "plain_wall_s": round(medians["plain"], 3),
           "ratio_wall": round(ratio, 3), "pyrovae_cpu_s": round(cpu["pyrovae"], 3),
           "plain_cpu_s": round(cpu["plain"], 3), "ratio_cpu": round(cpu_ratio, 3)}
    print(f"\nconv VAE epoch, {args.images} images 3x32x32, batch {args.batch_size}, channels {args.channels}, "
          f"hidden {args.hidden}, latent {args.latent_dim}, {args.threads} thread(s), {args.device}, load "
          f"{row['load_1min']}: medians of {args.epochs} rounds")
    print("| contender | epoch wall (s) | epoch CPU (s) |\n|---|---|---|\n"
          f"| pyrovae | {medians['pyrovae']:.3f} | {cpu['pyrovae']:.3f} |\n"
          f"| plain PyTorch twin | {medians['plain']:.3f} | {cpu['plain']:.3f} |\n"
          f"| ratio pyrovae / twin (target <= 1.05) | {ratio:.3f} | {cpu_ratio:.3f} |")
    if args.csv:
        path = Path(args.csv)
        new = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
    return row


if __name__ == "__main__":
    main()
