"""The pointing game, written once: a map's peak and whether a pixel lies in a box.

A map *points* at its maximum (the first in raster order; NaN never wins); the pointing game
counts a hit when that pixel lies inside one of the ground-truth boxes ``[x0, y0, x1, y1]``
(inclusive corners). NumPy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def peak(heatmap: np.ndarray) -> tuple[int, int]:
    """``(x, y)`` of the maximum of ``heatmap (H, W)``: the first in raster order, NaN ignored."""
    a = np.nan_to_num(np.asarray(heatmap, np.float64), nan=-np.inf)
    y, x = np.unravel_index(int(np.argmax(a)), a.shape)
    return int(x), int(y)


def inside(point: Sequence[int], box: Sequence[int], tolerance: int = 0) -> bool:
    """Whether pixel ``point = (x, y)`` lies in the inclusive ``box`` grown by ``tolerance`` pixels."""
    x, y = point
    return box[0] - tolerance <= x <= box[2] + tolerance and box[1] - tolerance <= y <= box[3] + tolerance


def pointing_hit(heatmap: np.ndarray, boxes: Sequence[Sequence[int]]) -> bool:
    """The pointing game on one map: its :func:`peak` lies in one of ``boxes``."""
    p = peak(heatmap)
    return any(inside(p, b) for b in boxes)
