"""Semi-supervised MNIST with model M2 (Kingma et al. 2014) and Pyro's own SVI loop.

100 labelled digits and the rest unlabelled: labelled batches score the ELBO with y observed
(plus the classification term M2's model adds), unlabelled batches sum y out by enumeration.

    python examples/semisupervised_m2.py            # a few minutes on 2 CPU cores
    python examples/semisupervised_m2.py --smoke    # a few seconds, as the test suite runs it
"""

import argparse

import pyro
from pyro.infer import SVI, TraceEnum_ELBO

import pyrovae
from pyrovae.data import load_dataset
from pyrovae.data.semisupervised import MixedBatches, split_labelled
from pyrovae.models import M2
from pyrovae.plots.semisupervised import save_class_samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    args = parser.parse_args()
    epochs, size = (1, 600) if args.smoke else (args.epochs, None)

    pyro.set_rng_seed(0)
    data = load_dataset("mnist-small")  # 10,000 training and 2,000 test digits, no network needed
    images, labels = data.train_images[:size], data.train_labels[:size]
    split = split_labelled(images, labels, num_labelled=args.labels, num_validation=len(images) // 10)

    k, latent_dim, hidden = 10, 20, 256
    m2 = M2(
        classifier=pyrovae.MLP((1, 28, 28), [hidden], k),
        encoder=pyrovae.DiagonalNormalEncoder(pyrovae.MLP(784 + k, [hidden], 2 * latent_dim), latent_dim,
                                              context_dim=k),
        likelihood=pyrovae.BernoulliLikelihood(pyrovae.MLP(latent_dim + k, [hidden], 784), (1, 28, 28)),
        num_classes=k,
        alpha=50.0,
    )
    # One objective for both kinds of batch: with y observed there is simply nothing to enumerate.
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    svi = SVI(m2.model, m2.guide, pyro.optim.Adam({"lr": 1e-3}), elbo)

    for epoch in range(1, epochs + 1):
        total = 0.0
        for x_l, y_l, x_u in MixedBatches(split, batch_size=200, labelled_batch_size=100):
            total += svi.step(x_l, y_l) / len(x_l) + svi.step(x_u) / len(x_u)
        accuracy = m2.accuracy(split.validation_images, split.validation_labels)
        print(f"epoch {epoch}: loss {total:.0f}, validation accuracy {accuracy:.3f}")

    print(f"test accuracy {m2.accuracy(data.test_images, data.test_labels):.3f}")
    if not args.smoke:
        print("wrote", save_class_samples(m2, "m2_classes.png"))


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore", message="TraceEnum_ELBO found no sample sites")
    main()
