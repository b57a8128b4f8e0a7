"""The documentation site builds in strict mode, and the API reference names every public object."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pyrovae

REPO = Path(__file__).resolve().parents[1]


def _api_targets() -> dict[str, object]:
    """``::: dotted.path`` lines of docs/api/*.md, resolved to the objects they name."""
    targets = {}
    for page in sorted((REPO / "docs" / "api").glob("*.md")):
        for path in re.findall(r"^::: ([\w.]+)", page.read_text(), flags=re.M):
            module, _, name = path.rpartition(".")
            targets[path] = getattr(importlib.import_module(module), name)
    return targets


def test_every_public_name_is_in_the_api_reference():
    documented = {id(obj) for obj in _api_targets().values()}
    missing = [name for name in pyrovae.__all__ if id(getattr(pyrovae, name)) not in documented]
    assert not missing, f"add '::: pyrovae.<name>' for these to a page in docs/api/: {missing}"


def test_docs_build_strictly(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None:
        pytest.skip('mkdocs and mkdocstrings are not installed: pip install -e ".[docs]"')
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    mkdocs = [sys.executable, "-m", "mkdocs"]
    run = subprocess.run([*mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "models" / "index.html").read_text()
    assert "pyrovae.VAE" in api and "z ~ p(z)" in api  # rendered from VAE's docstrings
    cli = (tmp_path / "site" / "cli" / "index.html").read_text()
    assert "--latent-dim" in cli  # the CLI reference comes from argparse
    shutil.rmtree(tmp_path / "site")
