"""The published box protocol (CVPR 2020, MaxBoxAcc / MaxBoxAccV2), written from its definition
as the straightforward per-threshold loop: one threshold, one contour search, at every CAM
threshold. It is the oracle the tests compare the shared sweep with, and the baseline of
``bench_maxboxacc``. Deliberately slow; not used by the library.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def reference_boxes(scoremap: np.ndarray, thresholds: Sequence[float], multi_contour: bool) -> list[np.ndarray]:
    """Per CAM threshold, the ``(k, 4)`` array of the protocol's boxes for ``scoremap``."""
    height, width = scoremap.shape
    gray = np.expand_dims((np.asarray(scoremap, dtype=np.float64) * 255).astype(np.uint8), 2)
    peak = np.max(gray)
    out = []
    for tau in thresholds:
        _, binary = cv2.threshold(gray, int(tau * peak), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        if len(contours) == 0:
            out.append(np.zeros((1, 4), np.int64))
            continue
        if not multi_contour:
            contours = [max(contours, key=cv2.contourArea)]
        rows = []
        for c in contours:
            x, y, w, h = cv2.boundingRect(c)
            rows.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
        out.append(np.asarray(rows, np.int64))
    return out


def reference_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Inclusive IoU ``(n, m)`` of every pair, degenerate unions (<= 0) set to 0."""
    a = np.asarray(a, np.int64)[:, None, :]
    b = np.asarray(b, np.int64)[None, :, :]
    inter = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1) * np.maximum(
        0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1
    )
    union = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1) + (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1) - inter
    degenerate = union <= 0
    out = inter / np.where(degenerate, 1, union)
    out[degenerate] = 0.0
    return out


def reference_best_iou(scoremap: np.ndarray, gt_boxes: np.ndarray, thresholds: Sequence[float], multi_contour: bool) -> np.ndarray:
    """Best IoU per threshold: max over (boxes at that threshold) x (ground-truth boxes)."""
    gt = np.asarray(gt_boxes, np.int64).reshape(-1, 4)
    return np.array([reference_iou(b, gt).max() for b in reference_boxes(scoremap, thresholds, multi_contour)])


class ReferenceBoxEvaluator:
    """The protocol's box evaluator: counts per (IoU threshold, CAM threshold), then the max."""

    def __init__(self, thresholds: Sequence[float], iou_thresholds: Sequence[int], multi_contour: bool) -> None:
        self.thresholds = list(thresholds)
        self.iou_thresholds = list(iou_thresholds)
        self.multi_contour = multi_contour
        self.num_correct = {d: np.zeros(len(self.thresholds)) for d in self.iou_thresholds}
        self.cnt = 0

    def accumulate(self, scoremap: np.ndarray, gt_boxes: np.ndarray) -> None:
        best = reference_best_iou(scoremap, gt_boxes, self.thresholds, self.multi_contour)
        for d in self.iou_thresholds:
            self.num_correct[d][np.where(best >= d / 100)[0]] += 1
        self.cnt += 1

    def compute(self) -> list[float]:
        return [float((self.num_correct[d] * 100.0 / float(self.cnt)).max()) for d in self.iou_thresholds]
