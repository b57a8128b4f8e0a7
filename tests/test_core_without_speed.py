"""The core reads without the speed machinery: networks, likelihoods, guides, priors and the VAE
name nothing of pyrovae.fast (tracing, compiling, oneDNN, shortcut distributions, registration
switches); the speed layer wraps them from outside (docs/speed.md)."""

import re
from pathlib import Path

import pyrovae

PACKAGE = Path(pyrovae.__file__).parent
CORE = ["nn", "likelihoods", "guides", "priors", "models/vae.py"]
SPEED_MACHINERY = re.compile(
    r"pyrovae\.fast|from pyrovae import fast|\bcompiled\b|\bcompiled_kernels\b|torch\.compile|is_compiling"
    r"|\btrac(ed|ing)\b|TracedLoss|onednn|mkldnn|fast_distributions|fast\.distributions|fused_forms"
    r"|NoiseCaching|BernoulliImage|StandardNormal\b|without_registration|registration_paused|compile state",
    re.IGNORECASE)


def core_files() -> list[Path]:
    files = []
    for part in CORE:
        path = PACKAGE / part
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def test_the_core_names_no_speed_machinery():
    assert len(core_files()) > 10
    found = [f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
             for path in core_files()
             for number, line in enumerate(path.read_text().splitlines(), start=1)
             if SPEED_MACHINERY.search(line)]
    assert not found, "speed machinery in the core:\n" + "\n".join(found)


def test_the_pattern_catches_what_the_core_used_to_hold():
    for line in ("from pyrovae.fast import compiled", "if compiled.active():",
                 "return NoiseCachingNormal(loc, scale).to_event(1)", "with vae.without_registration():",
                 "return StandardNormal(self.loc, self.scale).to_event(1)", "torch.compiler.is_compiling()"):
        assert SPEED_MACHINERY.search(line), line
    assert not SPEED_MACHINERY.search("class StandardNormalPrior(Prior):")
