"""``pyrovae train --dataset dsprites --objective tcvae`` then ``pyrovae evaluate --factors``, and their bad inputs."""

from __future__ import annotations

import json

import pytest

from pyrovae.cli import main

TINY = ["--hidden", "32", "--latent-dim", "4", "--batch-size", "64", "--epochs", "1", "--no-progress"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("pyrovae: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def tcvae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tcvae")
    code = main(["train", "--dataset", "dsprites", "--train-size", "300", "--objective", "tcvae", "--beta", "6",
                 "--out", str(out), *TINY])
    assert code == 0
    return out


def test_tcvae_on_dsprites_logs_the_kl_split(tcvae_run):
    epoch = json.loads((tcvae_run / "metrics.jsonl").read_text().splitlines()[-1])
    split = epoch["train_mutual_information"] + epoch["train_total_correlation"] + epoch["train_dimensionwise_kl"]
    assert split == pytest.approx(epoch["train_kl"], rel=0.2)  # another draw of z than train_kl's, same KL
    assert epoch["kl_weight"] == 1.0  # --beta went to the total correlation, not to the KL


def test_evaluate_factors_prints_and_writes_the_scores(tcvae_run, capsys):
    code = main(["evaluate", str(tcvae_run / "checkpoint.pt"), "--factors", "--limit", "200", "--num-samples", "300",
                 "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "MIG" in printed and "DCI disentanglement" in printed
    scores = json.loads((tcvae_run / "factors_test_n200.json").read_text())
    assert 0.0 <= scores["mig"] <= 1.0
    assert set(scores["mig_per_factor"]) == {"shape", "scale", "orientation", "pos_x", "pos_y"}
    assert len(scores["mutual_information"]) == 4
    assert (tcvae_run / "factors_test_n200_information.png").stat().st_size > 0
    assert (tcvae_run / "factors_test_n200_traversals.png").stat().st_size > 0
    assert main(["evaluate", str(tcvae_run / "checkpoint.pt"), "--factors", "--limit", "200"]) == 2
    assert "exists; pass --overwrite" in one_error_line(capsys)


def test_factors_on_data_without_factors_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run"), "--train-size", "64", *TINY]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run" / "checkpoint.pt"), "--factors"]) == 2
    line = one_error_line(capsys)
    assert "known factors" in line and "mnist-small" in line
    assert not list((tmp_path / "run").glob("factors_*"))


def test_tcvae_needs_a_diagonal_guide_one_line(tmp_path, capsys):
    code = main(["train", "--dataset", "dsprites", "--train-size", "100", "--objective", "tcvae", "--guide", "iaf",
                 "--out", str(tmp_path / "run"), *TINY])
    assert code == 2
    assert "diagonal" in one_error_line(capsys)
