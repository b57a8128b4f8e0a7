"""The command line end to end, in a temporary folder, on the bundled data."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyrovae.train.checkpoint import load_checkpoint
from pyrovae.cli import main

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--train-size", "300", "--epochs", "2", "--hidden", "32", "--batch-size", "100", "--no-progress"]
PICTURES = ["reconstructions.png", "samples.png", "training_curves.png", "interpolation.png"]


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_writes_checkpoint_metrics_and_pictures_for_a_2d_latent_space(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--latent-dim", "2", *SMALL]) == 0
    for name in PICTURES + ["latent_space.png", "manifold.png"]:
        assert is_png(out / name), name
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    payload = load_checkpoint(out / "checkpoint.pt")
    assert payload["config"]["latent_dim"] == 2 and payload["epoch"] == 2
    assert {"model", "optimizer", "history", "image_shape"} <= payload.keys()

    assert main(["sample", str(out / "checkpoint.pt"), "--num-samples", "9"]) == 0
    assert is_png(out / "samples_seed0.png")


def test_toml_config_is_read_and_flags_override_it(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('latent_dim = 3\nhidden = 16\nepochs = 5\nlikelihood = "cbernoulli"\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(out), "--epochs", "1",
                 "--train-size", "200", "--no-progress"]) == 0
    stored = load_checkpoint(out / "checkpoint.pt")["config"]
    assert (stored["latent_dim"], stored["hidden"], stored["epochs"], stored["likelihood"]) == (3, 16, 1, "cbernoulli")
    assert not (out / "latent_space.png").exists()  # only for a 2-D latent space


def test_module_entry_point_and_one_line_errors(tmp_path):
    run = subprocess.run([sys.executable, "-m", "pyrovae", "train", "--latent-dim", "0", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 2
    assert run.stderr.strip() == "pyrovae: error: --latent-dim must be at least 1, got 0"


@pytest.mark.parametrize("flag, message", [
    (["--likelihood", "poisson"], "unknown --likelihood 'poisson'; choose one of"),
    (["--network", "rnn"], "unknown --network 'rnn'; choose one of"),
])
def test_unknown_component_names_are_refused(tmp_path, capsys, flag, message):
    assert main(["train", "--out", str(tmp_path / "x"), *SMALL, *flag]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flags", [
    ["--prior", "gmm"], ["--prior", "gmm-enum"], ["--prior", "vamp"], ["--prior", "flow"],
    ["--prior", "hierarchical"], ["--guide", "iaf"], ["--guide", "lowrank"], ["--guide", "fullcov"],
])
def test_every_prior_and_guide_name_trains_from_the_command_line(tmp_path, flags):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--train-size", "100", "--epochs", "1", "--hidden", "16",
                 "--latent-dim", "3", "--num-components", "4", "--no-progress", *flags]) == 0
    history = load_checkpoint(out / "checkpoint.pt")["history"]
    assert len(history) == 1 and history[0]["test_elbo"] < 0


def test_enumerated_prior_refuses_an_objective_that_cannot_enumerate(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "x"), *SMALL, "--prior", "gmm-enum", "--objective", "meanfield"]) == 2
    assert "use --objective elbo" in capsys.readouterr().err


def test_pretrained_mixture_start_trains_and_checks_its_prior(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--train-size", "200", "--epochs", "1", "--hidden", "16",
                 "--latent-dim", "3", "--num-components", "4", "--no-progress", "--prior", "gmm-enum",
                 "--pretrain-epochs", "1"]) == 0
    assert "mixture fitted" in capsys.readouterr().out
    assert load_checkpoint(out / "checkpoint.pt")["config"]["pretrain_epochs"] == 1
    assert main(["train", "--out", str(tmp_path / "x"), *SMALL, "--pretrain-epochs", "2"]) == 2
    assert "needs --prior gmm or gmm-enum" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


M2_SMALL = ["--train-size", "400", "--validation-size", "100", "--epochs", "1", "--hidden", "16",
            "--latent-dim", "4", "--batch-size", "50", "--no-progress"]


def test_train_m2_writes_checkpoint_accuracy_and_pictures(tmp_path):
    out = tmp_path / "m2"
    assert main(["train", "--model", "m2", "--labels", "20", "--out", str(out), *M2_SMALL]) == 0
    figures = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"train_loss", "val_accuracy", "test_accuracy", "labelled_accuracy"} <= figures.keys()
    assert 0.0 <= figures["test_accuracy"] <= 1.0
    for name in ["samples.png", "analogies.png", "training_curves.png"]:
        assert is_png(out / name), name
    payload = load_checkpoint(out / "checkpoint.pt")
    assert payload["config"]["model"] == "m2" and payload["num_classes"] == 10
    assert main(["sample", str(out / "checkpoint.pt"), "--num-samples", "20"]) == 0
    assert is_png(out / "samples_seed0.png")


def test_train_cvae_writes_conditional_nll(tmp_path):
    out = tmp_path / "cvae"
    assert main(["train", "--model", "cvae", "--quadrants", "2", "--baseline-epochs", "1",
                 "--is-samples", "3", "--out", str(out), *M2_SMALL]) == 0
    figures = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert figures["test_nll"] > 0 and figures["baseline_test_nll"] > 0
    assert figures["test_nll"] <= -figures["test_elbo"] + 5.0  # IS estimate under the ELBO's bound
    assert is_png(out / "samples.png")
    assert main(["sample", str(out / "checkpoint.pt")]) == 2  # one-line error, no traceback


@pytest.mark.parametrize("flags, message", [
    (["--model", "m2", "--labels", "15"], "multiple of 10"),
    (["--model", "cvae", "--quadrants", "4"], "1, 2 or 3"),
    (["--model", "gan"], "vae, ae, m2 or cvae"),
])
def test_semisupervised_flags_are_checked(tmp_path, capsys, flags, message):
    assert main(["train", "--out", str(tmp_path / "x"), *flags, *M2_SMALL]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("model_flags", [["--model", "m2", "--labels", "20"],
                                         ["--model", "cvae", "--baseline-epochs", "1", "--is-samples", "2"]])
def test_a_resumed_conditional_run_ends_where_an_uninterrupted_one_does(tmp_path, model_flags):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(["train", *model_flags, "--out", str(whole), *M2_SMALL, "--epochs", "2"]) == 0
    assert main(["train", *model_flags, "--out", str(cut), *M2_SMALL, "--epochs", "1"]) == 0
    assert main(["train", "--resume", str(cut), "--epochs", "2"]) == 0
    expected, got = load_checkpoint(whole / "checkpoint.pt"), load_checkpoint(cut / "checkpoint.pt")
    assert got["step"] == expected["step"] and got["epoch"] == 2
    for key, tensor in expected["model"].items():
        assert torch.equal(tensor, got["model"][key]), key
    assert [h["train_loss"] for h in got["history"]] == [h["train_loss"] for h in expected["history"]]


@pytest.mark.parametrize("model_flags", [[], ["--model", "m2", "--labels", "20"]])
def test_compile_flag_reaches_the_training_steps(tmp_path, monkeypatch, model_flags):
    from pyrovae.fast import compiled
    calls = []
    # Record the compiled calls but run them eagerly: the plumbing is tested here, compiling in
    # tests/test_compiled.py.
    monkeypatch.setattr(compiled, "_failure", None)
    monkeypatch.setattr(compiled, "call", lambda fn, *args: calls.append(fn) or fn(*args))
    flags = M2_SMALL if model_flags else SMALL
    base = ["train", "--out", str(tmp_path / "run"), *model_flags, *flags, "--epochs", "1"]
    assert main([*base, "--overwrite"]) == 0
    assert calls == []  # off by default
    assert main([*base, "--compile", "--overwrite"]) == 0
    assert calls and load_checkpoint(tmp_path / "run" / "checkpoint.pt")["config"]["compile"] is True
