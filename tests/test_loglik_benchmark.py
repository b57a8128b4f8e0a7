"""The log-likelihood benchmark's options do what their help says.

``benchmarks/loglik.py --lr-final`` decays the learning rate geometrically over the run; a
wrong exponent or an off-by-one epoch would silently change every row it writes.
"""

import argparse
import math
import sys
from pathlib import Path

import pytest
import torch

import pyrovae

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from loglik import _widths, build_vae, decay_learning_rate  # noqa: E402


def test_learning_rate_falls_geometrically_from_first_to_last_epoch():
    images = torch.rand(8, 1, 28, 28).round()
    vae = build_vae("standard", latent_dim=2, hidden=(4,))
    epochs, lr, lr_final = 4, 1e-3, 1e-5
    trainer = pyrovae.Trainer(vae, lr=lr, batch_size=4, progress=False)
    rates = []
    trainer.step_callbacks.append(lambda t: rates.append(t.optimizer.param_groups[0]["lr"]))
    trainer.callbacks.append(decay_learning_rate(lr, lr_final, epochs))
    trainer.fit(images, epochs=epochs, eval_size=4)
    per_epoch = rates[::2]  # two steps per epoch
    expected = [lr * (lr_final / lr) ** (e / (epochs - 1)) for e in range(epochs)]  # 1e-3, 1e-4 ... 1e-5
    assert per_epoch == pytest.approx(expected, rel=1e-12)
    assert math.isclose(per_epoch[-1], lr_final, rel_tol=1e-12)


def test_hidden_widths_parse_and_reject_bad_text():
    assert _widths("500,500") == (500, 500)
    vae = build_vae("standard", latent_dim=3, hidden=(7, 5))
    widths = [layer.out_features for layer in vae.modules() if isinstance(layer, torch.nn.Linear)]
    assert widths == [7, 5, 6, 7, 5, 784]  # encoder 784-7-5-(3, 3), decoder 3-7-5-784
    for bad in ["500,x", "0,5", ""]:
        with pytest.raises(argparse.ArgumentTypeError):
            _widths(bad)
