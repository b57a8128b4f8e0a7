"""Every script in examples/ runs its --smoke path, and none is left out of this list."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = [
    "vae.py",
    "semisupervised_m2.py",
    "conditional_vae.py",
]


def test_every_example_is_listed():
    on_disk = sorted(p.name for p in (REPO / "examples").glob("*.py"))
    assert on_disk == sorted(EXAMPLES), "add new examples to EXAMPLES in tests/test_examples.py"


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_smoke_run(name):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, str(REPO / "examples" / name), "--smoke"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
