"""camloc's modules import each other without a circle, nor its folders, and no module imports
another's private name.

The graph is read from the source by :mod:`tools.imports` (every ``import`` and ``from ... import``,
at module level, inside functions and under ``if TYPE_CHECKING:`` alike; what it leaves out and
why is in its docstring); ``tools/route.py`` ranks the floors of a command's route by the same
graph. Every camloc module is checked, none left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tools.imports import SRC, cycles, folder_graph, import_graph, targets


def test_graph_reads_relative_and_function_level_imports(tmp_path: Path) -> None:
    tree = ast.parse("def f():\n    from . import heads\n    from .registry import load_model\n")
    known = {"camloc.models", "camloc.models.heads", "camloc.models.registry", "camloc.models.net"}
    found = [t for node in ast.walk(tree) for t in targets(node, "camloc.models.net", False, known)]
    assert sorted(found) == ["camloc.models.heads", "camloc.models.registry"]
    tree = ast.parse("from camloc.models import CamNet\nimport camloc.models.heads.Head\n")
    found = [t for node in ast.walk(tree) for t in targets(node, "camloc.x", False, known)]
    assert found == ["camloc.models", "camloc.models.heads"]


def test_cycle_finder_on_a_written_out_graph() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": {"f"}}
    assert cycles(graph) == [["a", "b", "c"], ["d", "e"]]


def test_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 50, f"only {len(graph)} camloc modules found under {SRC}"
    found = cycles(graph)
    assert found == [], f"import cycles among camloc's modules: {found}"


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


def private_imports(src: Path = SRC) -> list[str]:
    """``module: from X import _name`` for every private name (one underscore, not a dunder) that a
    camloc module imports from another camloc module; a private *module* (``camloc.metrics._levels``)
    may be imported within its package."""
    from tools.imports import PACKAGE, modules

    found = modules(src)
    out = []
    for name, path in found.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or node.level or not (node.module or "").startswith(PACKAGE):
                continue
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and f"{node.module}.{alias.name}" not in found:
                    out.append(f"{name}: from {node.module} import {alias.name}")
    return sorted(out)


def test_private_names_stay_in_their_module(tmp_path: Path) -> None:
    """A name shared across modules is public (issue: ``_topk``, ``_image_of`` used elsewhere); the
    finder itself is checked on a written-out tree."""
    assert private_imports() == []
    pkg = tmp_path / "camloc"
    (pkg / "metrics").mkdir(parents=True)
    for rel, text in {"__init__.py": "", "metrics/__init__.py": "", "metrics/_levels.py": "def _x(): pass\n",
                      "a.py": "def _helper(): pass\n",
                      "b.py": "from camloc.a import _helper\nfrom camloc.metrics import _levels\nfrom camloc.a import __doc__\n"}.items():
        (pkg / rel).write_text(text)
    assert private_imports(tmp_path) == ["camloc.b: from camloc.a import _helper"]
