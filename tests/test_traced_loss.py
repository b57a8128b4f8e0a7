"""The loss traced once into one graph (``Trainer(compile=True)``): the same value, gradient and
random draws as the loss it was traced from, retraced when what it bakes in changes, and a
clean fallback where it cannot be traced or compiled."""

import copy

import pyro
import pytest
import torch
from torch import nn

from pyrovae import MLP, BernoulliLikelihood, DiagonalNormalEncoder, LatentScale, StandardNormalPrior, Trainer, VAE
from pyrovae.data import InMemoryBatches
from pyrovae.infer.elbo import ELBOLoss, SyncFreeTrace_ELBO
from pyrovae.fast.traced_loss import TracedLoss, trace_loss
from prior_guide_parts import build_vae, context_for, toy_data
from test_lean_elbo import PAIRS


def elbo_loss(vae, weight=1.0):
    scale = LatentScale(weight)
    return ELBOLoss(vae, scale(vae.model), scale(vae.guide), SyncFreeTrace_ELBO())


def value_and_grads(fn, params, seed):
    for p in params:
        p.grad = None
    pyro.set_rng_seed(seed)
    value = fn()
    value.backward()
    return value.detach(), [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]


@pytest.mark.parametrize("prior, guide", PAIRS, ids=[f"{p}-{g}" for p, g in PAIRS])
@pytest.mark.parametrize("weight", [1.0, 0.3])
def test_traced_graph_computes_the_loss_it_was_traced_from(prior, guide, weight):
    """Value and gradient at the same random draws, for every prior and guide the default
    objective trains; the graph is run uncompiled, so this checks the recording alone."""
    vae = build_vae(prior, guide)
    x, _ = toy_data(10)
    context = context_for(prior, 10)
    loss = elbo_loss(vae, weight)
    params = [p for _, p in loss.named_parameters()]
    buffers = [b for _, b in loss.named_buffers()]
    if prior == "conditional":  # checks its labels' values in Python: the tracer must refuse
        with pytest.raises(Exception, match="data-dependent"):
            trace_loss(loss, x, context)
        # ... and leave the module holding its own parameters, not the tracer's fakes
        assert all(p is q for p, q in zip(loss.parameters(), params))
        return
    graph = trace_loss(loss, x, context)
    with pyro.validation_enabled(False):
        eager = value_and_grads(lambda: loss(x, context), params, seed=3)
    traced = value_and_grads(lambda: graph(params, buffers, x, context), params, seed=3)
    # The graph writes softplus and the Bernoulli density in inductor's forms: float32 rounding.
    torch.testing.assert_close(traced[0], eager[0], rtol=1e-5, atol=1e-5)
    for a, b in zip(traced[1], eager[1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    other_draw = value_and_grads(lambda: graph(params, buffers, x, context), params, seed=4)
    assert not torch.equal(other_draw[0], traced[0])  # the noise is drawn anew, not baked in


def small_vae(name: str = "vae") -> VAE:
    return VAE(DiagonalNormalEncoder(MLP((1, 4, 4), (8,), 4), 2),
               BernoulliLikelihood(MLP(2, (8,), 16), (1, 4, 4)), StandardNormalPrior(2), name=name)


def test_compiled_trainer_runs_the_graph_and_matches_eager_training():
    """Three epochs of 3 steps (the last one short): after the validated first step and one
    step that settles the KL weight, the graphs run, and losses and parameters follow the
    eager trainer's."""
    eager_vae = small_vae()
    traced_vae = copy.deepcopy(eager_vae)
    traced_vae.name = "traced"
    x = torch.rand(20, 1, 4, 4)
    losses, params, trainers = [], [], []
    for vae, use_compile in ((eager_vae, False), (traced_vae, True)):
        trainer = Trainer(vae, batch_size=8, progress=False, compile=use_compile)
        pyro.set_rng_seed(0)
        losses.append(torch.stack([trainer.train_epoch(InMemoryBatches(x, batch_size=8, shuffle=False),
                                                       lambda step: 1.0) for _ in range(3)]))
        params.append(torch.cat([p.detach().flatten() for p in vae.parameters()]))
        trainers.append(trainer)
    traced = trainers[1].loss
    assert isinstance(traced, TracedLoss) and traced.refused is None
    assert traced.num_graphs == 2  # batches of 8 and of 4 each ran as a compiled graph
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(params[1], params[0], rtol=1e-4, atol=1e-5)


def test_fit_compiles_by_default_only_when_asked_for_enough_steps(monkeypatch):
    """compile=None: a fit of AUTO_COMPILE_STEPS steps or more compiles (the whole loss as one
    graph), a shorter one stays eager, and compile=False never compiles."""
    import pyrovae.train.trainer

    monkeypatch.setattr(torch, "compile", lambda graph, **kwargs: graph)  # the decision alone
    monkeypatch.setattr(pyrovae.train.trainer, "AUTO_COMPILE_STEPS", 6)
    x = torch.rand(16, 1, 4, 4)  # 2 batches of 8 per epoch
    short = Trainer(small_vae("short"), batch_size=8, progress=False)
    short.fit(x, epochs=2)  # 4 steps
    assert short.compile is None and not isinstance(short.loss, TracedLoss)
    long = Trainer(small_vae("long"), batch_size=8, progress=False)
    long.fit(x, epochs=3)  # 6 steps
    assert long.compile is True and isinstance(long.loss, TracedLoss) and long.loss.num_graphs == 1
    never = Trainer(small_vae("never"), batch_size=8, progress=False, compile=False)
    never.fit(x, epochs=3)
    assert never.compile is False and not isinstance(never.loss, TracedLoss)


def test_a_changing_kl_weight_never_traces_and_a_new_shape_or_mode_is_a_new_graph(monkeypatch):
    traced_shapes = []
    monkeypatch.setattr("pyrovae.fast.traced_loss.trace_loss",
                        lambda loss, x, c: traced_shapes.append(x.shape) or trace_loss(loss, x, c))
    monkeypatch.setattr(torch, "compile", lambda graph, **kwargs: graph)  # the recording alone
    vae = small_vae()
    weight = [0.1]
    loss = TracedLoss(elbo_loss(vae), key=lambda: weight[0])
    x = torch.rand(8, 1, 4, 4)
    with pyro.validation_enabled(False):
        for step in range(5):  # a warm-up: a new weight on every step
            weight[0] = 0.1 * (step + 1)
            loss(x)
        assert traced_shapes == []
        loss(x), loss(x)  # the weight held still since the last call: traced once, then reused
        assert len(traced_shapes) == 1
        vae.eval()
        loss(x), loss(x)
        assert len(traced_shapes) == 2
        loss(x[:3]), loss(x[:3])
        assert len(traced_shapes) == 3
    with pyro.validation_enabled(True):  # validated steps run the loss itself
        loss(x[:5])
    assert len(traced_shapes) == 3


class ValueBranchingEncoder(DiagonalNormalEncoder):
    """Python that looks at a tensor's value: the trace must refuse, not bake one branch in."""

    def forward(self, x, context=None):
        q = super().forward(x, context)
        if bool(x.sum() > 0):
            return q
        return q


def test_untraceable_loss_warns_once_and_trains_eagerly():
    vae = VAE(ValueBranchingEncoder(MLP((1, 4, 4), (8,), 4), 2),
              BernoulliLikelihood(MLP(2, (8,), 16), (1, 4, 4)), StandardNormalPrior(2))
    loss = TracedLoss(elbo_loss(vae))
    x = torch.rand(8, 1, 4, 4)
    with pyro.validation_enabled(False):
        loss(x)
        with pytest.warns(RuntimeWarning, match="could not be traced"):
            value = loss(x)
        assert torch.isfinite(value) and loss.refused is not None
        loss(x)  # no second warning: tracing stays off


def test_batch_norm_running_statistics_are_refused():
    encoder_net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Linear(8, 4))
    vae = VAE(DiagonalNormalEncoder(encoder_net, 2), BernoulliLikelihood(MLP(2, (8,), 16), (1, 4, 4)),
              StandardNormalPrior(2))
    loss = TracedLoss(elbo_loss(vae))
    x = torch.rand(8, 1, 4, 4)
    with pyro.validation_enabled(False):
        loss(x)
        with pytest.warns(RuntimeWarning, match="changes its inputs in place"):
            loss(x)
    before = encoder_net[2].running_mean.clone()
    with pyro.validation_enabled(False):
        loss(x)
    assert not torch.equal(encoder_net[2].running_mean, before)  # eager: the statistics still move


def test_a_failing_compiler_warns_and_falls_back(monkeypatch):
    def broken(graph, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler found\nmore detail")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    vae = small_vae()
    loss = TracedLoss(elbo_loss(vae))
    x = torch.rand(8, 1, 4, 4)
    with pyro.validation_enabled(False):
        loss(x)
        with pytest.warns(RuntimeWarning, match="torch.compile failed .*no C\\+\\+ compiler found"):
            pyro.set_rng_seed(1)
            value = loss(x)
        pyro.set_rng_seed(1)
        torch.testing.assert_close(value, elbo_loss(vae)(x))


def test_a_model_that_registers_its_module_on_every_run_leaves_the_param_store_real():
    """The CVAE calls pyro.module in model and guide: tracing must neither store fake tensors
    in Pyro's global param store nor warn, and the graph computes the same loss."""
    import warnings

    from test_cvae import data, tiny_cvae

    cvae = tiny_cvae(baseline=False)
    context, images = data(8)
    loss = ELBOLoss(cvae, cvae.model, cvae.guide, SyncFreeTrace_ELBO())
    with pyro.validation_enabled(False):
        loss(context, images)  # eager: registers the real parameters
    store = pyro.get_param_store()
    before = {name: store[name] for name in store.keys()}
    assert before
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graph = trace_loss(loss, context, images)
    assert {name: store[name] for name in store.keys()}.keys() == before.keys()
    assert all(store[name] is value for name, value in before.items())
    params = [p for _, p in loss.named_parameters()]
    buffers = [b for _, b in loss.named_buffers()]
    with pyro.validation_enabled(False):
        eager = value_and_grads(lambda: loss(context, images), params, seed=5)
    traced = value_and_grads(lambda: graph(params, buffers, context, images), params, seed=5)
    torch.testing.assert_close(traced[0], eager[0], rtol=1e-5, atol=1e-5)
