"""The public names of ``pyrovae`` stay importable, and the subpackages depend on each other one way.

Layers, lowest first: ``nn`` -> ``likelihoods``/``guides``/``priors`` -> ``models`` -> ``infer`` ->
``train`` -> ``cli``. A module may import its own layer and the layers below, never above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pyrovae

PACKAGE = Path(pyrovae.__file__).resolve().parent

#: The names ``pyrovae.__all__`` had when this test was written; each must stay importable.
PUBLIC_NAMES = [
    "VAE", "Trainer", "TrainingRecord", "MLP", "ConvEncoderNet", "ConvDecoderNet", "Encoder",
    "DiagonalNormalEncoder", "IAFEncoder", "LowRankNormalEncoder", "FullCovarianceNormalEncoder",
    "Likelihood", "BernoulliLikelihood", "ContinuousBernoulliLikelihood", "NormalLikelihood",
    "LaplaceLikelihood", "Prior", "StandardNormalPrior", "LearnedNormalPrior", "GaussianMixturePrior",
    "VampPrior", "FlowPrior", "HierarchicalPrior", "ConditionalNormalPrior", "cluster",
    "component_probabilities", "cluster_accuracy", "IWAE", "DReG", "LatentScale", "SyncFreeTrace_ELBO",
    "ELBOLoss", "TracedLoss", "linear_warmup", "PyrovaeError", "InputError", "NonFiniteError",
    "TrainingInterrupted", "save", "load",
]

#: Layer of each subpackage or top-level module; a module imports only its layer and below.
#: ``errors``, ``validation`` and ``data`` are plain utilities every layer may use.
LAYERS = {
    "errors": 0, "validation": 0, "data": 0,
    "nn": 1,
    "likelihoods": 2, "guides": 2, "priors": 2,
    "models": 3,
    "infer": 4, "fast": 4,
    "train": 5, "clustering": 5, "factors": 5, "plots": 5, "io": 5,
    "cli": 6, "__init__": 7, "__main__": 7,
}

#: Imports against the direction found when this test was written (module -> imported module).
#: Each is to be removed by the engineer who owns the module; a new one fails the test.
KNOWN_VIOLATIONS = {
    ("pyrovae.infer.evaluation", "pyrovae.clustering.accuracy"),
    ("pyrovae.models.cvae_baseline", "pyrovae.train.trainer"),
}


def test_public_names_stay_importable():
    missing = [name for name in PUBLIC_NAMES if not hasattr(pyrovae, name)]
    assert not missing, f"pyrovae lost public names: {missing}"
    assert set(PUBLIC_NAMES) <= set(pyrovae.__all__)
    for name in pyrovae.__all__:
        assert getattr(pyrovae, name) is not None


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ``pyrovae...`` module that ``path`` imports, at the top or inside a function.

    Imports under ``if TYPE_CHECKING:`` are left out: they name types for annotations and are
    never run, so they are no dependency (a prior may name the guide's codebook type this way).
    """
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
                 for stmt in node.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pyrovae")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pyrovae") and node.level == 0:
            found.add(node.module)
            # ``from pyrovae.fast import compiled`` imports the submodule pyrovae.fast.compiled
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if PACKAGE.parent.joinpath(*f"{node.module}.{a.name}".split(".")).with_suffix(".py").exists()}
    return found


def _layer(module: str) -> tuple[str, int]:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    if key not in LAYERS:
        pytest.fail(f"{module}: subpackage {key!r} has no layer; add it to LAYERS in tests/test_public_api.py")
    return key, LAYERS[key]


def _edges() -> set[tuple[str, str]]:
    edges = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _module_name(path)
        for target in _imports(path):
            if target != source:
                edges.add((source, target))
    return edges


def test_dependencies_point_down():
    wrong = []
    for source, target in _edges():
        (src_pkg, src_layer), (dst_pkg, dst_layer) = _layer(source), _layer(target)
        if src_pkg == dst_pkg or source == "pyrovae" or (source, target) in KNOWN_VIOLATIONS:
            continue
        if dst_layer > src_layer:
            wrong.append(f"{source} imports {target} ({src_pkg} is below {dst_pkg})")
    assert not wrong, "imports against the direction nn -> parts -> models -> infer -> train -> cli:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle_between_subpackages():
    graph: dict[str, set[str]] = {}
    for source, target in _edges():
        a, b = _layer(source)[0], _layer(target)[0]
        if a != b and source != "pyrovae" and (source, target) not in KNOWN_VIOLATIONS:
            graph.setdefault(a, set()).add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a, {b})})
    assert not cycles, f"subpackages that import each other (directly or through others): {cycles}"
