"""``--model ae`` and ``--corrupt`` end to end on the bundled data, with tiny settings."""

import json
import re

import pytest
import torch

from pyrovae.cli import main
from pyrovae.cli.sample import load_vae
from pyrovae.guides import CorruptedInput, DeltaEncoder, MaskingNoise
from pyrovae.priors import FlatPrior
from pyrovae.train.checkpoint import load_checkpoint

TINY = ["--train-size", "200", "--epochs", "1", "--hidden", "16", "--latent-dim", "3", "--batch-size", "100",
        "--num-components", "3", "--no-progress"]


def is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_autoencoder_trains_samples_from_its_ex_post_mixture_and_evaluates_without_a_likelihood(tmp_path, capsys):
    out = tmp_path / "ae"
    assert main(["train", "--model", "ae", "--prior", "flat", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "train objective" in printed and "ELBO" not in printed
    payload = load_checkpoint(out / "checkpoint.pt")
    assert payload["ex_post"]["num_components"] == 3
    ae, _ = load_vae(out / "checkpoint.pt")
    assert isinstance(ae.encoder, DeltaEncoder) and isinstance(ae.prior, FlatPrior)
    history = payload["history"][0]
    assert history["test_kl"] == 0 and history["test_elbo"] == history["test_recon"]  # no prior term
    assert is_png(out / "samples.png")

    assert main(["sample", str(out / "checkpoint.pt"), "--num-samples", "9"]) == 0
    assert is_png(out / "samples_seed0.png") and "ex-post mixture" in capsys.readouterr().out

    assert main(["evaluate", str(out / "checkpoint.pt"), "--limit", "50", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "reconstruction error on 50 test images" in printed and "No log-likelihood" in printed
    assert not re.search(r"log p\(x\) -?\d", printed) and "ELBO" not in printed  # no figure posing as one
    figures = json.loads((out / "evaluation_test_reconstruction_n50.json").read_text())
    assert figures["log_likelihood"] is None and figures["reconstruction_recon_nll"] > 0
    assert figures["reconstruction_recon_nll"] == pytest.approx(-history["test_recon"], rel=0.2)


def test_map_autoencoder_with_the_standard_prior_reports_its_code_penalty(tmp_path, capsys):
    out = tmp_path / "ae"
    assert main(["train", "--model", "ae", "--out", str(out), *TINY]) == 0
    assert "code log-prior" in capsys.readouterr().out
    history = load_checkpoint(out / "checkpoint.pt")["history"][0]
    assert history["test_kl"] > 0  # -log N(f(x); 0, I) averaged: at least the constant 3/2 log 2 pi
    assert history["test_kl"] >= 1.5 * torch.log(torch.tensor(2 * torch.pi)).item()


@pytest.mark.parametrize("model", [[], ["--model", "ae", "--prior", "flat"]])
def test_denoising_run_trains_on_the_bundled_data_and_reports_denoising_error(tmp_path, capsys, model):
    out = tmp_path / "dae"
    assert main(["train", "--corrupt", "mask:0.25", "--out", str(out), *model, *TINY]) == 0
    vae, config = load_vae(out / "checkpoint.pt")
    assert config.corrupt == "mask:0.25"
    assert isinstance(vae.encoder, CorruptedInput) and isinstance(vae.encoder.corruption, MaskingNoise)
    assert vae.encoder.corruption.fraction == 0.25
    if model:
        assert main(["evaluate", str(out / "checkpoint.pt"), "--limit", "40", "--device", "cpu"]) == 0
        assert "from inputs corrupted by mask:0.25" in capsys.readouterr().out


@pytest.mark.parametrize("spec, message", [
    ("mask:1.5", "--corrupt mask:1.5: the masked fraction must lie in [0, 1), got 1.5"),
    ("gaussian:-1", "--corrupt gaussian:-1: the Gaussian noise scale must be a positive number, got -1.0"),
    ("blur:2", "unknown --corrupt kind 'blur'; choose one of gaussian, mask"),
    ("mask", "--corrupt must be NAME:VALUE, e.g. gaussian:0.3 or mask:0.25, got 'mask'"),
    ("gaussian:x", "--corrupt must be NAME:VALUE"),
])
def test_bad_corrupt_values_give_one_line_errors_and_create_nothing(tmp_path, capsys, spec, message):
    out = tmp_path / "x"
    assert main(["train", "--corrupt", spec, "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pyrovae: error: ") and message in err[0]
    assert not out.exists()


@pytest.mark.parametrize("flags, message", [
    (["--model", "ae", "--guide", "iaf"], "--model ae has its own point-mass guide"),
    (["--model", "ae", "--objective", "iwae"], "trains with --objective elbo"),
    (["--prior", "flat"], "use it with --model ae"),
    (["--model", "ae", "--prior", "vamp"], "point masses for --model ae"),
    (["--model", "cvae", "--corrupt", "mask:0.1"], "drop it for --model cvae"),
])
def test_autoencoder_settings_that_make_no_sense_are_refused(tmp_path, capsys, flags, message):
    assert main(["train", "--out", str(tmp_path / "x"), *flags, *TINY]) == 2
    assert message in capsys.readouterr().err


def test_m2_takes_the_denoising_guide_too(tmp_path):
    out = tmp_path / "m2"
    assert main(["train", "--model", "m2", "--labels", "20", "--validation-size", "100", "--corrupt", "gaussian:0.3",
                 "--out", str(out), "--train-size", "300", "--epochs", "1", "--hidden", "16", "--latent-dim", "3",
                 "--batch-size", "50", "--no-progress"]) == 0
    payload = load_checkpoint(out / "checkpoint.pt")
    assert payload["config"]["corrupt"] == "gaussian:0.3"
    assert any(key.startswith("encoder.encoder.") for key in payload["model"])  # the wrapped q(z | x, y)
