"""Every public name of ``camloc`` (``camloc.__all__``, the API reference) carries a doctest-style
example, and every example runs: the names' own docstrings and the modules listed in
:data:`MODULES` (their docstrings, every function and class in them)."""

from __future__ import annotations

import doctest
import importlib
import inspect
import types

import pytest

import camloc

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# public modules whose every docstring example runs (module, functions, classes)
MODULES = ["camloc.extras", "camloc.testing.nets", "camloc.evaluate.api", "camloc.readings", "camloc.boxes.iou"]


def _run(tests: list[doctest.DocTest]) -> tuple[int, int, str]:
    lines: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in tests:
        runner.run(test, out=lines.append)
    result = runner.summarize(verbose=False)
    return result.failed, result.attempted, "".join(lines)


@pytest.mark.parametrize("name", camloc.__all__)
def test_public_name_has_an_example_that_runs(name: str) -> None:
    obj = getattr(camloc, name)
    doc = inspect.getdoc(obj) or ""
    assert ">>>" in doc, f"camloc.{name} has no example in its docstring"
    module = obj if isinstance(obj, types.ModuleType) else inspect.getmodule(obj)
    finder = doctest.DocTestFinder(recurse=False)
    tests = finder.find(obj, f"camloc.{name}", module=module, extraglobs={"camloc": camloc})
    failed, attempted, report = _run(tests)
    assert attempted > 0 and failed == 0, report


@pytest.mark.parametrize("module", MODULES)
def test_module_examples_run(module: str) -> None:
    mod = importlib.import_module(module)
    tests = doctest.DocTestFinder().find(mod, module, extraglobs={"camloc": camloc})
    failed, attempted, report = _run(tests)
    assert attempted > 0 and failed == 0, report


def test_every_public_name_is_in_the_reference() -> None:
    """docs/api.md (the site's API reference, rendered by mkdocstrings) documents each name of
    ``camloc.__all__`` from the module that defines it."""
    from pathlib import Path

    reference = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    directives = {line.split()[1] for line in reference.splitlines() if line.startswith("::: ")}
    missing = [n for n in camloc.__all__
               if camloc._EXPORTS[n] not in directives and f"{camloc._EXPORTS[n]}.{n}" not in directives]
    assert missing == [], f"public names missing from docs/api.md: {missing}"
