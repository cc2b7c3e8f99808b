"""The paper's localization metrics (ILSVRC protocol), in percent.

- **Top-k localization error.** Each image gets up to k predictions ``(class, box)``. It is
  right at k when one of its first k predictions has the true class and a box with IoU >= 0.5
  with one of the ground-truth boxes (of that class); the error is the percentage of images
  that are not. With one box per class -- the paper's rule: the class's map, min-max normalized,
  upsampled to the image, thresholded at 20 % of its max, the box of the largest connected
  component -- the predictions are the top-k classes with their boxes.
- **GT-known localization accuracy.** The box of the *true* class's map, whatever the classifier
  says: percentage of images with IoU >= 0.5.
- **The paper's test-set heuristic.** Several boxes per map (:func:`heuristic_boxes`, a tight and
  a loose one), five predictions from the top-1, top-2 and top-3 classes:
  ``(c1, b1), (c1, b2), (c2, b1), (c2, b2), (c3, b1)``, scored as above.

IoU counts pixels inclusively (:func:`camloc.boxes.box_iou`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from camloc.boxes import box_iou
from camloc.cam import normalize_map
from camloc.metrics.base import Evaluator

Box = Sequence[int]
Prediction = tuple[int, Box | None]


def hit(box: Box | None, gt_boxes: Sequence[Box], iou: float = 0.5) -> bool:
    """``box`` overlaps one of ``gt_boxes`` with IoU >= ``iou`` (``None`` never does)."""
    return box is not None and any(box_iou(list(box), list(g)) >= iou for g in gt_boxes)


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
    limit = int(max(a[2] * a[3], b[2] * b[3]) * 0.5)
    ox = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    oy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ox * oy > limit


def heuristic_predictions(classes: Sequence[int], maps: Sequence[np.ndarray]) -> list[Prediction]:
    """The paper's five test-set predictions from the maps of the top-3 classes:
    ``(c1, b1), (c1, b2), (c2, b1), (c2, b2), (c3, b1)`` (a missing box is ``None``)."""
    preds: list[Prediction] = []
    for rank, (c, m) in enumerate(zip(classes[:3], maps[:3])):
        boxes = heuristic_boxes(m)
        for j in range(1 if rank == 2 else 2):
            preds.append((int(c), boxes[j] if j < len(boxes) else None))
    return preds


class IlsvrcLocEvaluator(Evaluator):
    """Top-k localization error from per-image predictions, and GT-known accuracy.

    Example:
        >>> ev = IlsvrcLocEvaluator()
        >>> ev.accumulate([[(3, [0, 0, 9, 9]), (5, None)]], labels=[3], gt_boxes=[[[0, 0, 9, 9]]],
        ...               true_boxes=[[0, 0, 9, 9]])
        >>> ev.compute()["top1_loc_error"]
        0.0
    """

    name = "ilsvrc_loc"

    def __init__(self, ks: Sequence[int] = (1, 5), iou: float = 0.5) -> None:
        super().__init__()
        self.ks = sorted({int(k) for k in ks})
        self.iou = float(iou)
        self._state = {
            "hits": np.zeros(len(self.ks), np.int64),
            "gt_known": np.zeros(1, np.int64),
            "count": np.zeros(1, np.int64),
        }

    def accumulate(
        self,
        predictions: Sequence[Sequence[Prediction]],
        labels: Sequence[int],
        gt_boxes: Sequence[Sequence[Box]],
        true_boxes: Sequence[Box | None] | None = None,
    ) -> None:
        """Add a batch.

        Args:
            predictions: per image, ``(class, box)`` pairs best first (a box may be ``None``).
            labels: true class per image.
            gt_boxes: per image, the ground-truth boxes of the true class (at least one).
            true_boxes: per image, the box from the true class's map (GT-known); ``None`` skips
                the GT-known count for the whole batch.
        """
        n = len(labels)
        if len(predictions) != n or len(gt_boxes) != n or (true_boxes is not None and len(true_boxes) != n):
            raise ValueError("predictions, labels, gt_boxes and true_boxes must have one entry per image")
        for i in range(n):
            if len(gt_boxes[i]) == 0:
                raise ValueError(f"image {i} of the batch has no ground-truth box")
            first = next(
                (r for r, (c, b) in enumerate(predictions[i]) if int(c) == int(labels[i]) and hit(b, gt_boxes[i], self.iou)),
                None,
            )
            for j, k in enumerate(self.ks):
                self._state["hits"][j] += first is not None and first < k
            if true_boxes is not None:
                self._state["gt_known"][0] += hit(true_boxes[i], gt_boxes[i], self.iou)
        self._state["count"][0] += n

    def compute(self) -> dict[str, Any]:
        n = int(self._state["count"][0])
        if n == 0:
            raise ValueError("no image was evaluated (empty split?)")
        out: dict[str, Any] = {f"top{k}_loc_error": 100.0 * (1.0 - self._state["hits"][j] / n) for j, k in enumerate(self.ks)}
        out["gt_known_loc_acc"] = 100.0 * self._state["gt_known"][0] / n
        out["num_images"] = n
        return out
