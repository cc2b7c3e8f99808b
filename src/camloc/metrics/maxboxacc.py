"""MaxBoxAcc and MaxBoxAccV2: box accuracy at the best CAM threshold (CVPR 2020 protocol).

Conventions, exactly as the published evaluation computes them:

- A score map is a 224x224 float array in [0, 1]; it becomes ``g = uint8(map * 255)`` (truncated).
- For each CAM threshold ``tau`` in ``arange(0, 1, step)`` the mask is ``g > int(tau * max(g))``.
- Boxes are the bounding rectangles of the mask's contours (OpenCV contour search, tree mode,
  holes included), each written ``[x, y, x + w, y + h]`` with the right/bottom end clipped to
  223 -- one pixel wider than the inclusive box, which the protocol keeps. An empty mask gives
  ``[0, 0, 0, 0]``. With ``multi_contour=False`` only the contour of largest ``contourArea`` counts
  (the first one on ties, in OpenCV's order).
- IoU counts pixels inclusively: ``(min x1 - max x0 + 1) * (min y1 - max y0 + 1)`` over
  ``area_a + area_b - inter`` with ``area = (x1 - x0 + 1) * (y1 - y0 + 1)``.
- Ground-truth boxes are scaled from ``(width, height)`` to 224x224 coordinate by coordinate,
  ``int(v * 224 / size)`` (truncation).
- ``BoxAcc(tau, delta)`` = percentage of images whose best IoU (over predicted x ground-truth
  boxes) is ``>= delta / 100``; ``MaxBoxAcc@delta = max_tau BoxAcc``; ``MaxBoxAccV2`` = mean of
  MaxBoxAcc over ``delta in {30, 50, 70}`` with all contours. The original MaxBoxAcc is
  ``delta = 50`` with the largest contour only.

The boxes and the IoU are :func:`camloc.boxes.contour_boxes` and :func:`camloc.boxes.iou_matrix`;
the threshold sweep is shared (see :mod:`camloc.metrics._levels`): identical numbers, one pass.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from camloc.boxes import contour_boxes, iou_matrix
from camloc.metrics import _levels
from camloc.metrics.base import Evaluator

RESIZE = 224


def cam_thresholds(step: float = 0.01) -> np.ndarray:
    """The protocol's CAM thresholds ``numpy.arange(0, 1, step)`` (float64)."""
    if not 0 < step < 1:
        raise ValueError(f"threshold step must be in (0, 1), got {step}")
    return np.arange(0, 1, step)


def check_scoremap(scoremap: np.ndarray, where: str = "score map") -> np.ndarray:
    """The protocol's validity check; returns the map as float64.

    Raises a one-line ``ValueError`` naming ``where`` for a map that is not 2-D, is empty, has
    NaN or inf, or has values outside [0, 1].
    """
    m = np.asarray(scoremap)
    if m.ndim != 2:
        raise ValueError(f"{where}: score map must be 2-D, got shape {m.shape}")
    if m.size == 0:
        raise ValueError(f"{where}: score map is empty (shape {m.shape[0]}x{m.shape[1]})")
    if not (np.issubdtype(m.dtype, np.floating) or np.issubdtype(m.dtype, np.integer)):
        raise ValueError(f"{where}: score map must be numeric, got dtype {m.dtype}")
    m = m.astype(np.float64)
    if not np.isfinite(m).all():
        bad = "NaN" if np.isnan(m).any() else "inf"
        raise ValueError(f"{where}: score map has {bad} values")
    lo, hi = float(m.min()), float(m.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"{where}: score map must be in [0, 1], has min {lo:.6g} and max {hi:.6g}")
    return m


def to_gray(scoremap: np.ndarray) -> np.ndarray:
    """``uint8(map * 255)`` as the protocol quantizes (float64 product, truncation)."""
    return (np.asarray(scoremap, dtype=np.float64) * 255).astype(np.uint8)


def threshold_levels(thresholds: np.ndarray, gray_max: int) -> np.ndarray:
    """``int(tau * max(g))`` for every threshold (the level each threshold maps to)."""
    return (np.asarray(thresholds, dtype=np.float64) * float(gray_max)).astype(np.int64)


def resize_box(box: Sequence[int], image_size: tuple[int, int], size: int = RESIZE) -> list[int]:
    """Scale an ``[x0, y0, x1, y1]`` box from ``image_size = (width, height)`` to ``size`` x ``size``
    as the protocol does: ``int(v * size / width)`` for x, ``int(v * size / height)`` for y."""
    w, h = float(image_size[0]), float(image_size[1])
    x0, y0, x1, y1 = (float(v) for v in box)
    return [int(x0 * size / w), int(y0 * size / h), int(x1 * size / w), int(y1 * size / h)]


def best_iou_per_threshold(
    scoremap: np.ndarray,
    gt_boxes: np.ndarray,
    thresholds: np.ndarray,
    multi_contour: bool = True,
) -> np.ndarray:
    """Best IoU between the protocol's boxes at each CAM threshold and the ground-truth boxes.

    Args:
        scoremap: ``(H, W)`` map in [0, 1] (224x224 in the protocol).
        gt_boxes: ``(m, 4)`` ground-truth boxes in the map's coordinates, ``m >= 1``.
        thresholds: CAM thresholds in [0, 1).
        multi_contour: all contours (MaxBoxAccV2) or the largest only (MaxBoxAcc).

    Returns ``(len(thresholds),)`` float64. Every distinct mask is built once: thresholds that map
    to the same level share it, and all levels come from one union-find sweep; the largest-contour
    rule falls back to one contour search only at levels where the areas leave the largest
    component undecided (several components, holes whose outer areas are only bounded, or a tie).
    """
    return best_ious(scoremap, gt_boxes, thresholds, (multi_contour,))[multi_contour]


@functools.cache
def _note_no_numba() -> None:
    """Say once per process that the compiled sweep is missing (the numbers are the same)."""
    warnings.warn("numba is not installed: MaxBoxAcc uses the exact per-level contour search, slower "
                  "(pip install 'camloc[fast]')", stacklevel=3)


def best_ious(
    scoremap: np.ndarray, gt_boxes: np.ndarray, thresholds: np.ndarray, rules: Sequence[bool] = (True, False)
) -> dict[bool, np.ndarray]:
    """:func:`best_iou_per_threshold` for several contour rules (``True``: all contours, ``False``:
    the largest) from one shared sweep."""
    gray = to_gray(scoremap)
    gt = np.asarray(gt_boxes, dtype=np.int64).reshape(-1, 4)
    if len(gt) == 0:
        raise ValueError("no ground-truth box")
    levels = threshold_levels(thresholds, int(gray.max()))
    uniq = np.unique(levels)
    if not _levels.HAVE_NUMBA or max(gray.shape) > 32000:  # exact, slower: one search per level
        if not _levels.HAVE_NUMBA:
            _note_no_numba()
        out = {}
        for multi in rules:
            table = {int(lv): iou_matrix(contour_boxes(gray, int(lv), multi), gt).max() for lv in uniq}
            out[multi] = np.array([table[int(lv)] for lv in levels])
        return out
    sweep = _levels.level_sweep(gray, gt, uniq, holes_too=any(rules))
    out = {}
    for multi in rules:
        if multi:
            out[multi] = sweep["best"][levels]
            continue
        # The largest contour is an outer one (a hole's contour lies inside its component's and is
        # listed after it). One component: its box. Several, no holes: the largest area, computed
        # by the sweep, unless tied; with holes, the same when its area beats every other
        # component's bound. Otherwise: one contour search, for OpenCV's ranking and order.
        best = sweep["best"].copy()
        outer, holes, tied = sweep["outer"][uniq], sweep["holes"][uniq], sweep["tied"][uniq]
        decided = sweep["decided"][uniq]
        one = uniq[outer == 1]
        best[one] = sweep["outer_best"][one]
        known = (outer > 1) & (((holes == 0) & ~tied) | decided)
        best[uniq[known]] = sweep["largest"][uniq[known]]
        for lv in uniq[(outer > 1) & ~known]:
            best[lv] = iou_matrix(contour_boxes(gray, int(lv), False), gt).max()
        out[multi] = best[levels]
    return out


class MaxBoxAccEvaluator(Evaluator):
    """Accumulates ``BoxAcc(tau, delta)`` counts; :meth:`compute` gives MaxBoxAcc per delta,
    their mean (MaxBoxAccV2 with the defaults) and the best threshold per delta.

    Example:
        >>> ev = MaxBoxAccEvaluator(iou_thresholds=(30, 50, 70), threshold_step=0.01)
        >>> ev.accumulate([scoremap], [[[10, 10, 100, 120]]])
        >>> ev.compute()["MaxBoxAccV2"]
    """

    name = "maxboxacc"

    def __init__(
        self,
        iou_thresholds: Iterable[int] = (30, 50, 70),
        threshold_step: float = 0.01,
        multi_contour: bool = True,
    ) -> None:
        super().__init__()
        self.iou_thresholds = [int(d) for d in iou_thresholds]
        if not self.iou_thresholds or any(not 0 < d <= 100 for d in self.iou_thresholds):
            raise ValueError(f"IoU thresholds must be percentages in (0, 100], got {self.iou_thresholds}")
        self.threshold_step = float(threshold_step)
        self.thresholds = cam_thresholds(threshold_step)
        self.multi_contour = bool(multi_contour)
        self._state = {
            "correct": np.zeros((len(self.iou_thresholds), len(self.thresholds)), np.int64),
            "count": np.zeros(1, np.int64),
        }

    def accumulate(self, scoremaps: Iterable[np.ndarray], gt_boxes: Iterable[Sequence[Sequence[int]]]) -> None:
        """Add a batch: score maps (each ``(H, W)`` in [0, 1]) and their ground-truth boxes (in the
        maps' coordinates)."""
        for m, boxes in zip(scoremaps, gt_boxes, strict=True):
            m = check_scoremap(m)
            self.accumulate_ious(best_iou_per_threshold(m, np.asarray(boxes), self.thresholds, self.multi_contour))

    def accumulate_ious(self, best: np.ndarray) -> None:
        """Add one image given its best IoU at each of ``self.thresholds`` (see :func:`best_ious`)."""
        if best.shape != self.thresholds.shape:
            raise ValueError(f"expected {len(self.thresholds)} IoUs, got {best.shape}")
        for i, d in enumerate(self.iou_thresholds):
            self._state["correct"][i] += best >= d / 100
        self._state["count"][0] += 1

    def curves(self) -> dict[int, np.ndarray]:
        """``BoxAcc(tau)`` in percent for each delta (the protocol's ``num_correct * 100 / count``)."""
        n = int(self._state["count"][0])
        if n == 0:
            raise ValueError("no image was evaluated (empty split?)")
        return {d: self._state["correct"][i] * 100.0 / float(n) for i, d in enumerate(self.iou_thresholds)}

    def compute(self) -> dict[str, Any]:
        curves = self.curves()
        out: dict[str, Any] = {}
        best = []
        for d, acc in curves.items():
            best.append(acc.max())
            out[f"MaxBoxAcc@{d}"] = float(acc.max())
        out["MaxBoxAccV2"] = float(np.average(best))
        out["best_threshold"] = {str(d): float(self.thresholds[int(np.argmax(acc))]) for d, acc in curves.items()}
        out["num_images"] = int(self._state["count"][0])
        out["multi_contour"] = self.multi_contour
        out["iou_thresholds"] = list(self.iou_thresholds)
        out["threshold_step"] = self.threshold_step
        return out
