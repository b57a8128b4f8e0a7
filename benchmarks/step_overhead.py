"""Per-step CPU time of the trainer with each fast-path change switched on in turn (the change
log in benchmarks/README.md), against the plain-PyTorch twin; one thread, process CPU time, so a
loaded machine disturbs it less than wall time.

    PYTHONPATH=$PWD python benchmarks/step_overhead.py --batch-size 256 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from pyro.infer import Trace_ELBO
from pyro.poutine.messenger import Messenger

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from twins import PlainTwin, decoder_net, encoder_net  # noqa: E402

import pyrovae  # noqa: E402
from pyrovae.train.trainer import ELBOLoss  # noqa: E402


def vae(name: str, hidden: int, latent: int) -> pyrovae.VAE:
    return pyrovae.VAE(pyrovae.DiagonalNormalEncoder(pyrovae.MLP((1, 28, 28), (hidden,), 2 * latent), latent),
                       pyrovae.BernoulliLikelihood(pyrovae.MLP(latent, (hidden,), 784), (1, 28, 28)),
                       pyrovae.StandardNormalPrior(latent), name=name)


def variant(level: int, name: str, hidden: int, latent: int):
    """Level 0 is the trainer before this work; each level switches one more change on."""
    module = vae(name, hidden, latent)
    trainer = pyrovae.Trainer(module, progress=False, objective=None if level >= 4 else Trace_ELBO(),
                              validate_every_step=level < 2)
    if level < 5:
        trainer.optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    scale = trainer.latent_scale
    wrap = scale if level >= 3 else (lambda fn: Messenger.__call__(scale, fn))
    trainer.loss = ELBOLoss(module, wrap(module.model), wrap(module.guide), trainer.objective)
    if level < 1:
        trainer.loss._unregistered = nullcontext
    return trainer.step


LEVELS = ["trainer before (a239d5e)", "+ register once", "+ validation on first step only",
          "+ LatentScale off the stack at weight 1", "+ SyncFreeTrace_ELBO", "+ fused Adam (= current Trainer)"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=400)
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.rand(args.batch_size * args.steps, 1, 28, 28)
    steps = {label: variant(i, f"v{i}", args.hidden, args.latent_dim) for i, label in enumerate(LEVELS)}
    for fused in (False, True):
        twin = PlainTwin(encoder_net(784, args.hidden, args.latent_dim), decoder_net(784, args.hidden, args.latent_dim),
                         args.latent_dim, optimizer_kwargs={"lr": 1e-3, "fused": fused})
        steps[f"plain twin, {'fused' if fused else 'default'} Adam"] = twin.step
    times = {label: [] for label in steps}
    for round_ in range(args.rounds + 1):
        for label, step in steps.items():
            start = time.process_time()
            for i in range(args.steps):
                step(x[i * args.batch_size:(i + 1) * args.batch_size])
            if round_:
                times[label].append((time.process_time() - start) / args.steps * 1e3)
    plain = statistics.median(times["plain twin, fused Adam"])
    plain_default = statistics.median(times["plain twin, default Adam"])
    print(f"batch {args.batch_size}, CPU ms per step (median of {args.rounds} rounds of {args.steps} steps), 1 thread")
    print(f"{'variant':42s} {'ms/step':>8s} {'/plain(same Adam)':>18s} {'/plain(default Adam)':>20s}")
    for label, values in times.items():
        m = statistics.median(values)
        ref = plain if label.startswith("+ fused") or label == "plain twin, fused Adam" else plain_default
        print(f"{label:42s} {m:8.2f} {m / ref:18.3f} {m / plain_default:20.3f}")


if __name__ == "__main__":
    main()
