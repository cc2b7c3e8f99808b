"""Fine-grained recognition with CAM crops: the paper's Table 4 protocol on any labelled boxes.

Three linear probes on a frozen backbone's pooled features, each with ``C`` chosen on a
validation part of the training images:

(a) **full image**: train and test on whole images;
(b) **CAM crop**: crop every image (training and test) to the CAM box of the class that probe
    (a) predicts for it, then train and test a new probe on those crops;
(c) **ground-truth crop**: crop every image to its annotated box (the union of its boxes).

Data without boxes (a folder of class folders, say) gives (a) and (b) only: (c) and the
localization accuracies are ``None``. Data where some images have boxes and others not is
refused, so that (c) never silently mixes crops with whole images.

The **localization accuracy** is the fraction of test images whose CAM box (of probe (a)'s
predicted class, whether the prediction is right or not) has IoU >= 0.5 with a ground-truth
box; ``top1_localization`` also requires the prediction to be right. The paper reports, with
GoogLeNet-GAP features on CUB-200-2011: (a) 63.0 %, (b) 67.8 %, (c) 70.5 %, and 41.0 %
localization accuracy at IoU 0.5.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from camloc.boxes import hit
from camloc.data.base import Split
from camloc.io import json_number
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

    full: float | None  # None (null): no test images to measure on
    cam_crop: float | None
    gt_crop: float | None
    localization: float | None
    top1_localization: float | None
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
        boxes = "no boxes" if self.gt_crop is None else "no test images"
        why = ["no test images", "no test images", boxes, boxes]
        lines += [f"| {name} | {_percent(v, w)} | {100 * p:.1f} % |" for (name, v, p), w in zip(rows, why)]
        return "\n".join(lines)


MEASURES = ("full", "cam_crop", "gt_crop", "localization", "top1_localization")


def summarize(runs: Sequence[FinegrainedResult]) -> dict[str, Any]:
    """``{"mean": {...}, "std": {...}, "min": {...}, "max": {...}}`` of each measure over ``runs``
    (population standard deviation; a measure a run lacks is ``None``)."""
    out: dict[str, Any] = {"mean": {}, "std": {}, "min": {}, "max": {}}
    for m in MEASURES:
        values = [getattr(r, m) for r in runs]
        ok = None not in values and len(values) > 0
        a = np.asarray(values if ok else [], np.float64)
        for stat, fn in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max)):
            out[stat][m] = float(fn(a)) if ok else None
    return out


def seeds_table(runs: Sequence[FinegrainedResult]) -> str:
    """A Markdown table of each measure's mean, standard deviation and range over ``runs``."""
    s = summarize(runs)
    names = {"full": "classification, full image", "cam_crop": "classification, CAM box crop",
             "gt_crop": "classification, ground-truth box crop", "localization": "localization accuracy (IoU >= 0.5)",
             "top1_localization": "top-1 localization"}
    lines = [f"| setting | mean over {len(runs)} seeds | std | min - max |", "|---|---:|---:|---:|"]
    for m in MEASURES:
        if s["mean"][m] is None:
            continue
        lines.append(f"| {names[m]} | {100 * s['mean'][m]:.2f} % | {100 * s['std'][m]:.2f} | "
                     f"{100 * s['min'][m]:.2f} - {100 * s['max'][m]:.2f} % |")
    return "\n".join(lines)


def _percent(v: float | None, why: str = "no boxes") -> str:
    return f"n/a ({why})" if v is None else f"{100 * v:.1f} %"


def check_same_classes(train: Split, test: Split) -> None:
    """Raise a one-line :class:`ProbeError` naming a class one split has and the other lacks."""
    if list(train.classes) == list(test.classes):
        return
    a, b = train.name or "training data", test.name or "test data"
    for have, lack, other in ((a, b, set(test.classes)), (b, a, set(train.classes))):
        names = train.classes if have == a else test.classes
        missing = [c for c in names if c not in other]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ProbeError(f"training and test data have different classes ({len(train.classes)} vs "
                             f"{len(test.classes)}): {have} has '{missing[0]}'{more}, {lack} does not")
    raise ProbeError(f"training and test data list the same {len(train.classes)} classes in another order")


def _have_boxes(samples: Sequence[Any], what: str) -> bool:
    """Whether every sample has a box (False when none has; a one-line error when only some have)."""
    without = [s for s in samples if not s.boxes]
    if without and len(without) < len(samples):
        raise ProbeError(f"{what}: {len(without)} of {len(samples)} images have no box (first: "
                         f"{without[0].image_id}); the ground-truth crop needs a box on every image or on none")
    return not without


def union_box(boxes: Sequence[Sequence[int]]) -> list[int] | None:
    """The smallest inclusive box holding all ``boxes`` (``None`` when there are none)."""
    if not boxes:
        return None
    a = np.asarray(boxes, dtype=np.int64)
    return [int(a[:, 0].min()), int(a[:, 1].min()), int(a[:, 2].max()), int(a[:, 3].max())]


def localization_hits(boxes: Sequence[list[int] | None], gt: Sequence[Sequence[Sequence[int]]],
                      iou: float = 0.5) -> np.ndarray:
    """``hit[i]``: box ``i`` has IoU >= ``iou`` with one of image ``i``'s ground-truth boxes."""
    return np.asarray([hit(b, gts, iou) for b, gts in zip(boxes, gt)], dtype=bool)


def _accuracy(pred: np.ndarray, y: np.ndarray, what: str = "accuracy") -> float | None:
    """The fraction of ``pred == y``; ``None`` (JSON null, with a one-line warning) over no images."""
    return float(np.mean(pred == y)) if len(y) else json_number(float("nan"), f"{what} over no test images")


def _boxes_key(probe: Any, tr: Sequence[Any], te: Sequence[Any], box_kw: dict[str, Any]) -> str:
    h = hashlib.sha256(np.ascontiguousarray(probe.weight).tobytes() + np.ascontiguousarray(probe.bias).tobytes())
    h.update(json.dumps([[s.path for s in tr], [s.path for s in te], box_kw["threshold"], box_kw["norm"]]).encode())
    return h.hexdigest()


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
    memo: dict[str, Any] | None = None,
) -> FinegrainedResult:
    """Run settings (a), (b), (c) and the localization accuracy (see the module docstring).

    The backbone runs over the full training and test images once for features (cached) and
    once more for the CAM boxes; each crop setting then runs it once over the crops (cached).
    Unreadable images are left out of every setting and listed in ``skipped``. ``memo``, a dict
    kept between calls (e.g. over seeds), holds the CAM boxes of probes already seen, so a probe
    that comes out the same (same ``C`` chosen) does not run the backbone again for its boxes.

    Raises:
        ProbeError: train and test with different classes, an empty class, boxes on only some
            images (one line).
    """
    check_same_classes(train, test)
    kw = {"cache_dir": cache_dir, "batch_size": batch_size, "progress": progress}
    fit_kw = {"classifier": classifier, "Cs": Cs, "val_fraction": val_fraction, "seed": seed, "scaling": scaling,
              "progress": progress}

    # (a) full images
    ftr = extract_features(net, train, desc="features train", **kw)
    fte = extract_features(net, test, desc="features test", **kw)
    skipped = ftr.skipped + fte.skipped
    tr = [train.samples[i] for i in ftr.index]
    te = [test.samples[i] for i in fte.index]
    ytr = align_labels(train.classes, train, ftr, what=train.name or "train")
    yte = align_labels(train.classes, test, fte, what=test.name or "test")
    boxed = _have_boxes(tr, train.name or "train")
    if boxed != _have_boxes(te, test.name or "test"):
        raise ProbeError(f"{'test' if boxed else 'training'} images have no boxes but the "
                         f"{'training' if boxed else 'test'} images have: the ground-truth crop needs both")
    probe_a = fit_probe_on_features(net, ftr.x, ytr, train.classes, what=train.name or "train", **fit_kw)
    pred_tr, pred_te = probe_a.predict(ftr.x), probe_a.predict(fte.x)
    acc_full = _accuracy(pred_te, yte, "classification accuracy (full image)")

    # CAM boxes of the predicted class, with probe (a) attached for this pass only
    box_kw = {"threshold": threshold, "batch_size": batch_size, "progress": progress, "norm": norm}
    key = _boxes_key(probe_a, tr, te, box_kw) if memo is not None else None
    if key is not None and key in memo:
        boxes_tr, boxes_te = memo[key]
    else:
        saved = (net.probe, net.class_names)
        try:
            net.probe, net.class_names = probe_a.linear().to(net.device), list(probe_a.class_names)
            boxes_tr, _ = cam_boxes(net, tr, pred_tr, desc="CAM boxes train", **box_kw)
            boxes_te, _ = cam_boxes(net, te, pred_te, desc="CAM boxes test", **box_kw)
        finally:
            net.probe, net.class_names = saved
        if key is not None:
            memo[key] = (boxes_tr, boxes_te)

    def crops(found: list[CamBox | None]) -> list[list[int] | None]:
        return [None if b is None else b.box for b in found]

    hits = localization_hits(crops(boxes_te), [s.boxes for s in te]) if boxed else None

    # (b) CAM box crops and (c) ground-truth box crops
    accs: dict[str, float] = {}
    chosen = {"full": probe_a.C}
    settings = [("cam_crop", crops(boxes_tr), crops(boxes_te))]
    if boxed:
        settings.append(("gt_crop", [union_box(s.boxes) for s in tr], [union_box(s.boxes) for s in te]))
    for setting, ctr, cte in settings:
        gtr = extract_features(net, tr, crops=ctr, desc=f"features train {setting}", **kw)
        gte = extract_features(net, te, crops=cte, desc=f"features test {setting}", **kw)
        if len(gtr.index) != len(tr) or len(gte.index) != len(te):
            raise ProbeError(f"{setting}: images became unreadable during the run")
        probe = fit_probe_on_features(net, gtr.x, ytr, train.classes, what=f"{train.name or 'train'} {setting}",
                                      **fit_kw)
        accs[setting] = _accuracy(probe.predict(gte.x), yte, f"classification accuracy ({setting})")
        chosen[setting] = probe.C

    return FinegrainedResult(
        full=acc_full,
        cam_crop=accs["cam_crop"],
        gt_crop=accs.get("gt_crop"),
        localization=None if hits is None else _accuracy(hits, np.ones_like(hits), "localization accuracy"),
        top1_localization=(None if hits is None
                           else _accuracy(hits & (pred_te == yte), np.ones_like(hits), "top-1 localization")),
        n_train=len(tr),
        n_test=len(te),
        C=chosen,
        skipped=skipped,
        test_ids=[s.image_id for s in te],
        test_boxes=crops(boxes_te),
        test_predictions=[int(p) for p in pred_te],
    )
