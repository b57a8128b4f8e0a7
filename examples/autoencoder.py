"""Plain and denoising autoencoders as Pyro guide swaps, trained with Pyro's own SVI loop.

    python examples/autoencoder.py            # a few minutes on 2 CPU cores
    python examples/autoencoder.py --smoke    # seconds, as the test suite runs it

An autoencoder is a VAE whose guide is a point mass, q(z|x) = delta(f(x)): with a flat prior,
Trace_ELBO's loss is the reconstruction error -log p(x | f(x)) alone (not a bound on log p(x)).
A denoising autoencoder wraps the encoder so that it reads a corrupted x while the likelihood
scores the clean x. Neither has a prior to sample from: a Gaussian mixture fitted to the
training codes afterwards (an ex-post density, Ghosh et al. 2020) generates new digits.
"""

import argparse

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO

import pyrovae
from pyrovae.data import InMemoryBatches, load_dataset
from pyrovae.guides import MaskingNoise
from pyrovae.infer.reconstruction import reconstruction_error
from pyrovae.models import autoencoder, fit_ex_post_mixture


def make_autoencoder(latent_dim: int, corruption=None, name: str = "ae") -> pyrovae.VAE:
    return autoencoder(
        encoder_net=pyrovae.MLP((1, 28, 28), [400], latent_dim),
        likelihood=pyrovae.BernoulliLikelihood(pyrovae.MLP(latent_dim, [400], 784), (1, 28, 28)),
        latent_dim=latent_dim,
        corruption=corruption,  # None: plain; MaskingNoise(0.25): a quarter of the pixels dropped
        name=name,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    args = parser.parse_args()
    epochs, size = (1, 300) if args.smoke else (args.epochs, None)

    pyro.set_rng_seed(0)
    data = load_dataset("mnist-small")  # 10,000 training and 2,000 test digits, no network needed
    train, test = data.train_images[:size], data.test_images[:size]
    mask = MaskingNoise(0.25)

    for label, corruption in [("plain", None), ("denoising", mask)]:
        ae = make_autoencoder(16, corruption, name=f"ae_{label}")
        ae.likelihood.init_output_bias(train)
        svi = SVI(ae.model, ae.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
        for epoch in range(1, epochs + 1):
            ae.train()  # a CorruptedInput encoder corrupts in training mode only
            total = sum(svi.step(x) for (x,) in InMemoryBatches(train, batch_size=128))
            print(f"{label} autoencoder, epoch {epoch}: training -log p(x|f(x)) {total / len(train):.1f} nats/image")
        clean = reconstruction_error(ae, test)
        noisy = reconstruction_error(ae, test, corruption=mask)
        print(f"{label} autoencoder: test reconstruction error {clean['recon_nll']:.1f} nats/image, "
              f"from 25%-masked inputs {noisy['recon_nll']:.1f}")
        mixture = fit_ex_post_mixture(ae, train, num_components=10)
        with torch.no_grad():
            digits = ae.decode(mixture.sample(16))
        print(f"{label} autoencoder: decodes of the ex-post mixture:", tuple(digits.shape))


if __name__ == "__main__":
    main()
