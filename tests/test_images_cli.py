"""The command line on images of other shapes: conv nets from the data's shape, 8-bit likelihoods,
bits/dim, traversals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pyrovae.cli import main
from pyrovae.cli.config import TrainConfig
from pyrovae.cli.registry import build_vae
from pyrovae.nn import MLP
from pyrovae.train.checkpoint import load_checkpoint

TINY = ["--epochs", "1", "--latent-dim", "3", "--batch-size", "16", "--no-progress"]
CONV = ["--network", "conv", "--channels", "4,8", "--hidden", "16"]


def is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def npz(tmp_path, shape, n=40):
    """uint8 images of ``shape`` (N, ...) with some structure: a bright square on a dark ground."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 60, (n, *shape), dtype=np.uint8)
    images[..., shape[-2] // 4 : shape[-2] // 2, shape[-1] // 4 : shape[-1] // 2] += 150
    path = tmp_path / "images.npz"
    np.savez(path, train_images=images)
    return str(path)


@pytest.mark.parametrize("shape, likelihood", [((3, 32, 32), "logistic-mixture-rgb"), ((1, 64, 64), "logistic-mixture"),
                                               ((1, 28, 28), "categorical"), ((3, 16, 16), "cbernoulli")])
def test_conv_trains_on_any_supported_shape_and_writes_pictures(tmp_path, shape, likelihood):
    out = tmp_path / "run"
    data = npz(tmp_path, shape)
    assert main(["train", "--dataset", data, "--out", str(out), *CONV, "--res-blocks", "1",
                 "--likelihood", likelihood, *TINY]) == 0
    for name in ["reconstructions.png", "samples.png", "interpolation.png", "traversals.png"]:
        assert is_png(out / name), name
    stored = load_checkpoint(out / "checkpoint.pt")["config"]
    assert tuple(stored["channels"]) == (4, 8) and stored["res_blocks"] == 1
    assert main(["sample", str(out / "checkpoint.pt"), "--num-samples", "4", "--seed", "2"]) == 0
    assert is_png(out / "samples_seed2.png") and is_png(out / "traversals_seed2.png")


def test_hidden_takes_a_list_of_widths_for_an_mlp_of_any_depth(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--train-size", "64", "--hidden", "24,12", "--out", str(out), *TINY]) == 0
    config = TrainConfig.from_dict(load_checkpoint(out / "checkpoint.pt")["config"])
    assert config.hidden == (24, 12)
    vae = build_vae(config, (1, 28, 28))
    widths = [m.out_features for m in vae.likelihood.net.modules() if isinstance(m, torch.nn.Linear)]
    assert isinstance(vae.likelihood.net, MLP) and widths == [24, 12, 784]


def test_evaluate_reports_bits_per_dim_for_an_8bit_likelihood(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--train-size", "64", *CONV, "--likelihood", "logistic-mixture", "--out", str(out),
                 *TINY]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out / "checkpoint.pt"), "--num-samples", "3", "--limit", "4"]) == 0
    figures = json.loads((out / "evaluation_test_k3_n4.json").read_text())
    assert figures["bits_per_dim"] == pytest.approx(figures["nll"] / (784 * math.log(2)), rel=1e-9)
    assert f"NLL {figures['bits_per_dim']:.4f} bits/dim" in capsys.readouterr().out


def test_an_8bit_likelihood_refuses_data_off_the_8bit_grid(tmp_path, capsys):
    images = np.random.default_rng(0).random((40, 16, 16)).astype(np.float32)
    path = tmp_path / "grey.npz"
    np.savez(path, train_images=images)
    assert main(["train", "--dataset", str(path), "--likelihood", "categorical", "--out", str(tmp_path / "o"),
                 *TINY]) == 2
    assert "values k/255 for whole k in 0..255" in capsys.readouterr().err


def test_a_conv_checkpoint_from_before_the_new_settings_rebuilds_the_same_nets():
    """A stored config without channels/res_blocks (the 28x28 conv of earlier releases, head of
    --hidden 400) builds the two stages of 32 and 64 it was trained with."""
    stored = {k: v for k, v in TrainConfig(network="conv").to_dict().items()
              if k not in ("channels", "res_blocks", "logistic_components")}
    vae = build_vae(TrainConfig.from_dict(stored), (1, 28, 28))
    shapes = {k: tuple(v.shape) for k, v in vae.encoder.net.state_dict().items()}
    assert shapes["conv.0.weight"] == (32, 1, 4, 4) and shapes["conv.2.weight"] == (64, 32, 4, 4)
    assert shapes["head.1.weight"] == (400, 64 * 7 * 7)


def test_widths_from_a_toml_list_or_a_flag_become_tuples(tmp_path):
    config = TrainConfig.from_dict({"channels": [8, 16], "hidden": [32, 16], "res_blocks": 2})
    assert config.channels == (8, 16) and config.hidden == (32, 16) and config.hidden_sizes == (32, 16)
    assert TrainConfig(hidden=(400,)).hidden == 400  # one width stays an int, as stored before lists
    with pytest.raises(ValueError, match="--channels must be one or more positive widths"):
        TrainConfig(channels=(8, 0))
    with pytest.raises(ValueError, match="--model m2 takes one width"):
        TrainConfig(hidden=(8, 8), model="m2")
