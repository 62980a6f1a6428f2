"""The package's layers, read from its source: every import (at the top of a module or inside a
function) goes to the same layer or one below, and no modules import each other in a loop.

Layers, lowest first (docs/architecture.md). A new module must be given its layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cytophen

PACKAGE = Path(cytophen.__file__).parent

#: Module name prefixes of each layer, lowest first (the longest matching prefix decides).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("_version", "errors", "_atomic", "_terminal", "_mp", "_names", "_plain")),
    ("io", ("io", "markers")),
    ("kernels", ("kernels",)),
    ("numeric model", ("transforms", "compensation", "scaling")),
    ("gates", ("gates",)),
    ("template", ("template",)),
    ("data-driven", ("datadriven",)),
    ("engine", ("engine", "result")),
    ("interop", ("interop",)),
    (
        "plots",
        (
            "report.plots",
            "report.draw",
            "report.panels",
            "report.regions",
            "report.labels",
            "report.ticks",
            "report.tree",
        ),
    ),
    ("pipeline", ("pipeline",)),
    ("analysis", ("clinical", "simulate")),
    ("report", ("report",)),
    ("interfaces", ("cli", "", "__main__")),  # "": the package's own __init__ (the public API)
]

#: Upward imports allowed: a method of a lower layer's object that hands the work to an upper
#: one, imported inside that method (never at the top of the module). Each is (importer, imported).
DELEGATIONS: dict[tuple[str, str], str] = {
    ("template", "interop.yaml_template"): "Template.to_yaml writes with the YAML dumper",
    ("template", "interop.gatingml"): "Template.to_gatingml writes with the GatingML exporter",
    ("result", "report.plots"): "GatingResult.plot draws with report.plots",
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    best, found = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or (prefix and module.startswith(prefix + ".")):
                if len(prefix) > best:
                    best, found = len(prefix), i
    if found is None:
        raise AssertionError(f"cytophen.{module} has no layer: add it to LAYERS in {__file__}")
    return found


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (annotations only: never run)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                skip.update(id(n) for n in ast.walk(stmt))
    return skip


def _imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """``(imported module, line, inside a function)`` for each of ``module``'s imports of the
    package (``from pkg import name`` counts as importing ``pkg.name`` when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_only(tree)
    nested: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            nested.update(id(n) for n in ast.walk(node) if n is not node)
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                source = ".".join(["cytophen", *base] + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names = [f"{source}.{a.name}" for a in node.names]
            names = [n if n[len("cytophen.") :] in MODULES else source for n in names]
        else:
            continue
        for name in names:
            if name != "cytophen" and not name.startswith("cytophen."):
                continue
            target = name[len("cytophen.") :] if name != "cytophen" else ""
            while target not in MODULES:
                target = target.rpartition(".")[0]
            if target != module:
                out.append((target, node.lineno, id(node) in nested))
    return out


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)


def test_no_module_imports_from_a_layer_above_it():
    upward = []
    for module, imports in GRAPH.items():
        for target, line, inside in imports:
            if _layer(target) <= _layer(module):
                continue
            if (module, target) in DELEGATIONS and inside:
                continue
            upward.append(
                f"cytophen/{MODULES[module].relative_to(PACKAGE)}:{line}: {module or 'cytophen'} "
                f"({LAYERS[_layer(module)][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
            )
    assert not upward, "imports from a layer above:\n" + "\n".join(upward)


def test_delegations_are_still_there():
    edges = {(m, t) for m, imports in GRAPH.items() for t, _, _ in imports}
    assert set(DELEGATIONS) <= edges, set(DELEGATIONS) - edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_cycles():
    edges = {
        m: {t for t, _, _ in imports if (m, t) not in DELEGATIONS} for m, imports in GRAPH.items()
    }
    cycles = _cycles(edges)
    assert not cycles, "modules importing each other (directly or through others):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


@pytest.mark.parametrize(
    "edges, expected",
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_cycle_finder_on_small_graphs(edges, expected):
    assert _cycles(edges) == expected
