"""The few-shot fully supervised baseline of the CVPR 2020 WSOL benchmark: what the box labels
of the search's validation images would buy if used for training instead.

A ridge regressor maps a trained net's frozen last features (average-pooled to a 4x4 grid, so
that where things are survives) to the box ``[x0, y0, x1, y1]`` in fractions of the image; its
ridge strength is picked by leave-one-out error (closed form) on the same K box-labelled images
per class. On the test split it predicts one box per image, scored like BoxAcc: the share of
images whose box overlaps a ground-truth box with IoU at least 0.3 / 0.5 / 0.7."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from camloc.data.base import Split

GRID = 4
RIDGES = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def _features(net: Any, split: Split, batch: int = 64) -> np.ndarray:
    from camloc.train.wsol.base import gap_parts

    parts = gap_parts(net.module, "fewshot")
    net.module.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(split), batch):
            x = net.preprocessing([s.path for s in split.samples[i:i + batch]])
            f = parts.extra(parts.trunk(x))
            out.append(F.adaptive_avg_pool2d(f, GRID).flatten(1).numpy())
    return np.concatenate(out).astype(np.float64)


def _targets(split: Split) -> np.ndarray:
    rows = []
    for s in split.samples:
        w, h = s.size if s.size else (1, 1)
        x0, y0, x1, y1 = s.boxes[0]
        rows.append([x0 / w, y0 / h, (x1 + 1) / w, (y1 + 1) / h])
    return np.asarray(rows, dtype=np.float64)


def fit_ridge(x: np.ndarray, y: np.ndarray, ridges: tuple[float, ...] = RIDGES) -> tuple[np.ndarray, np.ndarray, float]:
    """``(weights, bias, ridge)`` of ridge regression ``y ~ x w + b`` (kernel form, centred),
    the ridge with the lowest leave-one-out squared error."""
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    gram = xc @ xc.T
    best = None
    for lam in ridges:
        hat = gram @ np.linalg.inv(gram + lam * np.eye(len(x)))
        resid = (yc - hat @ yc) / np.clip(1.0 - np.diag(hat), 1e-9, None)[:, None]
        err = float((resid ** 2).mean())
        if best is None or err < best[0]:
            best = (err, lam)
    lam = best[1]
    w = xc.T @ np.linalg.solve(gram + lam * np.eye(len(x)), yc)
    return w, my - mx @ w, lam


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``[x0, y0, x1, y1]`` boxes with exclusive ends (fractions or pixels)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def fewshot_baseline(checkpoint: str | os.PathLike, train: Split, test: Split) -> dict[str, Any]:
    """BoxAcc at IoU 0.3/0.5/0.7 (percent) and mean IoU of the ridge box regressor fitted on
    ``train`` (the K box-labelled images per class) over ``checkpoint``'s frozen features."""
    from camloc.models import load_model

    net = load_model(os.fspath(checkpoint))
    w, b, lam = fit_ridge(_features(net, train), _targets(train))
    pred = _features(net, test) @ w + b
    ious = []
    for s, p in zip(test.samples, pred):
        wd, ht = s.size if s.size else (1, 1)
        scale = np.array([wd, ht, wd, ht], dtype=np.float64)
        gts = [np.array([x0, y0, x1 + 1, y1 + 1], dtype=np.float64) / scale for x0, y0, x1, y1 in s.boxes]
        ious.append(max(box_iou(np.clip(p, 0, 1), g) for g in gts) if gts else 0.0)
    ious_a = np.asarray(ious)
    out: dict[str, Any] = {f"BoxAcc@{d}": float(100.0 * (ious_a >= d / 100).mean()) for d in (30, 50, 70)}
    out["BoxAcc"] = float(np.mean([out[f"BoxAcc@{d}"] for d in (30, 50, 70)]))
    out.update({"mean_iou": float(ious_a.mean()), "ridge": lam, "train_images": len(train), "num_images": len(test)})
    return out
