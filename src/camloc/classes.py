"""Which class a user means: the one resolver of ``units --class``, ``discover --classes`` and
serve's ``class`` field (torch-free).

A class is named, in this order of precedence:

1. by its exact label (``7`` is the class labelled "7" when the model has one);
2. by its index written ``#N`` (``#1``: the second class), whatever the labels;
3. by its label ignoring case;
4. by a bare index ``N``, only when no label of the model is itself a number (so ``285`` still
   means ImageNet's class 285, while with a probe whose classes are folders ``3/`` and ``7/``,
   ``1`` is refused and ``#1`` asked for).

Anything else is a one-line :class:`ClassError` naming the model asked (the probe file when a
probe's classes replace the net's).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

from camloc.errors import CamlocError, one_line

_INDEX = re.compile(r"#\s*([+-]?[0-9]+)")
_BARE = re.compile(r"[+-]?[0-9]+")


class ClassError(CamlocError):
    """A class name or index the model does not have; ``str(err)`` is one line naming the model."""


def model_label(net: Any) -> str:
    """How errors name the model a class was asked of: ``probe FILE (on NET)`` when a probe file's
    classes replace the net's, else the net's name."""
    probe = getattr(net, "probe_file", None)
    name = getattr(net, "name", "the model")
    return f"probe {probe} (on {name})" if probe else str(name)


def resolve_class(text: str | int, class_names: Sequence[str], model: str, where: str = "class") -> int:
    """The index of the class ``text`` names among ``class_names`` (see the module docstring);
    :class:`ClassError` (one line: ``where``, ``model``) otherwise. An ``int`` is an index."""
    n = len(class_names)
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise ClassError(f"{where}: a class is a label or an index, got {type(text).__name__}")
    if isinstance(text, int):
        return _index(text, n, model, where)
    shown = one_line(text, 80)
    if text in class_names:
        return list(class_names).index(text)
    t = text.strip()
    if t in class_names:
        return list(class_names).index(t)
    m = _INDEX.fullmatch(t)
    if m:
        return _index(int(m.group(1)) if len(m.group(1)) < 12 else n, n, model, where)
    folded = [c.lower() for c in class_names]
    if t.lower() in folded:
        return folded.index(t.lower())
    if _BARE.fullmatch(t):
        if any(_BARE.fullmatch(c.strip()) for c in class_names):
            raise ClassError(f"{where}: {model} has no class labelled {shown!r} (its labels are numbers: write "
                             f"#{t.lstrip('+')} for the class at index {t.lstrip('+')})")
        return _index(int(t) if len(t) < 12 else n, n, model, where)
    close = difflib.get_close_matches(t.lower(), folded, n=3)
    hint = f"; did you mean {', '.join(repr(class_names[folded.index(c)]) for c in close)}?" if close else \
        " (give a label, or #N for the class at index N)"
    raise ClassError(f"{where}: {model} has no class {shown!r}{hint}")


def resolve_classes(text: str, class_names: Sequence[str], model: str, where: str = "--classes") -> list[int]:
    """``"tabby,#281"`` -> class indices, each item by :func:`resolve_class`, repeats dropped."""
    out: list[int] = []
    for item in str(text).split(","):
        if not item.strip():
            raise ClassError(f"{where}: empty class name in {one_line(text, 80)!r}")
        out.append(resolve_class(item, class_names, model, where))
    return list(dict.fromkeys(out))


def _index(i: int, n: int, model: str, where: str) -> int:
    if not 0 <= i < n:
        raise ClassError(f"{where}: class index {i} is out of range for {model} ({n} classes: 0..{n - 1})")
    return i
