"""The paper's localization metrics (ILSVRC protocol), in percent.

- **Top-k localization error.** Each image gets up to k predictions ``(class, box)``. It is
  right at k when one of its first k predictions has the true class and a box with IoU >= 0.5
  with one of the ground-truth boxes (of that class); the error is the percentage of images
  that are not. With one box per class -- the paper's rule: the class's map, min-max normalized,
  upsampled to the image, thresholded at 20 % of its max, the box of the largest connected
  component -- the predictions are the top-k classes with their boxes.
- **GT-known localization accuracy.** The box of the *true* class's map, whatever the classifier
  says: percentage of images with IoU >= 0.5.
- **The paper's test-set heuristic.** Several boxes per map (a tight and a loose one,
  :func:`camloc.boxes.heuristic_boxes`), five predictions from the top-1, top-2 and top-3 classes:
  ``(c1, b1), (c1, b2), (c2, b1), (c2, b2), (c3, b1)``, scored as above.

IoU counts pixels inclusively (:func:`camloc.boxes.box_iou`); a hit is :func:`camloc.boxes.hit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from camloc.boxes import heuristic_boxes, hit
from camloc.metrics.base import Evaluator

Box = Sequence[int]
Prediction = tuple[int, Box | None]


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
