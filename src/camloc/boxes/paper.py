"""The paper's rule: a map, thresholded at a fraction of its peak, the box of its largest
8-connected component (or of every component)."""

from __future__ import annotations

import cv2
import numpy as np

from camloc.boxes.scale import BOX_CAP, box_grid, scale_box
from camloc.readings import check_norm, map_status, norm_bounds, upsample

Box = list[int]


def mask_from_map(map2d: np.ndarray, threshold: float = 0.2, norm: str = "minmax") -> np.ndarray:
    """Pixels strictly above ``threshold`` of the normalized map (see :data:`camloc.readings.NORMS`):

    - ``norm="minmax"``: ``m > min + threshold * (max - min)``;
    - ``norm="positive"``: ``m > threshold * max`` (only positive pixels, for a positive max);
    - ``norm="percentile"``, ``"meanstd"``: ``m > lo + threshold * (hi - lo)`` with the reading's
      floor and top (:func:`camloc.readings.norm_bounds`).

    Computed without building the normalized copy. All-False for a map without a usable peak
    (:func:`camloc.readings.map_status`).
    """
    check_norm(norm)
    m = np.asarray(map2d, dtype=np.float32)
    if map_status(m, norm) is not None:
        return np.zeros(m.shape, dtype=bool)
    return _above(m, threshold, norm)


def _above(m: np.ndarray, threshold: float, norm: str = "minmax") -> np.ndarray:
    """The mask of :func:`mask_from_map` for a finite float32 map (empty without a peak)."""
    if norm not in ("minmax", "positive"):
        bounds = norm_bounds(m, norm)
        if isinstance(bounds, str):
            return np.zeros(m.shape, dtype=bool)
        lo, hi = bounds
        return m > np.float32(lo + threshold * (hi - lo))
    lo, hi, _, _ = cv2.minMaxLoc(m)
    if norm == "positive":
        if not hi > 0:
            return np.zeros(m.shape, dtype=bool)
        return m > np.float32(threshold * hi)
    return m > np.float32(lo + threshold * (hi - lo))


def boxes_from_mask(mask: np.ndarray, largest_only: bool = True) -> list[Box]:
    """Bounding boxes of the 8-connected components of a boolean mask, largest area first.

    Ties in area keep raster order (the component whose first pixel comes first).
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    mask = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)  # 0/1 bytes, no copy
    if largest_only:
        return _largest_box(mask)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return []
    stats = stats[1:]
    order = np.argsort(-stats[:, cv2.CC_STAT_AREA], kind="stable")
    out = []
    for i in order:
        x, y, w, h = (int(v) for v in stats[i, :4])
        out.append([x, y, x + w - 1, y + h - 1])
    return out


def _largest_box(mask: np.ndarray) -> list[Box]:
    """The box of the largest 8-connected component of a 0/1 uint8 mask (first in raster order
    on a tie).

    Each component has one outer border (OpenCV's border following, 8-connected like the
    components), whose bounding rectangle is the component's box. Most CAM masks hold a single
    component: its border gives the box without labelling the mask. With several, each one's
    pixels are counted inside its filled border (within its rectangle); when a component lies in
    another's hole, or the two largest counts are close (a tie is decided by OpenCV's label
    order), the mask is labelled.
    """
    borders, hierarchy = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if not borders:
        return []
    links = hierarchy[0]
    outer = [i for i, link in enumerate(links) if link[3] < 0]
    nested = any(links[p, 3] >= 0 for p in links[:, 3] if p >= 0)  # a component inside a hole
    if len(outer) > 1 or nested:
        areas = None if nested else [_area(mask, borders[i]) for i in outer]
        if areas is not None and _clear_winner(areas):
            outer = [outer[int(np.argmax(areas))]]
        else:
            _, labels = cv2.connectedComponents(mask, connectivity=8)
            counts = np.bincount(labels.ravel())
            counts[0] = -1  # the background
            x, y, w, h = cv2.boundingRect((labels == int(counts.argmax())).view(np.uint8))
            return [[x, y, x + w - 1, y + h - 1]]
    x, y, w, h = cv2.boundingRect(borders[outer[0]])
    return [[x, y, x + w - 1, y + h - 1]]


def _area(mask: np.ndarray, border: np.ndarray) -> int:
    """Pixels of ``mask`` inside the filled ``border`` (its component, when no other lies in its holes)."""
    x, y, w, h = cv2.boundingRect(border)
    inside = np.zeros((h, w), np.uint8)
    cv2.drawContours(inside, [border], 0, 1, thickness=cv2.FILLED, offset=(-x, -y))
    return int(cv2.countNonZero(inside & mask[y:y + h, x:x + w]))


def _clear_winner(areas: list[int]) -> bool:
    """Whether the largest count leads the next by more than the filling could be off."""
    top, second = sorted(areas)[-2:][::-1]
    return top > second * 1.02 + 2


def boxes_from_map(map2d: np.ndarray, threshold: float = 0.2, largest_only: bool = True,
                   norm: str = "minmax") -> list[Box]:
    """The paper's box: threshold the map at ``threshold`` x its max, keep the largest component.

    The map is min-max normalized (so a signed CAM works; ``norm="positive"`` reads it as its
    positive part over its max instead) and thresholded with ``>`` (see :func:`mask_from_map`),
    split into 8-connected components, and the bounding box of the largest is returned. With
    ``largest_only=False`` every component's box is returned, largest first.

    Returns an empty list when the map is constant or has a non-finite value, or, with
    ``norm="positive"``, no positive value (see :func:`camloc.readings.map_status` for the reason).

    Examples:
        >>> m = np.zeros((4, 5)); m[1:3, 2:4] = 1.0
        >>> boxes_from_map(m)
        [[2, 1, 3, 2]]
    """
    map2d = np.asarray(map2d)
    if map2d.ndim != 2:
        raise ValueError(f"map must be 2-D, got shape {map2d.shape}")
    check_norm(norm)
    if map_status(map2d, norm) is not None:
        return []
    return boxes_from_checked_map(map2d, threshold, largest_only, norm)


def boxes_from_checked_map(map2d: np.ndarray, threshold: float = 0.2, largest_only: bool = True,
                           norm: str = "minmax") -> list[Box]:
    """:func:`boxes_from_map` for a 2-D map known to be finite (e.g. the upsampling of a raw map
    that :func:`camloc.readings.map_status` passed): skips the per-pixel check. A constant map, or
    with ``norm="positive"`` one without a positive value, gives no box."""
    mask = _above(np.asarray(map2d, dtype=np.float32), threshold, norm)
    return boxes_from_mask(mask, largest_only=largest_only)


def mass_union_box(map2d: np.ndarray, threshold: float = 0.2, share: float = 0.1,
                   norm: str = "minmax") -> list[Box]:
    """One box around every 8-connected component above ``threshold`` (as :func:`mask_from_map`)
    that holds at least ``share`` of the read map's mass above the threshold (the sum of the
    normalized map, :func:`camloc.readings.normalize_map`, over the mask): the union of their
    boxes, so a second part of the object (two dogs, a head and a tail) joins the box while
    specks of background stay out. ``share=0`` is the union of every component; a ``share``
    above the largest component's makes it the heaviest component alone. ``[]`` when the mask is
    empty (see :func:`boxes_from_map`).

    Example:
        >>> m = np.zeros((5, 9)); m[1:3, 0:2] = 1.0; m[1:4, 5:8] = 1.0; m[4, 3] = 0.3
        >>> mass_union_box(m, 0.2, 0.1), mass_union_box(m, 0.2, 0.5)
        ([[0, 1, 7, 3]], [[5, 1, 7, 3]])
    """
    from camloc.readings import normalize_map

    if not 0.0 <= share <= 1.0:
        raise ValueError(f"mass share must be in [0, 1], got {share}")
    m = np.asarray(map2d, dtype=np.float32)
    if m.ndim != 2:
        raise ValueError(f"map must be 2-D, got shape {m.shape}")
    mask = mask_from_map(m, threshold, norm)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if n <= 1:
        return []
    mass = np.bincount(labels.ravel(), weights=normalize_map(m, norm).ravel().astype(np.float64), minlength=n)[1:]
    keep = mass >= share * mass.sum()
    if not keep.any():  # rounding: share 1 of several equal components
        keep = mass == mass.max()
    st = stats[1:][keep]
    x0, y0 = int(st[:, 0].min()), int(st[:, 1].min())
    x1 = int((st[:, 0] + st[:, 2]).max()) - 1
    y1 = int((st[:, 1] + st[:, 3]).max()) - 1
    return [[x0, y0, x1, y1]]


def boxes_from_raw(raw: np.ndarray, size: tuple[int, int], threshold: float = 0.2, largest_only: bool = True,
                   norm: str = "minmax", cap: int = 0) -> list[Box]:
    """The paper's rule on a raw map (feature resolution): upsampled bilinearly to the image,
    ``size = (width, height)``, then :func:`boxes_from_checked_map`; boxes in image pixels.

    With ``cap > 0`` and an image whose longer side exceeds it, the map is upsampled to that
    side instead (:func:`~camloc.boxes.box_grid`) and the boxes carried back
    (:func:`~camloc.boxes.scale_box`, within half a grid step). Empty when the raw map has
    no usable peak (:func:`camloc.readings.map_status`) or none survives the upsampling.
    """
    if map_status(raw, norm) is not None:
        return []
    grid = box_grid(size, cap)
    # The raw map passed the check, so its upsampling is finite: skip the per-pixel check.
    found = boxes_from_checked_map(upsample(raw, (grid[1], grid[0])), threshold, largest_only, norm)
    return [scale_box(b, grid, size) for b in found]


def paper_boxes(raw: np.ndarray, size: tuple[int, int], threshold: float = 0.2, norm: str = "minmax",
                cap: int = BOX_CAP, all_boxes: bool = False) -> tuple[list[Box], str | None]:
    """The paper's box of one raw map as ``localize`` writes it and ``evaluate`` scores it (one
    rule for both): ``(boxes, warning)``. ``boxes`` from :func:`boxes_from_raw` (the largest
    component's first; every component's with ``all_boxes``); no box and the reason when the map
    has no usable peak (:func:`camloc.readings.map_status`); the whole image, with a warning,
    when the map varies but nothing of it survives at the image's (tiny) resolution."""
    problem = map_status(raw, norm)
    if problem is not None:
        return [], f"{problem}: no box"
    boxes = boxes_from_raw(raw, size, threshold, largest_only=not all_boxes, norm=norm, cap=cap)
    if not boxes:
        return [[0, 0, size[0] - 1, size[1] - 1]], "map is flat at image resolution: box is the whole image"
    return boxes, None
