"""Semi-supervised MNIST with Kingma et al.'s stacked model M1+M2, in Pyro's own SVI loops.

M1 is a plain VAE trained on every image, labels unused; M2 then learns from M1's codes
instead of pixels: its likelihood p(z1 | y, z2) is a Normal with a learned scale per code
dimension. Digits that differ in stroke width but not in class lie close in M1's code space,
which is why the stack classifies better than M2 on pixels (benchmarks/README.md,
"semisupervised.py").

    python examples/stacked_m1_m2.py            # a few minutes on 2 CPU cores
    python examples/stacked_m1_m2.py --smoke    # a few seconds, as the test suite runs it
"""

import argparse

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO

import pyrovae
from pyrovae.data import InMemoryBatches, load_dataset
from pyrovae.data.semisupervised import MixedBatches, split_labelled
from pyrovae.models import M2


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--m1-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    args = parser.parse_args()
    m1_epochs, epochs, size = (1, 1, 600) if args.smoke else (args.m1_epochs, args.epochs, None)

    pyro.set_rng_seed(0)
    data = load_dataset("mnist-small")  # 10,000 training and 2,000 test digits, no network needed
    images, labels = data.train_images[:size], data.train_labels[:size]

    # M1: z1 ~ N(0, I);  x ~ Bernoulli(decoder(z1)), trained on all images, labels unused.
    d1, hidden = 50, 500
    m1 = pyrovae.VAE(pyrovae.DiagonalNormalEncoder(pyrovae.MLP((1, 28, 28), [hidden], 2 * d1), d1),
                     pyrovae.BernoulliLikelihood(pyrovae.MLP(d1, [hidden], 784), (1, 28, 28)),
                     pyrovae.StandardNormalPrior(d1), name="m1")
    m1.likelihood.init_output_bias(images)
    svi = SVI(m1.model, m1.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    for epoch in range(1, m1_epochs + 1):
        loss = sum(svi.step(x) for (x,) in InMemoryBatches(images, batch_size=128)) / len(images)
        print(f"M1 epoch {epoch}: loss {loss:.1f} nats per image")

    # M2 on M1's codes (posterior means): y ~ Cat;  z2 ~ N(0, I);  z1 ~ N(net(y, z2), sigma).
    codes, test_codes = m1.encode(images), m1.encode(data.test_images)
    split = split_labelled(codes, labels, num_labelled=args.labels, num_validation=len(images) // 10)
    k, d2 = 10, 50
    m2 = M2(
        classifier=pyrovae.MLP(d1, [hidden], k),
        encoder=pyrovae.DiagonalNormalEncoder(pyrovae.MLP(d1 + k, [hidden], 2 * d2), d2, context_dim=k),
        likelihood=pyrovae.NormalLikelihood(pyrovae.MLP(d2 + k, [hidden], d1), (d1,), scale=None, init_scale=1.0),
        num_classes=k,
        alpha=50.0,
        name="m2",
    )
    m2.likelihood.init_output_bias(codes)
    svi = SVI(m2.model, m2.guide, pyro.optim.Adam({"lr": 1e-3}), TraceEnum_ELBO(max_plate_nesting=1))
    for epoch in range(1, epochs + 1):
        for x_l, y_l, x_u in MixedBatches(split, batch_size=200, labelled_batch_size=100):
            svi.step(x_l, y_l)
            svi.step(x_u)
        accuracy = m2.accuracy(split.validation_images, split.validation_labels)
        print(f"M2 epoch {epoch}: validation accuracy {accuracy:.3f}")

    with torch.no_grad():
        print(f"test accuracy of M1+M2 {m2.accuracy(test_codes, data.test_labels):.3f}")


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore", message="TraceEnum_ELBO found no sample sites")
    main()
