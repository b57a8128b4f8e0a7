"""Unsupervised clustering of full MNIST with a 10-component Gaussian-mixture prior
(ANCHORS.md, "Unsupervised clustering": VaDE 94.46%, GMVAE about 82%).

The model is VaDE's (Jiang et al. 2017): encoder 784-500-500-2000-(10, 10), decoder
10-2000-500-500-784, ReLU, Bernoulli likelihood on grey values, the mixture component an
enumerated site summed out by ``TraceEnum_ELBO``. ``--init fit`` is VaDE's start: the
networks are first trained as an autoencoder (a VAE with KL weight ``--pretrain-beta``, 0 by
default) for ``--pretrain-epochs``, then the prior is set to a diagonal mixture fitted by EM
to the encoder's means (:meth:`GaussianMixturePrior.fit_to`). ``--init umap`` pretrains the
same way but starts the prior from N2D's clustering of the codes, UMAP then the likeliest of
ten mixture fits (:func:`pyrovae.clustering.umap_start.umap_partition`; needs ``umap-learn``), set by
:meth:`GaussianMixturePrior.fit_to_partition`. ``--init random`` starts the
prior at random means and trains from scratch, as ``pyrovae train --prior gmm-enum`` does.
``--input-dropout P`` pretrains as a denoising autoencoder, as DEC and VaDE do: the encoder
sees each pixel zeroed with probability P (a ``Dropout`` in front of its network, switched
off for the training with the prior and at evaluation) while the decoder reconstructs the
clean image. ``--beta`` weights the KL term of the training with the prior (the pull of each
code towards its component; 1 is the ELBO). ``--lr-final`` decays the learning rate of the
training with the prior geometrically, epoch by epoch, from ``--lr`` to that value.

Accuracy is the Hungarian-matched agreement of ``argmax_k p(c = k | encode(x))`` with the
labels, on the 10,000 test images (held out) and the 60,000 training images. Each run appends
a row to ``benchmarks/results/clustering.csv``.

Usage::

    PYTHONPATH=$PWD python benchmarks/clustering.py --init fit --pretrain-epochs 10 --epochs 20
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from pyro.infer import TraceEnum_ELBO

from pyrovae import MLP, VAE, BernoulliLikelihood, DiagonalNormalEncoder, Trainer
from pyrovae.clustering.accuracy import cluster, cluster_accuracy, encode_in_chunks
from pyrovae.data import load_dataset
from pyrovae.clustering.mixture_start import pretrain_mixture_prior
from pyrovae.priors import GaussianMixturePrior
from pyrovae.clustering.umap_start import umap_partition

from loglik import decay_learning_rate  # benchmarks/ is the script's directory, so on sys.path

RESULTS = Path(__file__).parent / "results" / "clustering.csv"
FIELDS = ["init", "pretrain_epochs", "pretrain_beta", "input_dropout", "augment", "epochs", "beta", "lr", "lr_final",
          "batch_size", "seed",
          "accuracy_after_init", "test_accuracy", "train_accuracy", "test_elbo", "seconds", "threads",
          "date", "command"]


def vade_encoder(latent_dim: int, hidden: tuple[int, ...], input_dropout: float = 0.0) -> DiagonalNormalEncoder:
    """VaDE's encoder ``784-hidden-(latent, latent)``, ReLU, behind a ``Dropout`` on its input
    (``encoder.net[0]``, the denoising corruption; identity in eval mode or at p = 0)."""
    net = torch.nn.Sequential(torch.nn.Dropout(input_dropout), MLP((1, 28, 28), hidden, 2 * latent_dim, "relu"))
    return DiagonalNormalEncoder(net, latent_dim)


def random_affine(max_degrees: float, max_shift: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """A batch transform that rotates each image by up to ``max_degrees`` and shifts it by up to
    ``max_shift`` of its width and height (uniform, drawn per image from torch's global
    generator), bilinear, zeros outside: DEC-DA's augmentation (Guo et al. 2018, Keras's
    ``rotation_range=10, width_shift_range=0.1, height_shift_range=0.1``).

    Shapes: ``(batch, channels, height, width)`` in and out; values stay in the input's range.
    """

    def transform(images: torch.Tensor) -> torch.Tensor:
        n = images.shape[0]
        angle = (torch.rand(n, device=images.device) * 2 - 1) * math.radians(max_degrees)
        # affine_grid's translation is in [-1, 1] units: a shift of s of the width is 2 s.
        shift = (torch.rand(n, 2, device=images.device) * 2 - 1) * 2 * max_shift
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                             torch.stack([sin, cos, shift[:, 1]], 1)], 1)  # (n, 2, 3)
        grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    return transform


def accuracy(vae: VAE, images: torch.Tensor, labels: torch.Tensor) -> float:
    return cluster_accuracy(cluster(vae, images), labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", choices=["fit", "umap", "random"], default="fit")
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--pretrain-beta", type=float, default=0.0,
                        help="KL weight while pretraining (0: an autoencoder, as VaDE)")
    parser.add_argument("--input-dropout", type=float, default=0.0,
                        help="pretrain as a denoising autoencoder: zero each input pixel with this "
                             "probability (DEC and VaDE use 0.2); 0: no corruption")
    parser.add_argument("--augment", action="store_true",
                        help="train on randomly rotated (up to 10 degrees) and shifted (up to 10%%) images, "
                             "in pretraining and with the prior, as DEC-DA does; evaluation sees the "
                             "images as they are")
    parser.add_argument("--epochs", type=int, default=20, help="epochs with the mixture prior")
    parser.add_argument("--beta", type=float, default=1.0,
                        help="weight of the KL term while training with the prior (1: the ELBO)")
    parser.add_argument("--lr-final", type=float, default=None,
                        help="decay the learning rate of the epochs with the prior geometrically to this "
                             "value (default: constant --lr)")
    parser.add_argument("--save-pretrained", type=Path, default=None,
                        help="write the pretrained encoder and decoder here (never overwritten)")
    parser.add_argument("--load-pretrained", type=Path, default=None,
                        help="start from networks saved by --save-pretrained instead of pretraining")
    parser.add_argument("--restarts", type=int, default=3, help="EM restarts of the mixture fit")
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--hidden", type=int, nargs="+", default=[500, 500, 2000])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))  # ../shared/data beside the checkout
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not 0.0 <= args.input_dropout < 1.0:
        parser.error(f"--input-dropout must be in [0, 1), got {args.input_dropout}")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = load_dataset("mnist", args.data_root, download=False)
    train, test = data.train_images, data.test_images
    d, hidden = args.latent_dim, tuple(args.hidden)
    encoder = vade_encoder(d, hidden, args.input_dropout)
    corrupt = encoder.net[0]
    likelihood = BernoulliLikelihood(MLP(d, hidden[::-1], 784, "relu"), (1, 28, 28))
    likelihood.init_output_bias(train)
    prior = GaussianMixturePrior(d, 10, enumerate=True)
    generator = torch.Generator().manual_seed(args.seed)
    # After pretraining here, the random states go back to these, as a --load-pretrained run has
    # them: --init umap from scratch then draws the same noise and batches as a run that loads the
    # networks it made (only the networks can differ: threads, code version, compiled floats).
    start_states = torch.get_rng_state(), generator.get_state()
    augment = random_affine(10.0, 0.1) if args.augment else None
    start = time.perf_counter()

    if args.save_pretrained is not None and args.save_pretrained.exists():
        parser.error(f"{args.save_pretrained} exists; choose a new --save-pretrained path")
    vae = VAE(encoder, likelihood, prior)
    nets = torch.nn.ModuleDict({"encoder": encoder, "likelihood": likelihood})
    if args.init != "random" and args.load_pretrained is not None:
        nets.load_state_dict(torch.load(args.load_pretrained, weights_only=True))
        if args.init == "fit":  # --init umap sets the prior below
            prior.fit_to(encode_in_chunks(vae, train), restarts=args.restarts, generator=generator)
        print(f"pretrained networks from {args.load_pretrained}", flush=True)
    elif args.init != "random":
        pretrain_mixture_prior(vae, train, args.pretrain_epochs, kl_weight=args.pretrain_beta,
                               restarts=args.restarts, lr=args.lr, batch_size=args.batch_size,
                               progress=False, generator=generator, transform=augment,
                               callbacks=[lambda t, f: print(f"pretrain epoch {f['epoch']}: train recon "
                                                             f"{f['train_recon']:.2f}", flush=True)])
        if args.save_pretrained is not None:
            args.save_pretrained.parent.mkdir(parents=True, exist_ok=True)
            torch.save(nets.state_dict(), args.save_pretrained)
        torch.set_rng_state(start_states[0])
        generator.set_state(start_states[1])
    corrupt.p = 0.0  # the training with the prior sees clean images, as in DEC and VaDE
    if args.init == "umap":
        codes = encode_in_chunks(vae, train)
        prior.fit_to_partition(codes, umap_partition(codes, 10, seed=args.seed))
    after_init = accuracy(vae, test, data.test_labels)
    print(f"after init ({args.init}): test accuracy {after_init:.4f}", flush=True)

    def report(trainer, figures):
        figures["test_accuracy"] = accuracy(vae, test, data.test_labels)
        print(f"epoch {figures['epoch']}: test ELBO {figures['test_elbo']:.2f}, "
              f"test accuracy {figures['test_accuracy']:.4f}", flush=True)

    enum = TraceEnum_ELBO(max_plate_nesting=1)
    callbacks = [report]
    if args.lr_final is not None:
        callbacks.append(decay_learning_rate(args.lr, args.lr_final, args.epochs))
    trainer = Trainer(vae, objective=enum, eval_objective=TraceEnum_ELBO(max_plate_nesting=1), lr=args.lr,
                      beta=args.beta, batch_size=args.batch_size, progress=False, generator=generator,
                      transform=augment, callbacks=callbacks)
    record = trainer.fit(train, test, args.epochs)
    seconds = time.perf_counter() - start
    pretrained = (f"loaded {args.load_pretrained}" if args.load_pretrained else args.pretrain_epochs)
    row = {"init": args.init, "pretrain_epochs": pretrained if args.init != "random" else 0,
           # loaded networks: how they were pretrained is in the row of the run that saved them
           "pretrain_beta": "" if args.load_pretrained else args.pretrain_beta,
           "input_dropout": "" if args.load_pretrained else args.input_dropout,
           "augment": int(args.augment),
           "epochs": args.epochs, "beta": args.beta, "lr": args.lr,
           "lr_final": args.lr if args.lr_final is None else args.lr_final,
           "batch_size": args.batch_size, "seed": args.seed, "accuracy_after_init": round(after_init, 4),
           "test_accuracy": round(accuracy(vae, test, data.test_labels), 4),
           "train_accuracy": round(accuracy(vae, train, data.train_labels), 4),
           "test_elbo": round(record.last("test_elbo"), 2), "seconds": round(seconds, 1),
           "threads": args.threads,
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": "PYTHONPATH=$PWD python " + " ".join(shlex.quote(a) for a in sys.argv)}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    new = not args.results.exists()
    with args.results.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)
    print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
