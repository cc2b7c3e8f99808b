"""Boxes found on a smaller grid than the image, and the way back to original pixels.

A large image's boxes are found on its map upsampled to a grid of a capped longer side
(:func:`box_grid`), then carried back (:func:`scale_box`), within half a grid step.
:func:`scale_box` is the one rule for carrying a box between two sizes of an image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

BOX_CAP = 512
"""Boxes of images whose longer side exceeds this are found on the map upsampled to this longer
side (:func:`box_grid`), within half its step: ``localize``'s and ``evaluate``'s paper box."""


def scale_box(box: Sequence[int] | None, source: tuple[int, int], target: tuple[int, int]) -> list[int] | None:
    """An inclusive box in an image of ``source = (w, h)`` pixels -> the same box in that image
    resized to ``target = (W, H)`` (``None`` stays ``None``): the one rounding rule for carrying a
    box between sizes (the paper box's grid back to the image, a box onto a figure's thumbnail).

    Resizing puts source pixel ``x`` where target pixel ``(x + 0.5) * W / w - 0.5`` is, so a box
    edge lies halfway between the last pixel inside and the first outside: ``x0 * W / w - 0.5``
    for the first column, ``(x1 + 1) * W / w - 0.5`` for the last, each rounded to the nearest
    pixel (halves up) and kept inside the image; a box never comes out inverted. Found on a
    grid, the box is then within half a grid step (``W / w / 2`` pixels) of where a
    full-resolution map would put it. The identity when the sizes are equal.
    """
    if box is None:
        return None
    gw, gh = source
    width, height = target
    if (gw, gh) == (width, height):
        return [int(v) for v in box]
    sx, sy = width / gw, height / gh

    def at(v: float, top: int) -> int:
        return min(top, max(0, int(math.floor(v + 0.5))))

    x0 = at(box[0] * sx - 0.5, width - 1)
    y0 = at(box[1] * sy - 0.5, height - 1)
    x1 = at((box[2] + 1) * sx - 0.5, width - 1)
    y1 = at((box[3] + 1) * sy - 0.5, height - 1)
    return [x0, y0, max(x0, x1), max(y0, y1)]


def box_grid(size: tuple[int, int], cap: int) -> tuple[int, int]:
    """The ``(w, h)`` on which boxes are computed: the image itself when its longer side is at
    most ``cap`` (boxes exact, as on the full-size map), else the image scaled down to a longer
    side of ``cap`` (boxes within half a grid step, :func:`scale_box`). ``cap <= 0``: the
    image itself."""
    width, height = size
    long = max(width, height)
    if cap <= 0 or long <= cap:
        return width, height
    return max(1, round(width * cap / long)), max(1, round(height * cap / long))
