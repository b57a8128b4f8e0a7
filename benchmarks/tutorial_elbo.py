"""Pyro's VAE tutorial, verbatim, next to pyrovae with the same architecture: test ELBO per epoch.

Issue 2 asks for a test ELBO of at least -108 nats after 10 epochs with the tutorial's
architecture (ANCHORS.md: "about -108", read off the tutorial's plot). This script trains the
tutorial's own code (Encoder/Decoder classes, ``SVI`` with ``pyro.optim.Adam`` and
``Trace_ELBO``, the model and guide as written there) and pyrovae's CLI configuration on the
same full MNIST, same seeds, and prints both test ELBOs per epoch, so a gap between pyrovae
and the anchor can be told apart from a gap between the anchor and the tutorial's code.

    python benchmarks/tutorial_elbo.py --data-root ../shared/data --epochs 10 --seeds 0 1

Writes ``benchmarks/results/tutorial_elbo.csv`` (contender, seed, epoch, test_elbo, seconds);
``--contenders`` picks some of: pyro-tutorial, pyrovae (the CLI's defaults), pyrovae-no-mean-init,
pyrovae-exp (the tutorial's exp encoder scale, no mean init).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO
from torch import nn

from pyrovae.cli.config import TrainConfig
from pyrovae.cli.registry import build_vae
from pyrovae.data import load_dataset
from pyrovae.train.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results" / "tutorial_elbo.csv"


# -- Pyro's VAE tutorial (pyro.ai/examples/vae.html), kept as written there ----------------------

class Decoder(nn.Module):
    def __init__(self, z_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(z_dim, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, 784)
        self.softplus = nn.Softplus()
        self.sigmoid = nn.Sigmoid()

    def forward(self, z):
        hidden = self.softplus(self.fc1(z))
        return self.sigmoid(self.fc21(hidden))


class Encoder(nn.Module):
    def __init__(self, z_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, z_dim)
        self.fc22 = nn.Linear(hidden_dim, z_dim)
        self.softplus = nn.Softplus()

    def forward(self, x):
        x = x.reshape(-1, 784)
        hidden = self.softplus(self.fc1(x))
        return self.fc21(hidden), torch.exp(self.fc22(hidden))


class TutorialVAE(nn.Module):
    def __init__(self, z_dim: int = 50, hidden_dim: int = 400) -> None:
        super().__init__()
        self.encoder = Encoder(z_dim, hidden_dim)
        self.decoder = Decoder(z_dim, hidden_dim)
        self.z_dim = z_dim

    def model(self, x):
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z_loc = x.new_zeros(torch.Size((x.shape[0], self.z_dim)))
            z_scale = x.new_ones(torch.Size((x.shape[0], self.z_dim)))
            z = pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))
            loc_img = self.decoder(z)
            pyro.sample("obs", dist.Bernoulli(loc_img, validate_args=False).to_event(1),
                        obs=x.reshape(-1, 784))

    def guide(self, x):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            z_loc, z_scale = self.encoder(x)
            pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))


def run_tutorial(train, test, epochs, seed, batch_size=256):
    """Yield (epoch, test ELBO per image, seconds) of the tutorial's loop."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    vae = TutorialVAE()
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1.0e-3}), loss=Trace_ELBO())
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        for index in torch.randperm(len(train), generator=generator).split(batch_size):
            svi.step(train[index])
        test_loss = sum(svi.evaluate_loss(batch) for batch in test.split(batch_size))
        yield epoch, -test_loss / len(test), time.perf_counter() - start


def run_pyrovae(train, test, epochs, seed, batch_size=256, encoder_scale="softplus", mean_init=True):
    """Yield (epoch, test ELBO per image, seconds) of pyrovae's Trainer with the tutorial's networks,
    set up as ``pyrovae train`` does (``mean_init``: the decoder's output bias starts at the
    training images' mean, the CLI's default)."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    config = TrainConfig(latent_dim=50, hidden=400, batch_size=batch_size, lr=1e-3, epochs=epochs,
                         encoder_scale=encoder_scale, mean_init=mean_init, seed=seed)
    vae = build_vae(config, tuple(train.shape[1:]))
    if config.mean_init:
        vae.likelihood.init_output_bias(train)
    trainer = Trainer(vae, lr=1e-3, batch_size=batch_size, progress=False,
                      generator=torch.Generator().manual_seed(seed))
    for _ in range(epochs):
        record = trainer.fit(train, test, epochs=1)
        figures = record.history[-1]
        yield figures["epoch"], figures["test_elbo"], figures["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--contenders", nargs="+", default=None,
                        help="run only these (default: all)")
    args = parser.parse_args()
    data = load_dataset("mnist", root=args.data_root, download=False)
    train, test = data.train_images, data.test_images
    contenders = {
        "pyro-tutorial": run_tutorial,
        "pyrovae": lambda *a: run_pyrovae(*a),
        "pyrovae-no-mean-init": lambda *a: run_pyrovae(*a, mean_init=False),
        "pyrovae-exp": lambda *a: run_pyrovae(*a, encoder_scale="exp", mean_init=False),
    }
    if args.contenders:
        unknown = set(args.contenders) - set(contenders)
        if unknown:
            parser.error(f"unknown contender(s) {sorted(unknown)}; choose from {sorted(contenders)}")
        contenders = {name: contenders[name] for name in args.contenders}
    rows = []
    for seed in args.seeds:
        for name, run in contenders.items():
            for epoch, elbo, seconds in run(train, test, args.epochs, seed):
                rows.append({"contender": name, "seed": seed, "epoch": epoch,
                             "test_elbo": round(elbo, 2), "seconds": round(seconds, 1)})
                print(f"{name:17s} seed {seed} epoch {epoch:3d}  test ELBO {elbo:8.2f}  {seconds:5.1f} s",
                      flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nafter {args.epochs} epochs (test ELBO, nats per image):")
    for name in contenders:
        finals = [r["test_elbo"] for r in rows if r["contender"] == name and r["epoch"] == args.epochs]
        print(f"  {name:17s} " + "  ".join(f"{v:8.2f}" for v in finals)
              + f"   mean {sum(finals) / len(finals):8.2f}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
