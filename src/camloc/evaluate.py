"""Evaluate a classifier's maps on a dataset: one pass, every metric, flat memory.

For each batch: one forward pass gives the scores and the maps (CAM; or a gradient method),
then the evaluators of :mod:`camloc.metrics` accumulate counts:

- classification top-1 / top-5 error;
- the paper's top-1 / top-5 localization error and GT-known accuracy: the true class's map,
  upsampled to the image, boxed with the paper's rule (20 % of the max, largest component);
  only the true class can be right, so the other top-k classes need no box;
- optionally the paper's multi-box test heuristic (top-1..3 classes, several boxes per map) and
  ten-crop maps;
- MaxBoxAcc (largest contour, IoU 0.5) and MaxBoxAccV2 (all contours, IoU 0.3/0.5/0.7) on the
  protocol's maps: the raw map resized to 224x224 (bicubic), min-max normalized, against the
  ground-truth boxes scaled to 224x224;
- PxAP when the samples carry masks;
- optionally (``faithfulness=True``) deletion / insertion AUC, Average Drop / Increase in
  Confidence of the true class's map (:mod:`camloc.metrics.faithfulness`, on the network input
  decoded again with the same geometry, batched by input shape) and the pointing game on the
  protocol's maps.

Images go through the inference pipeline (:class:`camloc.pipeline.Pipeline`), by default in
the protocol's geometry (``Resize("squash")``: the net's fixed input, 224x224 maps); the
ten-crop maps have their own loop (:func:`ten_crop`). Under ``torchrun`` each process takes
every ``world``-th sample and the evaluators' sums are all-reduced, so the result equals a
single-process run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from camloc.boxes import boxes_from_map
from camloc.cam import check_norm, class_maps, normalize_map, upsample
from camloc.data.base import Sample, Split
from camloc.data.images import ImageError, load_image
from camloc.extract import extract
from camloc.metrics.classification import ClassificationEvaluator
from camloc.metrics.faithfulness import (SUBSTRATES, FaithfulnessEvaluator, confidence_change, perturbation_curves,
                                         pointing_hit)
from camloc.metrics.ilsvrc import IlsvrcLocEvaluator, heuristic_predictions
from camloc.metrics.maxboxacc import RESIZE, MaxBoxAccEvaluator, best_ious, contour_boxes, resize_box, to_gray
from camloc.metrics.pxap import PxAPEvaluator, ground_truth
from camloc.models.net import CamNet
from camloc.pipeline.geometry import Resize


@dataclass
class EvalOptions:
    """What to compute (defaults: the paper's CAM, top-5, the protocol's 0.01 threshold step)."""

    method: str = "cam"
    layer: str | None = None
    topk: int = 5
    box_threshold: float = 0.2
    threshold_step: float = 0.01
    iou_thresholds: tuple[int, ...] = (30, 50, 70)
    batch_size: int = 16
    resize: Resize = field(default_factory=lambda: Resize("squash"))  # the protocol's geometry
    backend: str = "auto"  # what runs the CAM forward pass (camloc.pipeline.backends)
    workers: int | None = None  # decode threads (None: the pipeline's default)
    isolate: bool = False  # decode in worker processes (a decoder crash costs one image)
    ten_crop: bool = False
    multibox: bool = False
    examples: int = 6
    progress: bool | None = None
    norm: str = "minmax"  # how signed maps are read (camloc.cam.NORMS) for boxes and the protocol
    clamp_negative: bool = False  # CAM maps from the classifier's positive weights only
    faithfulness: bool = False  # deletion/insertion AUC, Average Drop/Increase, pointing game
    faithfulness_steps: int = 16  # K: points K + 1 on the deletion and insertion curves
    faithfulness_substrate: str = "blur"  # what deleted pixels become (camloc.metrics.faithfulness)


@dataclass
class EvalResult:
    """Metrics (a flat dict of numbers), BoxAcc curves for the figure, a few examples, skips."""

    metrics: dict[str, Any]
    thresholds: list[float] = field(default_factory=list)
    curves: dict[str, list[float]] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def protocol_map(raw: np.ndarray, size: int = RESIZE, norm: str = "minmax") -> np.ndarray:
    """A raw map as the CVPR 2020 protocol scores it: bicubic resize to ``size`` x ``size``, then
    min-max normalization (a constant or non-finite map becomes zeros); ``norm="positive"`` takes
    the positive part over the max instead. float64 in [0, 1]."""
    up = cv2.resize(np.asarray(raw, np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return normalize_map(up, norm).astype(np.float64)


@dataclass
class _Scored:
    """One read sample: its scores ``(C,)``, the top-k classes, the raw map of its true class,
    the maps of ``map_classes`` (multibox only), and whether the maps are already at image
    size (ten-crop) or at feature resolution."""

    sample: Sample
    size: tuple[int, int]
    logits: np.ndarray
    top: np.ndarray
    true_map: np.ndarray
    top_maps: np.ndarray | None = None
    map_classes: np.ndarray | None = None
    full_size: bool = False
    image: Image.Image | None = None


def _pipeline_scored(net: CamNet, split: Split, opt: EvalOptions, method: Any, k: int, rank: int, world: int,
                     skipped: list[str]) -> Iterator[_Scored]:
    """This process's samples through the pipeline: one forward pass per batch, the true
    class's map asked for by every job (and the top-3 maps for the multibox heuristic)."""
    from camloc.pipeline.run import Job, Pipeline, shard

    pipe = Pipeline(net, resize=opt.resize, backend=opt.backend, method=method, topk=3 if opt.multibox else 0,
                    batch_size=max(1, opt.batch_size), workers=opt.workers, isolate=opt.isolate,
                    progress=False if rank else opt.progress, desc="evaluate", clamp_negative=opt.clamp_negative)
    jobs = (Job(s.path, i, s.path, tag=s, classes=(s.label,)) for i, s in enumerate(split.samples))
    for res in pipe.run(shard(jobs, rank, world), total=len(range(rank, len(split.samples), world))):
        if res.error is not None:
            skipped.append(res.error)
            continue
        top = torch.from_numpy(res.logits).topk(min(k, len(res.logits))).indices.numpy()
        yield _Scored(res.job.tag, res.size, res.logits, top, res.extra_maps[0],
                      res.maps if opt.multibox else None, res.classes)


def _ten_crop_scored(net: CamNet, split: Split, opt: EvalOptions, k: int, rank: int, world: int,
                     skipped: list[str]) -> Iterator[_Scored]:
    """This process's samples with the paper's ten-crop maps (:func:`ten_crop`), one image at a time."""
    mine = split.samples[rank::world]
    bar = tqdm(total=len(mine), desc="evaluate (ten-crop)", unit="img", disable=True if rank else opt.progress)
    try:
        for s in mine:
            bar.update(1)
            try:
                image = load_image(s.path)
            except ImageError as err:
                skipped.append(str(err))
                continue
            scores, classes, maps = ten_crop(net, image, k, extra=torch.tensor([s.label]))
            top = classes[:k].numpy()
            yield _Scored(s, image.size, scores.numpy(), top, maps[-1], maps[:k], top, True, image)
    finally:
        bar.close()


def ten_crop(net: CamNet, image: Image.Image, classes_k: int, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The paper's ten-crop maps for one image.

    The image is resized to ``S x S`` with ``S = round(256 / 224 * size)`` (256 for the usual
    224 input); the four corner crops, the centre crop and their mirrors go through the net in
    one forward pass. Scores are the mean softmax over the crops; each crop's map (for the best
    ``classes_k`` classes, then the classes in ``extra``) is upsampled to the crop, mirrored back,
    placed where the crop came from, and averaged over the crops that cover each pixel; the
    ``S x S`` result is resized to the image. Returns ``(scores (C,), classes (n,),
    maps (n, H, W))``.
    """
    h, w = net.preprocessing.size
    sh, sw = round(256 / 224 * h), round(256 / 224 * w)
    big = image.resize((sw, sh), Image.BILINEAR)
    offsets = [(0, 0), (sw - w, 0), (0, sh - h), (sw - w, sh - h), ((sw - w) // 2, (sh - h) // 2)]
    crops = [big.crop((x, y, x + w, y + h)) for x, y in offsets]
    crops += [c.transpose(Image.FLIP_LEFT_RIGHT) for c in crops]
    x = net.preprocess(crops).to(net.device)
    net.module.eval()
    with torch.inference_mode():
        features, logits = extract(net, x)
        scores = logits.softmax(dim=1).mean(dim=0)
        classes = scores.topk(min(classes_k, scores.shape[0])).indices
        if extra is not None:
            classes = torch.cat([classes, extra.to(classes.device)])
        maps = class_maps(features, net.classifier.weight, classes).float().cpu().numpy()  # (10, n, h', w')
    total = np.zeros((len(classes), sh, sw), np.float64)
    cover = np.zeros((sh, sw), np.float64)
    for i, (ox, oy) in enumerate(offsets * 2):
        for j in range(len(classes)):
            m = upsample(maps[i, j], (h, w))
            total[j, oy : oy + h, ox : ox + w] += m[:, ::-1] if i >= 5 else m
        cover[oy : oy + h, ox : ox + w] += 1
    avg = total / np.maximum(cover, 1)
    W, H = image.size
    out = np.stack([upsample(a.astype(np.float32), (H, W)) for a in avg])
    return scores.cpu(), classes.cpu(), out


def _check_labels(split: Split, num_classes: int) -> None:
    bad = next((s for s in split.samples if not 0 <= s.label < num_classes), None)
    if bad is not None:
        raise ValueError(f"{bad.image_id}: class index {bad.label} is out of range for a model with {num_classes} classes")


def evaluate(net: CamNet, split: Split, options: EvalOptions | None = None, rank: int = 0, world: int = 1) -> EvalResult:
    """Evaluate ``net`` on ``split`` (this process's share when ``world > 1``).

    Images that cannot be read are skipped and counted (``result.skipped``); a label outside the
    model's classes is an error. Memory holds two chunks of decoded images (the pipeline's) and
    the evaluators' sums.
    """
    opt = options or EvalOptions()
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
    _check_labels(split, net.num_classes)
    method = None
    if opt.method == "cam" and getattr(net, "cam_refused", False):
        raise ValueError(f"{net.name}: CAM is refused for this head; use a gradient method (--method gradcam)")
    if opt.method != "cam":
        from camloc.methods import get_method

        method = get_method(opt.method, layer=opt.layer)
    has_boxes = any(s.boxes for s in split.samples)
    has_masks = any(s.masks or s.mask for s in split.samples)
    cls_ev = ClassificationEvaluator((1, opt.topk) if opt.topk != 1 else (1,))
    loc_ev = IlsvrcLocEvaluator((1, opt.topk) if opt.topk != 1 else (1,))
    mb_ev = IlsvrcLocEvaluator((1, 5)) if opt.multibox else None
    v2_ev = MaxBoxAccEvaluator(opt.iou_thresholds, opt.threshold_step, multi_contour=True)
    v1_ev = MaxBoxAccEvaluator((50,), opt.threshold_step, multi_contour=False)
    px_ev = PxAPEvaluator(opt.threshold_step) if has_masks else None
    fa_ev = FaithfulnessEvaluator(opt.faithfulness_steps) if opt.faithfulness else None
    fa_pending: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray, int]]] = {}
    skipped: list[str] = []
    examples: list[dict[str, Any]] = []
    k = max(opt.topk, 3 if opt.multibox else 1)
    scored = _ten_crop_scored(net, split, opt, k, rank, world, skipped) if opt.ten_crop else \
        _pipeline_scored(net, split, opt, method, k, rank, world, skipped)
    for sc in scored:
        s, (W, H) = sc.sample, sc.size
        cls_ev.accumulate(sc.logits[None], [s.label])
        raw = sc.true_map
        pm = protocol_map(raw, norm=opt.norm)
        if fa_ev is not None:
            _faithfulness_add(net, opt, fa_ev, fa_pending, s, raw, skipped)
        if has_boxes and s.boxes:
            up = raw if sc.full_size else upsample(raw, (H, W))
            found = boxes_from_map(up, opt.box_threshold, largest_only=True, norm=opt.norm)
            box = found[0] if found else None
            preds = [(int(c), box if int(c) == s.label else None) for c in sc.top[: opt.topk]]
            loc_ev.accumulate([preds], [s.label], [s.boxes], [box])
            size = s.size or (W, H)
            gt224 = [resize_box(b, size) for b in s.boxes]
            ious = best_ious(pm, np.asarray(gt224), v2_ev.thresholds)  # one sweep for both rules
            v2_ev.accumulate_ious(ious[True])
            v1_ev.accumulate_ious(ious[False])
            if fa_ev is not None:
                fa_ev.accumulate_pointing([pointing_hit(pm, gt224)])
            if mb_ev is not None:
                maps3 = [m if sc.full_size else upsample(m, (H, W)) for m in sc.top_maps[:3]]
                preds3 = heuristic_predictions([int(c) for c in sc.map_classes[:3]], maps3)
                mb_ev.accumulate([preds3], [s.label], [s.boxes])
            if len(examples) < opt.examples and rank == 0:
                image = sc.image if sc.image is not None else load_image(s.path)
                examples.append({"image_id": s.image_id, "image": np.asarray(image.resize((RESIZE, RESIZE))),
                                 "map": pm.astype(np.float32), "gt": gt224, "paper_box": box, "size": (W, H)})
        if px_ev is not None and (s.masks or s.mask):
            px_ev.accumulate([pm], [ground_truth(s.masks or [s.mask], s.ignore)])
    if fa_ev is not None:
        for key in list(fa_pending):
            _faithfulness_flush(net, opt, fa_ev, fa_pending.pop(key))
    evaluators = [e for e in (cls_ev, loc_ev, mb_ev, v2_ev, v1_ev, px_ev, fa_ev) if e is not None]
    if world > 1:
        import torch.distributed as dist

        for e in evaluators:
            e.all_reduce()
        gathered: list[list[str]] = [[] for _ in range(world)]
        dist.all_gather_object(gathered, skipped)
        skipped = [r for part in gathered for r in part]
    n_read = int(cls_ev.state()["count"][0])
    if n_read == 0:
        raise ValueError(f"no image of split {split.name or '?'} could be read; first: {skipped[0] if skipped else '?'}")
    geometry = "ten-crop" if opt.ten_crop else opt.resize.mode
    if geometry in ("aspect", "crop"):
        geometry += f":{opt.resize.size}"
    metrics: dict[str, Any] = {"method": opt.method, "norm": opt.norm, "resize": geometry, "num_images": n_read,
                               "num_skipped": len(skipped)}
    if opt.clamp_negative:
        metrics["clamp_negative"] = True
    metrics.update({k: v for k, v in cls_ev.compute().items() if k != "num_images"})
    result = EvalResult(metrics=metrics, skipped=skipped)
    if int(loc_ev.state()["count"][0]):
        metrics.update({k: v for k, v in loc_ev.compute().items() if k != "num_images"})
        if mb_ev is not None:
            metrics.update({f"multibox_{k}": v for k, v in mb_ev.compute().items() if k != "num_images"})
        v1 = v1_ev.compute()
        v2 = v2_ev.compute()
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
        for ex in examples:
            gray = to_gray(ex["map"])
            ex["protocol_boxes"] = contour_boxes(gray, int(tau * int(gray.max())), multi_contour=False)
            ex["threshold"] = tau
    if fa_ev is not None:
        metrics.update(fa_ev.compute())
        metrics["faithfulness_substrate"] = opt.faithfulness_substrate
    if px_ev is not None and int(px_ev.state()["count"][0]):
        metrics["PxAP"] = px_ev.compute()["PxAP"]
    result.examples = examples
    return result


def _faithfulness_add(net: CamNet, opt: EvalOptions, ev: FaithfulnessEvaluator,
                      pending: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray, int]]], s: Sample,
                      raw: np.ndarray, skipped: list[str]) -> None:
    """Decode ``s`` again as the pipeline did (same geometry, so the same network input) and queue
    it with its true class's map; a full batch of one input shape is scored at once."""
    from camloc.pipeline.decode import decode

    try:
        pixels = decode(s.path, opt.resize, tuple(net.preprocessing.size), 0, str(s.path), True).pixels
    except ImageError as err:  # the pipeline read it a moment ago; count it, do not stop
        skipped.append(f"faithfulness: {err}")
        return
    bucket = pending.setdefault(pixels.shape, [])
    bucket.append((pixels, upsample(raw, pixels.shape[:2]), int(s.label)))
    if len(bucket) >= max(1, opt.batch_size):
        _faithfulness_flush(net, opt, ev, pending.pop(pixels.shape))


def _faithfulness_flush(net: CamNet, opt: EvalOptions, ev: FaithfulnessEvaluator,
                        batch: list[tuple[np.ndarray, np.ndarray, int]]) -> None:
    """Score a batch of one input shape: the ``K + 1`` deletion and insertion images and the
    masked image of each, a few forward passes of the net's own scores."""
    from camloc.pipeline.backends import as_input
    from camloc.pipeline.run import _gradient_forward

    x = as_input(net, np.stack([b[0] for b in batch]))
    maps = torch.from_numpy(np.stack([b[1] for b in batch]))
    classes = torch.tensor([b[2] for b in batch])

    def scores(v: torch.Tensor) -> torch.Tensor:
        return _gradient_forward(net, v)[1]

    chunk = 4 * max(1, opt.batch_size)
    dele, ins = perturbation_curves(scores, x, maps, classes, opt.faithfulness_steps, opt.faithfulness_substrate,
                                    chunk=chunk)
    p, pm = confidence_change(scores, x, maps, classes, chunk=chunk)
    ev.accumulate(dele, ins, p, pm)


def gradient_net(module: torch.nn.Module, name: str = "", preprocessing: Any = None,
                 class_names: Sequence[str] = ()) -> CamNet:
    """Wrap a classifier whose head CAM refuses (an FC stack, MobileNetV3's head, ...) so the
    harness can run a gradient method on it: the last ``nn.Linear`` gives the number of classes
    and the last ``nn.Conv2d`` is the default target layer. Plain CAM on it is meaningless."""
    from camloc.models.heads import Head
    from camloc.models.net import Preprocessing

    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    if not linears or not convs:
        raise ValueError(f"{name or type(module).__name__}: needs a Conv2d and a final Linear layer for gradient maps")
    head = Head(convs[-1], linears[-1], "output")
    net = CamNet(module=module.eval(), name=name or type(module).__name__, class_names=list(class_names),
                 preprocessing=preprocessing or Preprocessing(), head=head)
    net.cam_refused = True  # type: ignore[attr-defined]
    return net


def load_for_gradients(spec: str, weights: str | None = None) -> CamNet:
    """A torchvision classifier by name (or ``timm:<name>``) for a gradient method, whatever its head."""
    import torchvision

    from camloc.models.timm_models import PREFIX, timm_gradient_net
    from camloc.models.torchvision_models import _state_dict_from, imagenet_classes, is_torchvision_name

    if spec.startswith(PREFIX):
        return timm_gradient_net(spec[len(PREFIX):], weights)

    if not is_torchvision_name(spec):
        raise ValueError(f"unknown model '{spec}' for a gradient method (a torchvision name is needed)")
    module = torchvision.models.get_model(spec, weights=None)
    if weights:
        try:
            state = _state_dict_from(torch.load(weights, map_location="cpu", weights_only=True))
            module.load_state_dict(state)
        except Exception as err:
            raise ValueError(f"{weights}: cannot load weights into {spec} ({' '.join(str(err).split())[:160]})") from None
    return gradient_net(module, spec, class_names=imagenet_classes())

