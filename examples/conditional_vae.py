"""Conditional VAE (Sohn et al. 2015) completing MNIST digits from one visible quadrant, as in
Pyro's CVAE tutorial: a deterministic baseline first, then the CVAE trained with Pyro's SVI.

    python examples/conditional_vae.py            # a few minutes on 2 CPU cores
    python examples/conditional_vae.py --smoke    # a few seconds, as the test suite runs it
"""

import argparse

import pyro
from pyro.infer import SVI, Trace_ELBO

import pyrovae
from pyrovae.data import InMemoryBatches, load_dataset
from pyrovae.data.quadrants import hide_quadrants
from pyrovae.models import ConditionalVAE, MaskedBaseline, conditional_nll, fit_baseline


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--quadrants", type=int, default=1, help="visible quadrants: 1, 2 or 3")
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    args = parser.parse_args()
    epochs, size, hidden = (1, 300, [64]) if args.smoke else (args.epochs, None, [500, 500])

    pyro.set_rng_seed(0)
    data = load_dataset("mnist-small")
    images, test = data.train_images[:size], data.test_images[:size]
    context, test_context = hide_quadrants(images, args.quadrants), hide_quadrants(test, args.quadrants)

    baseline = MaskedBaseline(pyrovae.MLP((1, 28, 28), hidden, 784, "relu"))
    fit_baseline(baseline, context, images, epochs=epochs)
    print(f"baseline: test NLL {-baseline.log_likelihood(test_context, test).mean():.1f} nats/image")

    latent_dim = 20
    cvae = ConditionalVAE(
        prior_net=pyrovae.DiagonalNormalEncoder(pyrovae.MLP((1, 28, 28), hidden, 2 * latent_dim, "relu"), latent_dim),
        recognition_net=pyrovae.DiagonalNormalEncoder(pyrovae.MLP((1, 28, 28), hidden, 2 * latent_dim, "relu"),
                                                      latent_dim),
        likelihood=pyrovae.BernoulliLikelihood(pyrovae.MLP(latent_dim + 784, hidden, 784, "relu"), (1, 28, 28)),
        baseline=baseline,
    )
    svi = SVI(cvae.model, cvae.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    for epoch in range(1, epochs + 1):
        total = sum(svi.step(c, x) for c, x in InMemoryBatches(context, images, batch_size=128))
        print(f"epoch {epoch}: train -ELBO {total / len(images):.1f} nats/image")

    nll = conditional_nll(cvae, test_context, test, num_samples=10 if args.smoke else 100)
    print(f"CVAE: test conditional NLL (importance sampling) {nll:.1f} nats/image")
    completions = cvae.predict(test_context[:8], num_samples=3)
    print("completions:", tuple(completions.shape))


if __name__ == "__main__":
    main()
