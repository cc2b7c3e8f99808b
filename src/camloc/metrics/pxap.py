"""PxAP: pixel average precision of score maps against ground-truth masks (CVPR 2020 protocol).

Conventions, as the published evaluation computes them:

- Maps are 224x224 in [0, 1]. Masks are read as grayscale, resized to 224x224 with nearest
  neighbour, and a pixel is foreground when it is > 0.5 in any of the image's masks. The ignore
  region is the ignore mask (> 0.5) minus the foreground; its pixels count neither way.
- Scores are binned with edges ``[t_0, ..., t_{n-1}, 1, 2, 3]`` (the CAM thresholds
  ``arange(0, 1, step)`` and three more), separately for foreground and background pixels.
- Cumulating the bins from the top gives, per threshold, TP / FP; precision = TP / (TP + FP),
  recall = TP / #foreground, and
  ``PxAP = 100 * sum_i precision_i * (recall_i - recall_{i-1})`` over the thresholds where
  ``TP + FP > 0`` (the first point excluded).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import cv2
import numpy as np

from camloc.metrics.base import Evaluator
from camloc.metrics.maxboxacc import RESIZE, cam_thresholds, check_scoremap


def load_mask(path: str | os.PathLike, size: int = RESIZE) -> np.ndarray:
    """A mask file -> ``(size, size)`` float32 (grayscale values, nearest-neighbour resize).

    Raises ``ValueError`` naming the file when it cannot be read as an image.
    """
    img = cv2.imread(os.fspath(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        why = "no such file" if not os.path.exists(path) else "not a readable image"
        raise ValueError(f"{os.fspath(path)}: cannot read mask ({why})")
    return cv2.resize(np.float32(img), (size, size), interpolation=cv2.INTER_NEAREST)


def ground_truth(mask_paths: Sequence[str], ignore_path: str | None, size: int = RESIZE) -> np.ndarray:
    """``uint8 (size, size)``: 1 foreground, 0 background, 255 ignored."""
    if not mask_paths:
        raise ValueError("no ground-truth mask")
    fg = np.zeros((size, size), bool)
    for p in mask_paths:
        fg |= load_mask(p, size) > 0.5
    out = fg.astype(np.uint8)
    if ignore_path:
        ignore = (load_mask(ignore_path, size) > 0.5) & ~fg
        out[ignore] = 255
    return out


class PxAPEvaluator(Evaluator):
    """Accumulates score histograms of foreground and background pixels.

    Example:
        >>> ev = PxAPEvaluator(threshold_step=0.01)
        >>> ev.accumulate([scoremap], [gt])   # gt: uint8 with 1 / 0 / 255 (see ground_truth)
        >>> ev.compute()["PxAP"]
    """

    name = "pxap"

    def __init__(self, threshold_step: float = 0.01) -> None:
        super().__init__()
        self.threshold_step = float(threshold_step)
        self.thresholds = cam_thresholds(threshold_step)
        self.edges = np.append(self.thresholds, [1.0, 2.0, 3.0])
        nb = len(self.thresholds) + 2
        self._state = {"fg_hist": np.zeros(nb, np.float64), "bg_hist": np.zeros(nb, np.float64), "count": np.zeros(1, np.int64)}

    def accumulate(self, scoremaps: Iterable[np.ndarray], gts: Iterable[np.ndarray]) -> None:
        """Add score maps (``(H, W)`` in [0, 1]) and their ground truths (same shape, 1/0/255)."""
        for m, gt in zip(scoremaps, gts, strict=True):
            m = check_scoremap(m)
            gt = np.asarray(gt)
            if gt.shape != m.shape:
                raise ValueError(f"mask shape {gt.shape} does not match the map's {m.shape}")
            self._state["fg_hist"] += np.histogram(m[gt == 1], bins=self.edges)[0]
            self._state["bg_hist"] += np.histogram(m[gt == 0], bins=self.edges)[0]
            self._state["count"][0] += 1

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """``(precision, recall)`` from the highest bin edge down (the protocol's order)."""
        fg, bg = self._state["fg_hist"], self._state["bg_hist"]
        if fg.sum() <= 0:
            raise ValueError("no foreground pixel in the evaluated masks")
        tp = fg[::-1].cumsum()
        fp = bg[::-1].cumsum()
        if ((tp + fp) <= 0).all():
            raise ValueError("no positive prediction")
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = tp / (tp + fp)
        recall = tp / fg.sum()
        return precision, recall

    def compute(self) -> dict[str, Any]:
        if int(self._state["count"][0]) == 0:
            raise ValueError("no image was evaluated (empty split?)")
        precision, recall = self.curve()
        nonzero = (self._state["fg_hist"][::-1].cumsum() + self._state["bg_hist"][::-1].cumsum()) != 0
        auc = (precision[1:] * np.diff(recall))[nonzero[1:]].sum() * 100
        return {"PxAP": float(auc), "num_images": int(self._state["count"][0]), "threshold_step": self.threshold_step}
