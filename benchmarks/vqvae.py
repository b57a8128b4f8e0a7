"""VQ-VAE on full MNIST: the bound in nats beside the VAE's IS-NLL, code usage with and without EMA
plus restarts, and an epoch against a plain-PyTorch twin with the same nets.

Parts (``--part``):

* ``bound``: train a VQ-VAE (K = 256, D = 16, 7x7 map, EMA + restarts, Bernoulli likelihood) on
  dynamically binarized training images with pyrovae's Trainer, fit the PixelCNN prior on the
  frozen codes, and score ``log p(x) >= log p(x | z_q) + log p(z_q)`` on the first
  ``--eval-subset`` test images binarized once with seed 1234, the protocol of ``loglik.py``
  (whose VAE IS-NLL on the same images is in ``results/loglik.csv``).
* ``usage``: the same autoencoder for ``--epochs`` epochs three ways: EMA codebook with restarts
  (the default), EMA without restarts, the codebook loss without restarts; the fraction of codes
  used and the perplexity over each epoch.
* ``speed``: seconds per training epoch of pyrovae's ``Trainer`` on the VQ-VAE against
  :class:`PlainVQTwin` (the same networks, copied, the same quantizer arithmetic, BCE loss and
  commitment term, one ``torch.optim.Adam``), alternated ``--repeats`` times; the median ratio.

Example::

    PYTHONPATH=$PWD python benchmarks/vqvae.py --part speed --train-size 10000 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import pyro
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import pyrovae
from pyrovae.data import InMemoryBatches, binarize_once, dynamic_binarize, load_dataset
from pyrovae.models.vq_builders import conv_vqvae
from pyrovae.train.code_priors import fit_code_priors
from pyrovae.train.optim import make_adam
from pyrovae.train.trainer import Trainer

RESULTS = Path(__file__).parent / "results" / "vqvae.csv"


class PlainVQTwin(nn.Module):
    """The VQ-VAE step in plain PyTorch: nets, nearest code, straight-through, BCE, commitment, EMA."""

    def __init__(self, encoder_net: nn.Module, decoder_net: nn.Module, codebook: Tensor, map_shape: tuple[int, int],
                 beta: float = 0.25, decay: float = 0.99, eps: float = 1e-5, restart_after: int = 100) -> None:
        super().__init__()
        self.encoder_net, self.decoder_net = encoder_net, decoder_net
        k, d = codebook.shape
        self.register_buffer("codebook", codebook.clone())
        self.register_buffer("count", torch.zeros(k))
        self.register_buffer("total", torch.zeros(k, d))
        self.register_buffer("idle", torch.full((k,), restart_after))
        self.steps, self.beta, self.decay, self.eps, self.restart_after = 0, beta, decay, eps, restart_after
        self.log_k_map = map_shape[0] * map_shape[1] * math.log(k)

    def loss(self, x: Tensor) -> Tensor:
        z_e = self.encoder_net(x)
        flat = z_e.movedim(1, -1)
        v = flat.detach().reshape(-1, flat.shape[-1])
        e = self.codebook
        idx = ((v * v).sum(-1, keepdim=True) - 2 * v @ e.T + (e * e).sum(-1)).argmin(-1)
        chosen = e[idx].reshape(flat.shape)
        commitment = self.beta * (flat - chosen).pow(2).sum()
        z_q = (flat + (chosen - flat).detach()).movedim(-1, 1)
        recon = F.binary_cross_entropy_with_logits(self.decoder_net(z_q.flatten(1)), x, reduction="sum")
        self._ema(v, idx)
        return (recon + commitment) / x.shape[0] + self.log_k_map

    @torch.no_grad()
    def _ema(self, v: Tensor, idx: Tensor) -> None:
        n = torch.bincount(idx, minlength=self.codebook.shape[0]).to(v.dtype)
        self.count.mul_(self.decay).add_(n, alpha=1 - self.decay)
        self.total.mul_(self.decay).add_(torch.zeros_like(self.total).index_add_(0, idx, v), alpha=1 - self.decay)
        self.steps += 1
        c = 1 - self.decay ** self.steps
        count, total = self.count / c, self.total / c
        smoothed = (count + self.eps) / (count.sum() + len(count) * self.eps) * count.sum()
        self.codebook.copy_(torch.where((count > 0).unsqueeze(-1), total / smoothed.unsqueeze(-1), self.codebook))
        self.idle += 1
        self.idle[n > 0] = 0
        dead = self.idle >= self.restart_after
        if int(dead.sum()):
            picks = v[torch.randint(len(v), (int(dead.sum()),))]
            self.codebook[dead] = picks
            self.count[dead] = c
            self.total[dead] = picks * c
            self.idle[dead] = 0


def build(args: argparse.Namespace, **overrides) -> pyrovae.VQVAE:
    settings = {"codebook_size": args.codebook_size, "code_dim": args.code_dim}
    settings.update(overrides)
    return conv_vqvae((1, 28, 28), pyrovae.BernoulliLikelihood, **settings)


def write_row(row: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    fields = ["part", "variant", "epochs", "prior_epochs", "train_size", "batch_size", "codebook_size", "code_dim",
              "metric", "value", "threads", "date", "command"]
    new = not RESULTS.exists()
    with RESULTS.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in fields})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["bound", "usage", "speed"], required=True)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))  # ../shared/data beside the checkout
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--prior-epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--eval-subset", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--codebook-size", type=int, default=256)
    parser.add_argument("--code-dim", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-record", action="store_true", help="do not append to results/vqvae.csv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_dataset(args.dataset, root=args.data_root, download=False)
    train = data.train_images[: args.train_size]
    command = "PYTHONPATH=$PWD python benchmarks/vqvae.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
        if v is not None and k not in ("no_record",) and v is not False)
    base = {"part": args.part, "epochs": args.epochs, "prior_epochs": args.prior_epochs, "train_size": len(train),
                "batch_size": args.batch_size, "codebook_size": args.codebook_size, "code_dim": args.code_dim,
                "threads": args.threads, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "command": command}

    def record(variant: str, metric: str, value: float) -> None:
        print(f"{args.part} {variant}: {metric} = {value:.4f}", flush=True)
        if not args.no_record:
            write_row({**base, "variant": variant, "metric": metric, "value": round(value, 4)})

    generator = torch.Generator().manual_seed(0)
    if args.part == "bound":
        test = binarize_once(data.test_images[: args.eval_subset], seed=1234)
        vq = build(args)
        vq.likelihood.init_output_bias(train)
        trainer = Trainer(vq, lr=args.lr, batch_size=args.batch_size, progress=False, generator=generator,
                          transform=lambda x: dynamic_binarize(x, generator), compile=False)
        start = time.perf_counter()
        for epoch in range(args.epochs):
            trainer.fit(train, None, epochs=1)
            usage = vq.encoder.quantizer.usage_figures()
            vq.encoder.quantizer.reset_usage()
            print(f"epoch {epoch + 1}: codes used {usage['codes_used']:.3f}, perplexity {usage['perplexity']:.1f}",
                  flush=True)
        train_seconds = time.perf_counter() - start
        uniform = torch.cat([vq.bound(x) for x in test.split(500)]).mean().item()
        start = time.perf_counter()
        fit_code_priors(vq, dynamic_binarize(train, generator), None, args.prior_epochs, batch_size=args.batch_size)
        prior_seconds = time.perf_counter() - start
        bounds = torch.cat([vq.bound(x) for x in test.split(500)])
        record("ema+restarts", "codes_used_last_epoch", usage["codes_used"])
        record("ema+restarts", "train_seconds", train_seconds)
        record("ema+restarts", "prior_seconds", prior_seconds)
        record("uniform prior", "test_nll_bound_nats", -uniform)
        record("pixelcnn prior", "test_nll_bound_nats", -bounds.mean().item())
        record("pixelcnn prior", "test_nll_bound_sem", (bounds.std() / math.sqrt(len(bounds))).item())
    elif args.part == "usage":
        variants = {"ema+restarts": {}, "ema, no restarts": {"restart_after": None},
                    "codebook loss, no restarts": {"ema": False, "restart_after": None}}
        for name, overrides in variants.items():
            pyro.clear_param_store()
            torch.manual_seed(0)
            vq = build(args, **overrides)
            vq.likelihood.init_output_bias(train)
            trainer = Trainer(vq, lr=args.lr, batch_size=args.batch_size, progress=False,
                              generator=torch.Generator().manual_seed(0), compile=False)
            for epoch in range(args.epochs):
                figures = trainer.fit(train, None, epochs=1).history[-1]
                usage = vq.encoder.quantizer.usage_figures()
                vq.encoder.quantizer.reset_usage()
                print(f"{name} epoch {epoch + 1}: train ELBO {figures['train_elbo']:.2f}, codes used "
                      f"{usage['codes_used']:.3f}, perplexity {usage['perplexity']:.1f}", flush=True)
            record(name, "codes_used_last_epoch", usage["codes_used"])
            record(name, "perplexity_last_epoch", usage["perplexity"])
            record(name, "train_elbo_first_2000", figures["train_elbo"])
    else:
        vq = build(args)
        twin = PlainVQTwin(copy.deepcopy(vq.encoder.net), copy.deepcopy(vq.likelihood.net),
                           vq.encoder.quantizer.codebook, vq.encoder.map_shape)
        twin_optimizer = make_adam(twin.parameters(), lr=args.lr)
        trainer = Trainer(vq, lr=args.lr, batch_size=args.batch_size, progress=False, generator=generator,
                          compile=False)
        # Wall-clock and process CPU time: on a shared machine the CPU time is the steadier figure.
        ours, theirs = [], []
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            trainer.train_epoch(InMemoryBatches(train, batch_size=args.batch_size, shuffle=True, generator=generator),
                                schedule=lambda step: 1.0)
            ours.append((time.perf_counter() - wall, time.process_time() - cpu))
            wall, cpu = time.perf_counter(), time.process_time()
            for (x,) in InMemoryBatches(train, batch_size=args.batch_size, shuffle=True, generator=generator):
                twin_optimizer.zero_grad(set_to_none=True)
                twin.loss(x).backward()
                twin_optimizer.step()
            theirs.append((time.perf_counter() - wall, time.process_time() - cpu))
            print(f"epoch: pyrovae {ours[-1][0]:.1f} s wall, {ours[-1][1]:.1f} s CPU; plain twin "
                  f"{theirs[-1][0]:.1f} s wall, {theirs[-1][1]:.1f} s CPU", flush=True)
        for i, clock in enumerate(["wall", "cpu"]):
            record("pyrovae Trainer", f"median_epoch_{clock}_seconds", statistics.median(t[i] for t in ours))
            record("plain PyTorch twin", f"median_epoch_{clock}_seconds", statistics.median(t[i] for t in theirs))
            record("ratio", f"median_of_{clock}_ratios", statistics.median(a[i] / b[i] for a, b in zip(ours, theirs)))


if __name__ == "__main__":
    main()
