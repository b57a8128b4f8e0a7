"""Unsupervised clustering of MNIST digits with a Gaussian-mixture prior (enumerated component).

The model is  c ~ Cat(pi);  z ~ N(mu_c, sigma_c^2);  x ~ Bernoulli(decoder(z)),
the guide is  z ~ q(z | x)  and Pyro's ``TraceEnum_ELBO`` sums the component c out exactly.
Afterwards every test digit is assigned its most probable component, p(c | z = encoder mean).
Before the SVI loop the networks are pretrained as an autoencoder and the mixture is started
at an EM fit to their codes (VaDE's start, ``pyrovae.clustering.mixture_start``); ``--pretrain-epochs 0``
starts it at random instead. ``--umap-start`` starts it instead from N2D's clustering of the
pretrained codes (UMAP, then a mixture fit there; ``pyrovae.clustering.umap_start``, needs
``pip install "pyrovae[cluster]"``), which on full MNIST ends with a clearly better
clustering accuracy than the EM start (figures, over three seeds, in benchmarks/README.md,
"Clustering").

    python examples/mixture_prior.py               # 10,000 bundled digits, 20 epochs
    python examples/mixture_prior.py --smoke       # 300 digits, 1 epoch, seconds
    python examples/mixture_prior.py --umap-start  # the mixture started from UMAP's clusters
"""

from __future__ import annotations

import argparse

import pyro
import torch
from pyro.infer import SVI, TraceEnum_ELBO

import pyrovae
from pyrovae import MLP, VAE, BernoulliLikelihood, DiagonalNormalEncoder, GaussianMixturePrior
from pyrovae.data import InMemoryBatches, binarize_once, dynamic_binarize, load_dataset
from pyrovae.clustering.accuracy import encode_in_chunks
from pyrovae.clustering.mixture_start import pretrain_mixture_prior
from pyrovae.clustering.umap_start import umap_partition


def purity(vae: VAE, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of images whose digit is the most common one in their cluster."""
    clusters = pyrovae.cluster(vae, images)
    return sum(torch.bincount(labels[clusters == c], minlength=10).max().item()
               for c in clusters.unique()) / images.shape[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--num-components", type=int, default=10)
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--umap-start", action="store_true",
                        help="start the mixture from a UMAP clustering of the pretrained codes")
    parser.add_argument("--smoke", action="store_true", help="300 images, 1 epoch: checks that it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs = 1
        args.pretrain_epochs = min(args.pretrain_epochs, 1)
        torch.set_num_threads(1)
    pyro.set_rng_seed(args.seed)

    data = load_dataset("mnist-small")
    train = data.train_images[:300] if args.smoke else data.train_images
    test_images = data.test_images[:300] if args.smoke else data.test_images
    test_labels = data.test_labels[: test_images.shape[0]]
    test = binarize_once(test_images)

    d, k = args.latent_dim, args.num_components
    encoder = DiagonalNormalEncoder(MLP((1, 28, 28), (400,), 2 * d), d)
    likelihood = BernoulliLikelihood(MLP(d, (400,), 784), (1, 28, 28))
    prior = GaussianMixturePrior(d, k, enumerate=True)
    vae = VAE(encoder, likelihood, prior)
    if args.umap_start and not args.pretrain_epochs:
        parser.error("--umap-start clusters the pretrained codes; give --pretrain-epochs 1 or more")
    if args.pretrain_epochs:
        pretrain_mixture_prior(vae, train, args.pretrain_epochs, transform=dynamic_binarize, progress=False)
        if args.umap_start:
            codes = encode_in_chunks(vae, train)
            prior.fit_to_partition(codes, umap_partition(codes, k, seed=args.seed))
            print("mixture started from the UMAP clusters of the codes")
        start = purity(vae, test, test_labels)
        print(f"pretrained {args.pretrain_epochs} epochs; test purity at the start: {start:.1%}")

    pyro.clear_param_store()
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": args.lr}), TraceEnum_ELBO(max_plate_nesting=1))
    batches = InMemoryBatches(train, batch_size=args.batch_size, transform=dynamic_binarize)
    for epoch in range(1, args.epochs + 1):
        total = sum(svi.step(x) for x in (b[0] for b in batches))
        test_elbo = -svi.evaluate_loss(test) / test.shape[0]
        print(f"epoch {epoch:3d}  train loss {total / train.shape[0]:8.2f}  test ELBO {test_elbo:8.2f} nats")

    clusters = pyrovae.cluster(vae, test)
    print("\ncluster  size  most common digit  share of it")
    for c in range(k):
        members = test_labels[clusters == c]
        if members.numel() == 0:
            print(f"{c:7d}  {0:4d}  {'-':>17}")
            continue
        counts = torch.bincount(members, minlength=10)
        print(f"{c:7d}  {members.numel():4d}  {counts.argmax().item():17d}  {counts.max().item() / members.numel():11.0%}")
    print(f"purity (share of digits that are their cluster's most common digit): {purity(vae, test, test_labels):.1%}")
    print("first 20 test digits:  labels ", test_labels[:20].tolist())
    print("                       clusters", clusters[:20].tolist())


if __name__ == "__main__":
    main()
