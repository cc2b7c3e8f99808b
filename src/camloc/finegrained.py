"""Fine-grained recognition with CAM crops: the paper's Table 4 protocol on any labelled boxes.

Three linear probes on a frozen backbone's pooled features, each with ``C`` chosen on a
validation part of the training images:

(a) **full image**: train and test on whole images;
(b) **CAM crop**: crop every image (training and test) to the CAM box of the class that probe
    (a) predicts for it, then train and test a new probe on those crops;
(c) **ground-truth crop**: crop every image to its annotated box (the union of its boxes).

The **localization accuracy** is the fraction of test images whose CAM box (of probe (a)'s
predicted class, whether the prediction is right or not) has IoU >= 0.5 with a ground-truth
box; ``top1_localization`` also requires the prediction to be right. The paper reports, with
GoogLeNet-GAP features on CUB-200-2011: (a) 63.0 %, (b) 67.8 %, (c) 70.5 %, and 41.0 %
localization accuracy at IoU 0.5.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from camloc.boxes import box_iou
from camloc.data.base import Split
from camloc.models.net import CamNet
from camloc.probe import (
    DEFAULT_CS,
    CamBox,
    Classifier,
    ProbeError,
    Scaling,
    align_labels,
    cam_boxes,
    extract_features,
    fit_probe_on_features,
)

PAPER = {"full": 0.630, "cam_crop": 0.678, "gt_crop": 0.705, "localization": 0.410}


@dataclass
class FinegrainedResult:
    """The three accuracies and the localization accuracy (fractions in [0, 1])."""

    full: float
    cam_crop: float
    gt_crop: float
    localization: float
    top1_localization: float
    n_train: int
    n_test: int
    C: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    test_ids: list[str] = field(default_factory=list)
    test_boxes: list[list[int] | None] = field(default_factory=list)
    test_predictions: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A Markdown table of the measured figures beside the paper's."""
        rows = [
            ("classification, full image", self.full, PAPER["full"]),
            ("classification, CAM box crop", self.cam_crop, PAPER["cam_crop"]),
            ("classification, ground-truth box crop", self.gt_crop, PAPER["gt_crop"]),
            ("localization accuracy (IoU >= 0.5)", self.localization, PAPER["localization"]),
        ]
        lines = ["| setting | measured | paper (GoogLeNet-GAP, CUB-200-2011) |", "|---|---:|---:|"]
        lines += [f"| {name} | {100 * v:.1f} % | {100 * p:.1f} % |" for name, v, p in rows]
        return "\n".join(lines)


def union_box(boxes: Sequence[Sequence[int]]) -> list[int] | None:
    """The smallest inclusive box holding all ``boxes`` (``None`` when there are none)."""
    if not boxes:
        return None
    a = np.asarray(boxes, dtype=np.int64)
    return [int(a[:, 0].min()), int(a[:, 1].min()), int(a[:, 2].max()), int(a[:, 3].max())]


def localization_hits(boxes: Sequence[list[int] | None], gt: Sequence[Sequence[Sequence[int]]],
                      iou: float = 0.5) -> np.ndarray:
    """``hit[i]``: box ``i`` has IoU >= ``iou`` with one of image ``i``'s ground-truth boxes."""
    return np.asarray([
        b is not None and any(box_iou(b, g) >= iou for g in gts) for b, gts in zip(boxes, gt)
    ], dtype=bool)


def _accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(pred == y)) if len(y) else float("nan")


def finegrained(
    net: CamNet,
    train: Split,
    test: Split,
    *,
    classifier: Classifier = "svm",
    Cs: Sequence[float] = DEFAULT_CS,
    threshold: float = 0.2,
    val_fraction: float = 0.2,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
    progress: bool = True,
    scaling: Scaling = "global",
    norm: str = "minmax",
) -> FinegrainedResult:
    """Run settings (a), (b), (c) and the localization accuracy (see the module docstring).

    The backbone runs over the full training and test images once for features (cached) and
    once more for the CAM boxes; each crop setting then runs it once over the crops (cached).
    Unreadable images are left out of every setting and listed in ``skipped``.

    Raises:
        ProbeError: train and test with different classes, an empty class, a class of the test
            data the probe lacks (one line).
    """
    if list(train.classes) != list(test.classes):
        raise ProbeError(f"training and test data have different classes ({len(train.classes)} vs {len(test.classes)})")
    kw = {"cache_dir": cache_dir, "batch_size": batch_size, "progress": progress}
    fit_kw = {"classifier": classifier, "Cs": Cs, "val_fraction": val_fraction, "seed": seed, "scaling": scaling}

    # (a) full images
    ftr = extract_features(net, train, desc="features train", **kw)
    fte = extract_features(net, test, desc="features test", **kw)
    skipped = ftr.skipped + fte.skipped
    tr = [train.samples[i] for i in ftr.index]
    te = [test.samples[i] for i in fte.index]
    ytr = align_labels(train.classes, train, ftr, what=train.name or "train")
    yte = align_labels(train.classes, test, fte, what=test.name or "test")
    probe_a = fit_probe_on_features(net, ftr.x, ytr, train.classes, what=train.name or "train", **fit_kw)
    pred_tr, pred_te = probe_a.predict(ftr.x), probe_a.predict(fte.x)
    acc_full = _accuracy(pred_te, yte)

    # CAM boxes of the predicted class, with probe (a) attached for this pass only
    saved = (net.probe, net.class_names)
    try:
        net.probe, net.class_names = probe_a.linear().to(net.device), list(probe_a.class_names)
        boxes_tr, _ = cam_boxes(net, tr, pred_tr, threshold=threshold, batch_size=batch_size, progress=progress,
                                desc="CAM boxes train", norm=norm)
        boxes_te, _ = cam_boxes(net, te, pred_te, threshold=threshold, batch_size=batch_size, progress=progress,
                                desc="CAM boxes test", norm=norm)
    finally:
        net.probe, net.class_names = saved

    def crops(found: list[CamBox | None]) -> list[list[int] | None]:
        return [None if b is None else b.box for b in found]

    hits = localization_hits(crops(boxes_te), [s.boxes for s in te])

    # (b) CAM box crops and (c) ground-truth box crops
    accs: dict[str, float] = {}
    chosen = {"full": probe_a.C}
    for setting, ctr, cte in (
        ("cam_crop", crops(boxes_tr), crops(boxes_te)),
        ("gt_crop", [union_box(s.boxes) for s in tr], [union_box(s.boxes) for s in te]),
    ):
        gtr = extract_features(net, tr, crops=ctr, desc=f"features train {setting}", **kw)
        gte = extract_features(net, te, crops=cte, desc=f"features test {setting}", **kw)
        if len(gtr.index) != len(tr) or len(gte.index) != len(te):
            raise ProbeError(f"{setting}: images became unreadable during the run")
        probe = fit_probe_on_features(net, gtr.x, ytr, train.classes, what=f"{train.name or 'train'} {setting}",
                                      **fit_kw)
        accs[setting] = _accuracy(probe.predict(gte.x), yte)
        chosen[setting] = probe.C

    return FinegrainedResult(
        full=acc_full,
        cam_crop=accs["cam_crop"],
        gt_crop=accs["gt_crop"],
        localization=float(hits.mean()) if len(hits) else float("nan"),
        top1_localization=float((hits & (pred_te == yte)).mean()) if len(hits) else float("nan"),
        n_train=len(tr),
        n_test=len(te),
        C=chosen,
        skipped=skipped,
        test_ids=[s.image_id for s in te],
        test_boxes=crops(boxes_te),
        test_predictions=[int(p) for p in pred_te],
    )
