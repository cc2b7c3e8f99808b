"""camloc's modules import each other without a circle.

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

Every camloc module is checked, none left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "camloc"


def _modules() -> dict[str, Path]:
    """``{dotted name: file}`` for every module of the package; a package's name maps to its ``__init__``."""
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _targets(node: ast.AST, module: str, is_package: bool, known: set[str]) -> list[str]:
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


def import_graph() -> dict[str, set[str]]:
    """``{module: modules it imports}`` within camloc."""
    modules = _modules()
    known = set(modules)
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(tree):
            edges.update(_targets(node, name, is_package, known))
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


def test_graph_reads_relative_and_function_level_imports(tmp_path: Path) -> None:
    tree = ast.parse("def f():\n    from . import heads\n    from .registry import load_model\n")
    known = {"camloc.models", "camloc.models.heads", "camloc.models.registry", "camloc.models.net"}
    found = [t for node in ast.walk(tree) for t in _targets(node, "camloc.models.net", False, known)]
    assert sorted(found) == ["camloc.models.heads", "camloc.models.registry"]
    tree = ast.parse("from camloc.models import CamNet\nimport camloc.models.heads.Head\n")
    found = [t for node in ast.walk(tree) for t in _targets(node, "camloc.x", False, known)]
    assert found == ["camloc.models", "camloc.models.heads"]


def test_cycle_finder_on_a_written_out_graph() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": {"f"}}
    assert cycles(graph) == [["a", "b", "c"], ["d", "e"]]


def test_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 50, f"only {len(graph)} camloc modules found under {SRC}"
    found = cycles(graph)
    assert found == [], f"import cycles among camloc's modules: {found}"


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


def test_folder_graph_on_a_written_out_graph() -> None:
    graph = {"camloc": {"camloc.a.x"}, "camloc.a.x": {"camloc.b.y", "camloc.a.z"}, "camloc.a.z": set(),
             "camloc.b.y": {"camloc.a.z"}, "camloc.c": {"camloc"}}
    assert folder_graph(graph) == {"camloc.a": {"camloc.b"}, "camloc.b": {"camloc.a"}, "camloc.c": set()}
    assert cycles(folder_graph(graph)) == [["camloc.a", "camloc.b"]]


def test_no_import_cycle_between_folders() -> None:
    """Floors only go down: no two folders (or top-level modules) import each other, directly or
    through others (e.g. ``pipeline`` -> ``data`` -> ``pipeline``)."""
    found = cycles(folder_graph(import_graph()))
    assert found == [], f"import cycles among camloc's folders: {found}"
