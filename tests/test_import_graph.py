"""The import graph of src/robustgan: no circles, and no module of a lower layer importing a higher one.

Every ``import`` / ``from ... import`` of every module counts, also those inside functions (the lazy
ones: a lazy import is still a dependency, it only runs later). Relative imports are resolved to
absolute module names. The two places that name modules as strings on purpose are left out: the
package ``__init__``'s lazy public names and ``cli.py``'s subcommand table; no other module may
import by string.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "robustgan"

#: The layers, lowest first. A module may import modules of its own layer or of lower ones, never
#: of a higher one. A name covers the module and, for a package, everything inside it.
LAYERS: list[tuple[str, ...]] = [
    # 0: no robustgan imports: files, pixel ranges, option declarations and errors, hardware probes
    ("robustgan", "robustgan.fileio", "robustgan.ranges", "robustgan.options", "robustgan.errors",
     "robustgan.hardware", "robustgan.presets"),
    # 1: the losses and the attacks
    ("robustgan.objectives", "robustgan.attacks"),
    # 2: regularisers (built on losses and attacks), networks and data sets
    ("robustgan.regularizers", "robustgan.models", "robustgan.data"),
    # 3: metrics (on data sets), adapters for users' own discriminators
    ("robustgan.metrics", "robustgan.adapters"),
    # 4: training runs: config, trainer, checkpoints, logging, sampling a run
    ("robustgan.train",),
    # 5: what is built from runs: grids, sweeps, reports, the Dirac-GAN study, generating images
    ("robustgan.experiments", "robustgan.generate", "robustgan.evaluate_run"),
    # 6: the command line
    ("robustgan.cli", "robustgan.__main__"),
]

#: Modules that may name other modules as strings (``importlib.import_module``).
STRING_IMPORTS_ALLOWED = {"robustgan", "robustgan.cli"}

#: Arrows that break the rules today, in files still being changed elsewhere; each is to be fixed
#: there and then removed from this list (the test fails when a listed arrow no longer exists).
#: (importer, imported) -> what to do.
PENDING: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    """Module name -> file, for every .py file of the package (a package is its ``__init__.py``)."""
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _target(name: str) -> str | None:
    """The module ``name`` refers to: itself, or the nearest enclosing module that exists."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every robustgan import in ``module``, at any depth."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level - 1 > len(base) - 1:
                    raise AssertionError(f"{path}:{node.lineno}: relative import goes above the package")
                base = base[:len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # `from pkg import sub` imports the submodule sub; `from mod import name` imports mod
            names = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in MODULES else origin for a in node.names]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                target = _target(name)
                assert target is not None, f"{path}:{node.lineno}: import of {name}, which does not exist"
                if target != module:
                    found.append((target, node.lineno))
    return found


def _graph() -> dict[str, dict[str, int]]:
    """importer -> {imported: first line}."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        edges = graph.setdefault(module, {})
        for target, line in _imports(module, path):
            edges.setdefault(target, line)
    return graph


GRAPH = _graph()


def _layer(module: str) -> int:
    best = None
    for level, names in enumerate(LAYERS):
        for name in names:
            if module == name or (module.startswith(name + ".") and name != PACKAGE):
                if best is None or len(name) > best[1]:
                    best = (level, len(name))
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}")
    return best[0]


def _where(importer: str, imported: str) -> str:
    path = MODULES[importer].relative_to(SRC.parent)
    return f"{path}:{GRAPH[importer][imported]}"


def _cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One circle ``[a, b, ..., a]`` of ``graph`` if it has one (depth-first search), else None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def _without_pending(graph):
    return {a: {b: line for b, line in edges.items() if (a, b) not in PENDING} for a, edges in graph.items()}


def test_the_graph_sees_relative_and_lazy_imports():
    # loop.py: `from . import checkpoint as ckpt` (relative, a submodule) and
    # `from .evaluation import evaluate_generator` inside Trainer.evaluate (lazy)
    assert "robustgan.train.checkpoint" in GRAPH["robustgan.train.loop"]
    assert "robustgan.train.evaluation" in GRAPH["robustgan.train.loop"]
    # two levels up: `from ..objectives import get_objective`
    assert "robustgan.objectives" in GRAPH["robustgan.train.loop"]
    assert "robustgan.cli" in GRAPH["robustgan.__main__"]


def test_cycle_finder_reports_a_circle():
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b": 1}, "b": {}, "c": {"a": 1, "b": 1}}) is None


def test_every_module_is_in_a_layer():
    for module in MODULES:
        _layer(module)


def test_no_import_circle():
    cycle = _cycle(_without_pending(GRAPH))
    if cycle:
        arrows = [f"{a} -> {b} ({_where(a, b)})" for a, b in zip(cycle, cycle[1:])]
        pytest.fail("import circle:\n  " + "\n  ".join(arrows))


def test_no_upward_import():
    upward = []
    for importer, edges in GRAPH.items():
        for imported in edges:
            if _layer(imported) > _layer(importer) and (importer, imported) not in PENDING:
                upward.append(f"{importer} (layer {_layer(importer)}) imports {imported} "
                              f"(layer {_layer(imported)}) at {_where(importer, imported)}")
    assert not upward, "a lower layer imports a higher one:\n  " + "\n  ".join(upward)


def test_pending_arrows_still_exist():
    gone = [f"{a} -> {b}" for a, b in PENDING if b not in GRAPH.get(a, {})]
    assert not gone, f"fixed, so remove from PENDING in {Path(__file__).name}: {', '.join(gone)}"


def test_modules_are_not_imported_by_name_elsewhere():
    offenders = []
    for module, path in MODULES.items():
        if module in STRING_IMPORTS_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
                if name in ("import_module", "__import__"):
                    offenders.append(f"{path.relative_to(SRC.parent)}:{node.lineno}")
    assert not offenders, f"modules imported by string (invisible to this test): {', '.join(offenders)}"
