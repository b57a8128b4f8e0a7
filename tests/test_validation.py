"""Input checks at the library edge: one line naming the problem and the fix, before any training."""

import pyro
import pytest
import torch

from pyrovae import VAE, BernoulliLikelihood, DiagonalNormalEncoder, MLP, NormalLikelihood, StandardNormalPrior, Trainer
from pyrovae.errors import InputError, PyrovaeError
from pyrovae.validation import check_labels


def tiny_vae(likelihood=BernoulliLikelihood):
    return VAE(DiagonalNormalEncoder(MLP((1, 8, 8), [16], 4), 2),
               likelihood(MLP(2, [16], 64), (1, 8, 8)), StandardNormalPrior(2))


def fit_error(data, context=None, likelihood=BernoulliLikelihood, test=None):
    pyro.clear_param_store()  # several models per test share the default name
    vae = tiny_vae(likelihood)
    before = [p.detach().clone() for p in vae.parameters()]
    with pytest.raises(InputError) as info:
        Trainer(vae, progress=False).fit(data, test, epochs=1, train_context=context)
    assert all(torch.equal(a, b) for a, b in zip(before, vae.parameters())), "refused data still trained"
    message = str(info.value)
    assert isinstance(info.value, PyrovaeError) and "\n" not in message
    return message


def test_nan_and_inf():
    x = torch.rand(20, 1, 8, 8)
    x[3, 0, 1, 1] = float("nan")
    x[4, 0, 1, 1] = float("inf")
    assert "contains 2 NaN or infinite value(s)" in fit_error(x)


def test_wrong_shape():
    message = fit_error(torch.rand(20, 1, 28, 28))
    assert "shape (1, 28, 28) but the model expects (1, 8, 8)" in message and "reshape" in message


def test_empty():
    assert "is empty" in fit_error(torch.rand(0, 1, 8, 8))


def test_outside_support_of_bernoulli():
    message = fit_error(torch.rand(20, 1, 8, 8) * 255)
    assert "outside the support of BernoulliLikelihood" in message and "divide pixels by 255" in message


def test_grey_values_in_unit_interval_are_allowed_for_bernoulli():
    Trainer(tiny_vae(), progress=False, batch_size=10).fit(torch.rand(20, 1, 8, 8), epochs=1)


def test_normal_likelihood_accepts_any_real_value():
    Trainer(tiny_vae(NormalLikelihood), progress=False, batch_size=10).fit(torch.randn(20, 1, 8, 8) * 5, epochs=1)


def test_bad_test_data_and_context():
    x = torch.rand(20, 1, 8, 8)
    assert fit_error(x, test=torch.rand(5, 1, 8, 9)).startswith("test data has data points of shape")
    assert "context has 3 rows but there are 20" in fit_error(x, context=torch.zeros(3, 10))


def test_labels_out_of_range():
    with pytest.raises(InputError, match=r"values in \[0, 12\] but classes must be 0 .. 9"):
        check_labels(torch.tensor([0, 3, 12]), 3, num_classes=10)
    with pytest.raises(InputError, match="classes must be 0, 1, 2"):
        check_labels(torch.tensor([-1, 3]), 2)
    with pytest.raises(InputError, match="one class index per data point"):
        check_labels(torch.tensor([1, 2]), 3, num_classes=10)
    check_labels(torch.tensor([0, 9]), 2, num_classes=10)
