"""The map methods' registry names, torch-free (the command line checks ``--method`` and its
options with these before torch loads).

The registry itself is :data:`camloc.methods.METHODS` (built from a tuple of classes); this tuple
lists the same names (``tests/test_methods_registry.py`` checks it). A new
method adds its class there and its name here.
"""

from __future__ import annotations

import difflib

# one line per family; the same names as the classes in camloc.methods._CLASSES
BASE = ("cam", "backprop", "gradcam", "gradcampp")
GRADIENT = ("xgradcam", "hirescam", "gradcam_elementwise", "layercam", "smoothgradcampp", "shapleycam", "finercam",
            "refinecam", "fullgrad", "legrad")
PERTURBATION: tuple[str, ...] = ("scorecam", "sscam", "iscam", "ablationcam")
DECOMPOSITION = ("eigencam", "eigengradcam", "kpcacam")
BASELINES = ("random", "center")
NAMES: tuple[str, ...] = BASE + GRADIENT + PERTURBATION + DECOMPOSITION + BASELINES


def close_names(name: str, names=NAMES) -> str:
    """`` (did you mean 'a', 'b'?)`` for the names close to ``name``, else ``""``."""
    close = difflib.get_close_matches(str(name), list(names), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def check_method_name(name: str) -> str:
    """``name`` when registered, else a one-line :class:`~camloc.errors.MethodError`."""
    from camloc.errors import MethodError

    if name not in NAMES and name != "all":
        raise MethodError(f"unknown map method {str(name)[:60]!r}{close_names(name)}; expected one of {', '.join(NAMES)}")
    return name


def parse_method_options(items: list[str] | None) -> dict[str, object]:
    """``["n=8", "sigma=0.2", "layers=layer3,layer4"]`` -> ``{"n": 8, "sigma": 0.2, "layers": ["layer3", "layer4"]}``
    (ints, floats, true/false, a comma list; otherwise the text). One-line error on an item without ``=``."""
    from camloc.errors import MethodError

    out: dict[str, object] = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise MethodError(f"--method-option {str(item)[:60]!r}: expected KEY=VALUE (e.g. n=8, sigma=0.15, layers=layer3,layer4)")
        out[key] = [_value(v) for v in value.split(",")] if "," in value else _value(value)
    return out


def _value(text: str) -> object:
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
