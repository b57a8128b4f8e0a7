"""IWAE (RenyiELBO alpha=0 with a differentiable loss) and DReG: same bound, DReG's gradient checked."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from ppca_oracle import ppca_vae, random_problem
from pyro.infer import RenyiELBO
from torch import nn

from pyrovae import Trainer
from pyrovae.infer.dreg import DReG
from pyrovae.infer.iwae import IWAE


def _vae(scale_factor=1.4, orthogonal=False):
    W, b, sigma, x = random_problem(orthogonal=orthogonal, n=6)
    return ppca_vae(W, b, sigma, scale_factor=scale_factor), x


def _grads(vae, objective, x, seed):
    pyro.set_rng_seed(seed)
    vae.zero_grad()
    loss = objective.differentiable_loss(vae.model, vae.guide, x, None)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in vae.named_parameters()}


@pytest.mark.parametrize("objective", [IWAE(num_particles=10), DReG(num_particles=10)], ids=["iwae", "dreg"])
def test_value_equals_renyi_elbo_alpha_zero_on_the_same_samples(objective):
    vae, x = _vae()
    renyi = RenyiELBO(alpha=0, num_particles=10, vectorize_particles=True)
    # First calls guess max_plate_nesting by running the guide once, which draws random numbers.
    renyi.loss(vae.model, vae.guide, x, None)
    objective.loss(vae.model, vae.guide, x, None)
    for seed in range(3):
        pyro.set_rng_seed(seed)
        expected = renyi.loss(vae.model, vae.guide, x, None)
        pyro.set_rng_seed(seed)
        value = objective.differentiable_loss(vae.model, vae.guide, x, None)
        assert value.requires_grad
        assert value.item() == pytest.approx(expected, rel=1e-6, abs=1e-4)
        pyro.set_rng_seed(seed)
        assert objective.loss(vae.model, vae.guide, x, None) == pytest.approx(expected, rel=1e-6, abs=1e-4)


def test_iwae_gradient_equals_renyi_surrogate_gradient():
    vae, x = _vae()
    _, ours = _grads(vae, IWAE(num_particles=7), x, seed=1)
    pyro.set_rng_seed(1)
    vae.zero_grad()
    RenyiELBO(alpha=0, num_particles=7, vectorize_particles=True).loss_and_grads(vae.model, vae.guide, x, None)
    for name, p in vae.named_parameters():
        torch.testing.assert_close(ours[name], p.grad, rtol=1e-4, atol=1e-4)


def test_dreg_decoder_gradient_is_the_iwae_gradient():
    vae, x = _vae()
    _, iwae = _grads(vae, IWAE(num_particles=10), x, seed=2)
    _, dreg = _grads(vae, DReG(num_particles=10), x, seed=2)
    for name in iwae:
        if name.startswith("likelihood"):
            torch.testing.assert_close(dreg[name], iwae[name], rtol=1e-4, atol=1e-5)
    assert any(not torch.allclose(dreg[n], iwae[n], atol=1e-3) for n in iwae if n.startswith("encoder"))


def test_dreg_encoder_gradient_vanishes_at_the_exact_posterior():
    # log w is constant in z when q is the posterior, so the path derivative is exactly zero,
    # while the IWAE estimator still carries a score-function term with nonzero samples.
    vae, x = _vae(scale_factor=1.0, orthogonal=True)
    _, dreg = _grads(vae, DReG(num_particles=10), x, seed=0)
    _, iwae = _grads(vae, IWAE(num_particles=10), x, seed=0)
    for name in dreg:
        if name.startswith("encoder"):
            torch.testing.assert_close(dreg[name], torch.zeros_like(dreg[name]), atol=1e-4, rtol=0)
    assert max(iwae[n].abs().max().item() for n in iwae if n.startswith("encoder")) > 1e-2


def test_dreg_encoder_gradient_has_lower_variance_and_the_same_mean():
    vae, x = _vae(scale_factor=1.3)
    samples = {"iwae": [], "dreg": []}
    for seed in range(200):
        for key, objective in (("iwae", IWAE(num_particles=10)), ("dreg", DReG(num_particles=10, max_plate_nesting=1))):
            _, grads = _grads(vae, objective, x, seed=1000 + seed)
            samples[key].append(torch.cat([grads[n].reshape(-1) for n in sorted(grads) if n.startswith("encoder")]))
    iwae, dreg = torch.stack(samples["iwae"]), torch.stack(samples["dreg"])
    assert dreg.var(0).sum() < 0.5 * iwae.var(0).sum()
    se = torch.sqrt((iwae.var(0) + dreg.var(0)) / 200)
    assert ((iwae.mean(0) - dreg.mean(0)).abs() < 5 * se + 1e-5).all()


class _TwoLevel(nn.Module):
    """z1 ~ N(0,1), z2 | z1 ~ N(z1, 1), x | z2 ~ N(z2, 1); guide q(z1|x) q(z2|z1,x), all linear."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.5))
        self.s1 = nn.Parameter(torch.tensor(0.9))
        self.c = nn.Parameter(torch.tensor(0.3))
        self.e = nn.Parameter(torch.tensor(0.6))
        self.s2 = nn.Parameter(torch.tensor(0.8))

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(0.0, 1.0))
            z2 = pyro.sample("z2", dist.Normal(z1, 1.0))
            pyro.sample("x", dist.Normal(z2, 1.0), obs=x)

    def guide(self, x):
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(self.a * x, self.s1))
            pyro.sample("z2", dist.Normal(self.c * z1 + self.e * x, self.s2))

    def reference_dreg(self, x, k):
        """DReG by hand: log q with the parameters stopped, z1 inside q(z2 | z1) left live."""
        shape = (k, x.shape[0])
        z1 = dist.Normal((self.a * x).expand(shape), self.s1.expand(shape)).rsample()
        z2 = dist.Normal(self.c * z1 + self.e * x, self.s2.expand(shape)).rsample()
        a, s1, c, e, s2 = (p.detach() for p in (self.a, self.s1, self.c, self.e, self.s2))
        log_q = dist.Normal(a * x, s1).log_prob(z1) + dist.Normal(c * z1 + e * x, s2).log_prob(z2)
        log_p = (dist.Normal(0.0, 1.0).log_prob(z1) + dist.Normal(z1, 1.0).log_prob(z2)
                 + dist.Normal(z2, 1.0).log_prob(x))
        log_w = log_p - log_q
        w = torch.softmax(log_w.detach(), 0)
        return -(w**2 * log_w).sum()


def test_dreg_matches_a_hand_written_estimator_on_a_two_level_guide():
    torch.manual_seed(0)
    m = _TwoLevel()
    x = torch.randn(5)
    pyro.set_rng_seed(4)
    loss = DReG(num_particles=6, max_plate_nesting=1).differentiable_loss(m.model, m.guide, x)
    ours = torch.autograd.grad(loss, list(m.parameters()))
    pyro.set_rng_seed(4)
    reference = torch.autograd.grad(m.reference_dreg(x, 6), list(m.parameters()))
    for g, r in zip(ours, reference):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


def test_non_reparameterizable_guide_site_is_refused():
    def model(x):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Bernoulli(0.5))
            pyro.sample("x", dist.Normal(c, 1.0), obs=x)

    def guide(x):
        p = pyro.param("p", torch.tensor(0.3))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("c", dist.Bernoulli(p))

    for objective in (IWAE(num_particles=3), DReG(num_particles=3)):
        with pytest.raises(ValueError, match="not reparameterizable"):
            objective.differentiable_loss(model, guide, torch.zeros(4))


@pytest.mark.parametrize("objective", [IWAE(num_particles=3), DReG(num_particles=3)], ids=["iwae", "dreg"])
def test_trainer_takes_the_objectives(objective):
    vae, x = _vae()
    trainer = Trainer(vae, objective=objective, batch_size=4, progress=False, warmup_epochs=1.0)
    record = trainer.fit(x, epochs=2, eval_size=8)
    assert math.isfinite(record.last("train_loss"))
