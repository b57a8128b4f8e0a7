"""Tighter bounds: train a VAE with the IWAE bound and DReG gradients in Pyro's own SVI loop, then
estimate the test log-likelihood by importance sampling.

    python examples/iwae.py                  # a few minutes on 2 CPU cores
    python examples/iwae.py --smoke          # a few seconds, as the test suite runs it
"""

import argparse

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO

import pyrovae
from pyrovae.data import InMemoryBatches, binarize_once, dynamic_binarize, load_dataset
from pyrovae.infer.dreg import DReG
from pyrovae.infer.evaluation import log_likelihood
from pyrovae.infer.iwae import IWAE


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--objective", choices=["elbo", "iwae", "dreg"], default="dreg")
    parser.add_argument("--num-particles", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    args = parser.parse_args()
    epochs, size, k_eval = (1, 200, 50) if args.smoke else (args.epochs, None, 1000)

    pyro.set_rng_seed(0)
    data = load_dataset("mnist-small")
    train = data.train_images[:size]
    test = binarize_once(data.test_images[: size or 500], seed=0)

    latent_dim = 20
    vae = pyrovae.VAE(
        encoder=pyrovae.DiagonalNormalEncoder(pyrovae.MLP((1, 28, 28), [200], 2 * latent_dim, "tanh"), latent_dim),
        likelihood=pyrovae.BernoulliLikelihood(pyrovae.MLP(latent_dim, [200], 784, "tanh"), (1, 28, 28)),
        prior=pyrovae.StandardNormalPrior(latent_dim),
    )
    objective = {"elbo": lambda: Trace_ELBO(),
                 "iwae": lambda: IWAE(num_particles=args.num_particles),
                 "dreg": lambda: DReG(num_particles=args.num_particles)}[args.objective]()
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), objective)

    for epoch in range(1, epochs + 1):
        total = sum(svi.step(dynamic_binarize(x)) for (x,) in InMemoryBatches(train, batch_size=100))
        print(f"epoch {epoch}: train bound {-total / len(train):.1f} nats/image ({args.objective})")

    vae.eval()
    elbo = -Trace_ELBO().loss(vae.model, vae.guide, test) / len(test)
    iwae = -IWAE(num_particles=args.num_particles).loss(vae.model, vae.guide, test) / len(test)
    with torch.no_grad():
        ll = log_likelihood(vae.model, vae.guide, test, num_samples=k_eval, progress=True).mean().item()
    print(f"test: ELBO {elbo:.1f} <= IWAE (k={args.num_particles}) {iwae:.1f} <= log p(x) (k={k_eval}) {ll:.1f}")


if __name__ == "__main__":
    main()
