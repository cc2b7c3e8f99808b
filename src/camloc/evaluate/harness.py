"""The evaluation loop: this process's samples (:mod:`camloc.evaluate.inputs`) scored one by one
(:func:`camloc.scoring.score`) into the evaluators, summed over the ``torchrun`` group
(:mod:`camloc.pipeline.distributed`), and read out (:mod:`camloc.evaluate.readout`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from camloc.readings import check_norm, upsample
from camloc.data.base import Split
from camloc.pixels.decode import load_image
from camloc.evaluate.faithfulness import faithfulness_add, faithfulness_flush
from camloc.evaluate.inputs import pipeline_scored, ten_crop_scored
from camloc.evaluate.options import EvalOptions, EvalResult
from camloc.evaluate.readout import result_of
from camloc.metrics.classification import ClassificationEvaluator
from camloc.boxes import pointing_hit
from camloc.metrics.faithfulness import SUBSTRATES, FaithfulnessEvaluator
from camloc.metrics.ilsvrc import IlsvrcLocEvaluator, heuristic_predictions
from camloc.metrics.maxboxacc import RESIZE
from camloc.models.net import CamNet
from camloc.scoring import Scoring, Tally, score


def _check(net: CamNet, split: Split, opt: EvalOptions) -> None:
    """One-line errors for options that do not go together, an empty split, or a label outside
    the model's classes."""
    check_norm(opt.norm)
    if opt.clamp_negative and (opt.ten_crop or opt.method != "cam"):
        raise ValueError("clamp_negative reads CAM's weights in the pipeline: not with ten-crop or a gradient method")
    if opt.faithfulness and opt.ten_crop:
        raise ValueError("faithfulness perturbs the pipeline's network input: not with ten-crop")
    if opt.faithfulness and opt.faithfulness_substrate not in SUBSTRATES:
        raise ValueError(f"unknown faithfulness substrate {opt.faithfulness_substrate!r}; expected one of {', '.join(SUBSTRATES)}")
    if opt.resize.mode == "crop":
        raise ValueError("resize crop maps only the central window, not the whole image: evaluate with squash or aspect")
    if not split.samples:
        raise ValueError(f"split {split.name or '?'} has no images")
    bad = next((s for s in split.samples if not 0 <= s.label < net.num_classes), None)
    if bad is not None:
        raise ValueError(f"{bad.image_id}: class index {bad.label} is out of range for a model with {net.num_classes} classes")
    if opt.method == "cam" and getattr(net, "cam_refused", False):
        raise ValueError(f"{net.name}: CAM is refused for this head; use a gradient method (--method gradcam)")


def evaluate(net: CamNet, split: Split, options: EvalOptions | None = None, rank: int = 0, world: int = 1) -> EvalResult:
    """Evaluate ``net`` on ``split`` (this process's share when ``world > 1``).

    Images that cannot be read are skipped and counted (``result.skipped``); a label outside the
    model's classes is an error. Memory holds two chunks of decoded images (the pipeline's) and
    the evaluators' sums.
    """
    opt = options or EvalOptions()
    _check(net, split, opt)
    method = None
    if opt.method != "cam":
        from camloc.methods import get_method

        method = get_method(opt.method, **{"layer": opt.layer, **opt.method_options})
    ks = (1, opt.topk) if opt.topk != 1 else (1,)
    scoring = Scoring(box_threshold=opt.box_threshold, loc_ks=ks,
                      contours=((True, tuple(opt.iou_thresholds)), (False, (50,))),
                      threshold_step=opt.threshold_step, norm=opt.norm)
    tally = Tally(scoring, masks=any(s.masks or s.mask for s in split.samples))
    cls_ev = ClassificationEvaluator(ks)
    mb_ev = IlsvrcLocEvaluator((1, 5)) if opt.multibox else None
    fa_ev = FaithfulnessEvaluator(opt.faithfulness_steps) if opt.faithfulness else None
    fa_pending: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray, int]]] = {}
    skipped: list[str] = []
    examples: list[dict[str, Any]] = []
    k = max(opt.topk, 3 if opt.multibox else 1)
    scored = ten_crop_scored(net, split, opt, k, rank, world, skipped) if opt.ten_crop else \
        pipeline_scored(net, split, opt, method, k, rank, world, skipped)
    nonfinite = 0
    for sc in scored:
        s, (W, H) = sc.sample, sc.size
        nonfinite += not np.isfinite(sc.true_map).all()  # scored as a map without a box (a miss), and said
        cls_ev.accumulate(sc.logits[None], [s.label])
        out = score(s, scoring, sc.true_map, image_size=(W, H), full_size=sc.full_size)
        tally.add(s, out, sc.top[: opt.topk])
        if fa_ev is not None:
            faithfulness_add(net, opt, fa_ev, fa_pending, s, sc.true_map, skipped)
        if not out.gt:
            continue
        if fa_ev is not None:
            fa_ev.accumulate_pointing([pointing_hit(out.protocol, out.gt)])
        if mb_ev is not None:
            maps3 = [m if sc.full_size else upsample(m, (H, W)) for m in sc.top_maps[:3]]
            preds3 = heuristic_predictions([int(c) for c in sc.map_classes[:3]], maps3)
            mb_ev.accumulate([preds3], [s.label], [s.boxes])
        if len(examples) < opt.examples and rank == 0:
            image = sc.image if sc.image is not None else load_image(s.path)
            examples.append({"image_id": s.image_id, "image": np.asarray(image.resize((RESIZE, RESIZE))),
                             "map": out.protocol.astype(np.float32), "gt": out.gt, "paper_box": out.box,
                             "size": (W, H)})
    if fa_ev is not None:
        for key in list(fa_pending):
            faithfulness_flush(net, opt, fa_ev, fa_pending.pop(key))
    if world > 1:
        from camloc.pipeline.distributed import all_gather_lists

        for e in [cls_ev, *tally.evaluators, mb_ev, fa_ev]:
            if e is not None:
                e.all_reduce()
        skipped = all_gather_lists(skipped)
        nonfinite = sum(all_gather_lists([nonfinite]))
    result = result_of(opt, cls_ev, tally, mb_ev, fa_ev, examples, skipped, split.name or "?")
    result.metrics["num_nonfinite_maps"] = int(nonfinite)
    return result
