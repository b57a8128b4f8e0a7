"""pyrovae.save / pyrovae.load: a model rebuilt in a fresh process gives the same outputs.

Also: every prior x guide x likelihood of the command line rebuilds; checkpoints of
``save_training_checkpoint`` and of ``pyrovae train`` load with the same call; what cannot be
described or rebuilt is refused with one line; posterior predictive samples with
``pyro.infer.Predictive``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Predictive, Trace_ELBO, TraceEnum_ELBO
from torch import nn

import pyrovae
from pyrovae.cli.conditional_registry import build_cvae, build_m2
from pyrovae.cli.config import TrainConfig
from pyrovae.cli.registry import GUIDES, LIKELIHOODS, PRIORS, build_vae
from pyrovae.data.quadrants import hide_quadrants
from pyrovae.nn.rebuild import SpecError
from pyrovae.train.checkpoint import CheckpointError, save_training_checkpoint

REPO = Path(__file__).resolve().parents[1]
SHAPE = (1, 28, 28)

# Run in a fresh interpreter: load with the public loader, write the model's deterministic outputs.
LOADER = """
import json, sys, torch, pyrovae
model = pyrovae.load(sys.argv[1])
x = torch.load(sys.argv[2])
kind = type(model).__name__
if kind == "VAE":
    out = {"encode": model.encode(x), "decode": model.decode(model.encode(x))}
elif kind == "M2":
    out = {"probs": model.posterior_y(x).probs, "decode": model.decode(model.encode(x, model.classify(x)), model.classify(x))}
else:
    out = {"prior_loc": model.prior(x).mean, "baseline": model.baseline(x)}
torch.save({"kind": kind, **{k: v.detach() for k, v in out.items()}}, sys.argv[3])
"""


def outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same deterministic outputs as LOADER computes, in this process."""
    with torch.no_grad():
        if isinstance(model, pyrovae.VAE):
            return {"encode": model.encode(x), "decode": model.decode(model.encode(x))}
        if isinstance(model, pyrovae.models.M2):
            y = model.classify(x)
            return {"probs": model.posterior_y(x).probs, "decode": model.decode(model.encode(x, y), y)}
        return {"prior_loc": model.prior(x).mean, "baseline": model.baseline(x)}


def load_in_fresh_process(path: Path, x: torch.Tensor, tmp_path: Path) -> dict[str, torch.Tensor]:
    torch.save(x, tmp_path / "x.pt")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", LOADER, str(path), str(tmp_path / "x.pt"), str(tmp_path / "out.pt")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return torch.load(tmp_path / "out.pt")


def trained(kind: str) -> tuple[nn.Module, torch.Tensor]:
    """A small model of ``kind`` after a few SVI steps (so no weight is at its initial value)."""
    pyro.clear_param_store()
    torch.manual_seed(0)
    x = torch.rand(32, *SHAPE)
    config = TrainConfig(model=kind if kind != "vae-gmm-iaf" else "vae", latent_dim=3, hidden=16,
                         prior="gmm" if kind == "vae-gmm-iaf" else "normal",
                         guide="iaf" if kind == "vae-gmm-iaf" else "diagonal")
    if kind == "m2":
        model = build_m2(config, SHAPE, 10)
        labels = torch.randint(0, 10, (32,))
        svi = SVI(model.model, model.guide, pyro.optim.Adam({"lr": 1e-2}), TraceEnum_ELBO(max_plate_nesting=1))
        for _ in range(3):
            svi.step(x, labels)
            svi.step(x)
        return model, x
    if kind == "cvae":
        model = build_cvae(config, SHAPE)
        context = hide_quadrants(x, 1)
        svi = SVI(model.model, model.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
        for _ in range(3):
            svi.step(context, x)
        opt = torch.optim.Adam(model.baseline.parameters(), lr=1e-2)
        opt.zero_grad()
        (-model.baseline.log_likelihood(context, x).mean()).backward()
        opt.step()
        return model, context
    model = build_vae(config, SHAPE)
    svi = SVI(model.model, model.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    for _ in range(3):
        svi.step(x)
    return model, x


@pytest.mark.parametrize("kind", ["vae", "vae-gmm-iaf", "m2", "cvae"])
def test_saved_model_gives_the_same_outputs_in_a_fresh_process(kind, tmp_path):
    model, x = trained(kind)
    model.eval()
    pyrovae.save(model, tmp_path / "model.pt", note="from Python")
    loaded = load_in_fresh_process(tmp_path / "model.pt", x, tmp_path)
    expected = outputs(model, x)
    assert loaded.pop("kind") == type(model).__name__
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)


def test_training_checkpoint_written_from_python_loads(tmp_path):
    """The issue's case: save_training_checkpoint's file used to need undocumented arguments."""
    pyro.clear_param_store()
    vae = build_vae(TrainConfig(latent_dim=3, hidden=16), SHAPE)
    trainer = pyrovae.Trainer(vae, batch_size=16, progress=False)
    x = torch.rand(32, *SHAPE)
    trainer.fit(x, x[:16], epochs=1)
    save_training_checkpoint(tmp_path / "checkpoint.pt", trainer, {"what": "my run"})
    vae.eval()
    loaded = load_in_fresh_process(tmp_path / "checkpoint.pt", x, tmp_path)
    torch.testing.assert_close(loaded["decode"], outputs(vae, x)["decode"], rtol=0, atol=0)


CLI_RUNS = {
    "vae": ["--train-size", "64"],
    "m2": ["--model", "m2", "--labels", "20", "--validation-size", "100", "--train-size", "400"],
    "cvae": ["--model", "cvae", "--train-size", "300", "--validation-size", "50", "--baseline-epochs", "1",
             "--is-samples", "2"],
}


@pytest.mark.parametrize("model", sorted(CLI_RUNS))
def test_cli_checkpoint_loads(model, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "pyrovae", "train", *CLI_RUNS[model], "--epochs", "1", "--hidden", "16",
                          "--latent-dim", "2", "--no-progress", "--out", str(out)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    loaded = pyrovae.load(out / "checkpoint.pt")
    kind = {"vae": pyrovae.VAE, "m2": pyrovae.models.M2, "cvae": pyrovae.models.ConditionalVAE}[model]
    assert isinstance(loaded, kind) and loaded.latent_dim == 2 and not loaded.training
    state = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key


@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_every_prior_guide_and_likelihood_rebuilds(prior, tmp_path):
    x = torch.rand(4, *SHAPE)
    for guide in GUIDES:
        for likelihood in LIKELIHOODS:
            if prior == "flat" and guide != "diagonal":  # the flat prior belongs to the autoencoder's point mass
                continue
            model = "ae" if prior == "flat" else "vae"
            config = TrainConfig(model=model, prior=prior, guide=guide, likelihood=likelihood, latent_dim=2, hidden=8)
            vae = build_vae(config, SHAPE).eval()
            pyrovae.save(vae, tmp_path / "m.pt")
            loaded = pyrovae.load(tmp_path / "m.pt")
            assert type(loaded.prior) is type(vae.prior) and type(loaded.encoder) is type(vae.encoder)
            assert type(loaded.likelihood) is type(vae.likelihood)
            for (k, a), (k2, b) in zip(vae.state_dict().items(), loaded.state_dict().items()):
                assert k == k2 and torch.equal(a, b)
            torch.testing.assert_close(loaded.decode(loaded.encode(x)), vae.decode(vae.encode(x)), rtol=0, atol=0)
            if prior == "vamp":  # the prior's encoder is the guide's, shared again after loading
                assert loaded.prior.encoder is loaded.encoder


class StudentTPrior(pyrovae.Prior):
    """A prior defined outside pyrovae: rebuilt only when the loader is given the class."""

    def __init__(self, latent_dim: int, df: float = 3.0) -> None:
        super().__init__()
        self.latent_dim, self.df = latent_dim, df

    def forward(self, context=None):
        return dist.StudentT(self.df, torch.zeros(self.latent_dim), 1.0).to_event(1)


def test_custom_class_needs_to_be_allowed(tmp_path):
    vae = pyrovae.VAE(pyrovae.DiagonalNormalEncoder(pyrovae.MLP(SHAPE, [8], 4), 2),
                      pyrovae.BernoulliLikelihood(pyrovae.MLP(2, [8], 784), SHAPE), StudentTPrior(2, df=5.0))
    pyrovae.save(vae, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=r"not part of pyrovae.*classes=\[StudentTPrior\]") as error:
        pyrovae.load(tmp_path / "m.pt")
    assert "\n" not in str(error.value)
    loaded = pyrovae.load(tmp_path / "m.pt", classes=[StudentTPrior])
    assert isinstance(loaded.prior, StudentTPrior) and loaded.prior.df == 5.0


def test_what_cannot_be_described_is_named_in_one_line(tmp_path):
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 4))
    vae = pyrovae.VAE(pyrovae.DiagonalNormalEncoder(net, 2),
                      pyrovae.BernoulliLikelihood(pyrovae.MLP(2, [8], 784), SHAPE), pyrovae.StandardNormalPrior(2))
    with pytest.raises(SpecError, match=r"DiagonalNormalEncoder argument 0: it is a torch.nn.modules.container.Sequential"):
        pyrovae.save(vae, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()
    # A training checkpoint of such a model still saves; loading it says why it cannot rebuild.
    trainer = pyrovae.Trainer(vae, batch_size=4, progress=False)
    save_training_checkpoint(tmp_path / "c.pt", trainer, {})
    with pytest.raises(CheckpointError, match=r"no description of the model \(its model could not be described"):
        pyrovae.load(tmp_path / "c.pt")


def test_missing_file_and_foreign_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        pyrovae.load(tmp_path / "nothing.pt")
    torch.save({"model": {}}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a pyrovae checkpoint"):
        pyrovae.load(tmp_path / "plain.pt")


def test_posterior_predictive_with_pyro_predictive():
    """Predictive replays the guide's z into the model; the observed site must be unconditioned."""
    pyro.clear_param_store()
    torch.manual_seed(0)
    vae = build_vae(TrainConfig(latent_dim=2, hidden=8), SHAPE)
    x = torch.rand(5, *SHAPE).round()
    predictive = Predictive(poutine.uncondition(vae.model), guide=vae.guide, num_samples=3, return_sites=["x", "z"])
    draws = predictive(x)
    assert draws["x"].shape == (3, 5, *SHAPE) and draws["z"].shape == (3, 5, 2)
    assert set(draws["x"].unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(draws["x"][0], x)  # drawn, not the observation copied back
    # Conditioned (the default), Predictive would copy x back instead of drawing it.
    copied = Predictive(vae.model, guide=vae.guide, num_samples=2, return_sites=["x"])(x)["x"]
    assert torch.equal(copied[0], x)


def test_every_public_module_class_is_rebuildable():
    """What pyrovae exports as a model or part can be saved: new classes must record their arguments."""
    from pyrovae.nn.rebuild import Rebuildable

    exported = [getattr(pyrovae, n) for n in pyrovae.__all__] + [getattr(pyrovae.models, n) for n in pyrovae.models.__all__]
    modules = {c for c in exported if isinstance(c, type) and issubclass(c, nn.Module)}
    modules -= {pyrovae.ELBOLoss, pyrovae.TracedLoss}  # losses wrap a model; they are not saved as one
    not_rebuildable = sorted(c.__name__ for c in modules if not issubclass(c, Rebuildable))
    assert not not_rebuildable, f"add pyrovae.nn.rebuild.Rebuildable to the bases of: {not_rebuildable}"


@pytest.mark.parametrize("build", ["vqvae", "vqvae2", "dvae"])
def test_vq_models_rebuild_with_the_same_outputs(build, tmp_path):
    """VQ-VAE, VQ-VAE-2 and the dVAE, made by their factories, save and load like the VAE:
    the same class, weights, codebook buffers and reconstruction (the quantizer shared by the
    encoder and the code prior stays one module)."""
    from pyrovae.models.vq_builders import conv_dvae, conv_vqvae, conv_vqvae2

    factory = {"vqvae": conv_vqvae, "vqvae2": conv_vqvae2, "dvae": conv_dvae}[build]
    model = factory((1, 16, 16), pyrovae.BernoulliLikelihood, codebook_size=8, code_dim=4).eval()
    pyrovae.save(model, tmp_path / "m.pt")
    loaded = pyrovae.load(tmp_path / "m.pt")
    assert type(loaded) is type(model)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    x = torch.rand(3, 1, 16, 16)
    assert torch.equal(model.reconstruct(x), loaded.reconstruct(x))
    if build == "vqvae":
        assert loaded.encoder.quantizer is loaded.prior.quantizer
