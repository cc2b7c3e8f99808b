"""Boxes from the contours of thresholded uint8 maps, as two published tools make them.

- :func:`contour_boxes`: the CVPR 2020 box protocol (MaxBoxAcc): ``mask = gray > level``, the
  bounding rectangles of its contours (tree mode, holes included), written ``[x, y, x + w, y + h]``
  with the right/bottom end clipped to the map -- one pixel wider than the inclusive box, which
  the protocol keeps. The sweep over every level at once is :mod:`camloc.metrics._levels`.
- :func:`heuristic_boxes`: the paper's released box tool, several levels, eroded masks, the
  largest boxes kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from camloc.readings import normalize_map


def contour_boxes(gray: np.ndarray, level: int, multi_contour: bool = True) -> list[list[int]]:
    """The protocol's boxes for ``mask = gray > level``, from one OpenCV contour search.

    ``[[0, 0, 0, 0]]`` for an empty mask. With ``multi_contour=False`` only the contour of largest
    ``contourArea`` counts (the first one on ties, in OpenCV's order).
    """
    h, w = gray.shape
    mask = np.where(gray > level, np.uint8(255), np.uint8(0))
    contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        return [[0, 0, 0, 0]]
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]
    out = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        out.append([x, y, min(x + bw, w - 1), min(y + bh, h - 1)])
    return out


def heuristic_boxes(map2d: np.ndarray, levels: Sequence[int] = (20, 100, 110), keep: int = 2) -> list[list[int]]:
    """Several boxes from one map, as the paper's released box tool makes them.

    The map is min-max normalized to ``g = uint8(255 * m)``; for each level ``t`` the mask
    ``g > t`` is eroded in proportion to its size (pixels whose Euclidean distance to the
    background, rescaled so the farthest pixel is 255, is > 10; pixels outside the image do not
    count as background), and the bounding boxes of all its contours (outer and holes) are
    collected. Boxes are sorted by area, largest first (stable), and a box is dropped when it
    overlaps an earlier kept one by more than half the larger area (as the tool does, the box
    after a dropped one is not compared with that earlier box). The first ``keep`` boxes are
    returned, inclusive ``[x0, y0, x1, y1]`` (the tool writes ``x + w``, one pixel wider).
    Empty when the map is constant.
    """
    from scipy.ndimage import distance_transform_edt

    m = normalize_map(map2d)
    if not m.any():
        return []
    gray = (m * 255).astype(np.uint8)
    h, w = gray.shape
    rects: list[tuple[int, int, int, int]] = []
    for t in levels:
        mask = gray > t
        if mask.all() or not mask.any():
            eroded = mask
        else:
            dist = distance_transform_edt(mask)
            scaled = np.clip(np.floor(dist * (255.0 / dist.max()) + 0.5), 0, 255)
            eroded = scaled > 10
        contours = cv2.findContours(eroded.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)[0]
        for c in contours:
            bx, by, bw, bh = cv2.boundingRect(c)
            # the tool's clamps: corner to [0, W-5], size to [0, W - x - 5] with the unclamped x
            rects.append((min(max(bx, 0), w - 5), min(max(by, 0), h - 5),
                          min(max(bw, 0), w - bx - 5), min(max(bh, 0), h - by - 5)))
    rects.sort(key=lambda r: -r[2] * r[3])
    i = 0
    while i < len(rects):
        j = i + 1
        while j < len(rects):
            if _big_overlap(rects[i], rects[j]):
                del rects[j]
            j += 1
        i += 1
    return [[x, y, x + max(bw - 1, 0), y + max(bh - 1, 0)] for x, y, bw, bh in rects[:keep]]


def _big_overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """The tool's test on ``(x, y, w, h)`` rectangles: overlap above half the larger area."""
    limit = int(max(a[2] * a[3], b[2] * b[3]) * 0.5)
    ox = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    oy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ox * oy > limit
