"""The compiled log-likelihood: one pass of particles traced once (``log_likelihood(compile=True)``),
its linear layers run by oneDNN, the Bernoulli density's logarithms taken per block of pixels.
Each must give what the eager code gives at the same random draws."""

import math

import pyro
import pytest
import torch
import torch.nn.functional as F

from pyrovae import MLP, BernoulliLikelihood, DiagonalNormalEncoder, StandardNormalPrior, VAE
from pyrovae.fast import compiled, onednn
from pyrovae.infer import evaluation
from pyrovae.infer.evaluation import log_likelihood
from pyrovae.fast.distributions import _bernoulli_image_log_prob
from pyrovae.infer.importance import guess_max_plate_nesting
from pyrovae.fast.traced_loss import TracedLoss, trace_loss
from prior_guide_parts import build_vae, context_for, toy_data
from test_lean_elbo import PAIRS

needs_onednn = pytest.mark.skipif(not onednn.available(), reason="this torch has no oneDNN")


def small_vae() -> VAE:
    return VAE(DiagonalNormalEncoder(MLP((1, 4, 4), (8,), 4), 2),
               BernoulliLikelihood(MLP(2, (8,), 16), (1, 4, 4)), StandardNormalPrior(2))


def run_seeded(fn, seed=3):
    pyro.set_rng_seed(seed)
    with torch.no_grad(), pyro.validation_enabled(False):
        return fn()


@pytest.mark.parametrize("prior, guide", PAIRS + [("gmm_enum", "diagonal")],
                         ids=[f"{p}-{g}" for p, g in PAIRS] + ["gmm_enum-diagonal"])
def test_traced_importance_weights_are_the_eager_ones(prior, guide):
    """For every prior and guide: the recorded pass, its linear layers routed to oneDNN, run
    uncompiled, gives the eager weights at the same draws (a check of the recording alone)."""
    vae = build_vae(prior, guide).eval()
    x, _ = toy_data(6)
    context = context_for(prior, 6)
    model = vae.marginal_model if prior == "gmm_enum" else vae.model
    pair = evaluation._LogWeights(model, vae.guide, guess_max_plate_nesting(model, vae.guide, x, context))
    pair.num_particles = 7
    assert pair.owners is not None  # bound methods and marginal_model both name their module
    if prior == "conditional":  # checks its labels' values in Python: the tracer must refuse
        with torch.no_grad(), pytest.raises(Exception) as refused:
            trace_loss(pair, x, context)
        assert "DataDependent" in refused.typename
        return
    with torch.no_grad():
        graph = trace_loss(pair, x, context)
    if onednn.available():
        assert onednn.route_linears_to_onednn(graph) >= 2  # the encoder's and decoder's layers at least
    params = [p.detach() for p in pair.parameters()]
    buffers = list(pair.buffers())
    eager = run_seeded(lambda: pair(x, context))
    traced = run_seeded(lambda: graph(params, buffers, x, context))
    assert traced.shape == (7, 6)
    torch.testing.assert_close(traced, eager, rtol=1e-5, atol=1e-4)
    assert not torch.equal(run_seeded(lambda: graph(params, buffers, x, context), seed=4), traced)


def test_compiled_log_likelihood_runs_a_traced_graph_and_equals_the_eager_one(monkeypatch):
    made = []

    class Recorded(TracedLoss):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(evaluation, "TracedLoss", Recorded)
    monkeypatch.setattr(compiled, "_failure", None)  # as on a machine where compiling works
    vae, x = small_vae(), (torch.rand(6, 1, 4, 4) < 0.5).float()

    def estimate(model, compile):
        pyro.set_rng_seed(0)
        return log_likelihood(model, vae.guide, x, num_samples=80, chunk_size=20, batch_size=4, compile=compile)

    eager = estimate(vae.model, compile=False)
    assert not made
    torch.testing.assert_close(estimate(vae.model, compile=True), eager, rtol=1e-5, atol=1e-4)
    (traced,) = made
    assert traced.refused is None and traced.num_graphs == 2  # batches of 4 and of 2 images
    # A pair that belongs to no module is compiled network by network instead: same values.
    unowned = lambda x, context=None: vae.model(x, context)  # noqa: E731
    torch.testing.assert_close(estimate(unowned, compile=True), eager, rtol=1e-5, atol=1e-4)
    assert len(made) == 1


def test_an_untraceable_pair_warns_once_and_gives_the_eager_values():
    vae = build_vae("conditional").eval()
    x, _ = toy_data(6)
    context = context_for("conditional", 6)

    def estimate(compile):
        pyro.set_rng_seed(0)
        return log_likelihood(vae.model, vae.guide, x, context, num_samples=60, chunk_size=20, compile=compile)

    with pytest.warns(RuntimeWarning, match="evaluating without the traced graph: the loss could not be traced"):
        values = estimate(compile=True)
    torch.testing.assert_close(values, estimate(compile=False), rtol=1e-5, atol=1e-4)


@needs_onednn
def test_onednn_linear_is_the_linear_layer_and_skips_what_it_cannot_run():
    from torch.fx.experimental.proxy_tensor import make_fx

    layers = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Softplus(), torch.nn.Linear(7, 3, bias=False))
    x = torch.randn(11, 5)
    with torch.no_grad():
        graph = make_fx(layers)(x)
        assert onednn.route_linears_to_onednn(graph) == 2  # with a bias and without
        torch.testing.assert_close(graph(x), layers(x), rtol=1e-5, atol=1e-6)
        double = layers.double()
        graph64 = make_fx(double)(x.double())
        assert onednn.route_linears_to_onednn(graph64) == 0  # float64 stays with addmm


@pytest.mark.parametrize("event_shape, block", [((1, 28, 28), 112), ((3, 5, 7), 105), ((127,), None)])
def test_bernoulli_density_by_blocks_matches_the_float64_cross_entropy(event_shape, block):
    from pyrovae.fast.distributions import _product_block

    assert _product_block(math.prod(event_shape)) == block
    torch.manual_seed(0)
    logits = torch.randn(4, 3, *event_shape) * 20  # a trained decoder's range, saturated pixels too
    value = (torch.rand(3, *event_shape) < 0.5).float()
    dims = list(range(-len(event_shape), 0))
    exact = -F.binary_cross_entropy_with_logits(logits.double(), value.double().expand_as(logits),
                                                reduction="none").sum(dims)
    with torch.no_grad():
        by_blocks = _bernoulli_image_log_prob(logits, value, len(event_shape))
    assert by_blocks.shape == (4, 3)
    # float32 rounding of a sum of |terms| up to ~1e4 nats
    assert (by_blocks.double() - exact).abs().max() < 1e-6 * exact.abs().max() + 1e-4
    # With gradients on (training) the density keeps the per-pixel form, gradient included.
    grad_logits = logits.clone().requires_grad_()
    per_pixel = _bernoulli_image_log_prob(grad_logits, value, len(event_shape))
    assert (per_pixel.double() - exact).abs().max() < 1e-6 * exact.abs().max() + 1e-4
    per_pixel.sum().backward()
    torch.testing.assert_close(grad_logits.grad, value - torch.sigmoid(logits))


def test_progress_reports_every_batch(capsys):
    vae, x = small_vae(), (torch.rand(10, 1, 4, 4) < 0.5).float()
    seen = []
    log_likelihood(vae.model, vae.guide, x, num_samples=5, batch_size=4, progress=seen.append)
    assert seen == [4, 4, 2]
    log_likelihood(vae.model, vae.guide, x, num_samples=5, batch_size=4, progress=True)
    assert "log p(x), k=5" in capsys.readouterr().err
