"""camloc's import graph, read from the source: what ``tests/test_imports.py`` checks (no cycle
between modules or folders) and what ``tools/route.py`` ranks floors by.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import`` in a
module counts, at module level, inside functions and under ``if TYPE_CHECKING:`` alike, and
relative imports are resolved against the module's package. ``import a.b`` is an edge to module
``a.b``; ``from a.b import c`` is an edge to ``a.b.c`` when that is a module, else to ``a.b``
(a package's ``__init__``). The one edge left out is the one Python adds implicitly: importing
``a.b.c`` runs the ``__init__`` of ``a`` and ``a.b`` first, and that is not counted as an edge
from the importer to those packages. Those ``__init__`` files only re-export (``camloc`` and
``camloc.probe`` lazily, by name, ``camloc.models`` eagerly from heads, net and registry), so
counting it would make every module under a package a cycle with whatever its package
re-exports. An explicit import of a package (``from camloc.models import X``) is counted.

Every camloc module is read, none left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
"""The checkout's source tree (a function given another ``src`` reads that tree instead)."""
PACKAGE = "camloc"


def modules(src: Path = SRC) -> dict[str, Path]:
    """``{dotted name: file}`` for every module of the package; a package's name maps to its ``__init__``."""
    found = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def targets(node: ast.AST, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The camloc modules one import statement names."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                base += node.module.split(".")
            source = ".".join(base)
        else:
            source = node.module or ""
        names = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source for alias in node.names]
    else:
        return []
    targets = []
    for name in names:
        while name and name not in known:  # `import camloc.x.y` of a name that is not a module: its nearest module
            name = name.rpartition(".")[0]
        if name.split(".")[0] == PACKAGE and name:
            targets.append(name)
    return targets


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """``{module: modules it imports}`` within camloc."""
    found = modules(src)
    known = set(found)
    graph = {}
    for name, path in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(tree):
            edges.update(targets(node, name, is_package, known))
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, each sorted (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph seen by floor: each module stands for its top-level folder under camloc
    (``camloc.pipeline.run`` -> ``camloc.pipeline``; a top-level module stands for itself). The
    package ``camloc`` itself (the public API, lazy re-exports) is left out."""
    def floor(name: str) -> str:
        return ".".join(name.split(".")[:2])

    out: dict[str, set[str]] = {}
    for name, edges in graph.items():
        if name == PACKAGE:
            continue
        out.setdefault(floor(name), set()).update(floor(e) for e in edges if e != PACKAGE and floor(e) != floor(name))
    return out
