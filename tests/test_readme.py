"""README runs as written: its Python example, its commands' flags, its links; and it stays short."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_python_example_runs_as_written(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "README.md has no python example"
    example = blocks[0]
    assert len(example.strip().splitlines()) <= 20, "the README example should stay within 20 lines"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}
    # the example writes vae.pt into the current folder: give it a fresh one
    run = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("test ELBO per image") == 3
    check = "import pyrovae; print(type(pyrovae.load('vae.pt')).__name__)"
    loaded = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert loaded.stdout.strip() == "VAE", loaded.stderr[-2000:]


def test_readme_is_a_short_guide():
    assert len(README.encode()) < 8 * 1024, "README.md should stay under 8 KB: long material goes to docs/"
    # no dated figures or timing ranges (those live in benchmarks/README.md)
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", README)
    assert not re.search(r"\d\s*(ms|s|seconds|minutes)\b(?! per)", README.replace("`", ""))


def _commands() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("pyrovae "):
                lines.append(line)
    # commands quoted inline, e.g. `pyrovae sample runs/vae/checkpoint.pt`
    lines += [c for c in re.findall(r"`(pyrovae [^`]+)`", README.replace("\n", " "))]
    return lines


@pytest.mark.parametrize("command", _commands())
def test_every_readme_command_parses(command, capsys):
    """Every ``pyrovae ...`` command README shows names a command and flags that exist."""
    from pyrovae.cli import build_parser

    argv = shlex.split(command)[1:]
    if "--help" in argv:
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args(argv)
        assert done.value.code == 0
        return
    args = build_parser().parse_args(argv)
    assert args.command in ("train", "sample", "evaluate")


def test_readme_links_exist():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if target.startswith("http"):
            continue
        assert (REPO / target).exists(), f"README links to {target}, which does not exist"
