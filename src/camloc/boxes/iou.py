"""IoU of inclusive-corner boxes, counting pixels: one formula, on scalars (also compiled), on a
pair, on every pair at once, and the best or a hit against a list.

``inter = max(0, min x1 - max x0 + 1) * max(0, min y1 - max y0 + 1)`` over
``area_a + area_b - inter`` with ``area = (x1 - x0 + 1) * (y1 - y0 + 1)``; a pair whose union is
not positive (only inverted boxes) gets 0: the convention of the ILSVRC and CVPR 2020 protocols.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def iou_coords(ax0, ay0, ax1, ay1, bx0, by0, bx1, by1) -> float:
    """IoU of boxes ``a`` and ``b`` given as eight scalars. Plain Python on scalars, so the
    compiled MaxBoxAcc sweep compiles this same function (:mod:`camloc.metrics._levels`)."""
    iw = min(ax1, bx1) - max(ax0, bx0) + 1
    ih = min(ay1, by1) - max(ay0, by0) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (ax1 - ax0 + 1) * (ay1 - ay0 + 1) + (bx1 - bx0 + 1) * (by1 - by0 + 1) - inter
    return 0.0 if union <= 0 else inter / union


def box_iou(a: Sequence[int], b: Sequence[int]) -> float:
    """IoU of two inclusive-corner boxes ``[x0, y0, x1, y1]``, counting pixels (+1 on each side).

    Examples:
        >>> box_iou([0, 0, 9, 9], [5, 0, 14, 9])
        0.3333333333333333
    """
    return float(iou_coords(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a (n, 4)`` against every box in ``b (m, 4)`` -> ``(n, m)`` float64."""
    a = np.asarray(a, dtype=np.int64).reshape(-1, 1, 4)
    b = np.asarray(b, dtype=np.int64).reshape(1, -1, 4)
    iw = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    ih = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    denom = area_a + area_b - inter
    bad = denom <= 0
    out = inter / np.where(bad, 1, denom)
    out[bad] = 0
    return out


def hit(box: Sequence[int] | None, gt_boxes: Sequence[Sequence[int]], iou: float = 0.5) -> bool:
    """``box`` overlaps one of ``gt_boxes`` with IoU >= ``iou`` (``None`` never does)."""
    return box is not None and any(box_iou(box, g) >= iou for g in gt_boxes)


def best_iou(box: Sequence[int] | None, gt_boxes: Sequence[Sequence[int]]) -> float:
    """The largest IoU of ``box`` with any of ``gt_boxes``; 0.0 for ``box=None`` or no ``gt_boxes``."""
    return 0.0 if box is None else max((box_iou(box, g) for g in gt_boxes), default=0.0)
