"""Crash-safe training with Pyro's own SVI loop: atomic checkpoints, exact resume, safe loading.

    PYTHONPATH=$PWD python examples/resumable_svi.py --out runs/svi --epochs 5
    PYTHONPATH=$PWD python examples/resumable_svi.py --out runs/svi --epochs 10 --resume
    PYTHONPATH=$PWD python examples/resumable_svi.py --smoke   # a few seconds; checks the resume is exact

Every epoch the script saves the weights, the Pyro optimizer's state, its own shuffling
generator and every global random state with ``pyrovae.train.checkpoint.save_checkpoint`` (temporary
file, fsync, rename: a crash never leaves a half-written checkpoint). ``--resume`` reads it back
with ``load_checkpoint`` (``weights_only=True``: a file carrying pickled code is refused) and
continues as if never stopped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO

from pyrovae import MLP, VAE, BernoulliLikelihood, DiagonalNormalEncoder, StandardNormalPrior
from pyrovae.train.checkpoint import load_checkpoint, load_module_state, rng_state, save_checkpoint, set_rng_state
from pyrovae.data import InMemoryBatches, load_dataset


def build(latent_dim: int, hidden: int) -> VAE:
    return VAE(DiagonalNormalEncoder(MLP((1, 28, 28), [hidden], 2 * latent_dim), latent_dim),
               BernoulliLikelihood(MLP(latent_dim, [hidden], 784), (1, 28, 28)), StandardNormalPrior(latent_dim))


def train(out: Path, epochs: int, resume: bool, train_size: int, latent_dim: int = 8, hidden: int = 128,
          seed: int = 0) -> VAE:
    """Train (or continue) the run in ``out`` up to ``epochs`` epochs; return the model."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    images = load_dataset("mnist-small").train_images[:train_size]
    vae = build(latent_dim, hidden)
    optimizer = pyro.optim.Adam({"lr": 1e-3})
    generator = torch.Generator().manual_seed(seed)
    svi = SVI(vae.model, vae.guide, optimizer, Trace_ELBO())
    start = 0
    path = out / "checkpoint.pt"
    if resume:
        payload = load_checkpoint(path, require=("model", "optim", "rng", "generator", "epoch"))
        load_module_state(vae, payload["model"], source=str(path))
        optimizer.set_state(payload["optim"])
        generator.set_state(payload["generator"])
        set_rng_state(payload["rng"])
        start = int(payload["epoch"])
    batches = InMemoryBatches(images, batch_size=128, generator=generator)
    for epoch in range(start, epochs):
        total = sum(svi.step(x) for (x,) in batches)
        print(f"epoch {epoch + 1}: ELBO {-total / len(images):.2f} nats per image")
        save_checkpoint(path, {"model": vae.state_dict(), "optim": optimizer.get_state(), "rng": rng_state(),
                               "generator": generator.get_state(), "epoch": epoch + 1,
                               "config": {"latent_dim": latent_dim, "hidden": hidden, "seed": seed}})
    return vae


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/svi")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="2 epochs straight vs 1 + resume 1; must be equal")
    args = parser.parse_args(argv)
    if args.smoke:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            straight = train(Path(tmp) / "a", 2, False, 512, hidden=32)
            train(Path(tmp) / "b", 1, False, 512, hidden=32)
            resumed = train(Path(tmp) / "b", 2, True, 512, hidden=32)
            same = all(torch.equal(p, q) for p, q in zip(straight.parameters(), resumed.parameters()))
        print("resumed run equals the straight run:", same)
        return 0 if same else 1
    train(Path(args.out), args.epochs, args.resume, args.train_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
