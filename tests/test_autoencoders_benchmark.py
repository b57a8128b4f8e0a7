"""benchmarks/autoencoders.py: same networks for the three models, and a smoke run writes its figure and rows."""

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from autoencoders import MODELS, build, main  # noqa: E402

from pyrovae.guides import CorruptedInput, DeltaEncoder, MaskingNoise  # noqa: E402


def test_the_three_models_share_network_shapes_and_differ_in_guide_and_prior():
    models = {kind: build(kind, 4, 8, MaskingNoise(0.25)) for kind in MODELS}
    decoders = [[p.shape for p in m.likelihood.parameters()] for m in models.values()]
    assert decoders[0] == decoders[1] == decoders[2]
    assert isinstance(models["ae"].encoder, DeltaEncoder)
    assert isinstance(models["dae"].encoder, CorruptedInput)
    assert type(models["ae"].prior).__name__ == "FlatPrior" and type(models["vae"].prior).__name__ == "StandardNormalPrior"


def test_smoke_run_writes_the_figure_and_one_row_per_model(tmp_path):
    main(["--smoke", "--threads", "1", "--out", str(tmp_path / "ae")])
    assert (tmp_path / "ae.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader((tmp_path / "ae.csv").open()))
    assert [r["model"] for r in rows] == list(MODELS)
    assert [r["test_nll"] != "" for r in rows] == [False, False, True]  # only the VAE has a likelihood
    assert all(float(r["denoising_recon_nll"]) > 0 for r in rows)
