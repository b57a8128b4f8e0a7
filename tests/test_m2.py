"""M2: the enumerated unlabelled bound against an explicit sum over classes, the labelled path,
the auxiliary loss's weight, conditional priors, and learning on a separable toy problem."""

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from pyro.infer.util import is_validation_enabled
from torch import nn

from pyrovae import MLP, DiagonalNormalEncoder, NormalLikelihood
from pyrovae.data.semisupervised import split_labelled
from pyrovae.priors import Prior
from pyrovae.models import M2
from pyrovae.train.semisupervised import SemiSupervisedLoss, SemiSupervisedTrainer

K, D, X = 3, 2, 4


class LabelConditionalPrior(Prior):
    """p(z | y) = Normal(W onehot(y), 1): a minimal conditional prior for the interface test."""

    def __init__(self, latent_dim: int, num_classes: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.loc = nn.Linear(num_classes, latent_dim, bias=False)

    def forward(self, context=None):
        return dist.Normal(self.loc(context), 1.0).to_event(1)


def tiny_m2(prior=None, alpha=1.0):
    return M2(MLP(X, (8,), K), DiagonalNormalEncoder(MLP(X + K, (8,), 2 * D), D, context_dim=K),
              NormalLikelihood(MLP(D + K, (8,), X), (X,), scale=0.5), K, prior=prior, alpha=alpha)


def explicit_unlabelled_loss(m2, x, seed):
    """-U(x) = sum_y q(y|x) * -(log p(x|y,z_y) + log p(y) + log p(z_y|y) - log q(z_y|x,y)) - H[q(y|x)],
    one z_y per class drawn with the same random numbers as the enumerated guide."""
    q = F.softmax(m2.classifier(x), -1)                                    # (B, K)
    onehot = F.one_hot(torch.arange(K), K).float()[:, None, :].expand(K, x.shape[0], K)
    pyro.set_rng_seed(seed)
    z = m2.encoder(x.expand(K, *x.shape), onehot).rsample()               # (K, B, D)
    elbo_y = (m2.likelihood(z, onehot).log_prob(x) + torch.log(m2.class_probs)[:, None]
              + m2.prior(onehot).log_prob(z) - m2.encoder(x.expand(K, *x.shape), onehot).log_prob(z))
    return -(q.T * (elbo_y - torch.log(q.T))).sum()


@pytest.mark.parametrize("conditional", [False, True])
def test_enumerated_loss_equals_explicit_sum_over_classes(conditional):
    m2 = tiny_m2(LabelConditionalPrior(D, K) if conditional else None)
    x = torch.randn(5, X)
    pyro.set_rng_seed(3)
    enumerated = TraceEnum_ELBO(max_plate_nesting=1).loss(m2.model, m2.guide, x)
    explicit = explicit_unlabelled_loss(m2, x, seed=3).item()
    assert enumerated == pytest.approx(explicit, rel=1e-5, abs=1e-4)


def test_labelled_loss_is_negative_elbo_plus_alpha_times_cross_entropy():
    x, y = torch.randn(6, X), torch.tensor([0, 1, 2, 0, 1, 2])
    losses = {}
    for alpha in (0.0, 1.0, 2.5):
        m2 = tiny_m2(alpha=alpha)
        m2.load_state_dict(tiny_m2_state)
        pyro.set_rng_seed(7)
        losses[alpha] = Trace_ELBO().loss(m2.model, m2.guide, x, y)
    cross_entropy = F.cross_entropy(m2.classifier(x), y, reduction="sum").item()
    assert losses[1.0] - losses[0.0] == pytest.approx(cross_entropy, rel=1e-5)
    assert losses[2.5] - losses[0.0] == pytest.approx(2.5 * cross_entropy, rel=1e-5)


torch.manual_seed(0)
tiny_m2_state = tiny_m2().state_dict()


def test_labelled_and_unlabelled_paths_train_every_part():
    m2 = tiny_m2(LabelConditionalPrior(D, K))
    loss = SemiSupervisedLoss(m2)
    x_l, y_l, x_u = torch.randn(6, X), torch.randint(0, K, (6,)), torch.randn(7, X)
    total = loss(x_l, y_l, x_u)
    assert torch.isfinite(total)
    total.backward()
    for name, p in m2.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # Without labels the classifier still learns through q(y | x) in the enumerated bound.
    m2.zero_grad()
    loss.unlabelled(x_u).backward()
    assert m2.classifier.layers[0].weight.grad.abs().sum() > 0


def test_bad_labels_are_refused_with_a_clear_message():
    m2 = tiny_m2()
    with pytest.raises(ValueError, match="LongTensor"):
        m2.model(torch.randn(3, X), torch.zeros(3))
    with pytest.raises(ValueError, match="0..2"):
        m2.model(torch.randn(3, X), torch.tensor([0, 1, 5]))
    with pytest.raises(ValueError, match="context_dim=3"):
        M2(MLP(X, (8,), K), DiagonalNormalEncoder(MLP(X + 2, (8,), 2 * D), D, context_dim=2),
           NormalLikelihood(MLP(D + K, (8,), X), (X,)), K)


def test_classifier_beats_chance_on_separated_classes():
    centres = 3.0 * torch.eye(K, X)
    labels = torch.arange(K).repeat(200)
    images = centres[labels] + 0.3 * torch.randn(labels.shape[0], X)
    split = split_labelled(images, labels, num_labelled=6, num_validation=150, seed=0)
    m2 = tiny_m2(alpha=10.0)
    trainer = SemiSupervisedTrainer(m2, lr=1e-2, batch_size=64, labelled_batch_size=6, progress=False,
                                    generator=torch.Generator().manual_seed(0))
    record = trainer.fit(split, epochs=6)
    assert record.last("val_accuracy") > 0.9  # chance is 1/3
    assert len(record.history) == 6 and record.steps == 6 * 7


def test_sampling_and_decoding_shapes():
    m2 = tiny_m2(LabelConditionalPrior(D, K))
    y = torch.tensor([0, 1, 2, 2])
    assert m2.sample(y).shape == (4, X)
    x = torch.randn(4, X)
    z = m2.encode(x)
    assert z.shape == (4, D)
    assert m2.decode(z, y).shape == (4, X)
    assert m2.classify(x).dtype == torch.long


def test_labelled_weight_scales_the_labelled_gradient_only():
    # One step's gradient with weight w is w * (labelled gradient) + (unlabelled gradient).
    torch.manual_seed(0)
    x_l, y_l, x_u = torch.randn(4, X), torch.arange(4) % K, torch.randn(5, X)

    def gradient(weight, part):
        pyro.set_rng_seed(1)
        m2 = tiny_m2()
        torch.manual_seed(2)
        for p in m2.parameters():
            p.data.normal_(0, 0.3)
        trainer = SemiSupervisedTrainer(m2, progress=False, labelled_weight=weight)
        loss = trainer.loss
        pyro.set_rng_seed(3)
        if part == "step":
            trainer.step(x_l, y_l, x_u)  # gradients stay in .grad after the update
        elif part == "labelled":
            loss.labelled(x_l, y_l).backward()
        else:
            loss.labelled(x_l, y_l)  # the same random draws as in the step, in the same order
            loss.unlabelled(x_u).backward()
        return torch.cat([p.grad.flatten() for p in m2.parameters() if p.grad is not None])

    labelled, unlabelled = gradient(1.0, "labelled"), gradient(1.0, "unlabelled")
    assert torch.allclose(gradient(0.25, "step"), 0.25 * labelled + unlabelled, atol=1e-5)


def test_proportional_labelled_weight_is_the_labelled_share():
    labels = torch.arange(K).repeat(40)
    split = split_labelled(torch.randn(labels.shape[0], X), labels, num_labelled=6, num_validation=0, seed=0)
    trainer = SemiSupervisedTrainer(tiny_m2(), batch_size=64, labelled_batch_size=6, progress=False,
                                    labelled_weight="proportional")
    trainer.fit(split, epochs=1)
    assert trainer.loss.labelled_weight == pytest.approx(6 / split.unlabelled_images.shape[0])
    with pytest.raises(ValueError, match="proportional"):
        SemiSupervisedTrainer(tiny_m2(), labelled_weight=0)


def test_labelled_every_adds_the_labelled_loss_on_every_nth_step_only():
    labels = torch.arange(K).repeat(40)
    split = split_labelled(torch.randn(labels.shape[0], X), labels, num_labelled=6, num_validation=0, seed=0)
    trainer = SemiSupervisedTrainer(tiny_m2(), batch_size=16, labelled_batch_size=6, progress=False,
                                    labelled_every=3)
    calls = []
    labelled = trainer.loss.labelled
    trainer.loss.labelled = lambda x, y: calls.append(trainer.record.steps) or labelled(x, y)
    record = trainer.fit(split, epochs=1)
    assert record.steps == 8 and calls == [0, 3, 6]
    assert record.last("train_loss") > 0
    with pytest.raises(ValueError, match="labelled_every"):
        SemiSupervisedTrainer(tiny_m2(), labelled_every=0)


@pytest.mark.parametrize("every_step", [False, True])
def test_semisupervised_trainer_validates_the_first_step_of_each_epoch(every_step):
    labels = torch.arange(K).repeat(40)
    split = split_labelled(torch.randn(labels.shape[0], X), labels, num_labelled=6, num_validation=0, seed=0)
    trainer = SemiSupervisedTrainer(tiny_m2(), batch_size=100, labelled_batch_size=6, progress=False,
                                    validate_every_step=every_step)
    seen = []
    unlabelled = trainer.loss.unlabelled
    trainer.loss.unlabelled = lambda x: seen.append(is_validation_enabled()) or unlabelled(x)
    trainer.fit(split, epochs=2)
    steps = len(seen) // 2
    assert steps > 1
    assert seen == ([True] * 2 * steps if every_step else ([True] + [False] * (steps - 1)) * 2)
    assert is_validation_enabled()  # restored after every step
