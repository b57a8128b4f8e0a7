"""Cost of the non-finite guard per training step: Trainer.step with the guard vs. a bare optimizer.step.

Runs both variants interleaved (ABAB...) on the same model and data, and prints the median
milliseconds per step of each. Two shapes: Pyro's VAE example (784-400-50, batch 256) and a
tiny network (batch 16) where fixed per-step costs show most.

    PYTHONPATH=$PWD python benchmarks/guard_overhead.py [--repeats 7] [--steps 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyro
import torch

from pyrovae.train.guard import grad_norm
from pyrovae import MLP, VAE, BernoulliLikelihood, DiagonalNormalEncoder, StandardNormalPrior, Trainer


def build(hidden: int, latent: int) -> VAE:
    return VAE(DiagonalNormalEncoder(MLP((1, 28, 28), [hidden], 2 * latent), latent),
               BernoulliLikelihood(MLP(latent, [hidden], 784), (1, 28, 28)), StandardNormalPrior(latent))


def time_steps(trainer: Trainer, x: torch.Tensor, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step(x)
    return (time.perf_counter() - start) / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name, hidden, latent, batch in (("pyro-example 784-400-50, batch 256", 400, 50, 256),
                                        ("tiny 784-32-2, batch 16", 32, 2, 16)):
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        trainer = Trainer(build(hidden, latent), progress=False)
        x = torch.rand(batch, 1, 28, 28)
        guarded_step = trainer.guard.step

        def bare(optimizer, loss):
            optimizer.step()
            return torch.ones((), dtype=torch.bool)

        time_steps(trainer, x, 10)  # warm-up
        timings = {"guarded": [], "bare": []}
        for _ in range(args.repeats):
            for variant in ("guarded", "bare"):
                trainer.guard.step = guarded_step if variant == "guarded" else bare
                timings[variant].append(time_steps(trainer, x, args.steps))
        g, b = statistics.median(timings["guarded"]), statistics.median(timings["bare"])
        trainer.optimizer.zero_grad()
        loss = trainer.loss(x)
        loss.backward()
        params = list(trainer.module.parameters())
        start = time.perf_counter()
        for _ in range(1000):
            bool(torch.isfinite(loss.detach()) & torch.isfinite(grad_norm(params)))
        check_ms = (time.perf_counter() - start)  # 1000 checks -> ms per check
        print(f"{name}: the check alone (isfinite of loss and total grad norm, one read) {check_ms:.3f} ms")
        print(f"{name}: guarded {g:.3f} ms/step, bare {b:.3f} ms/step, overhead {g - b:+.3f} ms "
              f"({100 * (g - b) / b:+.1f}%)  [median of {args.repeats} x {args.steps} steps, "
              f"{args.threads} thread(s)]")


if __name__ == "__main__":
    main()
