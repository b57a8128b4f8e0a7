"""The evaluation half of ``speed.py``: importance-sampled ``log p(x)`` timed in a child process
(pyrovae's ``log_likelihood`` batch by batch with its matmul floor timed between batches, and
the plain-PyTorch reference), and the 10,000-image figures drawn from the children's runs."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from twins import gemm_flops, gemm_seconds, linear_gemms, mixture_log_prob, onednn_gemm_seconds, reference_log_likelihood

import pyrovae
from pyrovae.fast.onednn import available as onednn_available

PIXELS = 784
EVAL_BATCH = 100  # images per pass of log_likelihood (its default batch_size)
EVAL_CHUNK = 100  # particles per pass (log_likelihood's default chunk_size on a CPU)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def evaluation_floor_gemms(args: argparse.Namespace) -> tuple[list, list]:
    """The evaluation's GEMMs: the encoder's forward once per block of 100 images, the decoder's
    once per particle, in the reference's blocks of 100 images x 500 particles (50,000 rows)."""
    encoder = linear_gemms([(PIXELS, args.hidden), (args.hidden, 2 * args.latent_dim)], EVAL_BATCH, backward=False)
    decoder = linear_gemms([(args.latent_dim, args.hidden), (args.hidden, PIXELS)], 500 * EVAL_BATCH, backward=False)
    return encoder, decoder


def time_pyrovae_evaluation(args: argparse.Namespace, vae: pyrovae.VAE, test: torch.Tensor) -> dict:
    """``log_likelihood`` on ``test``, batch by batch (``EVAL_BATCH`` images each), with the
    matmul floor of each batch timed right after it (MLP nets), so that drift of the machine
    hits both alike.

    The first batch carries what a call pays once (tracing the pass; its compilation is cached
    by then); a 10,000-image call is that batch plus 99 more at the median pace of the others.
    """
    from pyrovae.infer.evaluation import log_likelihood

    # Compile once on one batch (timed apart: a full evaluation pays it once).
    start = time.perf_counter()
    log_likelihood(vae.model, vae.guide, test[:EVAL_BATCH], num_samples=3 * 100, compile=True)
    compile_seconds = time.perf_counter() - start
    gemms = evaluation_floor_gemms(args) if args.net == "mlp" else None
    onednn = gemms is not None and onednn_available()
    pass_decoder = linear_gemms([(args.latent_dim, args.hidden), (args.hidden, PIXELS)], EVAL_CHUNK * EVAL_BATCH,
                                backward=False)
    batch_seconds: list[float] = []
    floor_seconds: list[float] = []
    onednn_floor_seconds: list[float] = []
    mark = [time.perf_counter()]

    def between_batches(points: int) -> None:
        batch_seconds.append(time.perf_counter() - mark[0])
        if gemms is not None:
            encoder, decoder = gemms
            blocks = points * args.eval_samples / (500 * EVAL_BATCH)  # 50,000-row decoder blocks
            floor_seconds.append(gemm_seconds(encoder) * points / EVAL_BATCH
                                 + gemm_seconds(decoder, repeats=3, inner=1) * blocks)
            if onednn:  # information: the kernel the compiled evaluation runs, at the shapes it runs
                passes = points * args.eval_samples / (EVAL_CHUNK * EVAL_BATCH)
                onednn_floor_seconds.append(onednn_gemm_seconds(encoder) * points / EVAL_BATCH
                                            + onednn_gemm_seconds(pass_decoder, repeats=5, inner=1) * passes)
        mark[0] = time.perf_counter()

    values = log_likelihood(vae.model, vae.guide, test, num_samples=args.eval_samples, compile=True,
                            batch_size=EVAL_BATCH, progress=between_batches)
    return {"seconds": sum(batch_seconds), "batch_seconds": batch_seconds, "floor_batch_seconds": floor_seconds,
            "onednn_floor_batch_seconds": onednn_floor_seconds, "compile_seconds": compile_seconds,
            "images": test.shape[0], "peak_rss": peak_rss_bytes(),
            "mean_log_px": float(values.mean())}


def time_reference_evaluation(args: argparse.Namespace, vae: pyrovae.VAE, test: torch.Tensor) -> dict:
    """The plain-PyTorch reference estimator (``twins.py``) on ``test`` with ``vae``'s networks."""
    prior = vae.prior
    log_prior = None if args.prior == "normal" else (
        lambda z: mixture_log_prob(z, prior.loc, prior.scale, prior.logits))
    start = time.perf_counter()
    values = reference_log_likelihood(vae.encoder.net, vae.likelihood.net, args.latent_dim, test,
                                      num_samples=args.eval_samples, log_prior=log_prior)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "compile_seconds": 0.0, "images": test.shape[0],
            "peak_rss": peak_rss_bytes(), "mean_log_px": float(values.mean())}


def summarize_evaluation(args: argparse.Namespace, runs: dict[str, list[dict]]) -> dict:
    """The 10,000-image figures and ratios from the children's runs (``eval-reference``,
    ``eval-pyrovae``), as ``speed.py`` stores them under ``eval``."""
    scale = 10_000 / args.eval_subset
    batches = 10_000 // EVAL_BATCH
    result: dict = {"images_timed": args.eval_subset, "scale_to_10000": scale}
    reference = runs["eval-reference"]
    result["eval-reference"] = {"seconds_10000": statistics.median(r["seconds"] for r in reference) * scale,
                                "peak_rss": max(r["peak_rss"] for r in reference), "runs": reference}
    # pyrovae: per run, the first batch once plus the others' median pace for the remaining 99,
    # plus the one-off compile; the floor from the GEMMs timed between that run's batches.
    ours = runs["eval-pyrovae"]
    for r in ours:
        first, rest = r["batch_seconds"][0], statistics.median(r["batch_seconds"][1:])
        r["seconds_10000"] = r["compile_seconds"] + first + rest * (batches - 1)
        if r["floor_batch_seconds"]:
            r["floor_seconds_10000"] = statistics.median(r["floor_batch_seconds"]) * batches
        if r["onednn_floor_batch_seconds"]:
            r["onednn_floor_seconds_10000"] = statistics.median(r["onednn_floor_batch_seconds"]) * batches
    result["eval-pyrovae"] = {"seconds_10000": statistics.median(r["seconds_10000"] for r in ours),
                              "compile_seconds": statistics.median(r["compile_seconds"] for r in ours),
                              "peak_rss": max(r["peak_rss"] for r in ours), "runs": ours}
    if args.net == "mlp":
        encoder, decoder = evaluation_floor_gemms(args)
        result["floor"] = {"seconds_10000": statistics.median(r["floor_seconds_10000"] for r in ours),
                           "flop": batches * (gemm_flops(encoder) + gemm_flops(decoder) * args.eval_samples / 500)}
        result["eval-pyrovae"]["floor_ratio"] = statistics.median(r["seconds_10000"] / r["floor_seconds_10000"]
                                                                  for r in ours)
        if all("onednn_floor_seconds_10000" in r for r in ours):
            result["onednn_floor"] = {"seconds_10000": statistics.median(r["onednn_floor_seconds_10000"] for r in ours)}
            result["eval-pyrovae"]["onednn_floor_ratio"] = statistics.median(
                r["seconds_10000"] / r["onednn_floor_seconds_10000"] for r in ours)
    return result
