"""A more flexible posterior: inverse autoregressive flow on top of the diagonal Normal encoder.

q(z | x) is z = f_K o ... o f_1(z0), z0 ~ N(mu(x), sigma(x)^2), each f_k an affine
autoregressive transform conditioned on a context h(x) from the encoder network (Kingma et
al. 2016). It is a drop-in ``encoder=`` for the VAE; Pyro's ``Trace_ELBO`` trains it through
``rsample``. The diagonal encoder with the same network is trained next to it for comparison.

    python examples/flow_guide.py              # 10,000 bundled digits, 10 epochs
    python examples/flow_guide.py --smoke      # 300 digits, 1 epoch, seconds
"""

from __future__ import annotations

import argparse

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO
from torch import Tensor, nn

from pyrovae import MLP, VAE, BernoulliLikelihood, DiagonalNormalEncoder, IAFEncoder, StandardNormalPrior
from pyrovae.data import InMemoryBatches, binarize_once, dynamic_binarize, load_dataset


def train(encoder: nn.Module, train_images: Tensor, test: Tensor, args: argparse.Namespace, name: str) -> float:
    """Fit a VAE with ``encoder`` as its guide by SVI and return its test ELBO per image."""
    d = encoder.latent_dim
    likelihood = BernoulliLikelihood(MLP(d, (400,), 784), (1, 28, 28))
    vae = VAE(encoder, likelihood, StandardNormalPrior(d), name=name)
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": args.lr}), Trace_ELBO())
    batches = InMemoryBatches(train_images, batch_size=args.batch_size, transform=dynamic_binarize)
    for epoch in range(1, args.epochs + 1):
        total = sum(svi.step(x) for x in (b[0] for b in batches))
        print(f"[{name}] epoch {epoch:3d}  train loss {total / train_images.shape[0]:8.2f}")
    return -svi.evaluate_loss(test) / test.shape[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--latent-dim", type=int, default=20)
    parser.add_argument("--num-flows", type=int, default=2)
    parser.add_argument("--hidden-features", type=int, default=64, help="size of the flow context h(x)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="300 images, 1 epoch: checks that it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs = 1
        torch.set_num_threads(1)

    data = load_dataset("mnist-small")
    train_images = data.train_images[:300] if args.smoke else data.train_images
    test = binarize_once(data.test_images[:300] if args.smoke else data.test_images)

    d, h = args.latent_dim, args.hidden_features
    pyro.clear_param_store()
    pyro.set_rng_seed(args.seed)
    iaf = IAFEncoder(MLP((1, 28, 28), (400,), IAFEncoder.output_size(d, h)), d, h, num_flows=args.num_flows)
    iaf_elbo = train(iaf, train_images, test, args, name="iaf")
    pyro.set_rng_seed(args.seed)
    diagonal = DiagonalNormalEncoder(MLP((1, 28, 28), (400,), 2 * d), d)
    diagonal_elbo = train(diagonal, train_images, test, args, name="diagonal")
    print(f"test ELBO, IAF guide ({args.num_flows} flows): {iaf_elbo:8.2f} nats")
    print(f"test ELBO, diagonal Normal guide: {diagonal_elbo:8.2f} nats")


if __name__ == "__main__":
    main()
