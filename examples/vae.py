"""A plain VAE on the MNIST digits that ship with pyrovae, trained with Pyro's own SVI loop.

    python examples/vae.py            # about a minute on 2 CPU cores
    python examples/vae.py --smoke    # a few seconds, as the test suite runs it
    python examples/vae.py --compile  # the networks and the Bernoulli density through torch.compile

``--compile`` runs the same SVI steps inside ``pyrovae.fast.compiled.compiled_kernels(training=True,
module=vae)``, which compiles the model's networks from outside for the block:
seconds of compiling once, then faster steps on a CPU (benchmarks/README.md, speed.py); worth it
for long runs on full data sets rather than for these few epochs.
"""

import argparse

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO

import pyrovae
from pyrovae.data import InMemoryBatches, load_dataset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    parser.add_argument("--compile", action="store_true", help="compiled networks and densities in the steps")
    args = parser.parse_args()
    epochs, size = (1, 300) if args.smoke else (args.epochs, None)

    pyro.set_rng_seed(0)
    data = load_dataset("mnist-small")  # 10,000 training and 2,000 test digits, no network needed
    train, test = data.train_images[:size], data.test_images[:size]

    latent_dim = 20
    vae = pyrovae.VAE(
        encoder=pyrovae.DiagonalNormalEncoder(pyrovae.MLP((1, 28, 28), [400], 2 * latent_dim), latent_dim),
        likelihood=pyrovae.BernoulliLikelihood(pyrovae.MLP(latent_dim, [400], 784), (1, 28, 28)),
        prior=pyrovae.StandardNormalPrior(latent_dim),
    )
    vae.likelihood.init_output_bias(train)  # the decoder starts at the mean digit
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())

    for epoch in range(1, epochs + 1):
        with pyrovae.fast.compiled.compiled_kernels(args.compile, training=True, module=vae):
            total = sum(svi.step(x) for (x,) in InMemoryBatches(train, batch_size=128))
        test_loss = svi.evaluate_loss(test)
        print(f"epoch {epoch}: train ELBO {-total / len(train):.1f}, test ELBO {-test_loss / len(test):.1f} nats/image")

    with torch.no_grad():
        print("samples from the prior:", tuple(vae.sample(16).shape))


if __name__ == "__main__":
    main()
