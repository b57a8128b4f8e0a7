"""Save a trained VAE to one file, load it back in a fresh process, and draw posterior predictive
samples with Pyro's own ``Predictive``.

``pyrovae.save`` stores the weights and how the model was built (every pyrovae part records its
constructor's arguments), so ``pyrovae.load`` needs nothing but the file. ``Predictive`` replays
the guide's draws of z in the model; the model observes x, so the site is unconditioned first,
or ``Predictive`` would hand back the observation itself.

    python examples/save_load_predict.py            # 10,000 bundled digits, 5 epochs
    python examples/save_load_predict.py --smoke    # 300 digits, 1 epoch, seconds
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pyro
import torch
from pyro import poutine
from pyro.infer import SVI, Predictive, Trace_ELBO

import pyrovae
from pyrovae.data import InMemoryBatches, load_dataset

#: Run by a second interpreter: load the file and print one figure of the loaded model.
LOAD = """
import sys, torch, pyrovae
vae = pyrovae.load(sys.argv[1])
x = torch.load(sys.argv[2])
print(f"{vae.reconstruct(x).sum().item():.6f}")
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="300 images, 1 epoch: checks that it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs = 1
        torch.set_num_threads(1)
    pyro.set_rng_seed(args.seed)
    pyro.clear_param_store()

    data = load_dataset("mnist-small")
    train = data.train_images[:300] if args.smoke else data.train_images
    d = args.latent_dim
    vae = pyrovae.VAE(
        pyrovae.DiagonalNormalEncoder(pyrovae.MLP((1, 28, 28), [400], 2 * d), d),
        pyrovae.BernoulliLikelihood(pyrovae.MLP(d, [400], 784), (1, 28, 28)),
        pyrovae.GaussianMixturePrior(d, 10),
    )
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    for epoch in range(1, args.epochs + 1):
        loss = sum(svi.step(x) for (x,) in InMemoryBatches(train, batch_size=128))
        print(f"epoch {epoch}: train loss per image {loss / len(train):.2f}")

    vae.eval()
    x = data.test_images[:8]
    with tempfile.TemporaryDirectory() as folder:
        path, inputs = Path(folder) / "vae.pt", Path(folder) / "x.pt"
        pyrovae.save(vae, path)
        torch.save(x, inputs)
        loaded = subprocess.run([sys.executable, "-c", LOAD, str(path), str(inputs)], capture_output=True,
                                text=True, check=True).stdout.strip()
    here = f"{vae.reconstruct(x).sum().item():.6f}"
    print(f"reconstructions here {here}, after loading in a fresh process {loaded}: same: {here == loaded}")

    predictive = Predictive(poutine.uncondition(vae.model), guide=vae.guide, num_samples=4, return_sites=["x"])
    draws = predictive(x)["x"]  # (4, 8, 1, 28, 28): four images from p(x | z), z ~ q(z | x), per test digit
    agree = (draws == x.round()).float().mean().item()
    print(f"posterior predictive draws {tuple(draws.shape)}; pixels equal to the rounded input: {agree:.1%}")


if __name__ == "__main__":
    main()
