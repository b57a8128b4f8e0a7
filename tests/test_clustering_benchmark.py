"""The clustering benchmark's denoising option does what its help says.

``benchmarks/clustering.py --input-dropout`` must corrupt the encoder's input while pretraining
and never when codes are read (the mixture fit, ``cluster``): a corruption left on would make
every accuracy in its results table that of noisy codes.
"""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from clustering import main, vade_encoder  # noqa: E402


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
