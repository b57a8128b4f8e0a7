"""``pyrovae train/sample/evaluate --model vqvae|vqvae2`` on the bundled data, resume, TOML, bad input."""

import json
import math

import numpy as np
import pytest
import torch

from pyrovae.cli import main
from pyrovae.cli.sample import load_vae

TINY = ["--epochs", "1", "--prior-epochs", "1", "--train-size", "128", "--codebook-size", "16", "--code-dim", "4",
        "--batch-size", "64", "--no-progress", "--device", "cpu"]


def read_metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("model,pictures", [
    ("vqvae", []),
    ("vqvae2", ["reconstructions_top.png"]),
])
def test_train_sample_evaluate(tmp_path, capsys, model, pictures):
    out = tmp_path / model
    assert main(["train", "--model", model, "--out", str(out), *TINY]) == 0
    for name in ["checkpoint.pt", "reconstructions.png", "samples.png", "code_usage.png", *pictures]:
        assert (out / name).exists(), name
    lines = read_metrics(out)
    epoch, priors = lines[0], lines[1:]
    assert 0 < epoch["codes_used"] <= 1 and 1 <= epoch["perplexity"] <= 16
    levels = ["top", "bottom"] if model == "vqvae2" else ["codes"]
    assert [p["level"] for p in priors] == levels
    vq, _ = load_vae(out / "checkpoint.pt")
    assert all(p.fitted for p in ([vq.top_prior, vq.prior] if model == "vqvae2" else [vq.prior]))

    assert main(["sample", str(out / "checkpoint.pt"), "--num-samples", "4"]) == 0
    assert (out / "samples_seed0.png").exists()
    assert main(["evaluate", str(out / "checkpoint.pt"), "--limit", "40", "--device", "cpu"]) == 0
    figures = json.loads((out / "evaluation_test_bound_n40.json").read_text())
    assert figures["prior"] == "pixelcnn" and figures["num_points"] == 40
    assert figures["bound"] == pytest.approx(figures["recon"] + figures["log_prior"], rel=1e-5)
    assert "bits_per_dim" not in figures  # the Bernoulli likelihood on grey values is no mass function
    assert "nats per image" in capsys.readouterr().out


def test_resume_continues_a_vqvae_run_with_its_codebook_state(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--model", "vqvae", "--out", str(out), *TINY, "--prior-epochs", "0"]) == 0
    assert main(["train", "--resume", str(out), "--epochs", "2"]) == 0
    lines = read_metrics(out)
    assert [line["epoch"] for line in lines] == [1, 2] and all("codes_used" in line for line in lines)


def test_resume_runs_a_prior_stage_that_was_stopped(tmp_path, monkeypatch):
    import pyrovae.cli.vq as vq_cli

    out = tmp_path / "run"

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(vq_cli, "fit_code_priors", stopped)
    assert main(["train", "--model", "vqvae", "--out", str(out), *TINY]) == 130
    monkeypatch.undo()
    assert main(["train", "--resume", str(out)]) == 0
    vq, _ = load_vae(out / "checkpoint.pt")
    assert vq.prior.fitted
    assert [line.get("stage") for line in read_metrics(out)] == [None, "prior"]


def test_toml_config_builds_the_model_it_names(tmp_path):
    config = tmp_path / "vq.toml"
    config.write_text('[train]\nmodel = "vqvae"\ncodebook-size = 8\ncode-dim = 3\ncode-map = 14\nprior-epochs = 0\n'
                      'epochs = 1\ntrain-size = 64\nprogress = false\ndevice = "cpu"\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(out)]) == 0
    vq, config = load_vae(out / "checkpoint.pt")
    assert vq.encoder.map_shape == (14, 14) and vq.encoder.quantizer.codebook.shape == (8, 3)
    assert not vq.prior.fitted


def test_colour_images_train_through_an_npz_file(tmp_path):
    rng = np.random.default_rng(0)
    blobs = torch.nn.functional.interpolate(torch.tensor(rng.random((80, 3, 4, 4)), dtype=torch.float32),
                                            size=(32, 32), mode="bilinear")
    path = tmp_path / "colour.npz"
    np.savez(path, train_images=blobs[:64].numpy(), test_images=blobs[64:].numpy())
    out = tmp_path / "run"
    assert main(["train", "--model", "vqvae2", "--dataset", str(path), "--likelihood", "normal", "--out", str(out),
                 *TINY]) == 0
    vq, _ = load_vae(out / "checkpoint.pt")
    assert vq.encoder.top_shape == (4, 4) and vq.encoder.map_shape == (8, 8)


def test_eight_bit_colour_images_report_bits_per_dim(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = (np.round(rng.random((48, 3, 16, 16)) * 255) / 255).astype(np.float32)
    path = tmp_path / "eight_bit.npz"
    np.savez(path, train_images=images[:32], test_images=images[32:])
    out = tmp_path / "run"
    assert main(["train", "--model", "vqvae", "--dataset", str(path), "--likelihood", "logistic-mixture",
                 "--out", str(out), *TINY]) == 0
    vq, config = load_vae(out / "checkpoint.pt")
    assert vq.likelihood.discrete
    from pyrovae.cli.vq import evaluate_vq

    figures = evaluate_vq(vq, config, torch.tensor(images[32:]), out, "test", None, False, "checkpoint")
    assert figures["bits_per_dim"] == pytest.approx(-figures["bound"] / (3 * 16 * 16 * math.log(2)))
    assert "bits/dim" in capsys.readouterr().out


@pytest.mark.parametrize("flags,message", [
    (["--codebook-size", "1"], "--codebook-size must be at least 2"),
    (["--code-map", "28"], "larger than"),
    (["--code-map", "5"], "halved a whole number"),
    (["--compile"], "--compile cannot trace"),
])
def test_bad_settings_give_one_line_errors(tmp_path, capsys, flags, message):
    assert main(["train", "--model", "vqvae", "--out", str(tmp_path / "x"), *TINY, *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "x" / "checkpoint.pt").exists()


def test_vqvae2_on_images_too_small_for_two_levels(tmp_path, capsys):
    path = tmp_path / "small.npz"
    np.savez(path, train_images=np.random.default_rng(0).random((20, 1, 12, 12)).astype(np.float32))
    assert main(["train", "--model", "vqvae2", "--dataset", str(path), "--out", str(tmp_path / "x"), *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "too small for two levels" in err[0]
