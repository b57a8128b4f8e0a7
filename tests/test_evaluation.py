"""KL per dimension, active units, the evaluation summary, its PNGs and ``pyrovae evaluate``."""

import json

import pytest
import torch
from ppca_oracle import ppca_vae, random_problem

from pyrovae.plots import images as plots
from pyrovae.cli import main
from pyrovae.infer.evaluation import active_units, evaluate_vae, kl_per_dimension


def _vae():
    W, b, sigma, x = random_problem(n=40)
    return ppca_vae(W, b, sigma, scale_factor=1.2), x


def test_kl_per_dimension_sums_to_the_analytic_kl():
    vae, x = _vae()
    per_dim = kl_per_dimension(vae, x, batch_size=7)
    total = torch.distributions.kl_divergence(vae.posterior(x), vae.prior()).mean()
    assert per_dim.shape == (2,)
    torch.testing.assert_close(per_dim.sum(), total, rtol=1e-5, atol=1e-6)


def test_active_units_finds_a_dimension_the_encoder_ignores():
    vae, x = _vae()
    with torch.no_grad():
        vae.encoder.net.weight[1].zero_()  # the mean of z_2 no longer depends on x
    count, activity = active_units(vae, x)
    assert count == 1 and activity[1] == 0 and activity[0] > 0.01


def test_evaluate_vae_reports_consistent_figures():
    vae, x = _vae()
    figures = evaluate_vae(vae, x, num_samples=500, chunk_size=200, batch_size=16)
    assert figures["model_form"] == "model" and figures["num_points"] == 40
    assert figures["nll"] == -figures["log_likelihood"]
    assert figures["log_likelihood"] > figures["elbo"] - 0.1
    assert sum(figures["kl_per_dimension"]) == pytest.approx(figures["kl"], abs=0.5)  # kl there is one-sample MC
    assert "cluster_accuracy" not in figures  # the standard Normal prior has no clusters


def test_component_sample_grid_has_one_row_per_component(tmp_path):
    def sample_component(k, n):
        return torch.full((n, 1, 28, 28), k / 3)

    path = plots.save_component_samples(sample_component, 4, tmp_path / "components.png", per_component=5)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="returned 2 images"):
        plots.save_component_samples(lambda k, n: torch.zeros(2, 1, 28, 28), 2, tmp_path / "bad.png", per_component=3)


def test_cli_evaluate_writes_json_and_png_and_keeps_existing_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--train-size", "200", "--epochs", "1", "--hidden", "16",
                 "--latent-dim", "3", "--batch-size", "100", "--no-progress", "--objective", "iwae",
                 "--num-particles", "2", "--binarize"]) == 0
    checkpoint = out / "checkpoint.pt"
    before = checkpoint.read_bytes()
    assert main(["evaluate", str(checkpoint), "--num-samples", "50", "--limit", "20", "--device", "cpu"]) == 0
    figures = json.loads((out / "evaluation_test_k50_n20.json").read_text())
    assert figures["num_points"] == 20 and figures["binarized"] is True
    assert len(figures["kl_per_dimension"]) == 3
    assert (out / "evaluation_test_k50_n20_kl_per_dimension.png").exists()
    assert checkpoint.read_bytes() == before
    capsys.readouterr()
    assert main(["evaluate", str(checkpoint), "--num-samples", "50", "--limit", "20"]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["evaluate", str(checkpoint), "--num-samples", "0"]) == 2


def test_cli_trains_with_dreg(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--train-size", "100", "--epochs", "1", "--hidden", "16",
                 "--latent-dim", "2", "--batch-size", "50", "--no-progress", "--objective", "dreg",
                 "--num-particles", "3"]) == 0
