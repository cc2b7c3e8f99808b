"""Lazy package attributes: ``import camloc`` (or ``camloc.probe``) costs nothing until a name is used.

A package lists ``{name: module}`` and calls :func:`lazy_exports`; the module is imported on the
first ``package.name`` and the value cached in the package. The command line builds its parser
through these packages, so neither torch nor torchvision is imported for ``--help``, an argument
error or a command that needs neither.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping


class _LazyPackage(types.ModuleType):
    """A package whose exported names win over its same-named submodules (a submodule without an
    attribute of its own name, such as ``camloc.methods``, is exported as the module itself).

    Importing ``camloc.cam`` (the module) would set the attribute ``camloc.cam``, hiding the
    exported function :func:`camloc.cam`; an exported name is therefore never replaced by the
    submodule of that name (``from camloc.cam import ...`` still works: it reads ``sys.modules``).
    """

    def __setattr__(self, name: str, value: object) -> None:
        exports = self.__dict__.get("_LAZY_EXPORTS", {})
        if (name in exports and isinstance(value, types.ModuleType) and value.__name__ == f"{self.__name__}.{name}"
                and not (exports[name] == value.__name__ and not hasattr(value, name))):
            return
        super().__setattr__(name, value)


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: each name of ``exports`` is read from its module
    (a full dotted name) on first use."""
    module = sys.modules[package]
    module.__class__ = _LazyPackage
    module._LAZY_EXPORTS = dict(exports)

    def __getattr__(name: str) -> object:
        source = exports.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        imported = importlib.import_module(source)
        # a submodule exported under its own name that has no such attribute (camloc.methods) is
        # the module itself; otherwise the attribute (camloc.cam, the function of camloc.cam)
        if source == f"{package}.{name}" and not hasattr(imported, name):
            value = imported
        else:
            value = getattr(imported, name)
        module.__dict__[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(module.__dict__) | set(exports))

    return __getattr__, __dir__
