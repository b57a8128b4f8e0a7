"""Test negative log-likelihood on dynamically binarized MNIST (ANCHORS.md, "Binarized MNIST").

Protocol: training images binarized afresh every time they are used, the test set binarized
once with a fixed seed, ``log p(x)`` estimated with k = 5000 importance samples from q(z|x).
Architecture of Burda et al. (2015), one stochastic layer: encoder 784-200-200-(50, 50),
decoder 50-200-200-784, tanh, Bernoulli likelihood, Adam. Compare with the rows "VAE, 1
stochastic layer ... 86.76" (``standard``) and "IWAE, 1 stochastic layer, k=50 ... 84.78"
(``iwae``; here k is ``--num-particles``), keeping in mind the paper trained for 3,280 passes;
``vamp`` compares with the VampPrior rows (Tomczak and Welling used latent 40, 2,000 epochs).
``--hidden 500,500 --lr-final 1e-4`` widens both networks and decays the learning rate tenfold
over the run; with both, 100 epochs of the standard VAE gave 87.17 nats (benchmarks/README.md;
which of the two changes matters more was not measured). ``--network conv --channels 16,32
--hidden 256`` swaps both MLPs for pyrovae's conv pair (stride-2 stages down to 7x7, ReLU).

Each run appends one row to ``benchmarks/results/loglik.csv``.

Usage::

    PYTHONPATH=$PWD python benchmarks/loglik.py --config standard --epochs 10 --eval-subset 2000
    PYTHONPATH=$PWD python benchmarks/loglik.py --config standard --epochs 100 --hidden 500,500 --lr-final 1e-4 --eval-subset 2000
    PYTHONPATH=$PWD python benchmarks/loglik.py --config standard --network conv --channels 16,32 --hidden 256 \
        --epochs 100 --lr-final 1e-4 --save benchmarks/out/loglik_conv_100ep.pt
"""

from __future__ import annotations

import argparse
import csv
import datetime
import shlex
import sys
import time
from pathlib import Path

import torch
from pyro.infer import Trace_ELBO

from pyrovae import MLP, VAE, BernoulliLikelihood, DiagonalNormalEncoder, StandardNormalPrior, Trainer
from pyrovae.nn import ConvDecoderNet, ConvEncoderNet
from pyrovae.data import binarize_once, dynamic_binarize, load_dataset
from pyrovae.infer.evaluation import active_units, log_likelihood
from pyrovae.infer.iwae import IWAE
from pyrovae.infer.metrics import elbo_parts
from pyrovae.priors import GaussianMixturePrior, VampPrior

RESULTS = Path(__file__).parent / "results" / "loglik.csv"
FIELDS = ["model", "network", "channels", "hidden", "latent_dim", "epochs", "num_particles", "batch_size", "lr", "lr_final", "mean_init", "train_seconds", "eval_seconds",
          "eval_images", "importance_samples", "test_elbo", "test_nll", "active_units", "threads",
          "date", "command"]


def build_vae(config: str = "standard", latent_dim: int = 50, hidden: tuple[int, ...] = (200, 200),
              init_images: torch.Tensor | None = None, network: str = "mlp",
              channels: tuple[int, ...] = (16, 32)) -> VAE:
    """The one-stochastic-layer network of Burda et al. (2015) with the prior ``config`` names:
    standard Normal (``standard``, ``iwae``), a 10-component Gaussian mixture in marginalized form
    (``gmm``) or a VampPrior with 500 pseudo-inputs started at training images (``vamp``).

    ``network="conv"`` swaps both MLPs for pyrovae's conv pair: stride-2 stages of ``channels``
    down to a 7x7 map, then ``hidden`` linear layers (ReLU), and the mirror image back."""
    if network == "conv":
        encoder_net = ConvEncoderNet((1, 28, 28), 2 * latent_dim, channels=channels, hidden=hidden)
        decoder_net = ConvDecoderNet(latent_dim, (1, 28, 28), channels=channels, hidden=hidden)
    else:
        encoder_net = MLP((1, 28, 28), hidden, 2 * latent_dim, activation="tanh")
        decoder_net = MLP(latent_dim, hidden, 784, activation="tanh")
    encoder = DiagonalNormalEncoder(encoder_net, latent_dim)
    likelihood = BernoulliLikelihood(decoder_net, (1, 28, 28))
    if config == "gmm":
        prior = GaussianMixturePrior(latent_dim, 10)
    elif config == "vamp":
        prior = VampPrior(encoder, 500, (1, 28, 28), init=None if init_images is None else init_images[:500])
    else:
        prior = StandardNormalPrior(latent_dim)
    return VAE(encoder, likelihood, prior)


def _widths(text: str) -> tuple[int, ...]:
    """``"500,500"`` -> ``(500, 500)``, for ``--hidden``."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths such as 500,500, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive integers, got {text!r}")
    return widths


def decay_learning_rate(lr: float, lr_final: float, epochs: int):
    """An epoch callback for :class:`Trainer` that sets the rate for the next epoch so that it
    falls geometrically from ``lr`` (epoch 1) to ``lr_final`` (epoch ``epochs``)."""
    ratio = (lr_final / lr) ** (1.0 / max(epochs - 1, 1))

    def callback(trainer: Trainer, figures: dict) -> None:
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr * ratio ** min(figures["epoch"], epochs - 1)
    return callback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=["standard", "iwae", "gmm", "vamp"], required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--num-particles", type=int, default=5, help="k for --config iwae")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-final", type=float, default=None,
                        help="decay the learning rate geometrically, epoch by epoch, from --lr to this value "
                             "in the last epoch (Burda et al. decay theirs tenfold per stage); default: constant")
    parser.add_argument("--hidden", type=_widths, default=(200, 200),
                        help="hidden widths of encoder and decoder, comma-separated (default 200,200: Burda et al.)")
    parser.add_argument("--network", choices=["mlp", "conv"], default="mlp",
                        help="mlp: Burda et al.'s tanh MLPs; conv: stride-2 conv stages (--channels) "
                             "and --hidden linear layers, ReLU")
    parser.add_argument("--channels", type=_widths, default=(16, 32), help="conv stage widths (--network conv)")
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--warmup-epochs", type=float, default=0.0,
                        help="linear KL warm-up from 0 to 1 over this many epochs (Tomczak and Welling use it; "
                             "without it the VampPrior run collapses to KL 0 within two epochs)")
    parser.add_argument("--mean-init", action=argparse.BooleanOptionalAction, default=True,
                        help="start the decoder's output bias at the training images' mean, as pyrovae "
                             "train does (without it the tanh network sits on a collapsed plateau, KL near 0, "
                             "for the first epochs, and a VampPrior run never leaves it)")
    parser.add_argument("--eval-subset", type=int, default=None, help="evaluate on the first M test images")
    parser.add_argument("--num-samples", type=int, default=5000, help="importance samples for log p(x)")
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))  # ../shared/data beside the checkout
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--save", type=Path, default=None, help="write the trained state_dict here (never overwritten)")
    parser.add_argument("--load", type=Path, default=None,
                        help="evaluate a state_dict written by --save instead of training (give the same network "
                             "flags as the run that saved it; the row's epochs column is left empty)")
    args = parser.parse_args(argv)
    if args.save is not None and args.save.exists():
        parser.exit(2, f"error: {args.save} exists; pass another --save path\n")
    if args.load is not None and not args.load.is_file():
        parser.exit(2, f"error: {args.load} does not exist; pass the file a run wrote with --save\n")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    data = load_dataset("mnist", root=args.data_root, download=False)
    test = binarize_once(data.test_images, seed=1234)
    if args.eval_subset is not None:
        test = test[: args.eval_subset]
    vae = build_vae(args.config, latent_dim=args.latent_dim, hidden=args.hidden, init_images=data.train_images,
                    network=args.network, channels=args.channels)
    if args.mean_init:
        vae.likelihood.init_output_bias(data.train_images)
    objective = IWAE(args.num_particles) if args.config == "iwae" else Trace_ELBO()
    trainer = Trainer(vae, objective=objective, lr=args.lr, batch_size=args.batch_size,
                      transform=dynamic_binarize, progress=False, warmup_epochs=args.warmup_epochs,
                      generator=torch.Generator().manual_seed(args.seed),
                      callbacks=[lambda t, f: print(f"epoch {f['epoch']}: train loss {f['train_loss']:.2f} "
                                                    f"({f['seconds']:.0f} s)", flush=True)])
    if args.lr_final is not None:
        trainer.callbacks.append(decay_learning_rate(args.lr, args.lr_final, args.epochs))
    if args.load is not None:
        try:
            vae.load_state_dict(torch.load(args.load, weights_only=True))
        except (RuntimeError, KeyError) as error:  # another network: missing keys or size mismatches
            parser.exit(2, f"error: {args.load} does not fit the network these flags build ({str(error).splitlines()[0]}); "
                           "give the --config, --network, --channels, --hidden and --latent-dim of the run that saved it\n")
        train_seconds = 0.0
    else:
        train_seconds = trainer.fit(data.train_images, epochs=args.epochs, eval_size=500).seconds
    if args.save is not None:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        torch.save(vae.state_dict(), args.save)

    vae.eval()
    start = time.perf_counter()
    elbo = elbo_parts(vae.model, vae.guide, test)["elbo"]
    nll = -log_likelihood(vae.model, vae.guide, test, num_samples=args.num_samples).mean().item()  # gmm: marginalized
    active, _ = active_units(vae, test)
    eval_seconds = time.perf_counter() - start
    row = {
        "model": args.config, "network": args.network,
        "channels": "-".join(map(str, args.channels)) if args.network == "conv" else "", "hidden": "-".join(map(str, args.hidden)), "latent_dim": args.latent_dim,
        "epochs": "" if args.load is not None else args.epochs,
        "num_particles": args.num_particles if args.config == "iwae" else 1,
        "batch_size": args.batch_size, "lr": args.lr,
        "lr_final": args.lr if args.lr_final is None else args.lr_final, "mean_init": args.mean_init, "train_seconds": round(train_seconds, 1),
        "eval_seconds": round(eval_seconds, 1), "eval_images": test.shape[0],
        "importance_samples": args.num_samples, "test_elbo": round(elbo, 2), "test_nll": round(nll, 2),
        "active_units": active, "threads": args.threads,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "PYTHONPATH=$PWD python " + shlex.join(["benchmarks/loglik.py", *(argv or sys.argv[1:])]),
    }
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
