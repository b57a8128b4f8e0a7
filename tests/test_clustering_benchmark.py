"""The clustering benchmark's denoising and augmentation options do what their help says.

``benchmarks/clustering.py --input-dropout`` must corrupt the encoder's input while pretraining
and never when codes are read (the mixture fit, ``cluster``): a corruption left on would make
every accuracy in its results table that of noisy codes.
"""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from clustering import main, random_affine, vade_encoder  # noqa: E402


def test_input_dropout_corrupts_in_training_and_never_in_eval_mode():
    torch.manual_seed(0)
    encoder = vade_encoder(3, (8,), input_dropout=0.5)
    x = torch.rand(64, 1, 28, 28) + 0.1  # no zero pixels, so zeros mean corruption
    corrupted = encoder.net[0](x)
    assert 0.3 < (corrupted == 0).float().mean() < 0.7
    encoder.eval()
    assert torch.equal(encoder.net[0](x), x)
    torch.testing.assert_close(encoder(x).mean, encoder(x).mean)


@pytest.mark.parametrize("value", ["1.0", "-0.1"])
def test_an_impossible_dropout_rate_is_refused_before_any_work(value, capsys):
    with pytest.raises(SystemExit):
        main(["--input-dropout", value, "--data-root", "/nonexistent"])
    assert "--input-dropout must be in [0, 1)" in capsys.readouterr().err


def test_augmentation_moves_images_within_its_bounds_and_is_the_identity_at_zero():
    torch.manual_seed(0)
    images = torch.zeros(500, 1, 28, 28)
    images[:, 0, 12:16, 12:16] = 1.0  # a bright square in the middle
    torch.testing.assert_close(random_affine(0.0, 0.0)(images), images, rtol=0, atol=1e-5)
    moved = random_affine(10.0, 0.1)(images)
    assert moved.shape == images.shape and moved.min() >= 0 and moved.max() <= 1
    rows = torch.arange(28.0).view(1, 28, 1)
    centre = (moved[:, 0] * rows).sum((1, 2)) / moved[:, 0].sum((1, 2))  # each square's centre row
    offset = centre - 13.5
    # Shifts up to 10% of 28 pixels (2.8) each way, plus a little from the rotation about the middle.
    assert offset.abs().max() < 3.0 and offset.abs().max() > 2.0
    assert offset.std() > 1.0  # drawn per image
