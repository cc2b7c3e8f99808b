"""Optional dependencies: what each extra of ``pip install 'camloc[EXTRA]'`` brings and the one-line
error when it is missing.

The default install classifies and localizes (PyTorch, ONNX Runtime, the embedded nets' weights);
rarer needs are extras:

========== ============================== =====================================================
extra      packages                       needed by
========== ============================== =====================================================
fast       numba                          MaxBoxAcc's compiled threshold sweep (exact without it,
                                          slower)
demo       scikit-image                   the bundled photos: ``make demo``, ``camloc serve``'s
                                          samples, the text benchmark
discover   scikit-learn                   ``camloc discover`` (k-means of a class's regions)
timm       timm                           ``--model timm:<name>``
serve      starlette, uvicorn,            ``camloc serve``
           python-multipart
docs       mkdocs, mkdocs-material, ...   ``make docs``
========== ============================== =====================================================

    >>> from camloc.extras import require
    >>> require("json", "demo", "a test").__name__       # installed: the module itself
    'json'
    >>> require("no_such_module_xyz", "demo", "the bundled photos")
    Traceback (most recent call last):
    ...
    camloc.errors.MissingExtraError: the bundled photos: no_such_module_xyz is not installed (pip install 'camloc[demo]')
"""

from __future__ import annotations

import importlib
import importlib.util
import types

from camloc.errors import MissingExtraError


# import names whose distribution is named otherwise
PACKAGES = {"sklearn": "scikit-learn", "skimage": "scikit-image"}


def _missing(top: str, extra: str, what: str) -> MissingExtraError:
    return MissingExtraError(f"{what}: {PACKAGES.get(top, top)} is not installed (pip install 'camloc[{extra}]')")


def need(module: str, extra: str, what: str) -> None:
    """:func:`require` without importing: only whether ``module`` can be found (an early check
    that costs no import time).

    >>> need("no_such_module_xyz", "discover", "camloc discover")
    Traceback (most recent call last):
    ...
    camloc.errors.MissingExtraError: camloc discover: no_such_module_xyz is not installed (pip install 'camloc[discover]')
    """
    top = module.split(".")[0]
    if importlib.util.find_spec(top) is None:
        raise _missing(top, extra, what)


def require(module: str, extra: str, what: str) -> types.ModuleType:
    """``module`` imported, or a :class:`~camloc.errors.MissingExtraError` that names ``what``
    needs it and the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        if err.name is not None and err.name.split(".")[0] != top:
            raise  # the package is there but broken: keep the real error
        raise _missing(top, extra, what) from None
