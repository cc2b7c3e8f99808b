"""From maps to boxes, the paper's way.

Boxes are ``[x0, y0, x1, y1]`` in integer pixel coordinates with inclusive corners
(``x1`` is the last column inside the box), as the ILSVRC protocol writes them.
"""

from __future__ import annotations

import cv2
import numpy as np

from camloc.cam import map_status

Box = list[int]


def mask_from_map(map2d: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """Pixels strictly above ``threshold`` of the map's range: ``m > min + threshold * (max - min)``.

    That is the min-max normalized map thresholded at ``threshold`` (its max is 1), computed
    without building the normalized copy. All-False for a constant or non-finite map.
    """
    m = np.asarray(map2d, dtype=np.float32)
    if map_status(m) is not None:
        return np.zeros(m.shape, dtype=bool)
    return _above(m, threshold)


def _above(m: np.ndarray, threshold: float) -> np.ndarray:
    """The mask of :func:`mask_from_map` for a finite, non-constant float32 map."""
    lo, hi, _, _ = cv2.minMaxLoc(m)
    return m > np.float32(lo + threshold * (hi - lo))


def boxes_from_mask(mask: np.ndarray, largest_only: bool = True) -> list[Box]:
    """Bounding boxes of the 8-connected components of a boolean mask, largest area first.

    Ties in area keep raster order (the component whose first pixel comes first).
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    mask = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)  # 0/1 bytes, no copy
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return []
    stats = stats[1:]
    order = np.argsort(-stats[:, cv2.CC_STAT_AREA], kind="stable")
    if largest_only:
        order = order[:1]
    out = []
    for i in order:
        x, y, w, h = (int(v) for v in stats[i, :4])
        out.append([x, y, x + w - 1, y + h - 1])
    return out


def boxes_from_map(map2d: np.ndarray, threshold: float = 0.2, largest_only: bool = True) -> list[Box]:
    """The paper's box: threshold the map at ``threshold`` x its max, keep the largest component.

    The map is min-max normalized (so a signed CAM works) and thresholded with ``>`` (see
    :func:`mask_from_map`), split into 8-connected components, and the bounding box of the
    largest is returned. With ``largest_only=False`` every component's box is returned,
    largest first.

    Returns an empty list when the map is constant or has a non-finite value (see
    :func:`camloc.cam.map_status` for the reason).

    Example:
        >>> m = np.zeros((4, 5)); m[1:3, 2:4] = 1.0
        >>> boxes_from_map(m)
        [[2, 1, 3, 2]]
    """
    map2d = np.asarray(map2d)
    if map2d.ndim != 2:
        raise ValueError(f"map must be 2-D, got shape {map2d.shape}")
    if map_status(map2d) is not None:
        return []
    return boxes_from_mask(_above(np.asarray(map2d, dtype=np.float32), threshold), largest_only=largest_only)


def box_iou(a: Box, b: Box) -> float:
    """IoU of two inclusive-corner boxes, counting pixels (+1 on each side)."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / float(area_a + area_b - inter)
