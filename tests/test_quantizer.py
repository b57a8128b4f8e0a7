"""The vector quantizer against hand answers: assignment, straight-through gradient, EMA, restarts."""

import pytest
import torch

from pyrovae.errors import InputError
from pyrovae.guides.quantizer import VectorQuantizer


def test_nearest_code_is_the_brute_force_argmin():
    q = VectorQuantizer(7, 3)
    q.eval()  # in training mode the EMA moves the codebook right after assigning
    z = torch.randn(2, 3, 4, 5)
    out = q(z)
    vectors = z.movedim(1, -1)
    brute = torch.stack([torch.stack([((v - e) ** 2).sum() for e in q.codebook]).argmin()
                         for v in vectors.reshape(-1, 3)]).reshape(2, 4, 5)
    assert torch.equal(out.indices, brute)
    assert torch.allclose(out.z_q, q.codebook[brute].movedim(-1, 1), atol=1e-6)


def test_straight_through_gradient_is_the_decoders_gradient_at_z_q():
    q = VectorQuantizer(5, 2, ema=False, restart_after=None)
    z_e = torch.randn(3, 2, 2, 2, requires_grad=True)
    out = q(z_e)
    weights = torch.randn_like(out.z_q)
    z_q = out.z_q
    z_q.retain_grad()
    (weights * z_q).sum().backward()  # a "decoder" whose gradient at z_q is `weights`
    assert torch.equal(z_e.grad, weights)
    assert torch.equal(z_q.grad, weights)
    assert q.codebook.grad is None  # the codebook learns only from its own loss


def test_penalty_is_commitment_plus_codebook_loss_summed_over_latent_elements():
    q = VectorQuantizer(4, 3, ema=False, commitment=0.25)
    z_e = torch.randn(2, 3, 2, 2)
    out = q(z_e)
    e = q.codebook[out.indices].movedim(-1, 1)
    expected = 1.25 * ((z_e - e) ** 2).flatten(1).sum(-1)
    assert torch.allclose(out.penalty, expected, atol=1e-5)
    ema = VectorQuantizer(4, 3)
    ema.eval()
    out = ema(z_e)
    e = ema.codebook[out.indices].movedim(-1, 1)
    assert torch.allclose(out.penalty, 0.25 * ((z_e - e) ** 2).flatten(1).sum(-1), atol=1e-5)


def test_ema_update_equals_the_closed_form_running_means():
    """Two codes far apart; a stream of batches; e_k must be the decay-weighted mean of the
    vectors assigned to k (bias-corrected), with the Laplace smoothing of the counts."""
    gamma, eps = 0.9, 1e-5
    q = VectorQuantizer(2, 1, decay=gamma, epsilon=eps, restart_after=None)
    q.codebook.copy_(torch.tensor([[-10.0], [10.0]]))
    torch.manual_seed(1)
    stream = [torch.cat([torch.randn(n) - 10, torch.randn(m) + 10]) for n, m in [(3, 5), (4, 1), (2, 6), (5, 2)]]
    counts, sums = [], []
    for t, values in enumerate(stream):
        q(values.reshape(-1, 1, 1, 1))
        counts.append(torch.tensor([(values < 0).sum(), (values > 0).sum()], dtype=torch.float))
        sums.append(torch.stack([values[values < 0].sum(), values[values > 0].sum()]))
        steps = t + 1
        w = [gamma ** (steps - 1 - s) * (1 - gamma) / (1 - gamma ** steps) for s in range(steps)]
        n = sum(wi * c for wi, c in zip(w, counts))
        s = sum(wi * v for wi, v in zip(w, sums))
        smoothed = (n + eps) / (n.sum() + 2 * eps) * n.sum()
        assert torch.allclose(q.codebook.squeeze(-1), s / smoothed, rtol=1e-5)
    # the first step alone is the plain batch mean of each code's vectors
    assert abs(sums[0][0] / counts[0][0] - (-10)) < 3


def test_ema_moves_nothing_in_evaluation_mode():
    q = VectorQuantizer(4, 2)
    before = q.codebook.clone()
    q.eval()
    q(torch.randn(3, 2, 2, 2))
    assert torch.equal(q.codebook, before) and q.usage.sum() == 0


@pytest.mark.parametrize("ema", [True, False])
def test_a_dead_code_is_restarted_at_an_encoder_output(ema):
    q = VectorQuantizer(3, 2, ema=ema, restart_after=2)
    q.idle_steps.zero_()  # as if every code had just been used
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0, 0.0], [0.1, 0.1], [100.0, 100.0]]))  # code 2 is never chosen
    batch = torch.randn(4, 2, 1, 1) * 0.1
    q(batch)
    assert torch.equal(q.codebook[2], torch.tensor([100.0, 100.0]))  # one idle step: not yet
    q(batch)
    outputs = batch.movedim(1, -1).reshape(-1, 2)
    assert any(torch.allclose(q.codebook[2], v) for v in outputs)
    assert q.idle_steps[2] == 0


def test_the_first_training_batch_places_unchosen_codes_at_encoder_outputs():
    q = VectorQuantizer(6, 2, restart_after=10)
    with torch.no_grad():
        q.codebook.mul_(1000)  # far from the data: one code at most is chosen
    batch = torch.randn(8, 2, 1, 1)
    q(batch)
    outputs = batch.movedim(1, -1).reshape(-1, 2)
    on_outputs = [any(torch.allclose(e, v) for v in outputs) for e in q.codebook]
    assert sum(on_outputs) >= 5


def test_usage_figures_over_the_epoch():
    q = VectorQuantizer(4, 1, restart_after=None)
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0], [10.0], [20.0], [30.0]]))
    q(torch.tensor([0.0, 0.0, 10.0, 10.0]).reshape(-1, 1, 1, 1))
    figures = q.usage_figures()
    assert figures["codes_used"] == 0.5
    assert figures["perplexity"] == pytest.approx(2.0)
    q.reset_usage()
    assert q.usage.sum() == 0


@pytest.mark.parametrize("size", [0, 1])
def test_codebook_of_fewer_than_two_codes_is_refused(size):
    with pytest.raises(InputError, match="at least 2 codes"):
        VectorQuantizer(size, 4)
