"""Boxes found on a smaller grid than the image, and the way back to original pixels.

A large image's boxes are found on its map upsampled to a grid of a capped longer side
(:func:`box_grid`), then carried back (:func:`box_to_original`), within half a grid step.
"""

from __future__ import annotations

import math

BOX_CAP = 512
"""Boxes of images whose longer side exceeds this are found on the map upsampled to this longer
side (:func:`box_grid`), within half its step: ``localize``'s and ``evaluate``'s paper box."""


def box_to_original(box: list[int], grid: tuple[int, int], size: tuple[int, int]) -> list[int]:
    """An inclusive box found on a map resized to ``grid = (w, h)`` (covering the whole image)
    -> the same box in original ``size = (W, H)`` pixels.

    Grid pixel ``x`` samples the (bilinear) map where original pixel ``(x + 0.5) * W / w - 0.5``
    does, so the true first pixel above the threshold lies between the samples of grid pixels
    ``x0 - 1`` and ``x0``: the box edge is put in the middle, ``x0 * W / w - 0.5``, at most half a
    grid step (``W / w / 2`` pixels) from where a full-resolution map would put it; likewise
    ``(x1 + 1) * W / w - 0.5`` for the last pixel. The identity when the grid is the image.
    """
    gw, gh = grid
    width, height = size
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
    side of ``cap`` (boxes within half a grid step, :func:`box_to_original`). ``cap <= 0``: the
    image itself."""
    width, height = size
    long = max(width, height)
    if cap <= 0 or long <= cap:
        return width, height
    return max(1, round(width * cap / long)), max(1, round(height * cap / long))
