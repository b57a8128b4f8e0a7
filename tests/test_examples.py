"""Every example script runs its ``--smoke`` path, and every script in examples/ is listed here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = ROOT / "examples"

#: Each example with a phrase its smoke run must print.
EXAMPLES = {
    "vae.py": "samples from the prior",
    "iwae.py": "<= log p(x)",
    "mixture_prior.py": "most common digit",
    "custom_prior.py": "Student-t prior",
    "flow_guide.py": "IAF guide",
    "resumable_svi.py": "resumed run equals the straight run: True",
    "ddp_vae.py": "images per step",
    "ddp_m2.py": "test accuracy",  # issue 27: M2 under torchrun, with the agreed stop
    "semisupervised_m2.py": "test accuracy",
    "stacked_m1_m2.py": "test accuracy of M1+M2",
    "conditional_vae.py": "test conditional NLL",
    "traced_loss.py": "steps ran as a traced graph: True",
    # saving, loading and Predictive (pyrovae.save / pyrovae.load)
    "save_load_predict.py": "same: True",
    "disentanglement.py": "MIG",  # factors
    "colour_images.py": "bits/dim",  # issue 22: conv nets from the shape, 8-bit likelihood
    "own_images.py": "inputs above their reconstructions",  # data sources: a folder of images
    "autoencoder.py": "decodes of the ex-post mixture",  # plain and denoising autoencoders
    "vq_vae.py": "from the PixelCNN prior",  # VQ-VAE (pyrovae.models.vqvae)
}


def test_every_example_is_listed():
    on_disk = {p.name for p in EXAMPLES_DIR.glob("*.py")}
    missing = sorted(on_disk - set(EXAMPLES))
    assert not missing, f"add these examples to EXAMPLES in tests/test_examples.py: {missing}"
    gone = sorted(set(EXAMPLES) - on_disk)
    assert not gone, f"listed examples that do not exist: {gone}"


def run_smoke(script: str, *options: str) -> str:
    """Run ``script --smoke *options`` as a user would; its stdout, after checking it succeeded."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / script), "--smoke", *options],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"{script} --smoke {' '.join(options)} failed:\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_smoke_run(script):
    stdout = run_smoke(script)
    assert EXAMPLES[script] in stdout, stdout[-2000:]


def test_mixture_prior_example_with_the_umap_start():
    stdout = run_smoke("mixture_prior.py", "--umap-start")
    assert "mixture started from the UMAP clusters" in stdout, stdout[-2000:]
