"""Why a VAE generates and an autoencoder does not: an AE, a denoising AE and a VAE, same networks.

The lesson of the tutorials that lead from autoencoders to VAEs, as one figure and a table.
All three models are :class:`pyrovae.VAE` objects trained by the same :class:`pyrovae.Trainer`
with ``Trace_ELBO``; only parts differ:

* ``ae``: point-mass guide ``q(z|x) = delta(f(x))`` and a flat prior: the objective is the
  reconstruction term ``log p(x | f(x))`` alone;
* ``dae``: the same, the encoder reading inputs corrupted by ``--corrupt`` (default: 25% of
  the pixels masked) while the likelihood scores the clean images (Vincent et al. 2008);
* ``vae``: diagonal-Normal guide and standard Normal prior: the ELBO.

Networks: encoder MLP 784-H-(d for the point mass, 2d for the Normal guide), decoder MLP
d-H-784, softplus, Bernoulli likelihood. Data: dynamically binarized training images, the test
set binarized once (seed 0), as in ANCHORS.md's binarized-MNIST protocol, so the VAE's
importance-sampled NLL is a proper log-likelihood.

The figure has one row per model: reconstructions of test images, reconstructions of their
corrupted copies (denoising), decodes of ``z ~ N(0, I)`` and decodes of draws from a
10-component Gaussian mixture fitted to the training codes after training (the ex-post density
of Ghosh et al. 2020). The table: test reconstruction error ``-log p(x | z)`` at the code
``z = encode(x)`` (the guide's mean) and per-pixel squared error, the same from corrupted test
inputs (denoising error), and for the VAE its test NLL (k importance samples) and ELBO. The AE
and DAE have no NLL: their guide is a point mass (see pyrovae/guides/delta.py).

Writes ``<out>.png`` and appends rows to ``<out>.csv``.

Usage::

    PYTHONPATH=$PWD python benchmarks/autoencoders.py --dataset mnist --data-root /work/shared/data --epochs 10
    PYTHONPATH=$PWD python benchmarks/autoencoders.py --smoke   # seconds, to check the script runs
"""

from __future__ import annotations

import argparse
import csv
import datetime
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import pyro
import torch
from pyro.infer import Trace_ELBO

from pyrovae import (
    MLP,
    VAE,
    BernoulliLikelihood,
    DiagonalNormalEncoder,
    StandardNormalPrior,
    Trainer,
)
from pyrovae.cli.registry import build_corruption
from pyrovae.data import binarize_once, dynamic_binarize, load_dataset
from pyrovae.infer.evaluation import log_likelihood
from pyrovae.infer.metrics import elbo_parts
from pyrovae.infer.reconstruction import reconstruction_error
from pyrovae.models import autoencoder, fit_ex_post_mixture

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("ae", "dae", "vae")
TITLES = {"ae": "autoencoder", "dae": "denoising autoencoder", "vae": "VAE"}
SHORT = {"ae": "AE", "dae": "DAE", "vae": "VAE"}


def build(kind: str, latent_dim: int, hidden: int, corruption: torch.nn.Module) -> VAE:
    """The three models from the same network shapes; only the guide, prior and corruption differ."""
    decoder = BernoulliLikelihood(MLP(latent_dim, [hidden], 784), (1, 28, 28))
    if kind == "vae":
        encoder = DiagonalNormalEncoder(MLP((1, 28, 28), [hidden], 2 * latent_dim), latent_dim)
        return VAE(encoder, decoder, StandardNormalPrior(latent_dim), name=kind)
    return autoencoder(MLP((1, 28, 28), [hidden], latent_dim), decoder, latent_dim,
                       corruption=corruption if kind == "dae" else None, name=kind)


def draw_figure(panels: dict[str, list[torch.Tensor]], inputs: torch.Tensor, corrupted: torch.Tensor,
                path: Path, caption: str) -> Path:
    """One row per model, four panels each; the inputs and their corrupted copies on top."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from torchvision.utils import make_grid

    def grid(images: torch.Tensor) -> Any:
        return make_grid(images.detach().cpu().clamp(0, 1), nrow=8, padding=2, pad_value=1.0)[0].numpy()

    columns = ["reconstructions", "from corrupted inputs", "decodes of z ~ N(0, I)", "decodes of ex-post mixture draws"]
    fig = Figure(figsize=(16, 2.5 * (len(panels) + 1)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels) + 1, 4)
    for ax in axes.flat:
        ax.set_axis_off()
    axes[0, 0].imshow(grid(inputs), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[0, 0].set_title("test inputs")
    axes[0, 1].imshow(grid(corrupted), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[0, 1].set_title("corrupted test inputs")
    axes[0, 2].text(0, 0.5, caption, fontsize=10, va="center", wrap=True)
    for row, (kind, images) in enumerate(panels.items(), start=1):
        for col, (title, batch) in enumerate(zip(columns, images)):
            axes[row, col].imshow(grid(batch), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            axes[row, col].set_title(f"{SHORT[kind]}: {title}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="mnist-small")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--corrupt", default="mask:0.25", help="training corruption of the DAE and of the "
                        "denoising test, NAME:VALUE as for pyrovae train --corrupt")
    parser.add_argument("--is-samples", type=int, default=1000, help="importance samples for the VAE's NLL")
    parser.add_argument("--is-images", type=int, default=1000, help="test images (the first ones) for the NLL")
    parser.add_argument("--components", type=int, default=10, help="components of the ex-post mixture")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "autoencoders"))
    parser.add_argument("--smoke", action="store_true", help="tiny run: 300 images, 1 epoch, k = 5")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs, args.is_samples, args.is_images, args.hidden = 1, 5, 20, 32
    torch.set_num_threads(args.threads)
    pyro.set_rng_seed(args.seed)

    data = load_dataset(args.dataset, root=args.data_root, download=False)
    train, test = data.train_images, binarize_once(data.test_images, seed=0)
    if args.smoke:
        train, test = train[:300], test[:100]
    train_codes_from = binarize_once(train, seed=1)  # the ex-post fit sees images like those trained on
    corruption = build_corruption(args.corrupt)
    generator = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed + 1)
    corrupted_shown = corruption(test[:32])

    shown = test[:32]
    rows, panels = [], {}
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    command = "PYTHONPATH=$PWD python benchmarks/autoencoders.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    for kind in MODELS:
        pyro.clear_param_store()
        pyro.set_rng_seed(args.seed)
        model = build(kind, args.latent_dim, args.hidden, corruption)
        model.likelihood.init_output_bias(train)
        start = time.perf_counter()
        trainer = Trainer(model, lr=args.lr, batch_size=args.batch_size, progress=False, compile=False,
                          transform=lambda x: dynamic_binarize(x, generator), generator=generator)
        trainer.fit(train, epochs=args.epochs)
        seconds = time.perf_counter() - start
        clean = reconstruction_error(model, test)
        torch.manual_seed(args.seed + 2)  # the same corrupted test images for every model
        noisy = reconstruction_error(model, test, corruption=corruption)
        mixture = fit_ex_post_mixture(model, train_codes_from, args.components, generator=generator)
        with torch.no_grad():
            panels[kind] = [model.reconstruct(shown), model.reconstruct(corrupted_shown),
                            model.decode(torch.randn(32, args.latent_dim)), model.decode(mixture.sample(32))]
        row = {"model": kind, "dataset": args.dataset, "train_images": len(train), "test_images": len(test),
               "epochs": args.epochs, "latent_dim": args.latent_dim, "hidden": args.hidden,
               "corrupt": args.corrupt, "test_recon_nll": round(clean["recon_nll"], 2),
               "test_mse": round(clean["mse"], 5), "denoising_recon_nll": round(noisy["recon_nll"], 2),
               "denoising_mse": round(noisy["mse"], 5), "test_nll": "", "test_elbo": "", "is_samples": "",
               "train_seconds": round(seconds, 1), "threads": args.threads, "date": date, "command": command}
        if kind == "vae":
            nll = -log_likelihood(model.model, model.guide, test[: args.is_images], num_samples=args.is_samples,
                                  compile=False)
            elbo = elbo_parts(model.model, model.guide, test, objective=Trace_ELBO())["elbo"]
            row.update(test_nll=round(nll.mean().item(), 2), test_elbo=round(elbo, 2), is_samples=args.is_samples)
        rows.append(row)
        print({k: v for k, v in row.items() if k != "command"}, flush=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    caption = (f"{args.dataset}, {args.epochs} epochs, latent {args.latent_dim}, hidden {args.hidden}\n"
               f"corruption: {args.corrupt}\n\n" + "\n".join(
                   f"{TITLES[r['model']]}: recon {r['test_recon_nll']:.1f}, denoising {r['denoising_recon_nll']:.1f} nats"
                   + (f", NLL {r['test_nll']:.1f}" if r["test_nll"] != "" else "") for r in rows))
    figure = draw_figure(panels, shown, corrupted_shown, out.with_suffix(".png"), caption)
    csv_path = out.with_suffix(".csv")
    new = not csv_path.exists()
    with csv_path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)
    print(f"Wrote {figure} and {csv_path}")


if __name__ == "__main__":
    main()
