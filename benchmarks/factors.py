"""Disentanglement on generated dSprites: VAE, beta-VAE (beta 4) and beta-TC-VAE (beta 6), same nets.

Compared with Chen et al., "Isolating Sources of Disentanglement in VAEs" (NeurIPS 2018), whose
dSprites results plot MIG against beta for beta-VAE and beta-TC-VAE over several seeds (see the
paper's figures; benchmarks/README.md says what is and is not compared). The data are
pyrovae's re-drawn dSprites grid (:func:`pyrovae.data.dsprites`, "dSprites-like": the same
factor grid, its own sprites), ``--train-size`` random images for training and ``--test-size``
others for the metrics, the same images for every model and seed.

Networks (after Chen et al.'s dSprites MLP): encoder 4096-H-H-(2 x latent), ReLU; decoder
latent-H-H-H-4096, tanh; Bernoulli likelihood; standard Normal prior; diagonal Normal guide.
The three models differ only in the objective: the ELBO, the ELBO with the KL weighted by 4,
and :class:`~pyrovae.infer.tcvae.BetaTCELBO` with beta 6 (stratified estimator). Training runs
through :class:`~pyrovae.train.trainer.Trainer`, as ``pyrovae train`` does.

Scores on the test images: MIG with Chen et al.'s sampled mutual information and with the
binned one (20 bins), DCI (ridge importances), the test ELBO and the KL split. ``mig_sampled``
averages the gap over all five factors; ``mig_without_shape`` over scale, orientation and
position only, as Chen et al.'s dSprites MIG does (their code leaves the shape out). One CSV row
per (model, seed) goes to ``--csv``; the summary (mean and sample standard deviation over
seeds) is printed as a markdown table.

Usage::

    PYTHONPATH=$PWD python benchmarks/factors.py                      # the benchmark (long)
    PYTHONPATH=$PWD python benchmarks/factors.py --train-size 2000 --epochs 2 --seeds 0 \\
        --hidden 256 --csv benchmarks/results/factors_short.csv      # a short check that it runs
    PYTHONPATH=$PWD python benchmarks/factors.py --summarize benchmarks/results/factors.csv  # the table again
"""

from __future__ import annotations

import argparse
import csv
import datetime
import shlex
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch

import pyrovae
from pyrovae.factors import factor_scores, posterior_parameters
from pyrovae.factors.data import load_shapes
from pyrovae.infer.elbo import SyncFreeTrace_ELBO
from pyrovae.infer.tcvae import BetaTCELBO
from pyrovae.infer.total_correlation import vae_kl_decomposition
from pyrovae.train.trainer import Trainer

#: model name -> (objective builder taking the training-set size, KL weight of the trainer)
MODELS = {
    "vae": (lambda n: SyncFreeTrace_ELBO(), 1.0),
    "beta-vae": (lambda n: SyncFreeTrace_ELBO(), 4.0),
    "beta-tcvae": (lambda n: BetaTCELBO(beta=6.0, dataset_size=n), 1.0),
}


def build_vae(latent_dim: int, hidden: int) -> pyrovae.VAE:
    encoder_net = pyrovae.MLP((1, 64, 64), [hidden, hidden], 2 * latent_dim, "relu")
    decoder_net = pyrovae.MLP(latent_dim, [hidden, hidden, hidden], 64 * 64, "tanh")
    return pyrovae.VAE(pyrovae.DiagonalNormalEncoder(encoder_net, latent_dim),
                       pyrovae.BernoulliLikelihood(decoder_net, (1, 64, 64)),
                       pyrovae.StandardNormalPrior(latent_dim))


def run_one(model: str, seed: int, data, args: argparse.Namespace) -> dict:
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    make_objective, kl_weight = MODELS[model]
    train = data.train_images.to(args.device)
    test = data.test_images.to(args.device)
    vae = build_vae(args.latent_dim, args.hidden).to(args.device)
    trainer = Trainer(vae, objective=make_objective(len(train)), lr=args.lr, batch_size=args.batch_size,
                      beta=kl_weight, progress=False, compile=False,
                      generator=torch.Generator(device=args.device).manual_seed(seed))
    start = time.perf_counter()
    record = trainer.fit(train, test, epochs=args.epochs, eval_size=1000)
    seconds = time.perf_counter() - start
    vae.eval()
    loc, scale = posterior_parameters(vae.posterior, test)
    row = {"model": model, "seed": seed, "epochs": args.epochs, "train_size": len(train),
           "test_size": len(test), "latent_dim": args.latent_dim, "hidden": args.hidden,
           "batch_size": args.batch_size, "test_elbo": record.last("test_elbo"), "train_seconds": round(seconds, 1)}
    for estimator in ("sampled", "binned"):
        scores = factor_scores(loc, scale, data.test_factors.to(args.device), data.factor_names,
                               categorical=data.categorical, estimator=estimator, num_samples=args.mi_samples,
                               generator=torch.Generator(device=args.device).manual_seed(seed))
        row[f"mig_{estimator}"] = scores["mig"]
        if estimator == "sampled":
            row.update({f"mig_{name}": gap for name, gap in scores["mig_per_factor"].items()})
            row.update({f"dci_{name}": value for name, value in scores["dci"].items()})
    split = vae_kl_decomposition(vae, train[:2000], dataset_size=len(train))
    row.update({f"train_{name}": value for name, value in split.items()})
    return row


def mig_without_shape(row: dict) -> float:
    """The gap averaged over the ordered factors (scale, orientation, position), from a row's
    per-factor ``mig_<name>`` columns: Chen et al.'s dSprites MIG, which leaves the shape out."""
    return statistics.mean(float(row[f"mig_{name}"]) for name in ("scale", "orientation", "pos_x", "pos_y"))


SUMMARY_COLUMNS = ("mig_sampled", "mig_without_shape", "mig_binned", "dci_disentanglement", "dci_completeness",
                   "dci_informativeness", "test_elbo", "train_total_correlation")


def summarize(rows: list[dict], columns: tuple[str, ...] = SUMMARY_COLUMNS) -> str:
    lines = ["| model | seeds | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for model in MODELS:
        mine = [r for r in rows if r["model"] == model]
        if not mine:
            continue
        cells = []
        for column in columns:
            values = [mig_without_shape(r) if column == "mig_without_shape" else float(r[column]) for r in mine]
            spread = statistics.stdev(values) if len(values) > 1 else float("nan")
            cells.append(f"{statistics.mean(values):.3f} ± {spread:.3f}")
        lines.append(f"| {model} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--train-size", type=int, default=50_000)
    parser.add_argument("--test-size", type=int, default=5_000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--mi-samples", type=int, default=5000, help="draws of the sampled MI estimate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--csv", default="benchmarks/results/factors.csv")
    parser.add_argument("--summarize", metavar="CSV", default=None,
                        help="print the table of mean ± sample sd from the rows of CSV and stop (no training)")
    args = parser.parse_args()
    if args.summarize is not None:
        if not Path(args.summarize).is_file():
            parser.exit(2, f"error: {args.summarize} does not exist; give a CSV that factors.py wrote\n")
        with open(args.summarize, newline="") as f:
            print(summarize(list(csv.DictReader(f))))
        return
    torch.set_num_threads(args.threads)

    data = load_shapes("dsprites", train_size=args.train_size, test_size=args.test_size)
    command = "python " + shlex.join(sys.argv)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    for model in args.models:
        for seed in args.seeds:
            row = run_one(model, seed, data, args) | {"date": stamp, "threads": args.threads, "command": command}
            rows.append(row)
            print(f"{model} seed {seed}: MIG {row['mig_sampled']:.3f} (binned {row['mig_binned']:.3f}), "
                  f"DCI-D {row['dci_disentanglement']:.3f}, test ELBO {row['test_elbo']:.1f}, "
                  f"TC {row['train_total_correlation']:.2f}, {row['train_seconds']:.0f} s", flush=True)
            fresh = not path.exists()
            with path.open("a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(row))
                if fresh:
                    writer.writeheader()
                writer.writerow(row)
    print(f"\n{command}\n{stamp}, {args.threads} threads\n")
    print(summarize(rows))


if __name__ == "__main__":
    main()
