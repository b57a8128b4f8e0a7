"""Speed of pyrovae's training and evaluation against plain PyTorch, Pyro's example style and
the matmul floor, on full MNIST held in memory (ANCHORS.md, "Speed" table).

Training contenders, alternated epoch by epoch (a b c d a b c d ...) after a warm-up round,
medians over ``--epochs`` rounds:

* ``pyrovae``: ``pyrovae.Trainer`` on a ``pyrovae.VAE`` (the ``train_seconds`` of ``fit``),
  eager: the path of fits under ``pyrovae.train.trainer.AUTO_COMPILE_STEPS`` steps;
* ``plain``: the same networks and the same one-sample ELBO estimator hand-written in
  PyTorch, with the same ``torch.optim.Adam`` settings as the trainer;
* ``pyro-style``: ``SVI(model, guide, pyro.optim.Adam, Trace_ELBO())`` as in Pyro's example;
* ``pyrovae-compiled``: the same with ``Trainer(compile=True)`` (the whole loss traced once and
  compiled as one graph, ``pyrovae.fast.traced_loss``), which the trainer's default chooses for fits
  of ``AUTO_COMPILE_STEPS`` (5,000) steps or more on a CPU, 21 epochs here; the compile falls in
  its warm-up round, reported apart. Issue 5's training targets are printed beside this one;
* ``svi-on-pyrovae``: the same ``SVI`` loop on ``vae.model`` / ``vae.guide`` (the user path);
* ``floor``: measured ``torch.matmul`` time of the epoch's GEMMs (forward, weight gradient,
  input gradient where autograd needs one).

``--prior gmm`` gives all three a learnable 10-component diagonal Gaussian mixture ``p(z)``
(pyrovae's marginalized ``GaussianMixturePrior``; ``twins.PlainMixture`` for the others).
``--model m2`` times Kingma et al.'s M2 instead: ``SemiSupervisedTrainer.train_epoch`` against the
hand-written and Pyro-style M2 of ``twins_m2.py`` on the same pre-drawn batches (100 labelled
and ``--batch-size`` unlabelled images, the unlabelled label summed out), with its own floor.
Issue 5's targets are set for the default configuration only; other configurations print
their ratios as information.

Evaluation: importance-sampled ``log p(x)`` with k samples (``pyrovae.infer.evaluation.log_likelihood``
with ``compile=True``, its default at this size, and the plain-PyTorch reference estimator in
``twins.py``) against its matmul floor. pyrovae's call runs batch by batch, the floor's GEMMs
timed between its batches; its figure for 10,000 images is the one-off compilation (timed
apart) plus the first batch plus 99 batches at the median pace of the others, and the ratio is
the median over runs of each run's figure over its own floor. Peak resident memory of a
full-MNIST training epoch. Each memory and evaluation measurement runs in its own subprocess so
peaks do not mix.

Reproduce the README table (about 5 minutes on 2 cores)::

    PYTHONPATH=$PWD python benchmarks/speed.py --out speed_mlp_b256
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyro
import torch

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from speed_eval import (EVAL_BATCH, peak_rss_bytes, summarize_evaluation, time_pyrovae_evaluation,  # noqa: E402
                        time_reference_evaluation)
from speed_report import markdown  # noqa: E402
from twins import (PlainMixture, PlainTwin, PyroStyle, decoder_net, encoder_net, gemm_flops,  # noqa: E402
                   gemm_seconds, linear_gemms)
from twins_m2 import PlainM2Twin, PyroStyleM2, m2_training_gemms  # noqa: E402

import pyrovae  # noqa: E402
from pyrovae.data import InMemoryBatches, binarize_once, load_dataset  # noqa: E402

PIXELS = 784
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per step (default 256; with --model m2, 200 unlabelled as SemiSupervisedTrainer)")
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=400)
    parser.add_argument("--net", choices=("mlp", "conv"), default="mlp")
    parser.add_argument("--prior", choices=("normal", "gmm"), default="normal")
    parser.add_argument("--model", choices=("vae", "m2"), default="vae")
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs per contender (after one warm-up)")
    parser.add_argument("--repeats", type=int, default=2, help="evaluation and memory measurements each")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-samples", type=int, default=5000, help="k, importance samples per image")
    parser.add_argument("--eval-subset", type=int, default=300,
                        help="test images actually evaluated (a multiple of 100, at least 200); times are "
                             "extrapolated to the 10,000")
    parser.add_argument("--skip", nargs="*", default=(),
                        choices=("train", "eval", "memory", "svi-on-pyrovae", "pyrovae-compiled"))
    parser.add_argument("--train-size", type=int, default=None, help="first N training images only (smoke runs)")
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))  # ../shared/data beside the checkout
    parser.add_argument("--out", default=None, help="write benchmarks/results/OUT.json and OUT.md")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or (200 if args.model == "m2" else 256)
    return args


# -- building the contenders ---------------------------------------------------------------------

def nets(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Encoder ``x -> (loc, raw_scale)`` and decoder ``z -> logits``, fresh, plain torch."""
    if args.net == "conv":
        return (pyrovae.ConvEncoderNet(1, 2 * args.latent_dim), pyrovae.ConvDecoderNet(args.latent_dim, 1))
    return (encoder_net(PIXELS, args.hidden, args.latent_dim), decoder_net(PIXELS, args.hidden, args.latent_dim))


def build_vae(args: argparse.Namespace, name: str) -> pyrovae.VAE:
    if args.net == "conv":
        enc_net, dec_net = pyrovae.ConvEncoderNet(1, 2 * args.latent_dim), pyrovae.ConvDecoderNet(args.latent_dim, 1)
    else:
        enc_net = pyrovae.MLP((1, 28, 28), (args.hidden,), 2 * args.latent_dim)
        dec_net = pyrovae.MLP(args.latent_dim, (args.hidden,), PIXELS)
    d = args.latent_dim
    prior = pyrovae.GaussianMixturePrior(d, 10) if args.prior == "gmm" else pyrovae.StandardNormalPrior(d)
    return pyrovae.VAE(pyrovae.DiagonalNormalEncoder(enc_net, args.latent_dim),
                       pyrovae.BernoulliLikelihood(dec_net, (1, 28, 28)), prior, name=name)


def training_gemms(args: argparse.Namespace, rows: int) -> list[tuple[int, int, int]]:
    encoder = [(PIXELS, args.hidden), (args.hidden, 2 * args.latent_dim)]
    decoder = [(args.latent_dim, args.hidden), (args.hidden, PIXELS)]
    return linear_gemms(encoder, rows, backward=True) + linear_gemms(decoder, rows, backward=True, first_input_grad=True)


# -- training ------------------------------------------------------------------------------------

def race(contenders: dict[str, Callable[[], object]], rounds: int) -> dict:
    """Run every contender once per round (a b c a b c ...), after one warm-up round; per-round
    wall and CPU seconds and their medians, so that drift of the machine hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    warmup: dict[str, float] = {}  # round 0; for a compiled contender it holds the compile
    for round_ in range(rounds + 1):
        for name, run in contenders.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
            if round_ > 0:
                times[name].append(seconds)
                cpu[name].append(cpu_seconds)
            else:
                warmup[name] = seconds
            print(f"  round {round_}{' (warm-up)' if round_ == 0 else ''}: {name:15s} {seconds:7.2f} s wall"
                  f" {cpu_seconds:7.2f} s CPU", flush=True)
    return {"epoch_seconds": times, "median_seconds": {name: statistics.median(v) for name, v in times.items()},
            "warmup_seconds": warmup,
            "epoch_cpu_seconds": cpu, "median_cpu_seconds": {name: statistics.median(v) for name, v in cpu.items()}}


def time_training(args: argparse.Namespace, train: torch.Tensor, test: torch.Tensor) -> dict:
    seed = torch.Generator().manual_seed
    torch.manual_seed(0)
    vae = build_vae(args, "bench")
    trainer = pyrovae.Trainer(vae, batch_size=args.batch_size, progress=False, generator=seed(0))
    compiled_trainer = pyrovae.Trainer(build_vae(args, "bench_compiled"), batch_size=args.batch_size,
                                       progress=False, generator=seed(0), compile=True)
    adam = {"lr": 1e-3, "fused": bool(trainer.optimizer.defaults.get("fused"))}
    mixture = (lambda: PlainMixture(args.latent_dim, 10)) if args.prior == "gmm" else (lambda: None)
    plain = PlainTwin(*nets(args), args.latent_dim, optimizer_kwargs=adam, mixture=mixture())
    style = PyroStyle(*nets(args), args.latent_dim, mixture=mixture())
    svi_vae = build_vae(args, "bench_svi")
    svi = pyro.infer.SVI(svi_vae.model, svi_vae.guide, pyro.optim.Adam({"lr": 1e-3}), pyro.infer.Trace_ELBO())

    batches = InMemoryBatches(train, batch_size=args.batch_size, generator=seed(0))

    def run_pyrovae() -> None:
        # The steps of Trainer.fit (fit = train_epoch + per-epoch ELBO figures).
        trainer.train_epoch(batches, lambda step: 1.0).item()

    def run_pyrovae_compiled() -> None:
        compiled_trainer.train_epoch(batches, lambda step: 1.0).item()

    def run_svi_on_pyrovae() -> None:
        order = torch.randperm(train.shape[0], generator=gen_svi)
        for b in range(math.ceil(train.shape[0] / args.batch_size)):
            svi.step(train.index_select(0, order[b * args.batch_size:(b + 1) * args.batch_size]))

    def timed(epoch, gen):
        return lambda: epoch(train, args.batch_size, gen)

    gen_svi = seed(3)
    contenders = {"pyrovae": run_pyrovae, "pyrovae-compiled": run_pyrovae_compiled,
                  "plain": timed(plain.epoch, seed(1)), "pyro-style": timed(style.epoch, seed(2)),
                  "svi-on-pyrovae": run_svi_on_pyrovae}
    for name in ("svi-on-pyrovae", "pyrovae-compiled"):
        if name in args.skip:
            del contenders[name]
    result = race(contenders, args.epochs)
    result["adam"] = adam
    medians = result["median_seconds"]
    if args.net == "mlp":
        shapes = training_gemms(args, args.batch_size)
        per_step = gemm_seconds(shapes)
        steps = train.shape[0] / args.batch_size
        result["floor"] = {"seconds": per_step * steps, "flop": gemm_flops(shapes) * steps,
                           "gflops": gemm_flops(shapes) / per_step / 1e9}
        medians["floor"] = per_step * steps
    return result


def time_m2_training(args: argparse.Namespace, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """M2 steps (``SemiSupervisedTrainer.train_epoch``) against :mod:`twins_m2`'s contenders, on the
    same pre-drawn batches: ``--batch-size`` unlabelled images of the first ``--train-size``
    (default 10,000) after a labelled pool of 1,000, each with 100 labelled images."""
    from pyrovae.models import M2
    from pyrovae.train.semisupervised import SemiSupervisedTrainer

    torch.manual_seed(0)
    k, d, h, alpha = 10, args.latent_dim, args.hidden, 50.0

    def build_m2(name: str) -> M2:
        return M2(pyrovae.MLP((1, 28, 28), (h,), k),
                  pyrovae.DiagonalNormalEncoder(pyrovae.MLP(PIXELS + k, (h,), 2 * d), d, context_dim=k),
                  pyrovae.BernoulliLikelihood(pyrovae.MLP(d + k, (h,), PIXELS), (1, 28, 28)), k, alpha=alpha,
                  name=name)

    trainer = SemiSupervisedTrainer(build_m2("m2"), progress=False)
    compiled_trainer = SemiSupervisedTrainer(build_m2("m2_compiled"), progress=False, compile=True)
    adam = {"lr": 1e-3, "fused": bool(trainer.optimizer.defaults.get("fused"))}
    plain = PlainM2Twin(d, h, alpha, optimizer_kwargs=adam)
    style = PyroStyleM2(d, h, alpha)
    pool, pool_labels = images[:1000], labels[:1000]
    unlabelled = images[1000:1000 + (args.train_size or 10_000)]
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(unlabelled.shape[0], generator=gen)
    steps = math.ceil(unlabelled.shape[0] / args.batch_size)
    batches = []
    for b in range(steps):
        pick = torch.randint(pool.shape[0], (trainer.labelled_batch_size,), generator=gen)
        batches.append((pool[pick], pool_labels[pick], unlabelled[order[b * args.batch_size:(b + 1) * args.batch_size]]))

    def epoch(step: Callable) -> Callable[[], None]:
        return lambda: [step(*batch) for batch in batches]

    # pyrovae: the steps of SemiSupervisedTrainer.fit (fit = train_epoch + per-epoch accuracies).
    contenders = {"pyrovae": lambda: trainer.train_epoch(batches),
                  "pyrovae-compiled": lambda: compiled_trainer.train_epoch(batches),
                  "plain": epoch(plain.step), "pyro-style": epoch(style.step)}
    if "pyrovae-compiled" in args.skip:
        del contenders["pyrovae-compiled"]
    result = race(contenders, args.epochs)
    result["adam"] = adam
    shapes = m2_training_gemms(d, h, trainer.labelled_batch_size, args.batch_size)
    per_step = gemm_seconds(shapes)
    result["floor"] = {"seconds": per_step * steps, "flop": gemm_flops(shapes) * steps,
                       "gflops": gemm_flops(shapes) / per_step / 1e9}
    result["median_seconds"]["floor"] = per_step * steps
    return result


# -- evaluation and memory, each in a child process -----------------------------------------------

def child(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    data = load_dataset("mnist", root=args.data_root, download=False)
    if args.child == "train-memory":
        vae = build_vae(args, "memory")
        trainer = pyrovae.Trainer(vae, batch_size=args.batch_size, progress=False)
        start = time.perf_counter()
        trainer.fit(data.train_images, data.test_images, epochs=1)
        return {"seconds": time.perf_counter() - start, "peak_rss": peak_rss_bytes()}
    test = binarize_once(data.test_images)[: args.eval_subset]
    vae = build_vae(args, "eval")
    if args.child == "eval-pyrovae":
        return time_pyrovae_evaluation(args, vae, test)
    return time_reference_evaluation(args, vae, test)


def run_child(args: argparse.Namespace, kind: str) -> dict:
    argv = [sys.executable, __file__, "--child", kind, "--batch-size", str(args.batch_size),
            "--latent-dim", str(args.latent_dim), "--hidden", str(args.hidden), "--net", args.net,
            "--prior", args.prior, "--threads", str(args.threads), "--eval-samples", str(args.eval_samples),
            "--eval-subset", str(args.eval_subset), "--data-root", args.data_root]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {kind} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_evaluation(args: argparse.Namespace) -> dict:
    if args.eval_subset < 2 * EVAL_BATCH or args.eval_subset % EVAL_BATCH:
        raise SystemExit(f"--eval-subset must be a multiple of {EVAL_BATCH} and at least {2 * EVAL_BATCH}")
    kinds = ["eval-reference", "eval-pyrovae"]
    runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for _ in range(args.repeats):
        for kind in kinds:
            runs[kind].append(run_child(args, kind))
            print(f"  {kind}: {runs[kind][-1]['seconds']:.2f} s on {runs[kind][-1]['images']} images", flush=True)
    return summarize_evaluation(args, runs)


def measure_memory(args: argparse.Namespace) -> dict:
    runs = [run_child(args, "train-memory") for _ in range(args.repeats)]
    return {"peak_rss": max(r["peak_rss"] for r in runs), "runs": runs}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child(args)))
        return
    if args.model == "m2" and (args.net != "mlp" or args.prior != "normal"):
        raise SystemExit("--model m2 times M2 with MLPs and its standard prior: drop --net and --prior")
    if args.model == "m2" and not {"eval", "memory"} <= set(args.skip):
        print("--model m2: timing training only (the evaluation and memory figures are the VAE's)")
        args.skip = [*args.skip, "eval", "memory"]
    start = time.perf_counter()
    results: dict = {"args": vars(args), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {args.threads} torch threads",
                     "torch": torch.__version__, "pyro": pyro.__version__,
                     "load_before": [round(v, 1) for v in os.getloadavg()]}
    if "train" not in args.skip and args.model == "m2":
        data = load_dataset("mnist", root=args.data_root, download=False)
        print(f"M2 steps over {args.train_size or 10_000} unlabelled images, batch {args.batch_size} "
              "unlabelled + 100 labelled", flush=True)
        results["train"] = time_m2_training(args, data.train_images, data.train_labels)
    elif "train" not in args.skip:
        data = load_dataset("mnist", root=args.data_root, download=False)
        print(f"training epochs on {data.train_images[: args.train_size].shape[0]} images, batch {args.batch_size}", flush=True)
        results["train"] = time_training(args, data.train_images[: args.train_size], data.test_images)
    if "eval" not in args.skip:
        print(f"evaluation, k={args.eval_samples}, on {args.eval_subset} test images (scaled to 10,000)", flush=True)
        results["eval"] = time_evaluation(args)
    if "memory" not in args.skip:
        print("peak memory of a full-MNIST training epoch (subprocess)", flush=True)
        results["memory"] = measure_memory(args)
    results["load_after"] = [round(v, 1) for v in os.getloadavg()]
    results["wall_seconds"] = time.perf_counter() - start
    table = markdown(results)
    print()
    print(table)
    print(f"benchmark wall time {results['wall_seconds']:.0f} s")
    if args.out:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{args.out}.json").write_text(json.dumps(results, indent=2, default=str))
        (RESULTS / f"{args.out}.md").write_text(table)
        print(f"wrote {RESULTS / args.out}.json and .md")


if __name__ == "__main__":
    main()
