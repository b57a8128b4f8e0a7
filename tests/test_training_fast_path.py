"""The trainer's fast path against Pyro's own: same ELBO and gradients, param-store
registration once (trainer) or per call (SVI), validation on the first step of an epoch,
KL weight 1 bypassing the scale messenger, and the per-epoch figures."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.util import is_validation_enabled

from pyrovae import MLP, BernoulliLikelihood, DiagonalNormalEncoder, LatentScale, StandardNormalPrior, Trainer, VAE
from pyrovae.infer.elbo import SyncFreeTrace_ELBO
from pyrovae.train.trainer import make_adam


def tiny_vae(name: str = "vae") -> VAE:
    encoder = DiagonalNormalEncoder(MLP((1, 4, 4), (8,), 4), 2)
    likelihood = BernoulliLikelihood(MLP(2, (8,), 16), (1, 4, 4))
    return VAE(encoder, likelihood, StandardNormalPrior(2), name=name)


def data(n: int = 12) -> torch.Tensor:
    return torch.rand(n, 1, 4, 4)


def loss_and_grads(objective, model, guide, module, x, seed=0):
    module.zero_grad(set_to_none=True)
    pyro.set_rng_seed(seed)
    loss = objective.differentiable_loss(model, guide, x)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in module.parameters()]


def test_sync_free_elbo_matches_trace_elbo_value_and_gradient():
    vae, x = tiny_vae(), data()
    ours = loss_and_grads(SyncFreeTrace_ELBO(), vae.model, vae.guide, vae, x)
    pyros = loss_and_grads(Trace_ELBO(), vae.model, vae.guide, vae, x)
    assert torch.allclose(ours[0], pyros[0], rtol=1e-6)
    for a, b in zip(ours[1], pyros[1]):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def discrete_latent_pair():
    """A model and guide with one Bernoulli latent sampled in the guide (no reparameterization),
    and the guide's parameter: ``(model, guide, theta)``."""
    theta = torch.nn.Parameter(torch.tensor(0.3))

    def model(x):
        c = pyro.sample("c", dist.Bernoulli(0.5))
        pyro.sample("x", dist.Normal(c, 1.0), obs=x)

    def guide(x):
        pyro.sample("c", dist.Bernoulli(logits=theta))

    return model, guide, theta


def test_sync_free_elbo_takes_pyros_path_for_non_reparameterized_guides():
    model, guide, theta = discrete_latent_pair()
    holder = torch.nn.Module()
    holder.theta = theta
    x = torch.tensor(0.7)
    for num_particles in (1, 3):
        ours = loss_and_grads(SyncFreeTrace_ELBO(num_particles=num_particles), model, guide, holder, x, seed=3)
        pyros = loss_and_grads(Trace_ELBO(num_particles=num_particles), model, guide, holder, x, seed=3)
        assert torch.allclose(ours[0], pyros[0])
        assert torch.allclose(ours[1][0], pyros[1][0])


def test_svi_with_pyro_optim_registers_every_call_and_trains():
    vae, x = tiny_vae(), data()
    before = [p.detach().clone() for p in vae.parameters()]
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    svi.step(x)
    store = pyro.get_param_store()
    assert {f"vae$$${n}" for n, _ in vae.named_parameters()} <= set(store.keys())
    assert all(not torch.equal(a, b) for a, b in zip(before, vae.parameters()))
    pyro.clear_param_store()
    svi.step(x)  # a cleared store is filled again by the next call
    assert len(store.keys()) == len(list(vae.parameters()))


def test_registered_once_skips_pyro_module_only_inside_the_block():
    from pyrovae.fast.steps import registered_once

    vae, x = tiny_vae(), data()
    with registered_once(vae, register=False):
        with registered_once(vae):  # nests: the outer block decides
            Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
        Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
    assert len(pyro.get_param_store().keys()) == 0
    assert "register_params" not in vae.__dict__  # the patch is gone with the block
    with registered_once(vae):
        assert len(pyro.get_param_store().keys()) == len(list(vae.parameters()))
        pyro.clear_param_store()
        Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
        assert len(pyro.get_param_store().keys()) == 0
    Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
    assert len(pyro.get_param_store().keys()) == len(list(vae.parameters()))


def test_trainer_registers_once_and_steps_without_the_param_store():
    vae, x = tiny_vae(), data()
    trainer = Trainer(vae, progress=False)
    assert len(pyro.get_param_store().keys()) == len(list(vae.parameters()))
    pyro.clear_param_store()
    before = [p.detach().clone() for p in vae.parameters()]
    trainer.step(x)
    trainer.step(x)
    assert len(pyro.get_param_store().keys()) == 0
    assert all(not torch.equal(a, b) for a, b in zip(before, vae.parameters()))


def test_trainer_refuses_a_second_model_with_the_same_name_at_construction():
    Trainer(tiny_vae("twin"), progress=False)
    with pytest.raises(ValueError, match="another model uses the name 'twin'"):
        Trainer(tiny_vae("twin"), progress=False)


@pytest.mark.parametrize("every_step", [False, True])
def test_trainer_validates_the_first_step_of_each_epoch(every_step):
    vae = tiny_vae()
    seen = []

    def model(x, context=None):
        seen.append(is_validation_enabled())
        vae.model(x, context)

    trainer = Trainer(vae, model=model, guide=vae.guide, batch_size=4, progress=False,
                      validate_every_step=every_step)
    trainer.fit(data(12), epochs=2, eval_size=4)
    # The per-epoch evaluation runs vae.model, not this one: `seen` has one entry per step.
    assert seen == ([True] * 6 if every_step else [True, False, False] * 2)
    assert is_validation_enabled()  # restored after every step


def test_validation_on_the_first_step_catches_a_bad_guide():
    vae = tiny_vae()

    def guide(x, context=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 2), -torch.ones(x.shape[0], 2)).to_event(1))

    trainer = Trainer(vae, model=vae.model, guide=guide, progress=False)
    with pytest.raises(ValueError):
        trainer.step(data(4))


def test_latent_scale_at_weight_one_is_the_plain_elbo_and_stays_linear_in_the_weight():
    vae, x = tiny_vae(), data()
    scale = LatentScale(1.0)
    model, guide = scale(vae.model), scale(vae.guide)

    def loss(seed):
        pyro.set_rng_seed(seed)
        return Trace_ELBO().differentiable_loss(model, guide, x)

    plain = loss_and_grads(Trace_ELBO(), vae.model, vae.guide, vae, x, seed=5)[0]
    assert torch.allclose(loss(5), plain)
    values = {}
    for weight in (0.0, 0.5, 1.0):
        scale.weight = weight  # changed after wrapping, as the warm-up does
        values[weight] = loss(5)
    assert torch.allclose(values[0.5], (values[0.0] + values[1.0]) / 2, rtol=1e-5)


def test_fit_keeps_the_per_epoch_figures_and_adds_train_seconds():
    vae = tiny_vae()
    record = Trainer(vae, batch_size=5, progress=False).fit(data(12), data(6), epochs=2, eval_size=6)
    keys = {"epoch", "train_loss", "train_elbo", "train_recon", "train_kl", "test_elbo", "test_recon",
            "test_kl", "kl_weight", "seconds", "train_seconds", "skipped_steps"}
    assert [set(h) for h in record.history] == [keys, keys]
    assert all(0 < h["train_seconds"] <= h["seconds"] for h in record.history)
    assert record.steps == 6
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in record.history)


def test_make_adam_uses_the_fused_kernel_where_supported():
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert make_adam(params, lr=1e-3).defaults["fused"] is True
