"""Data-parallel training: sharding, and 2 CPU processes (gloo) against one process on the same global batch.

The 2-process checks run once per module (``torch.multiprocessing.start_processes``, forked,
loopback only, a free port) and each rank saves what it saw; the tests below read those files.
"""

from __future__ import annotations

import json
import os
import socket

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.multiprocessing as mp
from torch import Tensor

from pyro.infer import Trace_ELBO, TraceEnum_ELBO

from pyrovae import MLP, VAE, BernoulliLikelihood, DiagonalNormalEncoder, LearnedNormalPrior, Trainer
from pyrovae.train.checkpoint import load_checkpoint
from pyrovae.cli import main
from pyrovae.train.distributed import DataParallel, ShardedBatches, launched_by_torchrun
from pyrovae.priors.mixture import GaussianMixturePrior

WORLD_SIZE = 2
LOCAL_BATCH = 4
STEPS = 3
LATENT = 2
EVENT = (1, 3, 3)


class FixedNoiseNormal(dist.Normal):
    """Normal whose reparameterised draw uses given standard-normal noise: ``loc + scale * eps``."""

    def __init__(self, loc: Tensor, scale: Tensor, eps: Tensor) -> None:
        super().__init__(loc, scale)
        self.eps = eps

    def expand(self, batch_shape: torch.Size, _instance=None) -> FixedNoiseNormal:
        shape = torch.Size(batch_shape)
        return FixedNoiseNormal(self.loc.expand(shape), self.scale.expand(shape), self.eps.expand(shape))

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        return self.loc + self.scale * self.eps


class FixedNoiseEncoder(DiagonalNormalEncoder):
    """q(z | x) drawing z with the noise in ``self.eps`` (set by the test), so two runs can share it."""

    eps: Tensor

    def forward(self, x: Tensor, context: Tensor | None = None) -> dist.Distribution:
        loc, scale = self.loc_scale(x, context)
        return FixedNoiseNormal(loc, scale, self.eps).to_event(1)


def tiny_vae(seed: int, name: str = "vae", fixed_noise: bool = True, mixture: bool = False) -> VAE:
    """A VAE on 3x3 images; ``mixture``: an enumerated 3-component Gaussian-mixture prior."""
    torch.manual_seed(seed)
    encoder = (FixedNoiseEncoder if fixed_noise else DiagonalNormalEncoder)(MLP(EVENT, (5,), 2 * LATENT), LATENT)
    likelihood = BernoulliLikelihood(MLP(LATENT, (5,), 9), EVENT)
    prior = GaussianMixturePrior(LATENT, 3, enumerate=True) if mixture else LearnedNormalPrior(LATENT)
    return VAE(encoder, likelihood, prior, name=name)


#: The models the gradient check runs on: name -> (tiny_vae keyword, training objective).
MODELS = {
    "normal": (False, Trace_ELBO),
    "enumerated-mixture": (True, lambda: TraceEnum_ELBO(max_plate_nesting=1)),
}


def global_batches() -> tuple[Tensor, Tensor]:
    """Per step, the global batch ``(STEPS, W * B, *EVENT)`` and its noise ``(STEPS, W * B, LATENT)``."""
    generator = torch.Generator().manual_seed(123)
    x = torch.bernoulli(torch.full((STEPS, WORLD_SIZE * LOCAL_BATCH, *EVENT), 0.4), generator=generator)
    eps = torch.randn(STEPS, WORLD_SIZE * LOCAL_BATCH, LATENT, generator=generator)
    return x, eps


def compare_with_one_process(parallel: DataParallel, model: str) -> dict:
    """``STEPS`` Adam steps on 2 ranks and in one process on the same global batches and noise.

    Returns the largest gradient and parameter differences, the (local, single) losses per
    step, and this rank's final parameters.
    """
    mixture, objective = MODELS[model]
    rank = parallel.rank
    # Each rank starts from different weights; DDP must broadcast rank 0's (seed 0).
    vae = tiny_vae(seed=rank, name=f"{model}-ddp", mixture=mixture)
    reference = tiny_vae(seed=0, name=f"{model}-single", mixture=mixture)
    trainer = Trainer(vae, objective=objective(), parallel=parallel, lr=0.05, progress=False)
    single = Trainer(reference, objective=objective(), lr=0.05, progress=False)
    x, eps = global_batches()
    local = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
    grad_errors, loss_pairs = [], []
    for step in range(STEPS):
        reference.encoder.eps = eps[step]
        vae.encoder.eps = eps[step, local]
        loss_single = single.step(x[step])
        loss_local = trainer.step(x[step, local])
        loss_pairs.append((loss_local.item(), loss_single.item()))
        grad_errors.append(max((p.grad - q.grad).abs().max().item() for p, q in
                               zip(vae.parameters(), reference.parameters(), strict=True)))
    param_error = max((p - q).abs().max().item() for p, q in
                      zip(vae.parameters(), reference.parameters(), strict=True))
    return {"grad_errors": grad_errors, "loss_pairs": loss_pairs, "param_error": param_error,
            "params": {k: v.detach().clone() for k, v in vae.state_dict().items()}}


def worker(rank: int, port: int, out: str) -> None:
    """One rank: the gradient checks against a one-process reference, a short ``fit``, the CLI."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    pyro.enable_validation(True)
    parallel = DataParallel.from_environment(seed=7)
    try:
        compared = {model: compare_with_one_process(parallel, model) for model in MODELS}
        # A short fit with real sampling: 37 points, local batch 5, KL warm-up over 1.5 epochs.
        pyro.set_rng_seed(100 + rank)
        fit_vae = tiny_vae(seed=10 + rank, name="fit", fixed_noise=False)
        data = torch.bernoulli(torch.full((37, *EVENT), 0.3), generator=torch.Generator().manual_seed(5))
        fitter = Trainer(fit_vae, parallel=parallel, batch_size=5, warmup_epochs=1.5, progress=False)
        record = fitter.fit(data, data[:11], epochs=2)
        batches = parallel.batches(data, batch_size=5)
        if parallel.is_main:
            torch.save(fit_vae.state_dict(), os.path.join(out, "checkpoint.pt"))
        # The command line, as torchrun would start it (this process group is reused, then closed).
        cli_code = main(["train", "--out", os.path.join(out, "cli"), "--train-size", "201", "--epochs", "2",
                         "--hidden", "16", "--batch-size", "50", "--no-progress"])
        torch.save({"cli_code": cli_code, "compared": compared, "fit_params": fit_vae.state_dict(), "history": record.history,
                    "steps": record.steps, "batches_per_epoch": len(batches)},
                   os.path.join(out, f"rank{rank}.pt"))
    finally:
        parallel.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> tuple[list[dict], str]:
    out = str(tmp_path_factory.mktemp("ddp"))
    # The first torch optimizer imports torch._dynamo (seconds); do it once here so that the
    # forked ranks inherit it instead of each paying for it.
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    mp.start_processes(worker, args=(free_port(), out), nprocs=WORLD_SIZE, start_method="fork")
    return [torch.load(os.path.join(out, f"rank{r}.pt")) for r in range(WORLD_SIZE)], out


@pytest.mark.parametrize("model", sorted(MODELS))
def test_averaged_gradient_equals_one_process_gradient_of_the_global_batch(ranks, model):
    results, _ = ranks
    for result in results:
        assert max(result["compared"][model]["grad_errors"]) < 1e-5
        assert result["compared"][model]["param_error"] < 1e-5


@pytest.mark.parametrize("model", sorted(MODELS))
def test_each_rank_loss_is_its_local_mean_and_their_average_the_global_mean(ranks, model):
    results, _ = ranks
    for step in range(STEPS):
        local = [r["compared"][model]["loss_pairs"][step][0] for r in results]
        single = results[0]["compared"][model]["loss_pairs"][step][1]
        assert sum(local) / WORLD_SIZE == pytest.approx(single, rel=1e-5)
        assert local[0] != pytest.approx(local[1])  # different data on each rank


@pytest.mark.parametrize("model", sorted(MODELS))
def test_ranks_hold_identical_parameters(ranks, model):
    results, _ = ranks
    for key, value in results[0]["compared"][model]["params"].items():
        assert torch.equal(value, results[1]["compared"][model]["params"][key]), key


def test_ranks_hold_identical_parameters_and_figures_after_fit(ranks):
    results, _ = ranks
    for key, value in results[0]["fit_params"].items():
        assert torch.equal(value, results[1]["fit_params"][key]), key
    assert results[0]["history"][-1].keys() == results[1]["history"][-1].keys()
    for a, b in zip(results[0]["history"], results[1]["history"], strict=True):
        for key in a:
            if key not in ("seconds", "train_seconds"):  # wall clock differs per process
                assert a[key] == b[key], key


def test_each_rank_takes_a_share_of_the_steps_with_the_same_warmup(ranks):
    results, _ = ranks
    # 37 points over 2 ranks: shards of 19, local batches of 5 -> 4 steps per epoch.
    for result in results:
        assert result["batches_per_epoch"] == 4
        assert result["steps"] == 8
        assert [h["kl_weight"] for h in result["history"]] == [pytest.approx(4 / 6), 1.0]


def test_checkpoint_of_two_processes_loads_and_evaluates_in_one(ranks):
    results, out = ranks
    state = torch.load(os.path.join(out, "checkpoint.pt"))
    assert not any(key.startswith("module.") for key in state)
    vae = tiny_vae(seed=99, name="loaded", fixed_noise=False)
    vae.load_state_dict(state)
    for key, value in vae.state_dict().items():
        assert torch.equal(value, results[0]["fit_params"][key]), key
    figures = Trainer(vae, progress=False).evaluate(torch.zeros(8, *EVENT))
    assert torch.isfinite(torch.tensor(figures["test_elbo"]))
    assert figures["test_elbo"] == pytest.approx(figures["test_recon"] - figures["test_kl"])


def test_command_line_under_torchrun_writes_once_and_its_checkpoint_samples_in_one_process(ranks):
    results, out = ranks
    assert [r["cli_code"] for r in results] == [0, 0]
    run = os.path.join(out, "cli")
    assert [json.loads(line)["epoch"] for line in open(os.path.join(run, "metrics.jsonl"))] == [1, 2]
    payload = load_checkpoint(os.path.join(run, "checkpoint.pt"))
    assert payload["world_size"] == WORLD_SIZE and payload["epoch"] == 2
    # 201 images over 2 ranks: shards of 101, batches of 50 -> 3 steps per epoch.
    assert payload["step"] == 6
    assert not any(key.startswith("module.") for key in payload["model"])
    assert main(["sample", os.path.join(run, "checkpoint.pt"), "--num-samples", "4"]) == 0


# -- sharding alone, no processes ---------------------------------------------------------------


@pytest.mark.parametrize("n, world, drop_last", [(10, 3, False), (10, 3, True), (12, 4, False), (5, 5, False)])
def test_shards_are_equal_disjoint_and_cover_the_epoch(n, world, drop_last):
    data = torch.arange(n)
    shards = [ShardedBatches(data, batch_size=2, rank=r, world_size=world, seed=3, drop_last=drop_last)
              for r in range(world)]
    for shard in shards:
        shard.set_epoch(4)
    rows = [torch.cat([b[0] for b in shard]) for shard in shards]
    assert len({len(r) for r in rows}) == 1
    assert len({len(shard) for shard in shards}) == 1
    assert [len(b[0]) for b in shards[0]] == [len(b[0]) for b in shards[-1]]
    seen = torch.cat(rows)
    if drop_last:
        assert len(seen) == (n // world) * world and len(set(seen.tolist())) == len(seen)
    else:
        assert set(seen.tolist()) == set(range(n)) and len(seen) - n < world


def test_each_epoch_has_its_own_permutation_shared_by_all_ranks():
    data = torch.arange(40)
    a = ShardedBatches(data, batch_size=40, rank=0, world_size=2, seed=1)
    b = ShardedBatches(data, batch_size=40, rank=1, world_size=2, seed=1)
    a.set_epoch(0)
    b.set_epoch(0)
    first = torch.stack([a.permutation(), b.permutation()], dim=1).flatten()
    generator = torch.Generator().manual_seed(1)
    assert torch.equal(first, torch.randperm(40, generator=generator))
    a.set_epoch(1)
    assert not torch.equal(a.permutation(), first[0::2])


def test_sharding_refuses_fewer_points_than_processes():
    with pytest.raises(ValueError, match="cannot be shared among 3 processes"):
        ShardedBatches(torch.arange(2), batch_size=1, rank=0, world_size=3)


def test_without_torchrun_the_errors_say_how_to_start(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert not launched_by_torchrun()
    with pytest.raises(RuntimeError, match="torchrun"):
        DataParallel.from_environment()
    with pytest.raises(RuntimeError, match="torchrun"):
        DataParallel()


def test_fixed_noise_encoder_is_the_encoder_with_chosen_noise():
    vae = tiny_vae(seed=0)
    x = torch.ones(3, *EVENT)
    vae.encoder.eps = torch.randn(3, LATENT)
    loc, scale = vae.encoder.loc_scale(x)
    assert torch.allclose(vae.encoder(x).rsample(), loc + scale * vae.encoder.eps)


def test_iterating_from_a_later_batch_gives_the_rest_of_the_epoch():
    shard = ShardedBatches(torch.arange(23), batch_size=3, rank=1, world_size=2, seed=2)
    shard.set_epoch(5)
    order = shard.permutation()
    whole = [b[0] for b in shard]
    assert torch.equal(torch.cat(whole), order)
    assert [b[0].tolist() for b in shard.iterate(order, start=2)] == [b.tolist() for b in whole[2:]]
