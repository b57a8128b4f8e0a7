"""The trainer on the bundled MNIST subset: the test ELBO improves and the record is complete."""

import torch

from pyrovae import MLP, VAE, BernoulliLikelihood, DiagonalNormalEncoder, StandardNormalPrior, Trainer
from pyrovae.data import load_dataset

KEYS = {"epoch", "train_loss", "train_elbo", "train_recon", "train_kl", "test_elbo", "test_recon",
        "test_kl", "kl_weight", "seconds"}


def test_training_on_bundled_data_lowers_the_test_negative_elbo():
    data = load_dataset("mnist-small")
    train, test = data.train_images[:2000], data.test_images[:500]
    vae = VAE(DiagonalNormalEncoder(MLP((1, 28, 28), [64], 2 * 8), 8),
              BernoulliLikelihood(MLP(8, [64], 784), (1, 28, 28)), StandardNormalPrior(8))
    trainer = Trainer(vae, lr=3e-3, batch_size=100, progress=False, generator=torch.Generator().manual_seed(0))
    before = trainer.evaluate(test)["test_elbo"]
    record = trainer.fit(train, test, epochs=3, eval_size=500)
    assert [h["epoch"] for h in record.history] == [1, 2, 3]
    assert all(KEYS <= h.keys() for h in record.history)
    assert record.steps == 3 * 20
    after = record.last("test_elbo")
    assert after > before + 100, (before, after)  # -545 nats for an untrained model, ~-200 after
    for h in record.history:
        assert abs(h["test_elbo"] - (h["test_recon"] - h["test_kl"])) < 1e-3
        assert h["test_kl"] > 0


def test_warmup_ramps_the_kl_weight_per_step():
    data = torch.rand(40, 1, 4, 4)
    vae = VAE(DiagonalNormalEncoder(MLP((1, 4, 4), [8], 4), 2), BernoulliLikelihood(MLP(2, [8], 16), (1, 4, 4)),
              StandardNormalPrior(2))
    trainer = Trainer(vae, batch_size=10, beta=0.5, warmup_epochs=2, progress=False)
    record = trainer.fit(data, epochs=3)
    assert [round(h["kl_weight"], 4) for h in record.history] == [0.25, 0.5, 0.5]
