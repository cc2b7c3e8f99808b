"""The reproduction's measurements: each method's true-class maps, scored through
:mod:`camloc.scoring` exactly as ``camloc evaluate`` scores them; the centered-box baseline; the
mean and std over seeds and the per-seed verdicts of the paper's orderings."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from camloc.experiments.reproduce.plan import METHODS, Method, Plan
from camloc.experiments.reproduce.train import Images, logits_of
from camloc.models.net import CamNet


def method_maps(method: Method, net: CamNet, images: Images, batch: int = 250) -> np.ndarray:
    """Raw maps ``(N, h, w)`` of the true class of every image (GT-known).

    ``cam`` keeps the signed map (min-max normalization then puts its minimum, wherever it is,
    at 0); ``cam_relu`` clips it at 0 first, so that thresholds are fractions of the max as the
    paper words its rule ("above 20 % of the max value of the CAM").
    """
    from camloc.extract import cam
    from camloc.methods import Backprop, GradCAM

    out = []
    for i in range(0, len(images), batch):
        x = images.batch(slice(i, i + batch), net)
        y = torch.from_numpy(images.labels[i : i + batch])[:, None]
        if method.kind == "cam":
            maps = cam(net, x, classes=y).maps
        elif method.kind == "cam_relu":
            maps = cam(net, x, classes=y).maps.clamp_min(0)
        elif method.kind == "backprop":
            maps = Backprop()(net, x, y)
        elif method.kind == "gradcam":
            # The GAP net: its CAM feature layer (Grad-CAM is then ReLU(CAM) / hw); the FC net:
            # the output of its conv trunk.
            layer = net.module.trunk if method.net == "fc" else None
            maps = GradCAM(layer=layer)(net, x, y)
        else:  # pragma: no cover - METHODS lists the kinds
            raise ValueError(f"unknown map method kind {method.kind!r}")
        out.append(maps[:, 0].float().cpu().numpy())
    return np.concatenate(out)


def score_maps(maps: np.ndarray, top1: np.ndarray, images: Images, plan: Plan, pool: Any = None) -> dict[str, Any]:
    """All localization metrics of one method's true-class maps.

    ``top1`` is the predicted class of the net the maps come from (for the top-1 error: right
    when the class is right and the 20 %-rule box has IoU >= 0.5). Exactly as ``camloc evaluate``
    scores a dataset: the paper's box comes from the map bilinearly upsampled to the canvas;
    MaxBoxAcc/V2 score the protocol's map (bicubic resize to 224x224, min-max normalized) against
    the ground-truth boxes scaled to 224x224, with the protocol's contour boxes.
    """
    from functools import partial

    from camloc.data.base import Sample
    from camloc.scoring import Pool, Scoring, Tally, tally_chunk

    size = int(images.gray.shape[1])
    scoring = Scoring(box_threshold=plan.box_threshold, threshold_step=plan.threshold_step)
    items = [(Sample(str(i), "", int(label), [gt.tolist()], (size, size)), raw, [int(pred)])
             for i, (raw, pred, label, gt) in enumerate(zip(maps, top1, images.labels, images.boxes))]
    tally = Tally(scoring)
    (pool or Pool(1)).map_merge(partial(tally_chunk, scoring, False), items, tally.merge,
                                chunk=max(1, -(-len(items) // 8)))  # the sums do not depend on the chunks
    loc, v2, v1 = tally.loc, tally.boxacc[True], tally.boxacc[False]
    r_loc, r1, r2 = loc.compute(), v1.compute(), v2.compute()
    return {
        "top1_loc_error": float(r_loc["top1_loc_error"]),
        "gt_known_loc_acc": float(r_loc["gt_known_loc_acc"]),
        "MaxBoxAcc": r1["MaxBoxAcc@50"],
        "MaxBoxAcc_threshold": r1["best_threshold"]["50"],
        "MaxBoxAccV2": r2["MaxBoxAccV2"],
        **{f"MaxBoxAccV2@{d}": r2[f"MaxBoxAcc@{d}"] for d in (30, 50, 70)},
        "curve": [round(float(v), 3) for v in v1.curves()[50]],
    }


def centered_baseline(boxes: np.ndarray, size: int, step: float = 0.05) -> dict[str, Any]:
    """The best centered rectangle: width and height fractions of the canvas on a ``step`` grid,
    chosen on these very boxes (an optimistic baseline; ties go to the higher mean IoU). Returns its GT-known accuracy (IoU >= 0.5,
    %), its MaxBoxAccV2 analogue (mean over IoU 0.3/0.5/0.7 of the best rectangle for each) and
    the chosen size."""
    from camloc.boxes import iou_matrix

    fracs = np.round(np.arange(step, 1.0 + 1e-9, step), 4)
    cands = []
    for fw in fracs:
        for fh in fracs:
            w, h = max(1, int(round(fw * size))), max(1, int(round(fh * size)))
            x0, y0 = (size - w) // 2, (size - h) // 2
            cands.append([x0, y0, x0 + w - 1, y0 + h - 1])
    iou = iou_matrix(np.array(cands), boxes)  # (candidates, images)
    acc = {d: (iou >= d / 100).mean(axis=1) * 100 for d in (30, 50, 70)}
    mean_iou = iou.mean(axis=1)
    best = int(np.lexsort((-mean_iou, -acc[50]))[0])  # most hits at IoU 0.5, then the highest mean IoU
    return {"gt_known_loc_acc": float(acc[50][best]), "MaxBoxAcc": float(acc[50][best]),
            "MaxBoxAccV2": float(np.mean([a.max() for a in acc.values()])), "box": cands[best]}


def evaluate_seed(nets: dict[str, CamNet], test: Images, plan: Plan, progress: bool,
                  pool: Any = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Classification and localization of one seed's three nets on the test set."""
    from camloc.metrics.classification import ClassificationEvaluator

    labels = torch.from_numpy(test.labels)
    top1 = {}
    result: dict[str, Any] = {"classification": {}, "methods": {}}
    for kind, net in nets.items():
        logits = logits_of(net, test)
        ev = ClassificationEvaluator((1,))
        ev.accumulate(logits, labels)
        result["classification"][kind] = float(ev.compute()["top1_cls_error"])
        top1[kind] = logits.argmax(1).numpy()
    all_maps = {}
    for m in tqdm(METHODS, desc="  maps", leave=False, disable=None if progress else True, file=sys.stderr):
        maps = method_maps(m, nets[m.net], test)
        result["methods"][m.key] = score_maps(maps, top1[m.net], test, plan, pool)
        all_maps[m.key] = maps
    return result, all_maps


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value)."""
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": int(len(a))}


def aggregate(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over seeds of every number, and the per-seed verdicts of the paper's orderings."""
    seeds = sorted(per_seed)
    runs = [per_seed[s] for s in seeds]
    out: dict[str, Any] = {"classification": {}, "methods": {}}
    for kind in runs[0]["classification"]:
        out["classification"][kind] = summarize([r["classification"][kind] for r in runs])
    for key in runs[0]["methods"]:
        stats = {}
        for metric, v in runs[0]["methods"][key].items():
            if metric == "curve":
                curves = np.array([r["methods"][key]["curve"] for r in runs])
                stats["curve_mean"] = curves.mean(0).round(3).tolist()
                stats["curve_std"] = (curves.std(0, ddof=1) if len(runs) > 1 else np.zeros(curves.shape[1])).round(3).tolist()
            elif isinstance(v, (int, float)):
                stats[metric] = summarize([r["methods"][key][metric] for r in runs])
        out["methods"][key] = stats
    out["orderings"] = orderings(runs)
    return out


def orderings(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The paper's claims, tested per seed: how many seeds agree, and the mean difference.

    * ``gap_vs_gmp[_relu]_loc_<metric>``: CAM on the GAP net localizes better than on the GMP net
      (signed maps min-max normalized, or their positive parts).
    * ``cam[_relu]_vs_backprop_<net>_<metric>``: CAM (GAP net) localizes better than Backprop.
    * ``gap_vs_gmp_classification``: the GAP net classifies about as well as the GMP net
      (the paper: within about 1 point); here: difference of top-1 errors, GMP minus GAP.
    * ``gap_vs_fc_classification``: the GAP head costs little classification accuracy
      against an FC head; here: difference of top-1 errors, GAP minus FC.
    """
    def compare(a: str, b: str, metric: str, higher_better: bool = True) -> dict[str, Any]:
        diffs = [r["methods"][a][metric] - r["methods"][b][metric] for r in runs]
        if not higher_better:
            diffs = [-d for d in diffs]
        return {"holds": sum(d > 0 for d in diffs), "of": len(diffs), "mean_diff": float(np.mean(diffs)),
                "diffs": [round(d, 3) for d in diffs]}

    out: dict[str, Any] = {}
    for metric, hb in (("MaxBoxAcc", True), ("gt_known_loc_acc", True), ("top1_loc_error", False), ("MaxBoxAccV2", True)):
        for suffix in ("", "_relu"):
            out[f"gap_vs_gmp{suffix}_loc_{metric}"] = compare(f"cam_gap{suffix}", f"cam_gmp{suffix}", metric, hb)
            for net in ("gap", "fc"):
                out[f"cam{suffix}_vs_backprop_{net}_{metric}"] = compare(f"cam_gap{suffix}", f"backprop_{net}", metric, hb)
    cls = [r["classification"] for r in runs]
    out["gap_vs_gmp_classification"] = {"mean_diff": float(np.mean([c["gmp"] - c["gap"] for c in cls])),
                                        "gap_better": sum(c["gap"] < c["gmp"] for c in cls), "of": len(cls)}
    out["gap_vs_fc_classification"] = {"mean_diff": float(np.mean([c["gap"] - c["fc"] for c in cls])),
                                       "gap_better": sum(c["gap"] < c["fc"] for c in cls), "of": len(cls)}
    return out
