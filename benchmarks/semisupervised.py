"""Benchmark: M2 test accuracy with N labels, and CVAE conditional NLL on quadrant completion.

Compares with /work/shared/ANCHORS.md, "Semi-supervised MNIST (model M2)" (Kingma et al. 2014;
Pyro's SS-VAE tutorial) and "Conditional generation: MNIST quadrant completion" (Pyro's CVAE
tutorial). Protocols:

* M2: full MNIST, 10,000 training images held out for validation, a class-balanced labelled
  subset of N of the other 50,000 (seeded), the rest unlabelled; grey pixels, Bernoulli
  likelihood; nets 784-500-(z 50) as in Pyro's tutorial; every step one batch of 200 unlabelled
  and one of up to 100 labelled images; alpha = 50. The epoch with the best *validation*
  accuracy is kept and its accuracy on the 10,000 test images is the figure. With
  ``--m1-epochs`` the same M2 runs on the codes of Kingma et al.'s M1 (see ``m1_codes``).
* CVAE: full MNIST, the same 10,000 validation images for early stopping of the baseline
  (patience 3); baseline 784-500-500-784 ReLU; CVAE prior/recognition 784-500-500-(z 50),
  generation (z + 784 context)-500-500-784 (``--generation-input z``: z only, as in Pyro's
  tutorial, whose z has 200 dimensions: ``--latent-dim 200``); the CVAE epoch with the best validation
  conditional NLL is kept, stopping after 3 epochs without a better one (``--patience``), as
  Pyro's tutorial does. Figures: test conditional NLL (nats per image, hidden pixels only,
  grey-value cross-entropy) of the baseline and of the CVAE by importance sampling with k
  samples from the recognition network. Note the tutorial's CVAE figure is the negative ELBO
  (Trace_ELBO), an upper bound on the NLL reported here; both are written.

Each run appends rows to benchmarks/results/semisupervised.csv.

    PYTHONPATH=$PWD python benchmarks/semisupervised.py m2 --labels 100 --epochs 10
    PYTHONPATH=$PWD python benchmarks/semisupervised.py cvae --quadrants 1 --epochs 10
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import csv
import datetime
import shlex
import sys
import time
from pathlib import Path

import pyro
import torch

from pyrovae import MLP, BernoulliLikelihood, DiagonalNormalEncoder, NormalLikelihood, Trainer
from pyrovae.data import load_dataset
from pyrovae.data.quadrants import hide_quadrants
from pyrovae.data.semisupervised import split_labelled
from pyrovae.models import M2, ConditionalVAE, MaskedBaseline, conditional_nll, fit_baseline
from pyrovae.train.semisupervised import SemiSupervisedTrainer
from pyrovae.plots.semisupervised import save_analogies, save_class_samples, save_completions

RESULTS = Path(__file__).parent / "results"
FIELDS = ["model", "labels", "quadrants", "epochs", "seed", "seconds", "metric", "figure", "notes",
          "date", "command"]


def append_row(**row) -> None:
    path = RESULTS / "semisupervised.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                         "command": " ".join(shlex.quote(a) for a in sys.argv), **row})


def m1_codes(args, split, test_images):
    """Kingma et al.'s M1 for the stacked M1+M2: a VAE (784-500-50, softplus, Bernoulli on grey
    pixels; Kingma et al. used 600-600, which here sits on the collapsed plateau, KL 0.1, for
    the first epochs) trained without labels on the labelled and unlabelled images (not the
    validation ones); returns ``encode`` (posterior means, ``(N, 50)``) applied to every part of
    the split and to the test images, and M1's posterior standard deviation per dimension,
    averaged over the unlabelled images, ``(50,)``."""
    from pyrovae import VAE, StandardNormalPrior

    d = 50
    m1 = VAE(DiagonalNormalEncoder(MLP((1, 28, 28), (500,), 2 * d), d),
             BernoulliLikelihood(MLP(d, (500,), 784), (1, 28, 28)), StandardNormalPrior(d), name="m1")
    images = torch.cat([split.labelled_images, split.unlabelled_images])
    if args.m1_state is not None and args.m1_state.exists():  # the same 50,000 images for every N
        m1.load_state_dict(torch.load(args.m1_state, weights_only=True))
        print(f"M1 loaded from {args.m1_state}", flush=True)
        return _encode_split(m1, split, test_images)
    m1.likelihood.init_output_bias(images)
    Trainer(m1, progress=False, generator=torch.Generator().manual_seed(args.seed),
            callbacks=[lambda t, f: print(f"M1 epoch {f['epoch']}: test ELBO {f['test_elbo']:.2f}", flush=True)]
            ).fit(images, test_images[:2000], args.m1_epochs)
    if args.m1_state is not None:
        args.m1_state.parent.mkdir(parents=True, exist_ok=True)
        torch.save(m1.state_dict(), args.m1_state)
    return _encode_split(m1, split, test_images)


def _encode_split(m1, split, test_images):
    """The split and the test images replaced by M1's posterior means, ``(N, 50)``, and the mean
    posterior standard deviation per dimension."""

    def encode(x):
        return torch.cat([m1.encode(x[i : i + 5000]) for i in range(0, x.shape[0], 5000)])

    codes = dataclasses.replace(split, labelled_images=encode(split.labelled_images),
                                unlabelled_images=encode(split.unlabelled_images),
                                validation_images=encode(split.validation_images))
    with torch.no_grad():
        noise = torch.cat([m1.encoder.loc_scale(split.unlabelled_images[i : i + 5000])[1]
                           for i in range(0, split.unlabelled_images.shape[0], 5000)]).mean(0)
    return codes, encode(test_images), noise


def run_m2(args, data) -> None:
    split = split_labelled(data.train_images, data.train_labels, args.labels, num_validation=10000,
                           seed=args.seed)
    if args.train_size:  # fewer unlabelled images per epoch (the split is drawn first, unchanged)
        split = dataclasses.replace(split, unlabelled_images=split.unlabelled_images[: args.train_size])
    start = time.perf_counter()
    k, d, h = 10, 50, args.hidden
    test_images, transform = data.test_images, None
    if args.m1_epochs:  # M2 on M1's codes, Normal likelihood with a learned scale per code dimension
        split, test_images, noise = m1_codes(args, split, test_images)
        if args.m1_noise:  # Kingma et al. train M2 on draws from q(z1 | x), not on the means
            transform = lambda codes: codes + noise * torch.randn_like(codes)  # noqa: E731
        pixels = split.unlabelled_images.shape[1]
        m2 = M2(MLP(pixels, (h,), k), DiagonalNormalEncoder(MLP(pixels + k, (h,), 2 * d), d, context_dim=k),
                NormalLikelihood(MLP(d + k, (h,), pixels), (pixels,), scale=None, init_scale=1.0), k,
                alpha=args.alpha)
    else:
        m2 = M2(MLP((1, 28, 28), (h,), k), DiagonalNormalEncoder(MLP(784 + k, (h,), 2 * d), d, context_dim=k),
                BernoulliLikelihood(MLP(d + k, (h,), 784), (1, 28, 28)), k, alpha=args.alpha)
    if args.mean_init:
        m2.likelihood.init_output_bias(torch.cat([split.labelled_images, split.unlabelled_images]))
    best = {"val_accuracy": -1.0}
    state = None

    def keep_best(trainer, figures):
        nonlocal best, state
        print({k: round(v, 4) for k, v in figures.items()}, flush=True)
        if figures["val_accuracy"] > best["val_accuracy"]:
            best, state = dict(figures), copy.deepcopy(m2.state_dict())

    trainer = SemiSupervisedTrainer(m2, lr=args.lr, betas=(args.beta1, 0.999),
                                    batch_size=200, labelled_batch_size=100, progress=False,
                                    generator=torch.Generator().manual_seed(args.seed), callbacks=[keep_best],
                                    labelled_weight=(args.labelled_weight if args.labelled_weight == "proportional"
                                                     else float(args.labelled_weight)),
                                    labelled_every=args.labelled_every, transform=transform)
    record = trainer.fit(split, args.epochs)
    m2.load_state_dict(state)
    test_accuracy = m2.accuracy(test_images, data.test_labels)
    seconds = time.perf_counter() - start
    stacked = (f"M1 {args.m1_epochs} epochs, state {args.m1_state} (training time included when trained "
               f"here), noise {args.m1_noise}; " if args.m1_epochs else "")
    if not args.m1_epochs:  # the stacked model's M2 draws codes, not images
        out = RESULTS / "semisupervised" / f"m2_labels{args.labels}_seed{args.seed}"
        save_class_samples(m2, out.with_name(out.name + "_classes.png"))
        save_analogies(m2, data.test_images[:8], out.with_name(out.name + "_analogies.png"))
    append_row(model="m1+m2" if args.m1_epochs else "m2", labels=args.labels, quadrants="",
               epochs=args.epochs, seed=args.seed,
               seconds=round(seconds, 1), metric="test_accuracy_at_best_val_epoch",
               figure=round(test_accuracy, 4),
               notes=f"{split.unlabelled_images.shape[0]} unlabelled images per epoch; hidden {h}; "
                     f"best val epoch {best['epoch']} val_acc {best['val_accuracy']:.4f}; last epoch "
                     f"val_acc {record.last('val_accuracy'):.4f}; alpha {args.alpha}; "
                     f"{record.steps} steps; labelled loss weight {trainer._weight:.4g} every "
                     f"{args.labelled_every} step(s); "
                     f"Adam lr {args.lr:g} beta1 {args.beta1:g}; mean init {args.mean_init}; "
                     f"{stacked}"
                     f"{args.threads} thread(s) on a 2-core machine")
    print(f"m2 labels={args.labels}: test accuracy {test_accuracy:.4f} (epoch {best['epoch']}), "
          f"{seconds:.0f} s", flush=True)


class _StopEarly(Exception):
    """Raised by the CVAE's epoch callback when validation stopped improving."""


def run_cvae(args, data) -> None:
    images, test = data.train_images, data.test_images
    generator = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(images.shape[0], generator=generator)
    train, val = images[order[10000:]], images[order[:10000]]
    train = train[: args.train_size or None]
    test = test[: args.test_size]
    ctx, val_ctx, test_ctx = (hide_quadrants(x, args.quadrants) for x in (train, val, test))
    start = time.perf_counter()
    baseline = MaskedBaseline(MLP((1, 28, 28), (500, 500), 784, "relu"))
    brecord = fit_baseline(baseline, ctx, train, epochs=args.baseline_epochs, validation=(val_ctx, val),
                           patience=3, generator=generator)
    baseline_nll = -baseline.log_likelihood(test_ctx, test).mean().item()
    b_seconds = time.perf_counter() - start
    print("baseline", brecord.history, "test nll", baseline_nll, flush=True)
    append_row(model="cvae-baseline", labels="", quadrants=args.quadrants, epochs=len(brecord.history),
               seed=args.seed, seconds=round(b_seconds, 1), metric="test_conditional_nll_nats",
               figure=round(baseline_nll, 2),
               notes=f"early stopping patience 3 on validation, max {args.baseline_epochs} epochs; "
                     f"{train.shape[0]} training and {test.shape[0]} test images")
    d = args.latent_dim
    sees_context = args.generation_input == "z+context"
    cvae = ConditionalVAE(DiagonalNormalEncoder(MLP((1, 28, 28), (500, 500), 2 * d, "relu"), d),
                          DiagonalNormalEncoder(MLP((1, 28, 28), (500, 500), 2 * d, "relu"), d),
                          BernoulliLikelihood(MLP(d + 784 * sees_context, (500, 500), 784, "relu"), (1, 28, 28)),
                          baseline=baseline, generation_sees_context=sees_context)
    best = {"val_nll": float("inf"), "epoch": 0}
    state = None
    epochs_run = 0

    def keep_best(trainer, figures):
        nonlocal best, state, epochs_run
        epochs_run += 1
        figures["val_nll"] = conditional_nll(cvae, val_ctx[:1000], val[:1000], num_samples=20)
        print({k: round(v, 3) for k, v in figures.items()}, flush=True)
        if figures["val_nll"] < best["val_nll"]:
            best, state = dict(figures), copy.deepcopy(cvae.state_dict())
        elif args.patience and epochs_run - best["epoch"] >= args.patience:
            raise _StopEarly  # Pyro's tutorial: stop after `patience` epochs without a better one

    trainer = Trainer(cvae, progress=False, batch_size=256, generator=generator, callbacks=[keep_best])
    try:
        trainer.fit(ctx, None, args.epochs, train_context=train, eval_size=1000)
    except _StopEarly:
        pass
    cvae.load_state_dict(state)
    nll = conditional_nll(cvae, test_ctx, test, num_samples=args.is_samples)
    neg_elbo = -sum(cvae.conditional_elbo(test_ctx[i:i + 1000], test[i:i + 1000], 1).sum().item()
                    for i in range(0, test.shape[0], 1000)) / test.shape[0]
    seconds = time.perf_counter() - start
    save_completions(cvae, test_ctx[:10], test[:10],
                     RESULTS / "semisupervised" / f"cvae_quadrants{args.quadrants}_seed{args.seed}.png")
    append_row(model="cvae", labels="", quadrants=args.quadrants, epochs=epochs_run, seed=args.seed,
               seconds=round(seconds, 1), metric=f"test_conditional_nll_nats_IS_k{args.is_samples}",
               figure=round(nll, 2),
               notes=f"best val epoch {best['epoch']}; test negative ELBO (1 sample) {neg_elbo:.2f}; "
                     f"{train.shape[0]} training and {test.shape[0]} test images; "
                     f"early stopping patience {args.patience or 'off'}, max {args.epochs} epochs; "
                     f"z {d}, generation input {args.generation_input}; "
                     "time includes the baseline; 1 thread on a shared 2-core machine")
    print(f"cvae quadrants={args.quadrants}: IS NLL {nll:.2f}, -ELBO {neg_elbo:.2f}, baseline "
          f"{baseline_nll:.2f}, {seconds:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=["m2", "cvae"])
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--quadrants", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--baseline-epochs", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=50.0)
    parser.add_argument("--lr", type=float, default=1e-3, help="m2: Adam learning rate")
    parser.add_argument("--mean-init", action=argparse.BooleanOptionalAction, default=False,
                        help="m2: start the decoder's output bias at the training images' mean "
                             "(pyrovae train --model m2 does by default; off here to keep earlier rows comparable)")
    parser.add_argument("--beta1", type=float, default=0.9, help="m2: Adam's first moment decay")
    parser.add_argument("--labelled-weight", default="1",
                        help="m2: weight of the labelled loss, a number or 'proportional' (N_labelled / N_unlabelled)")
    parser.add_argument("--labelled-every", type=int, default=1,
                        help="m2: add the labelled loss on every n-th step only (Pyro's SS-VAE example: "
                             "one labelled batch per epoch at 100 labels, i.e. 250 at batch 200)")
    parser.add_argument("--m1-epochs", type=int, default=0,
                        help="m2: stack M2 on the codes of an M1 VAE trained this many epochs (Kingma et al.'s M1+M2)")
    parser.add_argument("--m1-noise", action=argparse.BooleanOptionalAction, default=False,
                        help="m2 on M1: add Gaussian noise with M1's mean posterior std per dimension to "
                             "every training batch of codes (approximating Kingma et al.'s draws from q(z1|x))")
    parser.add_argument("--m1-state", type=Path, default=None,
                        help="m2: load M1 from this file if it exists, else train it and save it here "
                             "(the labelled and unlabelled images are the same 50,000 for every N; "
                             "a loaded M1 keeps the epochs it was trained with)")
    parser.add_argument("--latent-dim", type=int, default=50, help="cvae: size of z (Pyro's tutorial: 200)")
    parser.add_argument("--generation-input", choices=["z+context", "z"], default="z+context",
                        help="cvae: what the generation network sees (Pyro's tutorial: z only)")
    parser.add_argument("--patience", type=int, default=3,
                        help="cvae: stop after this many epochs without a better validation NLL (0: never)")
    parser.add_argument("--is-samples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=500, help="m2: hidden units per layer")
    parser.add_argument("--train-size", type=int, default=0,
                        help="m2: unlabelled images used (0: all); cvae: training images (0: all)")
    parser.add_argument("--test-size", type=int, default=10000, help="cvae: test images scored")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))  # ../shared/data beside the checkout
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pyro.set_rng_seed(args.seed)
    data = load_dataset("mnist", root=args.root, download=False)
    (run_m2 if args.model == "m2" else run_cvae)(args, data)


if __name__ == "__main__":
    main()
