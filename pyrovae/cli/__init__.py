"""Command line: ``pyrovae train``, ``pyrovae sample``, ``pyrovae evaluate`` (also ``python -m pyrovae``)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields

from pyrovae.cli.config import ConfigError, TrainConfig, read_toml

HELP = {
    "dataset": "mnist-small (bundled, no network), mnist, fashion-mnist, kmnist, cifar10, svhn, celeba "
               "(torchvision, downloaded into --data-root), dsprites or colour-shapes (drawn on the spot), a folder "
               "of PNG/JPEG images (class subfolders become labels) or an .npz file with train_images and "
               "optionally test_images, train_labels, test_labels: images (N,C,H,W), (N,H,W,C) or (N,H,W), uint8 "
               "0..255 or float in [0,1], or tabular rows (N,D) (--network mlp only); without test_images 10%% is "
               "held out. See docs/data.md",
    "data_root": "folder holding torchvision's data sets (<NAME>/raw, cifar-10-batches-py, train_32x32.mat, "
                 "celeba/; downloaded there if missing)",
    "download": "let torchvision download a missing data set",
    "train_size": "use only the first N training images",
    "binarize": "dynamic binarization: draw pixels as Bernoulli(grey value) every epoch",
    "network": "mlp (any data) or conv (images (C, H, W) of 16 to 128 pixels a side: pyrovae.nn.conv)",
    "hidden": "hidden layer widths, e.g. 400 or 500,500 (the MLP's layers; the conv nets' linear head)",
    "activation": "softplus, relu, tanh, elu or gelu",
    "encoder_scale": "how the diagonal guide turns its raw output into a standard deviation: softplus or exp",
    "mean_init": "start the decoder's output bias at the training images' mean (likelihood.init_output_bias)",
    "latent_dim": "size of z (2 also draws the latent space and the decoded manifold)",
    "likelihood": "bernoulli, cbernoulli, normal or laplace; for 8-bit images (values k/255): "
                  "logistic-mixture, logistic-mixture-rgb (channels coupled, PixelCNN++) or categorical "
                  "(256-way); evaluate then reports bits/dim",
    "prior": "prior p(z): normal, learned, gmm (marginalized mixture), gmm-enum (enumerated component, "
             "gives clusters), vamp, flow, hierarchical or flat (no prior term, for --model ae)",
    "num_components": "mixture components (gmm, gmm-enum) or pseudo-inputs (vamp); for --model ae, "
                      "components of the ex-post mixture fitted to the codes for sampling",
    "pretrain_epochs": "gmm, gmm-enum: first train this many epochs as an autoencoder, then start the "
                       "mixture at an EM fit to the codes (VaDE's start; better clusters); 0: random start",
    "guide": "guide q(z|x): diagonal, iaf (inverse autoregressive flow), lowrank or fullcov",
    "num_flows": "flow layers of the iaf guide and the flow prior",
    "rank": "rank of the lowrank guide's covariance factor",
    "objective": "elbo (Trace_ELBO), meanfield (TraceMeanField_ELBO, analytic KL), iwae (importance-"
                 "weighted bound) or dreg (IWAE bound, doubly-reparameterized gradients)"
                 ", or tcvae (beta-TC-VAE: --beta weights the total correlation, not the whole KL)",
    "num_particles": "samples per data point in the ELBO/IWAE estimate (vectorized)",
    "epochs": "passes over the training data",
    "batch_size": "images per step",
    "lr": "Adam learning rate",
    "beta": "weight of the KL term (beta-VAE); 1 is the ELBO; with --objective tcvae the weight of the total correlation",
    "warmup_epochs": "epochs of linear KL warm-up from 0 to beta",
    "seed": "random seed",
    "device": "auto, cpu, cuda or mps",
    "out": "output folder for checkpoint, metrics and pictures",
    "progress": "show a progress bar",
    "checkpoint_every": "also write the checkpoint every N steps (0: after every epoch only)",
    "max_nonfinite_steps": "stop after this many steps in a row with a NaN/inf loss or gradient (each is skipped)",
    "compile": "compile the training steps with torch.compile: the whole loss traced once into one graph "
               "(the networks and the Bernoulli density alone for M2 and other objectives); seconds to "
               "compile once, then faster epochs on a CPU; pays off on long runs. Not given: on for "
               "runs of 5,000 steps or more on a CPU with the default ELBO (pyrovae.train.trainer."
               "AUTO_COMPILE_STEPS; not m2, iwae, dreg or gmm-enum), off otherwise; --no-compile: always off",
    "model": "vae, ae (autoencoder: point-mass guide; --prior flat for the plain reconstruction objective), "
             "m2 (semi-supervised, Kingma et al. 2014), cvae (quadrant completion, Sohn et al. 2015), "
             "vqvae or vqvae2 (discrete codes, van den Oord et al. 2017, Razavi et al. 2019)",
    "labels": "m2: number of labelled training images, class-balanced (a multiple of the classes)",
    "validation_size": "m2/cvae: training images held out for validation",
    "alpha": "m2: weight of the classification loss on labelled images",
    "quadrants": "cvae: visible quadrants, 1, 2 or 3; the rest is predicted",
    "baseline_epochs": "cvae: maximum epochs of the supervised baseline (early stopping, patience 3)",
    "is_samples": "cvae: importance samples per image for the conditional NLL each epoch",
    # TensorBoard (pyrovae.plots.tensorboard)
    "tensorboard": "also write the per-epoch figures and the pictures as TensorBoard event files in "
                   "<out>/tensorboard (needs pip install \"pyrovae[tensorboard]\")",
    # Networks and likelihoods for any image shape.
    "channels": "conv: widths of the stride-2 stages, e.g. 32,64,128; not given: 32, 64, ... as many as "
                "bring the image down to a map of at most 8x8",
    "res_blocks": "conv: residual blocks at the smallest feature map",
    # VQ-VAE and VQ-VAE-2 (--model vqvae / vqvae2).
    "codebook_size": "vqvae/vqvae2: codes in each codebook, K (at least 2)",
    "code_dim": "vqvae/vqvae2: size of each code vector, D",
    "code_map": "vqvae/vqvae2: height of the (bottom) code map, the image halved 1, 2, ... times "
                "(default: a quarter of the height; VQ-VAE-2's top map is half of it)",
    "prior_epochs": "vqvae/vqvae2: epochs of the PixelCNN prior(s) fitted after the autoencoder (0: uniform prior)",
    "ema": "vqvae/vqvae2: learn the codebook by moving averages (decay 0.99); --no-ema: by the codebook loss",
    "commitment": "vqvae/vqvae2: weight beta of the commitment term, summed over latent elements",
    "restart_after": "vqvae/vqvae2: restart a code unused for this many steps at an encoder output (0: never)",
    "logistic_components": "logistic-mixture likelihoods: mixture components per sub-pixel (or pixel)",
    # Data sources (pyrovae.data.sources)
    "image_size": "image folders and celeba: resize the shorter side to N and centre-crop NxN (celeba: 64)",
    "grayscale": "image folders: read the images as one grey channel",
    "stream": "read training images batch by batch through a DataLoader instead of holding them in memory; "
              "not given: stream folders, celeba and generated shapes whose float32 images exceed 1.5 GB "
              "(pyrovae.data.sources.IN_MEMORY_LIMIT_BYTES)",
    "workers": "DataLoader worker processes when streaming (not given: CPU cores - 1, 1 to 4)",
    # autoencoders and denoising
    "corrupt": "denoising: the guide reads inputs corrupted by gaussian:SCALE (added noise) or mask:FRACTION "
               "(pixels set to 0) while the likelihood scores the clean ones; training only, evaluation reads "
               "clean inputs (vae, ae, m2)",
}


def _widths(text: str) -> int | tuple[int, ...]:
    """``"500,500"`` -> ``(500, 500)``; one number stays an int."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, e.g. 32,64,128, got {text!r}") from None
    return widths[0] if len(widths) == 1 else widths


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; defaults are suppressed so that only given flags override
    the TOML file and the dataclass defaults."""
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        if f.name == "out":  # a new run's folder is named after its model (config_from_args)
            default = "runs/<model>"
        kind = f.type if isinstance(f.type, type) else None
        type_names = str(f.type)
        if type_names in ("bool", "bool | None") or kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=f"{HELP.get(f.name, '')} (default: {default})")
            continue
        if "tuple" in type_names:  # a list of widths: --hidden 500,500, --channels 32,64,128
            conv = _widths
        elif "int" in type_names:
            conv = int
        elif "float" in type_names:
            conv = float
        else:
            conv = str
        parser.add_argument(flag, type=conv, default=argparse.SUPPRESS, metavar=f.name.upper(),
                            help=f"{HELP.get(f.name, '')} (default: {default})")


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line ``pyrovae: error: ...`` pointing at ``--help``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"pyrovae: error: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="pyrovae", description="Variational autoencoders written in Pyro.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a VAE and write checkpoint, metrics and pictures")
    train.add_argument("--config", metavar="FILE", help="TOML file of settings (flags override it)")
    train.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    train.add_argument("--resume", metavar="OUTDIR",
                       help="continue the run in OUTDIR from its last checkpoint, with its stored settings "
                            "(only --epochs and a few other flags may change)")
    _add_config_flags(train)

    sample = commands.add_parser("sample", help="write a grid of samples from a trained checkpoint")
    sample.add_argument("checkpoint", help="checkpoint.pt written by pyrovae train")
    sample.add_argument("--num-samples", type=int, default=64, help="how many images (default: 64)")
    sample.add_argument("--out", help="PNG to write (default: samples_seed<SEED>.png beside the checkpoint)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")

    evaluate = commands.add_parser("evaluate", help="importance-sampled log-likelihood, ELBO split, KL per "
                                   "dimension and active units of a checkpoint")
    evaluate.add_argument("checkpoint", help="checkpoint.pt written by pyrovae train")
    evaluate.add_argument("--num-samples", type=int, default=5000,
                          help="importance samples per image for log p(x) (default: 5000)")
    evaluate.add_argument("--data", choices=["test", "train"], default="test",
                          help="which split of the checkpoint's data set (default: test)")
    evaluate.add_argument("--limit", type=int, default=None, help="evaluate the first N images only")
    evaluate.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    evaluate.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation's files")
    evaluate.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                          help="show a progress bar (default: True)")
    # factors: disentanglement on data with known factors, instead of the log-likelihood
    evaluate.add_argument("--factors", action="store_true",
                          help="measure disentanglement against the data's known factors (MIG, DCI; needs a model "
                               "trained on --dataset dsprites or colour-shapes) instead of log p(x); --num-samples "
                               "is then the number of draws of the mutual-information estimate")
    evaluate.add_argument("--mi-estimator", choices=["sampled", "binned"], default="sampled",
                          help="--factors: sampled (Chen et al. 2018, from q(z|x) draws) or binned (posterior "
                               "means in 20 bins) mutual information (default: sampled)")
    evaluate.add_argument("--dataset", default=None, metavar="PATH",  # data sources: a moved .npz or folder
                          help="where the checkpoint's .npz file or image folder is now, if it moved")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Dataclass defaults, overridden by the TOML file, overridden by explicit flags.

    With ``--resume OUTDIR`` the settings come from OUTDIR's checkpoint instead, and the file
    and flags may only change those in :data:`pyrovae.cli.resume.CHANGEABLE`.
    """
    values = read_toml(args.config) if args.config else {}
    names = {f.name for f in fields(TrainConfig)}
    values.update({k: v for k, v in vars(args).items() if k in names})
    if getattr(args, "resume", None):
        from pyrovae.cli.resume import resume_config

        if args.overwrite:
            raise ConfigError("--resume and --overwrite exclude each other: continue the run, or replace it")
        return resume_config(args.resume, values)
    values.setdefault("out", f"runs/{values.get('model', 'vae')}")  # a new run's folder is named after its model
    return TrainConfig.from_dict(values, source=args.config or "flags")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pyrovae`` command; returns the exit code."""
    from pyrovae.data import DatasetError
    from pyrovae.errors import PyrovaeError, TrainingInterrupted

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            from pyrovae.cli.train import run_train

            run_train(config_from_args(args), overwrite=args.overwrite, resume=bool(args.resume))
        elif args.command == "sample":
            from pyrovae.cli.sample import run_sample

            if args.num_samples < 1:
                raise ConfigError(f"--num-samples must be at least 1, got {args.num_samples}")
            run_sample(args.checkpoint, args.num_samples, args.out, args.seed)
        elif args.command == "evaluate" and args.factors:  # factors
            from pyrovae.cli.evaluate_factors import run_evaluate_factors

            run_evaluate_factors(args.checkpoint, split=args.data, limit=args.limit, seed=args.seed,
                                 device=args.device, overwrite=args.overwrite, estimator=args.mi_estimator,
                                 num_samples=args.num_samples)
        elif args.command == "evaluate":
            from pyrovae.cli.evaluate import run_evaluate

            run_evaluate(args.checkpoint, num_samples=args.num_samples, split=args.data, limit=args.limit,
                         seed=args.seed, device=args.device, overwrite=args.overwrite, dataset=args.dataset,
                         progress=args.progress)
    except TrainingInterrupted as e:
        print(f"pyrovae: {e}", file=sys.stderr)
        return e.exit_code
    except (PyrovaeError, DatasetError) as e:
        print(f"pyrovae: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pyrovae: interrupted", file=sys.stderr)
        return 130
    return 0


__all__ = ["main", "console_main", "build_parser", "config_from_args"]


def console_main() -> None:
    """Console-script wrapper: exit with ``main``'s code."""
    sys.exit(main())
