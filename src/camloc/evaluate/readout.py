"""The harness's evaluators read out: one flat dict of metrics (the names ``camloc evaluate``
writes to ``metrics.json``), the BoxAcc curves for the figure, and the examples' boxes at the
best threshold. Writing the files is :mod:`camloc.report`'s."""

from __future__ import annotations

from typing import Any

from camloc.boxes import contour_boxes
from camloc.evaluate.options import EvalOptions, EvalResult
from camloc.metrics.classification import ClassificationEvaluator
from camloc.metrics.maxboxacc import to_gray
from camloc.scoring import Tally


def result_of(opt: EvalOptions, cls_ev: ClassificationEvaluator, tally: Tally, mb_ev: Any, fa_ev: Any,
              examples: list[dict[str, Any]], skipped: list[str], split_name: str = "?") -> EvalResult:
    """The :class:`EvalResult` of the evaluators (summed over every process already)."""
    n_read = int(cls_ev.state()["count"][0])
    if n_read == 0:
        raise ValueError(f"no image of split {split_name} could be read; first: {skipped[0] if skipped else '?'}")
    geometry = "ten-crop" if opt.ten_crop else opt.resize.mode
    if geometry in ("aspect", "crop"):
        geometry += f":{opt.resize.size}"
        if geometry.startswith("aspect") and getattr(opt.resize, "long_step", 0):
            geometry += f":{opt.resize.long_step}"  # the longer side down to a multiple of it (--resize aspect:S:N)
    metrics: dict[str, Any] = {"method": opt.method, "norm": opt.norm, "resize": geometry, "num_images": n_read,
                               "num_skipped": len(skipped)}
    if opt.clamp_negative:
        metrics["clamp_negative"] = True
    metrics.update({k: v for k, v in cls_ev.compute().items() if k != "num_images"})
    result = EvalResult(metrics=metrics, skipped=skipped, examples=examples)
    if int(tally.loc.state()["count"][0]):
        metrics.update({k: v for k, v in tally.loc.compute().items() if k != "num_images"})
        if mb_ev is not None:
            metrics.update({f"multibox_{k}": v for k, v in mb_ev.compute().items() if k != "num_images"})
        _boxacc(opt, tally, result)
    if fa_ev is not None:
        metrics.update(fa_ev.compute())
        metrics["faithfulness_substrate"] = opt.faithfulness_substrate
    if tally.pxap is not None and int(tally.pxap.state()["count"][0]):
        metrics["PxAP"] = tally.pxap.compute()["PxAP"]
    return result


def _boxacc(opt: EvalOptions, tally: Tally, result: EvalResult) -> None:
    """MaxBoxAcc (IoU 0.5, largest contour) and MaxBoxAccV2 (all contours) with their best
    thresholds and curves; each example's protocol box at the best threshold of IoU 0.5."""
    metrics = result.metrics
    v1_ev, v2_ev = tally.boxacc[False], tally.boxacc[True]
    v1, v2 = v1_ev.compute(), v2_ev.compute()
    metrics["MaxBoxAcc"] = v1["MaxBoxAcc@50"]
    metrics["MaxBoxAcc_threshold"] = v1["best_threshold"]["50"]
    metrics["MaxBoxAccV2"] = v2["MaxBoxAccV2"]
    for d in opt.iou_thresholds:
        metrics[f"MaxBoxAccV2@{d}"] = v2[f"MaxBoxAcc@{d}"]
        metrics[f"MaxBoxAccV2_threshold@{d}"] = v2["best_threshold"][str(d)]
    metrics["num_box_images"] = v2["num_images"]
    result.thresholds = v2_ev.thresholds.tolist()
    result.curves = {f"IoU {d / 100:.1f}, all contours": c.tolist() for d, c in v2_ev.curves().items()}
    result.curves["IoU 0.5, largest contour"] = v1_ev.curves()[50].tolist()
    tau = v2["best_threshold"].get("50", next(iter(v2["best_threshold"].values())))
    for ex in result.examples:
        gray = to_gray(ex["map"])
        ex["protocol_boxes"] = contour_boxes(gray, int(tau * int(gray.max())), multi_contour=False)
        ex["threshold"] = tau
