"""The non-finite guard: NaN losses or gradients skip the step, are counted, and stop training in a row."""

import pytest
import torch
from torch import nn

from pyrovae import VAE, BernoulliLikelihood, DiagonalNormalEncoder, MLP, StandardNormalPrior, Trainer
from pyrovae.errors import NonFiniteError, PyrovaeError


class Poisonable(nn.Module):
    """Wraps a net; while ``poison`` is set its output is NaN (``mode="loss"``) or its gradient is."""

    def __init__(self, net: nn.Module, mode: str = "loss") -> None:
        super().__init__()
        self.net, self.mode, self.poison = net, mode, False

    def forward(self, z):
        out = self.net(z)
        if not self.poison:
            return out
        if self.mode == "loss":
            return out * float("nan")
        return _NaNGradient.apply(out)


class _NaNGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


def poisoned_trainer(bad_steps, mode="loss", **kwargs):
    decoder = Poisonable(MLP(2, [16], 64), mode)
    vae = VAE(DiagonalNormalEncoder(MLP((1, 8, 8), [16], 4), 2),
              BernoulliLikelihood(decoder, (1, 8, 8)), StandardNormalPrior(2))
    calls = iter(range(10**6))

    def transform(batch):  # runs once per training batch, just before its step
        decoder.poison = next(calls) in bad_steps
        return batch

    trainer = Trainer(vae, batch_size=16, progress=False, transform=transform,
                      generator=torch.Generator().manual_seed(0), **kwargs)
    original = trainer.evaluate

    def evaluate(*args, **kw):  # score the epoch with a healthy net
        decoder.poison = False
        return original(*args, **kw)

    trainer.evaluate = evaluate
    return vae, trainer


@pytest.mark.parametrize("mode", ["loss", "gradient"])
def test_isolated_bad_steps_are_skipped_and_counted(mode):
    vae, trainer = poisoned_trainer({2, 5, 9}, mode)
    before = None

    def snapshot(t):
        nonlocal before
        if t.record.steps == 2:  # just before the bad step 2 (0-based)
            before = [p.detach().clone() for p in vae.parameters()]
        if t.record.steps == 3:
            assert all(torch.equal(a, b) for a, b in zip(before, vae.parameters())), "a skipped step moved"

    trainer.step_callbacks.append(snapshot)
    record = trainer.fit(torch.rand(112, 1, 8, 8), epochs=2)  # 7 steps per epoch
    assert [h["skipped_steps"] for h in record.history] == [2, 3]
    assert all(torch.isfinite(p).all() for p in vae.parameters())
    adam_steps = {int(s["step"]) for s in trainer.optimizer.state.values()}
    assert adam_steps == {14 - 3}
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in record.history)


def test_many_in_a_row_stop_with_advice():
    vae, trainer = poisoned_trainer(set(range(4, 10**6)), max_nonfinite_steps=10)
    with pytest.raises(NonFiniteError, match="10 steps in a row") as info:
        trainer.fit(torch.rand(112, 1, 8, 8), epochs=5)
    message = str(info.value)
    assert isinstance(info.value, PyrovaeError) and "\n" not in message
    assert "lower learning rate" in message and "likelihood" in message and "data" in message
    assert trainer.record.steps == 14  # 4 good steps, then exactly 10 bad ones
    assert all(torch.isfinite(p).all() for p in vae.parameters())
    assert int(trainer.guard.skipped) == 10


def test_nan_distribution_parameters_are_skipped_not_raised():
    """With validation on, Normal(loc=NaN) raises inside the model; that step counts as non-finite."""
    encoder_net = Poisonable(MLP((1, 8, 8), [16], 4))
    vae = VAE(DiagonalNormalEncoder(encoder_net, 2), BernoulliLikelihood(MLP(2, [16], 64), (1, 8, 8)),
              StandardNormalPrior(2))
    calls = iter(range(10**6))

    def transform(batch):
        encoder_net.poison = next(calls) in {1, 4}
        return batch

    trainer = Trainer(vae, batch_size=16, progress=False, transform=transform)
    original = trainer.evaluate
    trainer.evaluate = lambda *a, **k: (setattr(encoder_net, "poison", False), original(*a, **k))[1]
    record = trainer.fit(torch.rand(112, 1, 8, 8), epochs=1)
    assert record.history[0]["skipped_steps"] == 2
    assert all(torch.isfinite(p).all() for p in vae.parameters())


def test_a_model_invalid_before_any_update_still_raises():
    """Invalid distribution arguments on the very first step are a bug in the model, not a divergence."""
    import pyro
    import pyro.distributions as dist

    vae = VAE(DiagonalNormalEncoder(MLP((1, 8, 8), [16], 4), 2), BernoulliLikelihood(MLP(2, [16], 64), (1, 8, 8)),
              StandardNormalPrior(2))

    def guide(x, context=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 2), -torch.ones(x.shape[0], 2)).to_event(1))

    trainer = Trainer(vae, model=vae.model, guide=guide, progress=False)
    with pytest.raises(ValueError, match="found invalid values"):
        trainer.fit(torch.rand(32, 1, 8, 8), epochs=1)


def test_m2_training_skips_non_finite_steps_and_stops_after_too_many():
    """M2 trains in the same loop: the same guard skips, counts and stops."""
    from pyrovae import NormalLikelihood
    from pyrovae.data.semisupervised import split_labelled
    from pyrovae.models import M2
    from pyrovae.train.semisupervised import SemiSupervisedTrainer

    decoder = Poisonable(MLP(2 + 3, [8], 4))
    m2 = M2(MLP(4, (8,), 3), DiagonalNormalEncoder(MLP(4 + 3, (8,), 4), 2, context_dim=3),
            NormalLikelihood(decoder, (4,), scale=0.5), 3)
    labels = torch.arange(3).repeat(40)
    split = split_labelled(torch.randn(120, 4), labels, num_labelled=6, num_validation=0, seed=0)
    calls = iter(range(10**6))

    def transform(batch):  # two batches a step (labelled, then unlabelled): poison by step
        decoder.poison = next(calls) // 2 in bad
        return batch

    bad = {1, 3}
    trainer = SemiSupervisedTrainer(m2, batch_size=16, labelled_batch_size=6, progress=False, transform=transform,
                                    generator=torch.Generator().manual_seed(0))
    original = trainer.module.accuracy
    trainer.module.accuracy = lambda *a: (setattr(decoder, "poison", False), original(*a))[1]
    record = trainer.fit(split, epochs=1)  # 114 unlabelled images: 8 steps
    assert record.history[0]["skipped_steps"] == 2
    assert all(torch.isfinite(p).all() for p in m2.parameters())
    assert {int(s["step"]) for s in trainer.optimizer.state.values()} == {8 - 2}
    bad = set(range(10, 10**6))
    with pytest.raises(NonFiniteError, match="3 steps in a row"):
        trainer.guard.max_consecutive = 3
        trainer.fit(split, epochs=5)
