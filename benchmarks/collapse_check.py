"""Does the tanh network of loglik.py sit on the collapsed plateau (KL near 0, the pixel-mean
model) in its first epochs, with and without the decoder started at the data mean?

Burda et al.'s 784-200-200-50 tanh VAE with the standard prior or a VampPrior (K = 500,
pseudo-inputs from training images), dynamic binarization, batch 100, Adam 1e-3, on the
bundled 10,000 training digits; prints the test ELBO and KL (first 500 test digits) per epoch.

    PYTHONPATH=$PWD python benchmarks/collapse_check.py --variants standard vamp standard+mean vamp+mean
"""

from __future__ import annotations

import argparse

import pyro
import torch

from pyrovae import MLP, VAE, BernoulliLikelihood, DiagonalNormalEncoder, StandardNormalPrior, Trainer
from pyrovae.data import dynamic_binarize, load_dataset
from pyrovae.priors import VampPrior

VARIANTS = ("standard", "vamp", "standard+mean", "vamp+mean")


def run(variant: str, epochs: int, train: torch.Tensor, test: torch.Tensor) -> None:
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    encoder = DiagonalNormalEncoder(MLP((1, 28, 28), (200, 200), 100, "tanh"), 50)
    prior = VampPrior(encoder, 500, (1, 28, 28), init=train[:500]) if variant.startswith("vamp") \
        else StandardNormalPrior(50)
    vae = VAE(encoder, BernoulliLikelihood(MLP(50, (200, 200), 784, "tanh"), (1, 28, 28)), prior)
    if variant.endswith("+mean"):
        vae.likelihood.init_output_bias(train)
    generator = torch.Generator().manual_seed(0)
    trainer = Trainer(vae, batch_size=100, progress=False, generator=generator,
                      transform=lambda x: dynamic_binarize(x, generator))
    for _ in range(epochs):
        figures = trainer.fit(train, test, epochs=1).history[-1]
        print(f"{variant:14s} epoch {figures['epoch']}  test ELBO {figures['test_elbo']:8.2f}  "
              f"KL {figures['test_kl']:6.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist-small")
    for variant in args.variants:
        run(variant, args.epochs, data.train_images, data.test_images[:500])


if __name__ == "__main__":
    main()
