"""Data-parallel training: sharding, and 2 CPU processes (gloo) against one process on the same global batch.

The 2-process checks run once per module, started by ``torchrun`` in a subprocess (fresh
processes, loopback only: the tests do not depend on what ran before them in pytest's
process); each rank runs ``distributed_worker.py`` and saves what it saw; the tests below
read those files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from distributed_models import EVENT, LATENT, MODELS, STOP_AT_STEP, STEPS, WORLD_SIZE, index_images, \
    recording_transform, tiny_vae

from pyrovae import Trainer
from pyrovae.cli import main
from pyrovae.train.checkpoint import load_checkpoint
from pyrovae.train.distributed import DataParallel, GlobalOrder, ShardedBatches, launched_by_torchrun

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def torchrun(script: str, *args: str, nproc: int = WORLD_SIZE, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone --nproc_per_node NPROC SCRIPT ARGS``, as a
    user starts it: fresh processes, so nothing run before in this one can reach them."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               script, *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> tuple[list[dict], str]:
    out = str(tmp_path_factory.mktemp("ddp"))
    done = torchrun(os.path.join(HERE, "distributed_worker.py"), out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
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
    assert [r["cli_codes"]["full"] for r in results] == [0, 0]
    run = os.path.join(out, "full")
    assert [json.loads(line)["epoch"] for line in open(os.path.join(run, "metrics.jsonl"))] == [1, 2]
    payload = load_checkpoint(os.path.join(run, "checkpoint.pt"))
    assert payload["world_size"] == WORLD_SIZE and payload["epoch"] == 2
    # 201 images over 2 ranks: shards of 101, batches of 20 -> 6 steps per epoch.
    assert payload["step"] == 12
    assert not any(key.startswith("module.") for key in payload["model"])
    assert main(["sample", os.path.join(run, "checkpoint.pt"), "--num-samples", "4"]) == 0


def test_sigterm_to_one_rank_stops_every_rank_at_that_step_with_exit_status_143(ranks):
    results, _ = ranks
    # Rank 1 alone received SIGTERM during step STOP_AT_STEP (epoch 2 of 6-step epochs).
    assert [r["cli_codes"]["stopped"] for r in results] == [128 + signal.SIGTERM] * 2
    assert results[0]["cli_codes"]["stopped_step"] == STOP_AT_STEP
    assert results[0]["cli_codes"]["stopped_epoch"] == 1  # one whole epoch done, the second part-way


def test_resume_after_the_stop_ends_with_the_uninterrupted_runs_parameters(ranks):
    results, out = ranks
    assert [r["cli_codes"]["resumed"] for r in results] == [0, 0]
    full = load_checkpoint(os.path.join(out, "full", "checkpoint.pt"))
    resumed = load_checkpoint(os.path.join(out, "stopped", "checkpoint.pt"))
    assert resumed["step"] == full["step"] == 12
    for key, value in full["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    for a, b in zip(full["history"], resumed["history"], strict=True):
        assert a["test_elbo"] == b["test_elbo"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)


@pytest.mark.parametrize("model", ["m2", "cvae"])
def test_m2_and_cvae_on_two_processes_have_the_loss_of_one_process_on_the_same_global_batches(ranks, model):
    results, _ = ranks
    one = results[0]["conditional"]["one"]
    for result in results:
        ranks_ = result["conditional"]["ranks"]
        # Global batches of 40: M2's 360 unlabelled images (40 labelled), the CVAE's 400 images.
        assert ranks_[f"{model}_steps"] == one[f"{model}_steps"] == {"m2": 9, "cvae": 10}[model]
        assert ranks_[model]["train_loss"] == pytest.approx(one[model]["train_loss"], rel=1e-4)


@pytest.mark.parametrize("model", ["m2", "cvae"])
def test_m2_and_cvae_train_under_torchrun_from_the_command_line(ranks, model):
    results, out = ranks
    assert [r["cli_codes"][model] for r in results] == [0, 0]
    payload = load_checkpoint(os.path.join(out, model, "checkpoint.pt"))
    assert payload["world_size"] == WORLD_SIZE and payload["sharded"] and payload["epoch"] == 1


def test_a_non_finite_loss_on_one_rank_skips_the_step_on_every_rank_and_stops_all_alike(ranks):
    results, _ = ranks
    # Step 1 updates; steps 2 and 3 are NaN on rank 1 only: both ranks skip them, and stop after
    # the second in a row (max_nonfinite_steps=2) with the same parameters.
    assert [r["nonfinite"]["error_at"] for r in results] == [3, 3]
    assert [r["nonfinite"]["skipped"] for r in results] == [2, 2]
    assert torch.equal(results[0]["nonfinite"]["w"], results[1]["nonfinite"]["w"])
    assert not torch.equal(results[0]["nonfinite"]["w"], torch.ones(3))  # step 1 did update


def global_sequence(rank_batches: list[list[list[int]]]) -> list[list[int]]:
    """Per step, the global batch the ranks saw together, in the epoch permutation's order
    (rank ``r`` holds its positions ``r, r + W, ...``)."""
    return [torch.tensor(batches).T.flatten().tolist() for batches in zip(*rank_batches, strict=True)]


def test_a_two_process_run_resumed_in_one_process_continues_the_same_global_batches(ranks):
    results, out = ranks
    orders = [r["order"] for r in results]
    assert [o["full_stopped_at"] for o in orders] == [None, None]
    assert [o["stopped_stopped_at"] for o in orders] == [(STOP_AT_STEP, signal.SIGTERM)] * 2  # rank 1 asked alone
    full = global_sequence([o["full"] for o in orders])
    before = global_sequence([o["stopped"] for o in orders])
    # 45 images, local batches of 4 on 2 ranks: shards of 23, 6 steps per epoch, 2 epochs.
    assert len(full) == 12 and before == full[:STOP_AT_STEP]
    after: list[list[int]] = []
    trainer = Trainer(tiny_vae(seed=0, name="one-process", fixed_noise=False), parallel=GlobalOrder(seed=7),
                      batch_size=2 * 4, progress=False, transform=recording_transform(after))
    trainer.load_state_dict(torch.load(os.path.join(out, "order_state.pt")))
    trainer.fit(index_images(45), epochs=2 - trainer.epoch)
    assert after[:-1] == full[STOP_AT_STEP:-1]
    # The epoch's last, partial global batch: two processes pad it with the permutation's first image.
    assert full[-1][:-1] == after[-1] and len(after[-1]) == 45 - 5 * 8


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
    if drop_last:  # full batches only, from the permutation cut to a multiple of the world size
        assert len(seen) == (n // world) // 2 * 2 * world and len(set(seen.tolist())) == len(seen)
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


def test_the_command_line_resumes_a_two_process_run_in_one_process_with_the_global_batch(ranks):
    _, out = ranks
    run = os.path.join(out, "full")
    assert main(["train", "--resume", run, "--epochs", "3", "--no-progress"]) == 0
    payload = load_checkpoint(os.path.join(run, "checkpoint.pt"))
    # One process takes the global batch of 2 x 20: 201 images -> 6 steps, as the two ranks took.
    assert payload["config"]["batch_size"] == 40 and payload["world_size"] == 1 and payload["sharded"]
    assert payload["step"] == 18 and payload["epoch"] == 3


class FakeGroup:
    """Stands for a process group of ``world_size`` ranks in the resume-planning checks."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size


@pytest.mark.parametrize("saved, now, local", [(2, 1, 40), (2, 4, 10), (1, 1, 20), (4, 2, 40), (1, 2, 10)])
def test_a_resumed_run_keeps_its_global_batch_on_any_number_of_processes(saved, now, local):
    from pyrovae.cli.config import TrainConfig
    from pyrovae.cli.resume import continue_data_order

    config = TrainConfig(batch_size=20)
    payload = {"world_size": saved, "sharded": True}
    resumed, parallel = continue_data_order(config, payload, None if now == 1 else FakeGroup(now),
                                            torch.device("cpu"), "run")
    assert resumed.batch_size * now == config.batch_size * saved and resumed.batch_size == local
    assert parallel.world_size == now


def test_resuming_refuses_an_uneven_global_batch_and_a_one_process_run_under_torchrun():
    from pyrovae.cli.config import ConfigError, TrainConfig
    from pyrovae.cli.resume import continue_data_order

    with pytest.raises(ConfigError, match="cannot share evenly"):
        continue_data_order(TrainConfig(batch_size=20), {"world_size": 2, "sharded": True}, FakeGroup(3),
                            torch.device("cpu"), "run")
    with pytest.raises(ConfigError, match="without torchrun"):
        continue_data_order(TrainConfig(batch_size=20), {"world_size": 1}, FakeGroup(2), torch.device("cpu"), "run")


def test_streamed_batches_arrive_on_their_device_one_per_step_from_any_start():
    # The "meta" device stands for a GPU here: the same path (gather on the CPU, send, transform there).
    data, labels = torch.arange(46.0).reshape(23, 2), torch.arange(23)
    devices = []
    shard = ShardedBatches(data, labels, batch_size=3, rank=1, world_size=2, seed=2, device="meta",
                           transform=lambda x: devices.append(x.device) or x)
    shard.set_epoch(1)
    order = shard.permutation()
    assert order.device.type == "cpu"  # the order indexes the data where they are
    batches = list(shard.iterate(order))
    assert [tuple(b[0].shape) for b in batches] == [(3, 2)] * 4 and all(b[1].device.type == "meta" for b in batches)
    assert len(list(shard.iterate(order, start=3))) == 1 and devices and {d.type for d in devices} == {"meta"}
